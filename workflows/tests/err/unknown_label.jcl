# expect: JC0208 5:7
workflow err.unknown_label:
do:
	label again
	goto agian
