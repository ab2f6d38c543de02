-- jobcenter schedules (ours; the original has none): jobs started periodically from a cron
-- expression with seconds, in a time zone.
--
-- A schedule fires by calling create_job when its next_run is due. The maestro calls
-- do_schedules() when the earliest next_run (next_schedule()) comes; several maestros may call
-- it at once: schedules are taken with FOR UPDATE SKIP LOCKED and next_run moves on in the same
-- transaction, so each run fires exactly once.
--
-- Missed runs (the maestros were down, or late by more than the `schedule_misfire_after`
-- setting) follow the schedule's policy: 'skip' drops them, 'catchup' fires once for all of
-- them. Runs never pile up: when several are due at once, one job is created.
--
-- The jobs a schedule starts run as the role that created it (`run_as`): when that is not the
-- maestro's own role, the maestro's role must be allowed to impersonate it
-- (jobcenter.jc_impersonate_roles). Their environment has `jcschedule` (the schedule's name)
-- and `jcscheduled` (the time the run was due).

insert into jobcenter.settings (name, value) values ('schedule_misfire_after', '"1 minute"')
on conflict (name) do nothing;

create table jobcenter.schedules (
    schedule_id serial primary key,
    name text not null unique,
    wfname text not null,
    args jsonb not null default '{}',
    tag text,
    env jsonb,
    cron text not null,
    timezone text not null default 'UTC',
    enabled boolean not null default true,
    missed text not null default 'skip' check (missed in ('skip', 'catchup')),
    run_as text not null,
    next_run timestamptz,          -- null: the expression never fires again
    last_run timestamptz,          -- when the last job was created
    last_job_id bigint,
    last_skipped timestamptz,      -- the latest run dropped by the 'skip' policy
    last_error jsonb,              -- why the last run could not create its job
    created timestamptz not null default now(),
    source text                    -- 'jcc': from a workflow file's schedule: section (jcc drops
                                   -- it when the file no longer has it); null: made by hand
);
create index schedules_next_run on jobcenter.schedules (next_run) where enabled;

-- Creates (or, with a_replace, replaces) a schedule. Checks what create_job would check now
-- (the workflow exists, the caller may start it, the arguments fit) and the cron expression.
-- Returns the first run. Errors: JC001 unknown workflow, JC002 bad arguments, expression,
-- time zone or policy, or the name is taken; JC004 not authorized. a_source says who manages
-- the schedule ('jcc' for a compiler; replacing sets it too).
create or replace function jobcenter.create_schedule(
    a_name text, a_wfname text, a_cron text, a_args jsonb default '{}',
    a_timezone text default 'UTC', a_missed text default 'skip', a_tag text default null,
    a_env jsonb default null, a_impersonate text default null, a_enabled boolean default true,
    a_replace boolean default false, a_source text default null)
returns timestamptz language plpgsql as $$
declare
    v_wf jobcenter.actions;
    v_who text;
    v_checked jsonb;
    v_why text;
    v_next timestamptz;
begin
    if a_name is null or a_name = '' then
        raise exception using errcode = 'JC002', message = 'a schedule needs a name';
    end if;
    if a_cron is null or a_timezone is null then
        raise exception using errcode = 'JC002',
            message = format('schedule %s: the cron expression and time zone must not be null', a_name);
    end if;
    v_wf := jobcenter.find_workflow(a_wfname, a_tag);
    v_who := jobcenter.caller(a_impersonate);
    if not jobcenter.has_role(v_who, v_wf.rolename) then
        raise exception using errcode = 'JC004',
            message = format('%s may not start workflow %s', v_who, v_wf.name),
            hint = format('it needs role %s', v_wf.rolename);
    end if;
    if a_env is not null and jsonb_typeof(a_env) <> 'object' then
        raise exception using errcode = 'JC002', message = 'the environment must be a JSON object';
    end if;
    v_checked := jobcenter.check_inputs(v_wf.action_id, coalesce(a_args, '{}'));
    if v_checked ? '_error' then
        raise exception using errcode = 'JC002',
            message = format('bad arguments for %s: %s', v_wf.name, v_checked ->> '_error');
    end if;
    v_why := jobcenter.cron_check(a_cron, a_timezone);
    if v_why is not null then
        raise exception using errcode = 'JC002', message = format('schedule %s: %s', a_name, v_why),
            hint = 'six fields: sec min hour day-of-month month day-of-week, e.g. 0 */5 * * * *';
    end if;
    if a_missed is null or a_missed not in ('skip', 'catchup') then
        raise exception using errcode = 'JC002',
            message = format('schedule %s: missed-run policy %s is not skip or catchup', a_name, a_missed);
    end if;
    if not a_replace and exists (select 1 from jobcenter.schedules where name = a_name) then
        raise exception using errcode = 'JC002', message = format('schedule %s exists', a_name),
            hint = 'drop it first, or pass a_replace => true';
    end if;
    v_next := jobcenter.cron_next(a_cron, clock_timestamp(), a_timezone);
    if v_next is null then
        raise exception using errcode = 'JC002',
            message = format('schedule %s: %s never fires', a_name, a_cron);
    end if;
    insert into jobcenter.schedules (name, wfname, args, tag, env, cron, timezone, enabled,
        missed, run_as, next_run, source)
    values (a_name, a_wfname, coalesce(a_args, '{}'), a_tag, a_env, a_cron, a_timezone,
        coalesce(a_enabled, true), a_missed, v_who, v_next, a_source)
    on conflict (name) do update set
        wfname = excluded.wfname, args = excluded.args, tag = excluded.tag, env = excluded.env,
        cron = excluded.cron, timezone = excluded.timezone, enabled = excluded.enabled,
        missed = excluded.missed, run_as = excluded.run_as, next_run = excluded.next_run,
        last_error = null, source = excluded.source;
    if coalesce(a_enabled, true) then
        perform jobcenter.notify_timer(v_next);
    end if;
    return v_next;
