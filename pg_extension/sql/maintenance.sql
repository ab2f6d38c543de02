-- jobcenter maintenance: the procedures the maestro calls to drive time and clean up.
-- Each is safe to call from several maestros at once (rows are taken with SKIP LOCKED).

-- Fires every due timeout: sleeps end, time-outs of working tasks become soft errors, retries
-- become ready again, event waits get the 'timeout' event (or an event queued meanwhile), lock
-- waits fail with class 'lock', and jobs created with a start time (sleeping, task_state
-- {"delayed": true}) start. Then carries out the abort requests left (job_aborts). Returns how
-- many jobs it handled.
--
-- The due jobs are read without locking; each is locked (SKIP LOCKED: another caller has it)
-- and re-checked only when its turn comes, in a subtransaction of its own, so the rows of
-- the jobs not yet handled are never held while an earlier one is driven.
create or replace function jobcenter.do_timeout() returns integer language plpgsql as $$
declare
    v_id bigint;
    v_count integer := 0;
begin
    for v_id in select job_id from jobcenter.jobs
                where timeout <= clock_timestamp()
                order by timeout limit 1000 loop
        if jobcenter.fire_timeout(v_id) then
            v_count := v_count + 1;
        end if;
    end loop;
    for v_id in select job_id from jobcenter.job_aborts order by requested limit 1000 loop
        if jobcenter.fire_abort(v_id) then
            v_count := v_count + 1;
        end if;
    end loop;
    return v_count;
end $$;

-- Handles the timeout of one job if it is still due and no other transaction has it.
create or replace function jobcenter.fire_timeout(a_job_id bigint) returns boolean
language plpgsql as $$
declare
    j jobcenter.jobs;
    t jobcenter.tasks;
    a jobcenter.actions;
    v_event jsonb;
