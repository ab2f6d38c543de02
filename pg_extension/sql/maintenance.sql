-- jobcenter maintenance: the procedures the maestro calls to drive time and clean up.
-- Each is safe to call from several maestros at once (rows are taken with SKIP LOCKED).

-- Fires every due timeout: sleeps end, time-outs of working tasks become soft errors, retries
-- become ready again, event waits get the 'timeout' event (or an event queued meanwhile), lock
-- waits fail with class 'lock', and jobs created with a start time (sleeping, task_state
-- {"delayed": true}) start. Then carries out the abort requests left (job_aborts), and offers
-- again the ready tasks of rate-limited actions whose full window has room again, and of
-- concurrency-limited ones a taker found full (action_rates.wake; see count_rate and
-- take_slots). Returns how many jobs it handled.
--
-- The due jobs are read without locking; each is locked (SKIP LOCKED: another caller has it)
-- and re-checked only when its turn comes, in a subtransaction of its own, so the rows of
-- the jobs not yet handled are never held while an earlier one is driven.
create or replace function jobcenter.do_timeout() returns integer language plpgsql as $$
declare
    v_id bigint;
    v_job bigint;
    v_room integer;
    v_n integer;
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
    for v_id in select queue from jobcenter.action_rates where wake <= clock_timestamp()
                for update skip locked loop
        -- no limit any more (replaced): offer a batch, as a sweep would
        v_room := coalesce(jobcenter.start_room(v_id::integer), 1000);
        v_n := 0;
        for v_job in select jb.job_id from jobcenter.jobs jb
                     where jb.state = 'ready' and jb.ready_action_id = v_id
                     order by jb.ready_rank, jb.job_id limit v_room + 1 loop
            v_n := v_n + 1;
            exit when v_n > v_room;
            -- as make_ready tells of a task: the first ones the room lets start
            perform pg_notify('action:' || v_id || ':ready', jsonb_build_object('job_id', v_job)::text);
        end loop;
        -- more than the room waits: wake again when the next start leaves the window (the
        -- takes in between may not fill it, which would set the time)
        update jobcenter.action_rates x set wake = case when v_n > v_room then
                (select min(s) from unnest(x.starts) s where s > clock_timestamp() - x.per) + x.per end,
            refused = false
        where queue = v_id;
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

-- Seconds until the earliest timeout or rate-limit wake-up (0 when one is due, or an abort
-- request waits), null when none is set.
create or replace function jobcenter.next_timeout() returns double precision language sql stable as $$
    -- greatest() skips nulls, so the null of "no timeout" must not reach it.
    select case when exists (select 1 from jobcenter.job_aborts) then 0::double precision
        when m is not null
        then greatest(extract(epoch from m - clock_timestamp()), 0)::double precision end
    from (select least((select min(timeout) from jobcenter.jobs where timeout is not null),
                       (select min(wake) from jobcenter.action_rates)) as m) t
$$;

-- The timer horizon in seconds (timer_horizon_interval; null when there is none, and then
-- every timeout is notified): the longest the maestro may sleep between two looks at
-- next_timeout and next_schedule, as timeouts due further off than this are not notified
-- (notify_timer).
create or replace function jobcenter.timer_horizon() returns double precision language sql stable as $$
    select extract(epoch from jobcenter.timer_horizon_interval())::double precision
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

-- Gateways -------------------------------------------------------------------------------------
--
-- A gateway (jcapi) registers on a connection of its own and holds the session-level advisory
-- lock (gateway_lock_class(), its id) there while it runs; the workers it announces record it
-- (gateway_attach). When the gateway dies its lock goes with its session, and the maestro's
-- do_gateway_check withdraws its workers. A PostgreSQL restart (or a failover) frees every
-- lock, also those of live gateways: a gateway counts as dead only when its lock has been
-- free for `gateway_timeout` since the maestro first saw it free, and a gateway re-taking its
-- lock clears that mark, so a gateway that reconnects within `gateway_timeout` loses nothing.

-- The first half of the advisory lock key of every gateway (the second is its id).
create or replace function jobcenter.gateway_lock_class() returns integer
language sql immutable as $$ select 1245904897 $$;

-- Whether gateway `a_gateway_id` holds its lock (in any session).
create or replace function jobcenter.gateway_held(a_gateway_id integer) returns boolean
language sql stable as $$
    select exists (select 1 from pg_catalog.pg_locks l
                   where l.locktype = 'advisory' and l.granted and l.objsubid = 2
                     and l.classid = jobcenter.gateway_lock_class()::oid
                     and l.objid = a_gateway_id::oid)
