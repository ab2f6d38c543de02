workflow shape.circle:
interface: shape
wfomap:
	area = round(3.14159 * a.size * a.size, 2)
