# Worker action: one page of rows of a day from a source; next_cursor is absent on the last page.
action etl.extract:
role: etl
in:
	source string
	day string
	cursor json null
out:
	rows array
	next_cursor json optional
