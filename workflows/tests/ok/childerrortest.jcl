# A child's error is caught in the parent as a childerror.
workflow childerrortest:
in:
	why string
out:
	caught string
	class string
wfomap:
	<caught>
	<class>
do:
	try:
		call failchild:
			why = a.why
	catch:
		eval:
			caught = e._error.msg
			class = e._error.class
