# expect: JC0221 4:4
action err.unknown_type:
in:
	n nubmer
