# Create a web server virtual host for a domain.
workflow vhost.create:
in:
	domain string
out:
	vhost string
wfomap:
	<vhost>
do:
	call webserver.add_vhost:
		name = a.domain
		docroot = '/srv/www/' . a.domain
	into:
		vhost = o.id
