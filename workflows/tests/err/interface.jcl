# expect: JC0223 3:12
workflow err.interface:
interface: no.such.interface
