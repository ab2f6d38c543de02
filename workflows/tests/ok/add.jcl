# Worker action: counter + step.
action add:
in:
	counter number
	step number 1
out:
	counter number
