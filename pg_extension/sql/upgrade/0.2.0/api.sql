-- The original JobCenter's signatures for the public procedures (parameter names, OUT columns,
-- result types): the 0.1.0 functions go, api.sql creates the new ones.
drop function jobcenter.create_job(text, jsonb, text, text, jsonb, timestamptz);
drop function jobcenter.get_job_status(bigint);
drop function jobcenter.announce(text, text, text, jsonb);
drop function jobcenter.disconnect(text);
drop function jobcenter.ping(bigint);
drop function jobcenter.get_task(text, text, bigint);
drop function jobcenter.task_done(uuid, jsonb);
drop function jobcenter.raise_event(jsonb);
drop function jobcenter.cancel_job(bigint, text);
drop function jobcenter.retry_job(bigint, text);
drop function jobcenter.find_jobs(jsonb, text);
