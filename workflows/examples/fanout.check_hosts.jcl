# Fan-out with map/collect: check every host in parallel, one child job per host, and collect
# their answers in order.
workflow fanout.check_hosts:
in:
	hosts array
out:
	statuses array
	down array
	total_latency number
	checked number
wfomap:
	<statuses>
	<down>
	<total_latency>
	<checked>
do:
	eval:
		statuses = array()
		down = array()
		total_latency = 0
	map host.check using a.hosts:
		host = e._v
		attempt = e._i
	collect:
		statuses ,= o.host . ':' . o.status
		total_latency += o.latency
	eval:
		checked = length(v.statuses)
		i = 0
	while v.i < v.checked:
		if v.statuses[v.i] ~ /:down$/:
			eval:
				down ,= replace(v.statuses[v.i], ':down', '')
		eval:
			i += 1
