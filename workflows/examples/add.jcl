# A worker action: adds step to counter.
action add:
in:
	counter number
	step number
out:
	counter number
