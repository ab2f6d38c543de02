# expect: JC0205 6:10
workflow err.unassigned_in_wfomap:
out:
	total number
wfomap:
	total = v.totl
do:
	eval:
		total = 1
