-- 0.1.0 -> 0.2.0, engine correctness (branch eng): run before the function files.

create index jobs_arguments on jobcenter.jobs using gin (arguments jsonb_path_ops);
create index jobs_archive_archived on jobcenter.jobs_archive (archived);
create index jobs_archive_arguments on jobcenter.jobs_archive using gin (arguments jsonb_path_ops);

create table jobcenter.job_aborts (
    job_id bigint primary key references jobcenter.jobs on delete cascade,
    error jsonb not null,
    requested timestamptz not null default now()
);

insert into jobcenter.settings (name, value) values
    ('archive_retention', '"30 days"'),
    ('cleanup_batch', '10000')
on conflict (name) do nothing;

-- abort_children now returns the jobs it woke
drop function jobcenter.abort_children(bigint, text);

-- whether a value is within the engine's limits (Rust, json_arg.rs)
CREATE FUNCTION jobcenter."check_json"("value" jsonb) RETURNS TEXT
IMMUTABLE STRICT PARALLEL SAFE LANGUAGE c AS 'MODULE_PATHNAME', 'check_json_wrapper';
