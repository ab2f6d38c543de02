# expect: JC0217 5:7
workflow err.namespace_read:
do:
	eval:
		x = o.counter
