# A worker action: adds step to counter.
action add:
role: workers
in:
	counter number
	step number
out:
	counter number
