# Create a MySQL database and user for an owner; the database name is derived from it.
workflow mysql.create:
in:
	owner string
out:
	database string
wfomap:
	database = v.name
do:
	eval:
		name = replace(replace(a.owner, '.', '_'), '-', '_')
	call mysql.create_database:
		<name>
		owner = a.owner