end $$;

-- Removes a schedule; false when there was none.
create or replace function jobcenter.drop_schedule(a_name text) returns boolean
language plpgsql as $$
begin
    delete from jobcenter.schedules where name = a_name;
    return found;
end $$;

-- Enables or disables a schedule (JC001 when there is none). Enabling starts from now: the runs
-- that fell while it was disabled are not missed runs.
create or replace function jobcenter.enable_schedule(a_name text, a_enabled boolean) returns void
language plpgsql as $$
declare
    s jobcenter.schedules;
begin
    select * into s from jobcenter.schedules where name = a_name for update;
    if not found then
        raise exception using errcode = 'JC001', message = format('no schedule named %s', a_name);
    end if;
    if coalesce(a_enabled, false) = s.enabled then
        return;
    end if;
    if a_enabled then
        s.next_run := jobcenter.cron_next(s.cron, clock_timestamp(), s.timezone);
        update jobcenter.schedules set enabled = true, next_run = s.next_run
        where schedule_id = s.schedule_id;
        if s.next_run is not null then
            perform jobcenter.notify_timer(s.next_run);
        end if;
    else
        update jobcenter.schedules set enabled = false where schedule_id = s.schedule_id;
    end if;
end $$;

-- Seconds until the earliest run of an enabled schedule (0 when one is due), null when none.
create or replace function jobcenter.next_schedule() returns double precision language sql stable as $$
    select case when m is not null
        then greatest(extract(epoch from m - clock_timestamp()), 0)::double precision end
    from (select min(next_run) as m from jobcenter.schedules where enabled) t
$$;

-- Fires every due schedule once and moves its next_run past now. A run that cannot create its
-- job (the workflow is gone or disabled, the arguments no longer fit, …) is recorded in
-- last_error and does not stop the others. Returns the number of jobs created.
create or replace function jobcenter.do_schedules() returns integer language plpgsql as $$
declare
    s jobcenter.schedules;
    v_now timestamptz;
    v_due timestamptz;
    v_misfire interval := coalesce(jobcenter.to_interval(jobcenter.setting('schedule_misfire_after')),
        interval '1 minute');
    v_job bigint;
    v_count integer := 0;
begin
    for s in select * from jobcenter.schedules
             where enabled and next_run <= clock_timestamp()
             order by next_run
             for update skip locked loop
        v_now := clock_timestamp();
        -- The latest run due by now; earlier due runs are folded into it.
        v_due := greatest(s.next_run,
            jobcenter.cron_prev(s.cron, v_now + interval '1 microsecond', s.timezone));
        if v_now - v_due <= v_misfire or s.missed = 'catchup' then
            begin
                select job_id into v_job from jobcenter.create_job(s.wfname, s.args, s.tag,
                    nullif(s.run_as, jobcenter.invoker()),
                    coalesce(s.env, '{}') || jsonb_build_object('jcschedule', s.name,
                        'jcscheduled', v_due));
                update jobcenter.schedules set last_run = v_now, last_job_id = v_job,
                    last_error = null
                where schedule_id = s.schedule_id;
                v_count := v_count + 1;
            exception when others then
                update jobcenter.schedules set last_run = v_now,
                    last_error = jsonb_build_object('sqlstate', sqlstate, 'msg', sqlerrm,
                        'scheduled', v_due, 'when', v_now)
                where schedule_id = s.schedule_id;
            end;
        else
            update jobcenter.schedules set last_skipped = v_due where schedule_id = s.schedule_id;
        end if;
        update jobcenter.schedules set next_run = jobcenter.cron_next(s.cron, v_now, s.timezone)
        where schedule_id = s.schedule_id;
    end loop;
    return v_count;
end $$;
