# expect: JC0218 10:7
workflow err.duplicate_case:
in:
	x string
do:
	case a.x:
	when a, b:
		eval:
			y = 1
	when b:
		eval:
			y = 2
