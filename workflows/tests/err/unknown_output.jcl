# expect: JC0207 7:9
workflow err.unknown_output:
do:
	call add:
		counter = 1
	into:
		x = o.count
