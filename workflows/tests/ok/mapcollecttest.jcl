# map … using … collect with ,= and a negative index; e._v and e._i in the child's input.
workflow mapcollecttest:
in:
	input array
out:
	outputs array
	last number
	total number
wfomap:
	<outputs>
	last = v.outputs[-1]
	<total>
do:
	map calltest using a.input:
		input = tonumber(e._v) + e._i
	collect:
		outputs ,= o.output
		total += o.output
