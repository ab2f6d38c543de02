# subscribe, raise_event, wait_for_event into, unsubscribe.
workflow eventtest:
in:
	in string
out:
	out string
	event object
wfomap:
	<out>
	<event>
do:
	subscribe:
		name = 'my1stevent'
		mask = object('foo', 'bar')
	raise_event:
		event = object(a.in, 'bar', 'blah', 'blargh')
	wait_for_event:
		events = array('my1stevent')
		timeout = 5
	into:
		event = o.event
	if v.event.name eq 'my1stevent':
		eval:
			out = 'got my1stevent'
	else:
		eval:
			out = 'got ' . v.event.name
	unsubscribe my1stevent
