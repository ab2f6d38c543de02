# max_steps stops a runaway loop with a fatal error.
workflow steptest:
out:
	never string optional
config:
	max_steps = 20
do:
	label forever
	goto forever
