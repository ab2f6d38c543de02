# Worker action: split rows into valid (transformed) and rejected ones.
action etl.transform:
in:
	rows array
out:
	good array
	bad array
