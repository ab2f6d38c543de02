# expect: JC0101 6:9
# a second `;` after an assignment
workflow err.semicolon:
do:
	eval:
		x = 1;;
