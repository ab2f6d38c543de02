# expect: JC0224 9:18
workflow err.schedule:
in:
	input number
	label string 'none'
do:
	return
schedule:
	nightly: cron = '0 30 2 * *', tz = 'Europe/Amsterdam', args = {input: 1}
	hourly: cron = '0 0 * * * *', missed = 'later', args = {input: 'x', other: 1}
	weekly:
		cron = '@weekly'
		timezone = 'UTC'
	'a/b': tz = 'UTC', enabled = 'yes', args = {input: 2}
