# Worker action: ask the approver (mail, chat, …) to decide on a request.
action notify.approver:
role: approvals
in:
	request_id string
	text string
out:
	sent boolean
