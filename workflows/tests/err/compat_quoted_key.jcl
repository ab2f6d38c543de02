# expect: JC0206 8:9
# a quoted key names an input that is not declared
workflow err.quoted:
in:
	"in put" string
do:
	eval:
		x = a.'input'
