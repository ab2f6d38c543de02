# A call of a workflow with a priority: the child job's tasks are served before those of
# lower priorities (with aging).
workflow prioritytest:
in:
	input number
out:
	output number
wfomap:
	output = v.output
do:
	call calltest priority 5:
		input = a.input
	into:
		output = o.output
