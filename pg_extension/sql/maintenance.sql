-- jobcenter maintenance: the procedures the maestro calls to drive time and clean up.
-- Each is safe to call from several maestros at once (rows are taken with SKIP LOCKED).

-- Fires every due timeout: sleeps end, time-outs of working tasks become soft errors, retries
-- become ready again, event waits get the 'timeout' event, lock waits fail with class 'lock',
-- and jobs created with a start time (sleeping, task_state {"delayed": true}) start.
-- Returns how many jobs it handled.
create or replace function jobcenter.do_timeout() returns integer language plpgsql as $$
declare
    j jobcenter.jobs;
    t jobcenter.tasks;
    a jobcenter.actions;
    v_count integer := 0;
begin
    for j in select * from jobcenter.jobs
             where timeout <= clock_timestamp()
             order by timeout limit 1000
             for no key update skip locked loop
        -- Driving an earlier job of the batch may have moved this one on (an event, a lock,
        -- a parent); the row is ours (locked), so re-read it and skip it if no longer due.
        select * into j from jobcenter.jobs where job_id = j.job_id;
        if j.timeout is null or j.timeout > clock_timestamp() then
            continue;
        end if;
        v_count := v_count + 1;
        select * into t from jobcenter.tasks where task_id = j.task_id;
        -- Each job in its own subtransaction: a job whose handling fails unexpectedly ends in
        -- error instead of rolling back (and so stalling) the whole batch. Transient conflicts
        -- are raised: the caller retries the batch.
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
            perform jobcenter.drive(jobcenter.event_arrived(j, t, j.task_state -> 'inargs',
                '{"name":"timeout"}'));
        when 'lockwait' then
            update jobcenter.locks set contended = greatest(contended - 1, 0)
            where locktype = j.task_state #>> '{lockwait,type}'
              and lockvalue = j.task_state #>> '{lockwait,value}';
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
    end loop;
    return v_count;
end $$;

-- Seconds until the earliest timeout (0 when one is due), null when none is set.
create or replace function jobcenter.next_timeout() returns double precision language sql stable as $$
    -- greatest() skips nulls, so the null of "no timeout" must not reach it.
    select case when m is not null
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
-- not yet seen its parent end) waits. Removes consumed events and long-stopped workers. Returns
-- the number of jobs archived.
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
    ), ins as (
        insert into jobcenter.jobs_archive (job_id, workflow_id, parentjob_id, state, arguments,
            environment, variables, out_args, job_created, job_finished, stepcounter)
        select job_id, workflow_id, parentjob_id, state, arguments, environment, variables,
            out_args, job_created, job_finished, stepcounter from moved
        returning 1
    )
    select count(*) into v_count from ins;
    delete from jobcenter.job_events e
    where e."when" < now() - interval '1 hour'
      and not exists (select 1 from jobcenter.queued_events q where q.event_id = e.event_id);
    delete from jobcenter.workers w
    where w.stopped < now() - interval '1 day'
      and not exists (select 1 from jobcenter.jobs j where j.worker_id = w.worker_id);
    return v_count;
end $$;
