# Worker action: add a virtual host to the web server.
action webserver.add_vhost:
role: hosting
in:
	name string
	docroot string
out:
	id string
