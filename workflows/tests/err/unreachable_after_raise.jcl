# expect: JC0213 5:2
workflow err.unreachable_after_raise:
do:
	raise_error 'stop'
	sleep '1 second'
