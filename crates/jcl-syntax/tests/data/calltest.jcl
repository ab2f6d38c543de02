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
