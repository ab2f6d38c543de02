# Worker action with a rate limit: at most 10 tasks started in any second.
action rated:
in:
	n number
out:
	n number
config:
	rate = '10 per 1 second'
