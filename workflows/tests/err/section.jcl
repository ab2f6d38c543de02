# expect: JC0215 5:1
action err.section:
in:
	x number
do:
	eval:
		y = 1
