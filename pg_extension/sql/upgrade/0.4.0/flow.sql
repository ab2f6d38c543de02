-- Flow control of 0.4.0: idempotent submission (create_job's a_key).

-- create_job gains a_key (default null), after a_start_at
DROP FUNCTION jobcenter.create_job(text, jsonb, text, text, jsonb, timestamptz);

create table jobcenter.job_keys (
    wfname text not null,
    key text not null,
    job_id bigint,
    expires timestamptz,
    primary key (wfname, key)
);
create index job_keys_job on jobcenter.job_keys (job_id);
create index job_keys_expires on jobcenter.job_keys (expires) where expires is not null;

insert into jobcenter.settings (name, value) values ('job_key_retention', '"1 day"');
