# call with an input map, an output map and temporaries (t.) in both.
workflow calltest:
in:
	input number
out:
	output number
	twice number
wfomap:
	output = v.thing
	twice = v.thing * 2
do:
	call add:
		t.base = a.input * 10
		counter = t.base + 1
		step = 3
	into:
		t.r = o.counter
		thing = t.r
