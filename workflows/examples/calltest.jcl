# The original JobCenter's first example: call an action and map its result.
workflow calltest:
in:
	input number
out:
	output number
wfomap:
	output = v.thing
do:
	call add:
		counter = a.input
		step = 3
	into:
		thing = o.counter
