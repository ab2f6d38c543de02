# The chaos load's worker action: counter + step, after a short delay (tasks in hand).
# Retryable with a time-out, so a task lost with its worker or gateway is performed again.
action chaos.add:
in:
	counter number
	step number
out:
	counter number
config:
	retry = {tries: 50, interval: '1 second'}
	retryable = true
	timeout = '10 seconds'
