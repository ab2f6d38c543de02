# wfenv, role-free config, an action input from the environment, and a procedure call.
workflow envtest:
in:
	name string
out:
	greeting string
	doubled number
wfenv:
	lang = 'nl'
config:
	max_steps = 50
	max_depth = 3
	archive = '1 hour'
wfomap:
	<greeting>
	<doubled>
do:
	call greet:
		name = a.name
	into:
		<greeting>
	call jcc_double:
		x = length(a.name)
	into:
		doubled = o.x
