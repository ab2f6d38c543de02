# Worker action: create a database owned by a user.
action mysql.create_database:
in:
	name string
	owner string
out:
	created boolean
