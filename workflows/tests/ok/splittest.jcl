# split with three children, each one's outputs mapped in order.
workflow splittest:
in:
	input number
out:
	one number
	two number
	three number
wfomap:
	<one>
	<two>
	<three>
do:
	split:
		callflow calltest:
			input = a.input
		into:
			one = o.output
		callflow calltest:
			input = a.input + 1
		into:
			two = o.output
		callflow calltest:
			input = a.input + 2
		into:
			three = o.output
