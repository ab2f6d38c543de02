# case with several labels per when, and else.
workflow casetest:
in:
	input string
out:
	counter number
	thing string
wfomap:
	<counter>
	<thing>
do:
	case a.input:
	when foo:
		call add:
			counter = 10
		into:
			counter = o.counter
		eval:
			thing = 'got foo'
	when bar, baz, 42:
		eval:
			counter = -1
			thing = 'got bar or baz'
	else:
		eval:
			counter = -1
			thing = 'dunno what i got: ' . a.input
