# if / elsif / else.
workflow iftest:
in:
	n number
out:
	size string
wfomap:
	<*>
do:
	if a.n < 10:
		eval:
			size = 'small'
	elsif a.n < 100:
		eval:
			size = 'medium'
	else:
		eval:
			size = 'large'
