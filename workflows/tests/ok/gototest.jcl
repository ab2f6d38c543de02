# goto / label / return: a loop made of labels, and an early return.
workflow gototest:
in:
	count number
out:
	steps array
	early boolean
wfomap:
	<steps>
	early = v.early
do:
	eval:
		i = 0
		steps = array()
		early = false
	label again
	eval:
		i += 1
		steps ,= v.i
	if v.i < a.count:
		goto again
	if a.count > 2:
		eval:
			early = true
		return
	eval:
		steps ,= 'done'
