# expect: JC0212 6:1
workflow err.output_unassigned:
out:
	result string
	extra string optional
wfomap:
	extra = 'x'
