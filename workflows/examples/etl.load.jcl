# Worker action: bulk-load rows into a table.
action etl.load:
role: etl
in:
	rows array
	table string
out:
	count number
config:
	retry = {tries: 5, interval: '30 seconds'}
	retryable = true
