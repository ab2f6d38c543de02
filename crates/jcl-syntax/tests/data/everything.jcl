#[[ A workflow that uses every statement of the language once.
    Block comments can hold anything: 'quotes', [[ perl ]], "#". #]]
workflow "test.everything":
in:
	name string
	count integer 3
	ratio number -0.5
	opts object {retries: 2, 'tags': ['a', "b"], nested: {ok: true, none: null}}
out:
	result string
	extra object optional
wfenv:
	colour = 'blue'
	limit = 0x10, debug = false
role: admin
config:
	max_steps = 500
	max_depth = 5
	archive = '30 days'
	retry = {tries: 3, interval: '5 seconds', backoff: 'exponential', jitter: true,}
locks:
	account a.name manual inherit
	slot _ manual
	global 'everything' inherit
wfomap:
	<result>
	extra = object('n', v.n)
do:
	label start
	let:
		n = 0
		list = array()
		m = object()
	eval:
		n += 1
		n -= 1
		n *= 2
		n /= 2
		s .= 'x'
		list ,= v.n
		d //= 'default'
		f ||= true
		v.m['key'] = 1
		v.list[0] = 2
		<name>
		<a, b>
		<*>
		t.tmp = a.count ** 2
	if v.n == 0:
		goto start
	elsif v.n > 10 && v.n < 20:
		return
	else:
		sleep '1 second'
	while v.n lt '5':
		eval:
			n = v.n + 1
	repeat:
		eval:
			n = v.n - 1
	until v.n <= 0
	case lc(a.name):
		when alice, 'bob smith', 42:
			raise_error 'no ' . a.name
		when carol:
			assert defined(v.n): 'n is defined'
		else:
			assert v.n ~ /^\d+$/i:
				'n is ' . v.n
	try:
		call "odd action":
	catch:
		eval:
			err = e._error.msg
	subscribe:
		name = 'ev1'
		mask = object('type', 'x')
	raise_event:
		event = object('type', 'x', 'n', v.n)
	wait_for_event:
		events = array('ev1')
		timeout = 10
	into:
		ev = o.event
	unsubscribe ev1
	unsubscribe:
		name = 'ev2'
	lock slot a.name
	wait_for_lock slot:
		value = a.name
		wait = no
	wait_for_lock slot:
		value = a.name
		wait = '5 minutes'
	unlock slot a.name
	split:
		callflow child.one:
			x = 1
		into:
			one = o.result
		map child.two using a.opts.list:
			item = e._v
			index = e._i
		collect:
			results ,= o.result
	map child.three using v.list:
		<name>
	collect:
		all ,= o.result
	detachflow child.forget:
		why = 'because'
	interface backends.api:
		backend.one, backend.two
		"backend.three"
	call 'backend.' . v.kind:
		<name>
	into:
		<result>
	detachflow nobody.cares:
	label end
