# expect: JC0119 6:3
# raise_error: takes the one assignment msg = …
workflow err.raiseblock:
do:
	raise_error:
		message = "x"
