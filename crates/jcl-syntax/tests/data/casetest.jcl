workflow casetest:
in:
	input string
out:
	counter number
	thing string
wfomap:
	counter = v.counter
	thing = v.thing
do:
	case a.input:
	when "foo":
		call add:
			counter = 10
		into:
			counter = o.counter
			thing = 'got foo'
	when bar, baz:
		eval:
			counter = -1
			thing = 'got bar or baz'
	else:
		eval:
			counter = -1
			thing = 'dunno what i got: ' . a.input
