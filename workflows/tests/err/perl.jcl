# expect: JC0109 5:10
workflow err.perl:
do:
	eval:
		x = [[ lc($a{y}) ]]
