# ETL: extract page by page until the source has no more, transform each page, load the good
# rows and count the rejected ones.
workflow etl.nightly:
in:
	source string
	day string
out:
	loaded number
	rejected number
	pages number
config:
	max_steps = 1000
wfomap:
	<loaded>
	<rejected>
	<pages>
do:
	eval:
		loaded = 0
		rejected = 0
		pages = 0
		cursor = null
	repeat:
		call etl.extract:
			source = a.source
			day = a.day
			<cursor>
		into:
			rows = o.rows
			cursor = o.next_cursor
		call etl.transform:
			<rows>
		into:
			good = o.good
			rejected += length(o.bad)
		if length(v.good) > 0:
			call etl.load:
				rows = v.good
				table = 'facts_' . replace(a.day, '-', '')
			into:
				loaded += o.count
		eval:
			pages += 1
	until !defined(v.cursor)
