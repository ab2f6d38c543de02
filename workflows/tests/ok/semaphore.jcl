# A counted lock: at most three jobs hold one region's slot at once, the others wait.
workflow semaphore:
in:
	region string
out:
	done boolean
locks:
	slot _ manual limit 3
wfomap:
	done = v.done
do:
	lock slot a.region
	eval:
		done = true
	unlock slot a.region
