# expect: JC0205 10:8
workflow err.unassigned_var:
out:
	x number
wfomap:
	<x>
do:
	if true:
		eval:
			x = v.y
	else:
		eval:
			x = 1
