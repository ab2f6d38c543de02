# expect: JC0211 6:7
workflow err.undeclared_lock:
locks:
	account _ manual
do:
	lock acount 'acme'
	unlock acount 'acme'
