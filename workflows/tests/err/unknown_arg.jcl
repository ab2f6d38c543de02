# expect: JC0206 7:9
workflow err.unknown_arg:
in:
	count number
do:
	eval:
		x = a.cuont + 1
