# One flaky action: retried after its soft errors.
workflow chaos.retry:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	call chaos.flaky:
		counter = a.input
		step = 3
	into:
		output = o.counter
