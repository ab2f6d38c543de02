# expect: JC0204 4:14
workflow err.wait_type:
do:
	raise_error 42
