# Procedure: a PostgreSQL function jcc_double(jsonb) returns jsonb (created by the test).
procedure jcc_double:
in:
	x number
out:
	x number
