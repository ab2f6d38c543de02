# Worker action that takes `lang` from the job environment.
action greet:
in:
	name string
env:
	lang string
out:
	greeting string
