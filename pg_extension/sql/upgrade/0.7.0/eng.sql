-- 0.7.0, engine: the live jobs' arguments move to a table of their own for find_jobs (its GIN
-- index is written once per job instead of at every update of the job's row).
create table jobcenter.job_arguments (
    job_id bigint primary key,
    arguments jsonb not null
);
insert into jobcenter.job_arguments select job_id, arguments from jobcenter.jobs;
drop index jobcenter.jobs_arguments;
create index job_arguments_arguments on jobcenter.job_arguments using gin (arguments jsonb_path_ops);
-- jobs loses its foreign keys to actions and tasks (their checks locked the same rows for
-- every job); the engine never deletes rows that jobs name.
alter table jobcenter.jobs drop constraint jobs_workflow_id_fkey,
    drop constraint jobs_task_id_fkey, drop constraint jobs_parenttask_id_fkey;

-- task_done and tasks_done read a cookie with cookie_uuid (src/lib.rs) instead of a regular
-- expression and a cast.
CREATE FUNCTION jobcenter."cookie_uuid"("cookie" TEXT) RETURNS uuid
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'cookie_uuid_wrapper';
