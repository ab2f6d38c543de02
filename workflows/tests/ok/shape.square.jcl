workflow shape.square:
interface: shape
wfomap:
	area = a.size * a.size
