# Check one host: ping it, and call it down when it does not answer in time.
workflow host.check:
in:
	host string
	attempt number 1
out:
	host string
	status string
	latency number
wfomap:
	host = a.host
	<status>
	<latency>
do:
	call net.ping:
		host = a.host
	into:
		<latency>
	if v.latency < 1000:
		eval:
			status = 'up'
	else:
		eval:
			status = 'down'
