# sleep for an interval.
workflow sleeptest:
in:
	nap string '1 second'
out:
	slept boolean
wfomap:
	<slept>
do:
	sleep a.nap
	eval:
		slept = true
