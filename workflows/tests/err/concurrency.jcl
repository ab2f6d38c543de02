# expect: JC0228 5:16
action err.concurrency:
config:
	timeout = '5 minutes'
	concurrency = 0
