# expect: JC0204 4:11
workflow err.default_type:
in:
	n number 'many'
