# expect: JC0222 7:3
workflow err.copy_in_eval:
in:
	x number
do:
	eval:
		<x>