$$;

-- Registers the calling session as gateway `a_name`, or as gateway `a_gateway_id` again after
-- a reconnection, and takes its lock for the session's lifetime. `o_new` is true when a new
-- gateway was registered although `a_gateway_id` was given: that one was found dead and its
-- workers were withdrawn, so the caller must announce them again. Fails (JC007) while
-- another session still holds the lock (a connection not yet found broken).
create or replace function jobcenter.gateway_register(a_gateway_id integer, a_name text,
    out o_gateway_id integer, out o_new boolean)
returns record language plpgsql as $$
begin
    o_new := false;
    if a_gateway_id is not null then
        if not pg_catalog.pg_try_advisory_lock(jobcenter.gateway_lock_class(), a_gateway_id) then
            raise exception using errcode = 'JC007',
                message = format('gateway %s holds its lock in another session', a_gateway_id);
        end if;
        update jobcenter.gateways set locked = now(), missing_since = null
        where gateway_id = a_gateway_id and owner = jobcenter.invoker();
        if found then
            o_gateway_id := a_gateway_id;
            return;
        end if;
        perform pg_catalog.pg_advisory_unlock(jobcenter.gateway_lock_class(), a_gateway_id);
        o_new := true;
    end if;
    insert into jobcenter.gateways (name, owner) values (a_name, jobcenter.invoker())
    returning gateway_id into o_gateway_id;
    perform pg_catalog.pg_advisory_lock(jobcenter.gateway_lock_class(), o_gateway_id);
end $$;

-- Records that worker `a_worker_id` is connected through gateway `a_gateway_id` (the caller's
-- own): its workers are withdrawn when it dies, and a worker that moved here from a dead
-- gateway is no longer that one's. Returns the worker id.
create or replace function jobcenter.gateway_attach(a_worker_id bigint, a_gateway_id integer)
returns bigint language plpgsql as $$
declare
    v_who text := jobcenter.caller(null);
begin
    update jobcenter.workers w set gateway_id = a_gateway_id
    where w.worker_id = a_worker_id and w.stopped is null
      and w.gateway_id is distinct from a_gateway_id
      and jobcenter.may_act_for(v_who, w.owner)
      and exists (select 1 from jobcenter.gateways g
                  where g.gateway_id = a_gateway_id and g.owner = jobcenter.invoker());
    return a_worker_id;
end $$;

-- The gateway check, run every second by the maestro: marks the gateways whose lock is free,
-- withdraws the workers of those free for `gateway_timeout` (their offers end at once; the
-- tasks they hold stay theirs, so a worker that reconnects can still deliver the results) and
-- forgets the gateway; then applies `dead_worker_policy` (see disconnect) to the tasks of
-- workers withdrawn longer than `worker_grace` ago. Returns how many workers it withdrew.
create or replace function jobcenter.do_gateway_check() returns integer language plpgsql as $$
declare
    g integer;
    w record;
    v_count integer := 0;
begin
    update jobcenter.gateways set missing_since = now()
    where missing_since is null and not jobcenter.gateway_held(gateway_id);
    for g in select gateway_id from jobcenter.gateways
             where missing_since < now() - (jobcenter.setting('gateway_timeout') #>> '{}')::interval
             for update skip locked loop
        -- re-read under the row lock: a gateway re-taking its lock updates the row
        continue when jobcenter.gateway_held(g);
        for w in update jobcenter.workers set stopped = now(), orphaned = true
                 where gateway_id = g and stopped is null returning worker_id loop
            delete from jobcenter.worker_actions where worker_id = w.worker_id;
            v_count := v_count + 1;
        end loop;
        delete from jobcenter.gateways where gateway_id = g;
    end loop;
    for w in select worker_id, name from jobcenter.workers
             where orphaned and stopped < now() - (jobcenter.setting('worker_grace') #>> '{}')::interval
             for update skip locked loop
        update jobcenter.workers set orphaned = false where worker_id = w.worker_id;
        perform jobcenter.fail_worker_tasks(w.worker_id,
            format('worker %s disconnected with its gateway', w.name));
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
    ), args as (
        delete from jobcenter.job_arguments x using moved where x.job_id = moved.job_id
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
