# expect: JC0203 4:2
workflow err.missing_input:
do:
	call div:
		a = 1
