# call of a workflow: a child job, waited for, its outputs mapped.
workflow childjobtest:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	call calltest:
		input = a.input + 1
	into:
		output = o.output + o.twice
