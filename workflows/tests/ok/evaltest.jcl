# eval/let with string concatenation, an input default and the //, ||= and .= operators.
workflow evaltest:
in:
	i1 number
	i2 number
	op string '+'
	label json null
out:
	out string
	tag string
wfomap:
	<out>
	tag = v.tag
do:
	eval:
		out = a.i1 . ' ' . a.op . ' ' . a.i2
		tag = a.label // 'none'
	let:
		out .= '!'
		tag ||= 'unused'
