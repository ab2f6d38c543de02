# expect: JC0219 5:12
workflow err.callee_kind:
do:
	split:
		callflow add:
			counter = 1
