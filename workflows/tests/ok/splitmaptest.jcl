# split with a callflow and a map together.
workflow splitmaptest:
in:
	list array
out:
	single number
	many array
wfomap:
	<single>
	<many>
do:
	split:
		callflow calltest:
			input = 0
		into:
			single = o.output
		map calltest using a.list:
			input = e._v
		collect:
			many ,= o.output
