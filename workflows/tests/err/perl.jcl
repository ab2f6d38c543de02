# expect: JC0109 5:7
workflow err.perl:
do:
	eval:
		x = [[ $a{y} * 2 ]]
