# A sleep (the maestro's timer wakes it), then one action.
workflow chaos.sleep:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	sleep '1 second'
	call chaos.add:
		counter = a.input
		step = 3
	into:
		output = o.counter
