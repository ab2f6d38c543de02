# expect: JC0109 7:14
# a regex match in Perl is not translated; JCL has `~`
workflow err.perlregex:
in:
	x string
do:
	if [[ $a{x} =~ /y/ ]]:
		return
