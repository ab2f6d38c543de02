# repeat … until: the body runs at least once.
workflow repeattest:
in:
	start number
out:
	result number
	rounds number
wfomap:
	result = v.n
	<rounds>
do:
	eval:
		n = a.start
		rounds = 0
	repeat:
		call square:
			n = v.n
		into:
			<n>
		eval:
			rounds += 1
	until v.n > 100
