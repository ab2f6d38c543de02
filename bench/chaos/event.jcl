# An event: subscribed, raised, waited for (a time-out answers -1), unsubscribed.
workflow chaos.event:
in:
	input number
out:
	output number
wfomap:
	<output>
do:
	subscribe:
		name = 'go'
		mask = object('chaos', a.input)
	raise_event:
		event = object('chaos', a.input)
	wait_for_event:
		events = array('go')
		timeout = 120
	into:
		<event>
	if v.event.name eq 'go':
		call chaos.add:
			counter = a.input
			step = 3
		into:
			output = o.counter
	else:
		eval:
			output = -1
	unsubscribe go
