# raise_error: uncaught, the job ends in error with the message.
workflow raisetest:
in:
	what string
out:
	never string optional
do:
	if a.what eq 'fail':
		raise_error 'failing because ' . a.what
	assert a.what ne 'bad': 'assertion: ' . a.what . ' is bad'
