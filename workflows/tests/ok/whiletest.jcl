# while calling an action until the counter reaches a limit.
workflow whiletest:
in:
	input number
	limit number 10
out:
	output number
	rounds number
wfomap:
	output = v.thing
	rounds = v.rounds
do:
	eval:
		thing = a.input
		rounds = 0
	while v.thing < a.limit:
		call add:
			counter = v.thing
			step = 4
		into:
			thing = o.counter
		eval:
			rounds += 1
