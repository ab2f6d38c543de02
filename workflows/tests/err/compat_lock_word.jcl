# expect: JC0101 5:10
# a bare-word lock value is one word, then the flags
workflow err.lockword:
locks:
	foo bar baz
