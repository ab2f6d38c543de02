# expect: JC0216 4:2
workflow err.config:
config:
	timeout = '5 minutes'
	max_steps = -1
