workflow order_wordpress:
in:
	domain string
	plan string 'basic'
out:
	site_url string
	log string optional
config:
	max_steps = 200
wfomap:
	<site_url>
	log = ifdef(v.log)
do:
	call storage.allocate:
		plan = a.plan
	into:
		<filer_ip>
	try:
		call dns.configure:
			domain = a.domain
			ip = v.filer_ip
	catch:
		v.log = 'dns failed: ' . e._error.msg
		raise_error 'cannot configure ' . a.domain
	split:
		callflow vhost.create:
			domain = a.domain
		callflow mysql.create:
			owner = a.domain
		into:
			db = o.database
	eval:
		site_url = 'https://' . a.domain . '/'
