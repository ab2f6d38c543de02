# expect: JC0204 7:13
workflow err.type_mismatch:
in:
	name string
do:
	call add:
		counter = 'ten ' . a.name
