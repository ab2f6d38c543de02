-- The engine core of 0.4.0: quiet jobs (create_job's a_notify), the hot path's small
-- functions in PL/pgSQL, take_tasks' generic plans.

-- create_job(...) gains a_notify (default true)
DROP FUNCTION jobcenter.create_job(text, jsonb, text, text, jsonb, timestamptz);
