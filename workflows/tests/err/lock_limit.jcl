# expect: JC0225 4:16
workflow err.lock_limit:
locks:
	slot _ manual limit 0
do:
	lock slot 1
	unlock slot 1
