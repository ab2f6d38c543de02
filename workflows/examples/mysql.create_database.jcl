# Worker action: create a database owned by a user.
action mysql.create_database:
role: hosting
in:
	name string
	owner string
out:
	created boolean