begin
    select * into j from jobcenter.jobs
    where job_id = a_job_id and timeout <= clock_timestamp()
    for no key update skip locked;
    if not found then
        return false;
    end if;
    select * into t from jobcenter.tasks where task_id = j.task_id;
    -- A job whose handling fails unexpectedly ends in error instead of rolling back (and so
    -- stalling) the others. Transient conflicts are raised: the caller retries.
    begin
    case j.state
    when 'sleeping' then
        if j.task_state ? 'delayed' then
            update jobcenter.jobs set state = 'plotting', timeout = null, task_state = '{}',
                task_entered = clock_timestamp()
            where job_id = j.job_id;
            perform jobcenter.drive(array[j.job_id]);
        else
            perform jobcenter.drive(jobcenter.finish_step(j, j.variables, null, j.task_state -> 'inargs'));
        end if;
    when 'working' then
        perform jobcenter.drive(jobcenter.task_failed(j, jobcenter.task_error_obj(j, 'soft',
            format('timeout: worker %s did not finish in time', j.task_state ->> 'worker'))));
    when 'retrywait' then
        select * into a from jobcenter.actions where action_id = t.action_id;
        perform jobcenter.make_ready(j, a, j.task_state -> 'inargs', j.task_state -> 'env',
            coalesce((j.task_state ->> 'tries')::integer, 0));
    when 'eventwait' then
        -- an event queued by a raiser that could not wake the job (it held the row) wins
        v_event := coalesce(jobcenter.next_event(j.job_id, j.task_state -> 'events'),
            '{"name":"timeout"}');
        perform jobcenter.drive(jobcenter.event_arrived(j, t, j.task_state -> 'inargs', v_event));
    when 'lockwait' then
        perform jobcenter.lock_wait_ended(j);
        perform jobcenter.drive(jobcenter.raise_job_error(j, jobcenter.task_error_obj(j, 'lock',
            format('timeout waiting for lock %s %s', j.task_state #>> '{lockwait,type}',
                j.task_state #>> '{lockwait,value}'))));
    else
        update jobcenter.jobs set timeout = null where job_id = j.job_id;
    end case;
    exception
        when deadlock_detected or serialization_failure or lock_not_available then
            raise;
        when others then
            perform jobcenter.drive(jobcenter.end_job(j, 'error', jsonb_build_object('error',
                jobcenter.task_error_obj(j, 'fatal', 'internal error at timeout: ' || sqlerrm))));
    end;
    return true;
end $$;

-- Carries out the abort request of one job if no other transaction has the job.
create or replace function jobcenter.fire_abort(a_job_id bigint) returns boolean
language plpgsql as $$
declare
    j jobcenter.jobs;
begin
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update skip locked;
    if not found then
        return false;
    end if;
    perform jobcenter.drive(coalesce(jobcenter.carry_out_abort(j), '{}'));
    return true;
end $$;

-- Seconds until the earliest timeout (0 when one is due, or an abort request waits), null when
-- none is set.
create or replace function jobcenter.next_timeout() returns double precision language sql stable as $$
    -- greatest() skips nulls, so the null of "no timeout" must not reach it.
    select case when exists (select 1 from jobcenter.job_aborts) then 0::double precision
        when m is not null
        then greatest(extract(epoch from m - clock_timestamp()), 0)::double precision end
    from (select min(timeout) as m from jobcenter.jobs where timeout is not null) t
$$;

-- At start: every job left runnable ('done', 'plotting') is driven on. Returns the count.
create or replace function jobcenter.do_crash_recovery() returns integer language plpgsql as $$
declare
    v_ids bigint[];
begin
    select coalesce(array_agg(job_id order by job_id), '{}') into v_ids from (
        select job_id from jobcenter.jobs where state in ('done', 'plotting')
        for no key update skip locked) r;
    perform jobcenter.drive(v_ids);
    return cardinality(v_ids);
end $$;

-- Disconnects workers silent for longer than the `worker_timeout` setting. Returns the count.
create or replace function jobcenter.do_worker_check() returns integer language plpgsql as $$
declare
    r record;
    v_count integer := 0;
begin
    for r in select name from jobcenter.workers
             where stopped is null
               and last_ping < now() - (jobcenter.setting('worker_timeout') #>> '{}')::interval
             for update skip locked loop
        perform jobcenter.disconnect(r.name);
        v_count := v_count + 1;
    end loop;
    return v_count;
end $$;

-- Moves ended job trees (a top-level job and all its descendants) to jobs_archive: finished
-- ones after `archive_finished_after` (or the workflow's `archive` config), ones in error after
-- `archive_error_after`. A tree with a job still running (a detached child, or a child that has
-- not yet seen its parent end) waits. Deletes archived jobs and their step log after
-- `archive_retention`, idempotency keys past their expiry (set here as a job is archived:
-- its end plus `job_key_retention`), consumed events and long-stopped workers, each in batches
-- of at most `cleanup_batch` rows. Returns the number of jobs archived.
create or replace function jobcenter.do_archival_and_cleanup() returns integer language plpgsql as $$
declare
    v_count integer;
begin
    with recursive roots as (
        select j.job_id from jobcenter.jobs j join jobcenter.actions a on a.action_id = j.workflow_id
        where j.parentjob_id is null
          and ((j.state = 'finished' and j.job_finished < now() - coalesce(
                    jobcenter.to_interval(a.config -> 'archive'),
                    (jobcenter.setting('archive_finished_after') #>> '{}')::interval))
            or (j.state = 'error' and j.job_finished < now()
                    - (jobcenter.setting('archive_error_after') #>> '{}')::interval))
        for update of j skip locked
    ), tree as (
        select job_id as root, job_id from roots
        union
        select tree.root, c.job_id from jobcenter.jobs c join tree on c.parentjob_id = tree.job_id
    ), live as (
        select distinct tree.root from tree join jobcenter.jobs j using (job_id)
        where j.state not in ('finished', 'error', 'zombie')
    ), moved as (
        delete from jobcenter.jobs j using tree
        where j.job_id = tree.job_id and tree.root not in (select root from live)
        returning j.*
    ), keys as (
        -- a key outlives its job's row: from now on it expires by itself
        update jobcenter.job_keys k
        set expires = moved.job_finished + (jobcenter.setting('job_key_retention') #>> '{}')::interval
        from moved where k.job_id = moved.job_id
    ), ins as (
        insert into jobcenter.jobs_archive (job_id, workflow_id, parentjob_id, state, arguments,
            environment, variables, out_args, job_created, job_finished, stepcounter)
        select job_id, workflow_id, parentjob_id, state, arguments, environment, variables,
            out_args, job_created, job_finished, stepcounter from moved
        returning 1
    )
    select count(*) into v_count from ins;
    -- Archived jobs past `archive_retention` go, with their step log, in batches of
    -- `cleanup_batch` jobs (the next call goes on).
    with old as (
        select a.job_id from jobcenter.jobs_archive a
        where a.archived < now() - (jobcenter.setting('archive_retention') #>> '{}')::interval
        order by a.archived
        limit (jobcenter.setting('cleanup_batch') #>> '{}')::integer
        for update skip locked
    ), log as (
        delete from jobcenter.job_task_log l using old where l.job_id = old.job_id
    )
    delete from jobcenter.jobs_archive a using old where a.job_id = old.job_id;
    delete from jobcenter.job_keys k
    where (k.wfname, k.key) in (
        select k2.wfname, k2.key from jobcenter.job_keys k2 where k2.expires < now()
        order by k2.expires
        limit (jobcenter.setting('cleanup_batch') #>> '{}')::integer
        for update skip locked);
    delete from jobcenter.job_events e
    where e.event_id in (
        select e2.event_id from jobcenter.job_events e2
        where e2."when" < now() - interval '1 hour'
          and not exists (select 1 from jobcenter.queued_events q where q.event_id = e2.event_id)
        order by e2.event_id
        limit (jobcenter.setting('cleanup_batch') #>> '{}')::integer);
    delete from jobcenter.workers w
    where w.stopped < now() - interval '1 day'
      and not exists (select 1 from jobcenter.jobs j where j.worker_id = w.worker_id);
    return v_count;
end $$;
