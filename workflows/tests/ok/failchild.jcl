# A child that fails.
workflow failchild:
in:
	why string
out:
	never string optional
do:
	raise_error 'child says ' . a.why
