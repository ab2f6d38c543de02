# expect: JC0210 6:7
workflow err.lock_not_manual:
locks:
	account 'acme'
do:
	lock account 'acme'
