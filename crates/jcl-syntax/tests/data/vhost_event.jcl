workflow "prov.vhost_event":
in:
	zone string
	zoneid integer
	vhost string
out:
	result boolean
	log string optional
role:
	jobs_spooler
wfomap:
	<result>
	log = ifdef(v.log)
locks:
	zoneid _ manual
	workflowlock 'prov.vhost_event'
do:
	lock zoneid a.zoneid # lock zoneid
	call provdb_get_rid_by_vhost:
		zoneid = a.zoneid
		vhost = a.vhost
	into:
		<rid>
		<orderno>
		<clientid>
	call dwh_vhost_event:
		<rid>
		<orderno>
		<clientid>
		zone = a.zone
		zoneid = a.zoneid
		vhost = a.vhost
	into:
		<result>
		v.postconfigure = ifdef(o.postconfigure)
		v.log = ifdef(o.comment)
	if v.postconfigure and v.postconfigure eq 'set_default_ip':
		call provdb_update_zone_template:
			zoneid = a.zoneid
			template = 'strato-dwh-std'
		into:
			<result>
		call 'prov.get_ip_list':
			<rid>
			usage = 'DEFAULT_IP'
		into:
			v.ips = o.array
		if length(v.ips):
			call provdb_set_initial_ip:
				zoneid = a.zoneid
				<ips>
			into:
				<result>
				v.log .= ifdef(o.log)
	# unlock
	unlock zoneid a.zoneid
	# done
