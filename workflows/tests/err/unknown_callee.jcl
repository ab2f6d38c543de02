# expect: JC0201 4:7
workflow err.unknown_callee:
do:
	call nosuch.action:
		x = 1
