# An interface: the inputs and outputs every shape workflow has.
workflow shape:
in:
	size number
out:
	area number
do:
	raise_error 'shape is an interface: call one of its workflows'
