# Worker action: reserve space on a filer for a hosting plan.
action storage.allocate:
role: hosting
in:
	plan string
out:
	filer_ip string
config:
	timeout = '5 minutes'
