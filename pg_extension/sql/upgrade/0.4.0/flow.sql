-- Flow control of 0.4.0: idempotent submission (create_job's a_key), counted locks and
-- priorities with aging.

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

-- Counted locks: a lock type's limit, and a row per holder in a slot of its (type, value).
alter table jobcenter.locktypes add column max_holders integer not null default 1
    check (max_holders >= 1);
alter table jobcenter.locks add column slot integer not null default 0;
alter table jobcenter.locks drop constraint locks_pkey;
alter table jobcenter.locks add primary key (locktype, lockvalue, slot);

-- lock_deadlock(job, holder) gains a_seen (default '{}')
DROP FUNCTION jobcenter.lock_deadlock(bigint, bigint);

-- Priorities with aging: the ready queue's order is each job's ready_rank.
alter table jobcenter.jobs add column ready_rank timestamptz not null default now();
update jobcenter.jobs set ready_rank = job_created - priority * interval '1 minute';
drop index jobcenter.jobs_ready;
create index jobs_ready on jobcenter.jobs (ready_action_id, ready_rank, job_id) where state = 'ready';
insert into jobcenter.settings (name, value) values ('priority_aging', '"1 minute"');
