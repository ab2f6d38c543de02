-- 0.5.0, engine: a lock's release wakes one waiter per freed slot (found through a new index)
-- instead of every waiter, and takes and releases of a counted lock no longer serialise on
-- an advisory lock per value.
create index jobs_lockwait on jobcenter.jobs ((task_state -> 'lockwait'), job_id) where state = 'lockwait';
drop function jobcenter.wake_lock_waiters(text, text);
drop function jobcenter.counted_lock_lock(text, text);
-- The waiters of a lock are counted from jobs (jobs_lockwait), not kept in every holder's row.
drop function jobcenter.lock_wait_ended(jobcenter.jobs);
alter table jobcenter.locks drop column contended;
-- Concurrency limits of actions (config `concurrency`): the tasks at work holding slots.
create index jobs_slots on jobcenter.jobs (ready_action_id) where state = 'working' and task_state ? 'slot';
alter table jobcenter.action_rates add column refused boolean not null default false;

-- end_job gets a_logged (apply_plot writes the end's step log row in its own insert)
drop function jobcenter.end_job(jobcenter.jobs, jobcenter.job_state, jsonb, boolean);
