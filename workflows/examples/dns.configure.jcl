# Worker action: point a domain at an address.
action dns.configure:
role: hosting
in:
	domain string
	ip string
out:
	serial number
config:
	retry = {tries: 3, interval: '10 seconds', backoff: 'exponential', max_interval: '5 minutes'}
