# Worker action: n squared.
action square:
in:
	n number
out:
	n number
config:
	timeout = '30 seconds'
