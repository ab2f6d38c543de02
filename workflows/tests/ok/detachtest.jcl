# detachflow: a child nobody waits for.
workflow detachtest:
in:
	input number
out:
	done boolean
wfomap:
	<done>
do:
	detachflow calltest:
		input = a.input
	eval:
		done = true
