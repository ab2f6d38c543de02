-- 0.11.0, engine: job_task_log's primary key becomes (job_id, job_task_log_id), which replaces
-- the index job_task_log_job: every step wrote an entry into both, and every read of the log
-- is by job. The new key is built from the rows there (a long log takes a while).
alter table jobcenter.job_task_log drop constraint job_task_log_pkey;
drop index jobcenter.job_task_log_job;
alter table jobcenter.job_task_log add primary key (job_id, job_task_log_id);
