# expect: JC0217 6:6
# a whole copy into a read-only namespace
workflow err.perlcopy:
do:
	eval:
		[[ %a = %v ]]
