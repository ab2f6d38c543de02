# Worker action: round-trip time to a host in milliseconds (a large number when it is down).
action net.ping:
role: monitoring
in:
	host string
out:
	latency number
