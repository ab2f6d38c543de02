# A child job: chaos.one, waited for.
workflow chaos.child:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	call chaos.one:
		input = a.input
	into:
		output = o.output
