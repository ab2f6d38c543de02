# Approval with events: small amounts are approved at once; otherwise an approver is asked and
# the workflow waits for the decision event (or gives up after two days).
workflow approval.request:
role: approvals
in:
	request_id string
	amount number
out:
	approved boolean
	by string
wfomap:
	<approved>
	<by>
do:
	if a.amount < 100:
		eval:
			approved = true
			by = 'auto'
		return
	subscribe:
		name = 'decision'
		mask = object('type', 'approval', 'request_id', a.request_id)
	call notify.approver:
		request_id = a.request_id
		text = 'please approve ' . a.request_id . ' for ' . a.amount
	wait_for_event:
		events = array('decision')
		timeout = '2 days'
	into:
		<event>
	case v.event.name:
	when decision:
		eval:
			approved = v.event.data.approved
			by = v.event.data.by
	else:
		eval:
			approved = false
			by = v.event.name
	unsubscribe decision
