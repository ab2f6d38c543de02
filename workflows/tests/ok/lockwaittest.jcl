# wait_for_lock with wait = no: an error of class lock when someone holds it.
workflow lockwaittest:
in:
	in string
	hold boolean false
out:
	out string
locks:
	foo _ manual
wfomap:
	out = v.thing
do:
	eval:
		thing = 'got ' . a.in
	try:
		wait_for_lock foo:
			value = a.in
			wait = no
	catch:
		eval:
			thing = e._error.class . ': ' . e._error.msg
		return
	eval:
		thing .= ' and got lock foo'
	if a.hold:
		sleep '1 hour'
	unlock foo a.in
	eval:
		thing .= ' and unlocked it'
