# expect: JC0101 4:14
# the header line `interface NAME:` needs its colon
action err.iface:
interface add
