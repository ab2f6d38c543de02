# expect: JC0101 6:20
# in object(…) a colon follows a key, not a value
workflow err.objcolon:
do:
	eval:
		x = object("a": 1: 2)
