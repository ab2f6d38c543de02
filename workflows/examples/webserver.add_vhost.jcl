# Worker action: add a virtual host to the web server.
action webserver.add_vhost:
in:
	name string
	docroot string
out:
	id string
