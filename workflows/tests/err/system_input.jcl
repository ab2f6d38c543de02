# expect: JC0203 4:2
workflow err.system_input:
do:
	subscribe:
		name = 'ev'
