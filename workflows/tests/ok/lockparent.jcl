# locks: taken at start with inherit, so a child may take the same lock.
workflow lockparent:
in:
	in string
out:
	out string
locks:
	account a.in inherit
wfomap:
	out = v.thing
do:
	eval:
		thing = 'parent got ' . a.in
	call lockchild:
		in = a.in
	into:
		thing .= ' and ' . o.out
