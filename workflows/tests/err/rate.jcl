# expect: JC0227 5:9
action err.rate:
config:
	timeout = '5 minutes'
	rate = '0 per 1 second'
