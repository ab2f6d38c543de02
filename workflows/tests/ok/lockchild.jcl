# manual lock/unlock of a lock its parent holds with inherit.
workflow lockchild:
in:
	in string
out:
	out string
locks:
	account _ manual
wfomap:
	out = v.thing
do:
	lock account a.in
	eval:
		thing = 'child locked ' . a.in
	unlock account a.in
