# expect: JC0214 5:7
workflow err.arity:
do:
	eval:
		n = length('a', 'b')
