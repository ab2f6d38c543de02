# One action: output = input + 3.
workflow chaos.one:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	call chaos.add:
		counter = a.input
		step = 3
	into:
		output = o.counter
