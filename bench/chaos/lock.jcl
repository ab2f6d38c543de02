# A lock shared by a few jobs at a time (lockwait), held across one action.
workflow chaos.lock:
in:
	input number
	slot string
out:
	output number
locks:
	chaos_slot _ manual
wfomap:
	<output>
do:
	lock chaos_slot a.slot
	call chaos.add:
		counter = a.input
		step = 3
	into:
		output = o.counter
	unlock chaos_slot a.slot
