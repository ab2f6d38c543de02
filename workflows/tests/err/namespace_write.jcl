# expect: JC0217 7:3
workflow err.namespace_write:
in:
	x number
do:
	eval:
		a.x = 2
