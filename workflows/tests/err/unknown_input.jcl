# expect: JC0202 6:3
workflow err.unknown_input:
do:
	call add:
		counter = 1
		stepp = 2
