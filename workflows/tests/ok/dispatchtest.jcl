# interface dispatch: call the workflow named at run time among the listed ones.
workflow dispatchtest:
in:
	kind string
	size number
out:
	area number
wfomap:
	<area>
do:
	interface shape:
		shape.square, shape.circle
	call 'shape.' . a.kind:
		size = a.size
	into:
		<*>
