# expect: JC0213 6:3
workflow err.unreachable:
do:
	if true:
		return
		eval:
			x = 1
