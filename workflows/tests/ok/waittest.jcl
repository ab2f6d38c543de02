# wait_for_event for an event raised by someone else, or a time-out.
workflow waittest:
in:
	key string
	timeout number 60
out:
	got string
wfomap:
	<got>
do:
	subscribe:
		name = 'approval'
		mask = object('key', a.key)
	wait_for_event:
		events = 'approval'
		timeout = a.timeout
	into:
		<event>
	eval:
		got = v.event.name
	if v.event.name eq 'approval':
		eval:
			got .= ':' . v.event.data.answer
	unsubscribe:
		name = 'approval'
