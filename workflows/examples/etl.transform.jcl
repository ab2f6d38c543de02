# Worker action: split rows into valid (transformed) and rejected ones.
action etl.transform:
role: etl
in:
	rows array
out:
	good array
	bad array
