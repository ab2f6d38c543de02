# expect: JC0209 7:8
workflow err.duplicate_label:
do:
	label here
	eval:
		x = 1
	label here
