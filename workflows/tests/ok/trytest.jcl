# try/catch: an action's error and a raised error are caught; e._error holds the error.
workflow trytest:
in:
	a number
	b number
out:
	result string
	class string
wfomap:
	<result>
	<class>
do:
	try:
		call div:
			a = a.a
			b = a.b
		into:
			result = 'quotient ' . o.q
		eval:
			class = 'none'
		if v.result eq 'quotient 1':
			raise_error 'one is boring'
	catch:
		eval:
			result = 'caught: ' . e._error.msg
			class = e._error.class
