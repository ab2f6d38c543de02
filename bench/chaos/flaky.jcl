# chaos.add, but the worker answers a soft error to some tasks (retries).
# Retryable with a time-out, so a task lost with its worker or gateway is performed again.
action chaos.flaky:
in:
	counter number
	step number
out:
	counter number
config:
	retry = {tries: 50, interval: '1 second'}
	retryable = true
	timeout = '10 seconds'
