# Worker action: a / b; the worker answers an error when b is 0.
action div:
in:
	a number
	b number
out:
	q number
config:
	retry = {tries: 2, interval: '1 second'}
	retryable = true
