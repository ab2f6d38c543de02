# expect: JC0226 4:20
workflow err.priority:
do:
	call add priority 5:
		counter = 1
		step = 1
