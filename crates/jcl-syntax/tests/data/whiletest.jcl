workflow whiletest:
in:
	input number
out:
	output number
do:
	while !v.thing or v.thing < 10:
		call add:
			counter = v.thing // a.input
		into:
			thing = o.counter
wfomap:
	output = v.thing
