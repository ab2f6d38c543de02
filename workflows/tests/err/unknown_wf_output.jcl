# expect: JC0207 7:2
workflow err.unknown_wf_output:
out:
	result string
wfomap:
	result = 'x'
	reslt = 'y'
