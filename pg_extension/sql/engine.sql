-- jobcenter engine: the internal procedures that move jobs through the state machine.
--
-- The driver `drive(job_ids)` steps jobs until each must wait (for a worker, a child, an
-- event, a lock or time) or ends. Every procedure that makes a job runnable (create_job,
-- task_done, a child's end, raise_event, unlock, do_timeout, ...) calls it, so steps that need
-- no worker run in the transaction that made them reachable ("inline plotting").
--
-- Runnable states: 'done' (the current task finished; choose the next one) and 'plotting'
-- (run the current task). A step function returns the ids of the jobs that are runnable
-- after it (itself, woken parents, new children, woken waiters); `drive` keeps a FIFO of them.

-- Error objects -------------------------------------------------------------------------------

create or replace function jobcenter.error_obj(a_class text, a_msg text, a_extra jsonb default '{}')
returns jsonb language sql immutable as $$
    select jsonb_build_object('class', a_class, 'msg', a_msg) || coalesce(a_extra, '{}')
$$;

-- A task's error, with where it happened: workflow, task and source line.
create or replace function jobcenter.task_error_obj(a_job jobcenter.jobs, a_class text, a_msg text)
returns jsonb language plpgsql stable as $$
declare
    v_wf text;
    v_attr jsonb;
begin
    select name into v_wf from jobcenter.actions where action_id = a_job.workflow_id;
    select attributes into v_attr from jobcenter.tasks where task_id = a_job.task_id;
    return jsonb_strip_nulls(jsonb_build_object(
        'class', a_class, 'msg', a_msg, 'workflow', v_wf, 'task_id', a_job.task_id,
        'line', v_attr -> 'line'));
end $$;

-- Settings ------------------------------------------------------------------------------------

-- PL/pgSQL rather than SQL here and in the other small functions the hot path calls: a SQL
-- function that cannot be inlined is parsed and planned again at every call, a PL/pgSQL one
-- keeps its plans for the session.
create or replace function jobcenter.setting(a_name text) returns jsonb language plpgsql stable as $$
begin
    return (select value from jobcenter.settings where name = a_name);
end $$;

-- A duration from JCL: a number of seconds or a PostgreSQL interval string; null if neither.
create or replace function jobcenter.to_interval(a_value jsonb) returns interval
language plpgsql immutable as $$
begin
    if jsonb_typeof(a_value) = 'number' then
        return make_interval(secs => (a_value #>> '{}')::double precision);
    elsif jsonb_typeof(a_value) = 'string' then
        return (a_value #>> '{}')::interval;
    end if;
    return null;
exception when others then
    return null;
end $$;

-- The timer horizon: the setting timer_horizon as a duration, null when it is unset or no
-- positive duration. notify_timer and timer_horizon() (the maestro's) read it here alone.
create or replace function jobcenter.timer_horizon_interval() returns interval
language plpgsql stable as $$
declare
    v_horizon interval;
begin
    select jobcenter.to_interval(s.value) into v_horizon
    from jobcenter.settings s where s.name = 'timer_horizon';
    return case when v_horizon > interval '0' then v_horizon end;
end $$;

-- Tell timer listeners (the maestro) that a timeout was set, when it is due within the timer
-- horizon (timer_horizon_interval). One further off needs no notification: the maestro
-- looks at the next due time at least once a horizon (it sleeps no longer, timer_horizon()),
-- so it sees that timeout before it is due. A notification is not free: a transaction that
-- sends one holds PostgreSQL's notification lock from its commit's start to its end, through
-- the flush of the commit record, so notifying transactions commit one at a time. Without
-- the horizon every take of an action with a `timeout` notified, and the takes of all
-- workers queued for that lock. With no horizon every timeout is notified.
create or replace function jobcenter.notify_timer(a_timeout timestamptz) returns void
language plpgsql as $$
declare
    v_horizon interval := jobcenter.timer_horizon_interval();
begin
    if v_horizon is null or a_timeout <= clock_timestamp() + v_horizon then
        perform pg_notify('timer', extract(epoch from a_timeout)::text);
    end if;
end $$;

-- Evaluation context of a job ------------------------------------------------------------------

create or replace function jobcenter.ctx(a_job jobcenter.jobs, a_extra jsonb default '{}')
returns jsonb language sql immutable as $$
    select jsonb_build_object('a', a_job.arguments, 'e', a_job.environment, 'v', a_job.variables)
        || coalesce(a_extra, '{}')
$$;

-- Checking inputs and outputs --------------------------------------------------------------------

-- Checks arguments against an action's declared inputs (of one destination): fills defaults,
-- requires the required ones, checks types, refuses unknown names.
-- Returns {"args": filled} or {"_error": message}.
create or replace function jobcenter.check_inputs(a_action_id integer, a_args jsonb,
    a_destination jobcenter.destination default 'arguments')
returns jsonb language plpgsql stable as $$
declare
    v_args jsonb := coalesce(a_args, '{}');
    v_errors text[] := '{}';
    v_msg text;
    v_fit jsonb;
    r record;
    k text;
begin
    if jsonb_typeof(v_args) <> 'object' then
        return jsonb_build_object('_error', 'arguments must be a JSON object, not ' || jsonb_typeof(v_args));
    end if;
    -- the cached model answers when they fit; the loop below says why they do not
    v_fit := jobcenter.fill_args(a_action_id, v_args, a_destination = 'environment');
    if v_fit is not null then
        return jsonb_build_object('args', v_fit);
    end if;
    for r in select i.name, i.type, i.optional, i."default", s.schema
             from jobcenter.action_inputs i join jobcenter.json_schemas s using (type)
             where i.action_id = a_action_id and i.destination = a_destination
             order by i.name loop
        if not v_args ? r.name then
            if r."default" is not null then
                v_args := v_args || jsonb_build_object(r.name, r."default");
            elsif not r.optional then
                v_errors := v_errors || format('required input %s is missing', r.name);
            end if;
        else
            v_msg := jobcenter.check_value(r.schema, v_args -> r.name);
            if v_msg is not null then
                v_errors := v_errors || format('input %s is not of type %s: %s', r.name, r.type, v_msg);
            end if;
        end if;
    end loop;
    for k in select jsonb_object_keys(v_args) loop
        if not exists (select 1 from jobcenter.action_inputs
                       where action_id = a_action_id and name = k and destination = a_destination) then
            v_errors := v_errors || format('unknown input %s', k);
        end if;
    end loop;
    if cardinality(v_errors) > 0 then
        return jsonb_build_object('_error', array_to_string(v_errors, '; '));
    end if;
    return jsonb_build_object('args', v_args);
end $$;

-- Checks outputs against an action's declared outputs: required ones present, types right.
-- Undeclared keys are dropped. Returns {"out": checked} or {"_error": message}.
create or replace function jobcenter.check_outputs(a_action_id integer, a_out jsonb)
returns jsonb language plpgsql stable as $$
declare
    v_out jsonb := '{}';
    v_errors text[] := '{}';
    v_msg text;
    r record;
begin
    if jsonb_typeof(coalesce(a_out, '{}')) <> 'object' then
        return jsonb_build_object('_error', 'outputs must be a JSON object, not ' || jsonb_typeof(a_out));
    end if;
    v_out := jobcenter.fit_outputs(a_action_id, coalesce(a_out, '{}'));
    if v_out is not null then
        return jsonb_build_object('out', v_out);
    end if;
    v_out := '{}';
    for r in select o.name, o.type, o.optional, s.schema
             from jobcenter.action_outputs o join jobcenter.json_schemas s using (type)
             where o.action_id = a_action_id order by o.name loop
        if not coalesce(a_out, '{}') ? r.name then
            if not r.optional then
                v_errors := v_errors || format('required output %s is missing', r.name);
            end if;
        else
            v_msg := jobcenter.check_value(r.schema, a_out -> r.name);
            if v_msg is not null then
                v_errors := v_errors || format('output %s is not of type %s: %s', r.name, r.type, v_msg);
            end if;
            v_out := v_out || jsonb_build_object(r.name, a_out -> r.name);
        end if;
    end loop;
    if cardinality(v_errors) > 0 then
        return jsonb_build_object('_error', array_to_string(v_errors, '; '));
    end if;
    return jsonb_build_object('out', v_out);
end $$;

-- Roles -------------------------------------------------------------------------------------------

-- Whether `a_who` is `a_role` or a member of it, at any depth.
create or replace function jobcenter.has_role(a_who text, a_role text) returns boolean
language plpgsql stable as $$
begin
    if a_role is null or a_who = a_role then
        return true;
    end if;
    return exists (
        with recursive m(role) as (
            select a_who
            union
            select rm.member_of from jobcenter.jc_role_members rm join m on rm.rolename = m.role
        )
        select 1 from m where role = a_role);
end $$;

-- The identity a call acts as: the impersonated role (the argument, else the transaction's
-- `jobcenter.impersonate` setting) when the calling role may impersonate it, else the calling
-- role itself (jobcenter.invoker(), see privileges.sql: the API functions are SECURITY
-- DEFINER, so current_user is the extension's owner there).
create or replace function jobcenter.caller(a_impersonate text) returns text
language plpgsql stable as $$
declare
    v_me text := jobcenter.invoker();
    v_as text := coalesce(a_impersonate, nullif(current_setting('jobcenter.impersonate', true), ''));
begin
    if v_as is null or v_as = v_me then
        return v_me;
    end if;
    if not exists (select 1 from jobcenter.jc_impersonate_roles
                   where rolename = v_me and impersonates = v_as) then
        raise exception using errcode = 'JC004',
            message = format('%s may not impersonate %s', v_me, v_as),
            hint = 'grant it with a row in jobcenter.jc_impersonate_roles';
    end if;
    return v_as;
end $$;

-- Logging -----------------------------------------------------------------------------------------

create or replace function jobcenter.log_step(a_job jobcenter.jobs, a_state jobcenter.job_state,
    a_variables jsonb, a_inargs jsonb, a_outargs jsonb, a_task_state jsonb)
returns void language plpgsql as $$
begin
    insert into jobcenter.job_task_log (job_id, workflow_id, task_id, state, variables, inargs,
        outargs, task_entered, task_started, worker_id, task_state)
    values (a_job.job_id, a_job.workflow_id, a_job.task_id, a_state,
        case when a_variables is distinct from a_job.variables then a_variables end,
        a_inargs, a_outargs, a_job.task_entered, a_job.task_started, a_job.worker_id,
        nullif(a_task_state, '{}'));
end $$;

-- Step results --------------------------------------------------------------------------------

-- The current task of a job finished: log it, store the variables, and make the job 'done'.
-- `a_next` overrides the task's default next task (branch, switch).
create or replace function jobcenter.finish_step(a_job jobcenter.jobs, a_variables jsonb,
    a_next integer default null, a_inargs jsonb default null, a_outargs jsonb default null)
returns bigint[] language plpgsql as $$
begin
    perform jobcenter.log_step(a_job, 'done', a_variables, a_inargs, a_outargs,
        case when a_next is null then '{}' else jsonb_build_object('next', a_next) end);
    update jobcenter.jobs set
        state = 'done',
        variables = a_variables,
        task_completed = clock_timestamp(),
        task_state = case when a_next is null then '{}' else jsonb_build_object('next', a_next) end,
        cookie = null, timeout = null, worker_id = null
    where job_id = a_job.job_id;
    return array[a_job.job_id];
end $$;

-- The state a job ends in: `a_state`, except that an attached child that finished is a zombie
-- until its parent reaps it.
create or replace function jobcenter.end_state(a_job jobcenter.jobs, a_state jobcenter.job_state)
returns jobcenter.job_state language plpgsql immutable as $$
begin
    if a_state = 'finished' and a_job.parentjob_id is not null and not a_job.detached then
        return 'zombie';
    end if;
    return a_state;
end $$;

-- Ends a job: 'finished' (or 'zombie' when a parent waits for it, end_state) or 'error'.
-- Logs the end (unless `a_logged`: the caller's insert has its row), writes the row, and does
-- what follows an end (ended). With `a_write` the row is first brought to `a_job` (the plotter
-- moved it in memory: apply_plot). Returns the jobs to drive.
create or replace function jobcenter.end_job(a_job jobcenter.jobs, a_state jobcenter.job_state, a_out jsonb,
    a_write boolean default false, a_logged boolean default false)
returns bigint[] language plpgsql as $$
declare
    v_state jobcenter.job_state := jobcenter.end_state(a_job, a_state);
    v_locks boolean;
    v_subscriptions boolean;
    v_children boolean;
begin
    if not a_logged then
        perform jobcenter.log_step(a_job, v_state, a_job.variables, null, a_out,
            case when a_state = 'error' then jsonb_build_object('error', a_out -> 'error') else '{}' end);
    end if;
    -- with one look at what the job holds (most jobs end holding no lock, subscription or
    -- child), then only the clean-up it needs; nothing else adds to them while this row is locked
    update jobcenter.jobs set
        state = v_state, out_args = a_out, job_finished = clock_timestamp(),
        task_completed = clock_timestamp(), cookie = null, timeout = null, worker_id = null,
        task_id = case when a_write then a_job.task_id else task_id end,
        variables = case when a_write then a_job.variables else variables end,
        stepcounter = case when a_write then a_job.stepcounter else stepcounter end,
        task_entered = case when a_write then a_job.task_entered else task_entered end,
        task_started = case when a_write then a_job.task_started else task_started end,
        task_state = case when a_write then a_job.task_state else task_state end
    where job_id = a_job.job_id
    returning exists (select 1 from jobcenter.locks where job_id = a_job.job_id),
        exists (select 1 from jobcenter.event_subscriptions where job_id = a_job.job_id),
        exists (select 1 from jobcenter.jobs where parentjob_id = a_job.job_id)
    into v_locks, v_subscriptions, v_children;
    return jobcenter.ended(a_job, v_locks, v_subscriptions, v_children);
end $$;

-- What follows the end of job `a_job` (its row written): releases its locks and subscriptions
-- (when it held any, `a_locks`, `a_subscriptions`), aborts its unfinished children (when it
-- had any, `a_children`), notifies, and wakes a waiting parent. Returns the jobs to drive.
create or replace function jobcenter.ended(a_job jobcenter.jobs, a_locks boolean,
    a_subscriptions boolean, a_children boolean)
returns bigint[] language plpgsql as $$
declare
    v_wake bigint[] := '{}';
    v_parent bigint;
begin
    if a_locks then
        v_wake := v_wake || jobcenter.release_locks(a_job.job_id);
    end if;
    if a_subscriptions then
        delete from jobcenter.event_subscriptions where job_id = a_job.job_id;
    end if;
    if a_children then
        v_wake := v_wake || jobcenter.abort_children(a_job.job_id, 'parent job ' || a_job.job_id || ' ended');
    end if;
    if not a_job.job_state ? 'quiet' then
        perform pg_notify('job:finished', a_job.job_id::text);
        perform pg_notify('job:' || a_job.job_id || ':finished', '');
    end if;
    if a_job.parentjob_id is not null and not a_job.detached then
        update jobcenter.jobs set state = 'plotting'
        where job_id = a_job.parentjob_id and state = 'childwait'
        returning job_id into v_parent;
        if v_parent is not null then
            v_wake := v_wake || v_parent;
        end if;
    end if;
    return v_wake;
end $$;

-- Ends jobs the plotter brought to their end in memory (`a_plots[i]`, stop 'end', of job
-- `a_jobs[i]`, the rows as they were before, locked by the caller), in one statement: the rows
-- in one update, their step logs with the ends' rows in one insert (the state and times of an
-- end's row are those the update wrote; a call's row has the times and worker the job had),
-- then what follows each end (ended). finish_tasks ends a batch with it; apply_plot ends one
-- job through end_job, whose one-row statements cost less than these for a single job.
-- The arrays are joined by ordinality, not read as a_jobs[i]: a subscript walks an array from
-- its start. Generic plans: a custom plan for the size of the arrays at hand always looks
-- cheaper, so PostgreSQL would plan the statement again at every call. Its plan never scans
-- `jobs` whole (enable_seqscan off, and so jit off: the penalty would put a plan over
-- jit_above_cost): a generic plan made while the table was small would scan it at every call
-- as it grows. Returns the jobs to drive.
create or replace function jobcenter.end_plotted(a_jobs jobcenter.jobs[], a_plots jsonb[])
returns bigint[] language plpgsql
set plan_cache_mode = force_generic_plan set enable_seqscan = off set jit = off as $$
declare
    r record;
    v_wake bigint[] := '{}';
begin
    for r in
        with ends as (
            update jobcenter.jobs jb set
                state = jobcenter.end_state(jb, 'finished'), out_args = x.p -> 'out',
                job_finished = clock_timestamp(), task_completed = clock_timestamp(),
                cookie = null, timeout = null, worker_id = null,
                task_id = (x.p ->> 'task_id')::integer, stepcounter = (x.p ->> 'stepcounter')::integer,
                variables = x.p -> 'variables', task_state = x.p -> 'task_state',
                task_entered = case when (x.p ->> 'moved')::boolean
                                    then to_timestamp((x.p ->> 'entered')::double precision)
                                    else jb.task_entered end,
                task_started = case when (x.p ->> 'moved')::boolean then null else jb.task_started end
            from (select j.job_id, j.task_entered, j.task_started, j.worker_id, x.p, x.n
                  from unnest(a_jobs) with ordinality as j
                  join unnest(a_plots) with ordinality as x(p, n) on x.n = j.ordinality) x
            where jb.job_id = x.job_id
            returning jb as job, x.p, x.n, x.task_entered as call_entered,
                x.task_started as call_started, x.worker_id as call_worker,
                exists (select 1 from jobcenter.locks l where l.job_id = jb.job_id) as locks,
                exists (select 1 from jobcenter.event_subscriptions s where s.job_id = jb.job_id) as subscriptions,
                exists (select 1 from jobcenter.jobs c where c.parentjob_id = jb.job_id) as children),
        logged as (
            insert into jobcenter.job_task_log (job_id, workflow_id, task_id, state, variables,
                inargs, outargs, task_entered, task_started, worker_id, task_state, task_completed)
            select (e.job).job_id, (e.job).workflow_id, (l.r ->> 'task_id')::integer,
                case when l.r ? 'end' then (e.job).state else 'done' end,
                nullif(l.r -> 'variables', 'null'), nullif(l.r -> 'inargs', 'null'), l.r -> 'outargs',
                case when l.r ? 'call' then e.call_entered
                     when l.r ? 'end' then (e.job).task_entered
                     else to_timestamp((l.r ->> 'entered')::double precision) end,
                case when l.r ? 'call' then e.call_started
                     when l.r ? 'end' then (e.job).task_started
                     else to_timestamp((l.r ->> 'started')::double precision) end,
                case when l.r ? 'call' then e.call_worker end,
                nullif(l.r -> 'task_state', 'null'),
                case when l.r ? 'end' then (e.job).task_completed
                     else to_timestamp((l.r ->> 'completed')::double precision) end
            from ends e
            cross join lateral jsonb_array_elements(e.p -> 'log' || jsonb_build_array(
                jsonb_build_object('task_id', e.p -> 'task_id', 'end', true, 'outargs', e.p -> 'out')))
                with ordinality as l(r, k)
            order by e.n, l.k)
        select * from ends e
        -- ended does nothing for a quiet job that held nothing and has no parent waiting
        where e.locks or e.subscriptions or e.children or not (e.job).job_state ? 'quiet'
           or ((e.job).parentjob_id is not null and not (e.job).detached)
    loop
        v_wake := v_wake || jobcenter.ended(r.job, r.locks, r.subscriptions, r.children);
    end loop;
    return v_wake;
end $$;

-- Aborts the unfinished, attached children of a job; returns the jobs their ends woke.
-- Children locked by another transaction are not waited for (a parent never waits for a
-- child's row): they get an abort request (job_aborts) instead.
create or replace function jobcenter.abort_children(a_job_id bigint, a_reason text) returns bigint[]
language plpgsql as $$
declare
    c jobcenter.jobs;
    v_err jsonb;
    v_wake bigint[] := '{}';
begin
    if not exists (select 1 from jobcenter.jobs where parentjob_id = a_job_id) then
        return v_wake;
    end if;
    v_err := jsonb_build_object('error', jobcenter.error_obj('abort', a_reason));
    for c in select * from jobcenter.jobs
             where parentjob_id = a_job_id and not detached
               and state not in ('finished', 'error', 'zombie')
             order by job_id for no key update skip locked loop
        v_wake := v_wake || jobcenter.end_job(c, 'error', v_err);
    end loop;
    -- what is still live now was skipped
    perform jobcenter.request_aborts(array(
        select job_id from jobcenter.jobs
        where parentjob_id = a_job_id and not detached
          and state not in ('finished', 'error', 'zombie')), v_err);
    return v_wake;
end $$;

-- Asks for jobs to be aborted with `a_out` ({"error": …}) when their rows are free: by their
-- next step, or by do_timeout, whose listeners are told to come now.
create or replace function jobcenter.request_aborts(a_job_ids bigint[], a_out jsonb)
returns void language plpgsql as $$
begin
    if cardinality(a_job_ids) = 0 then
        return;
    end if;
    insert into jobcenter.job_aborts (job_id, error)
    select id, a_out from unnest(a_job_ids) id
    on conflict (job_id) do nothing;
    perform jobcenter.notify_timer(clock_timestamp());
end $$;

-- Carries out the abort request of a job whose row the caller holds: a live job ends in error,
-- an ended one only stays out of its parent's way; either is marked reaped. Returns the jobs
-- to drive, or null when there was no request.
create or replace function jobcenter.carry_out_abort(a_job jobcenter.jobs) returns bigint[]
language plpgsql as $$
declare
    v_out jsonb;
begin
    delete from jobcenter.job_aborts where job_id = a_job.job_id returning error into v_out;
    if not found then
        return null;
    end if;
    update jobcenter.jobs set
        state = case when state = 'zombie' then 'finished' else state end,
        job_state = job_state || '{"reaped":true}'
    where job_id = a_job.job_id;
    if a_job.state in ('finished', 'error', 'zombie') then
        return '{}';
    end if;
    a_job.job_state := a_job.job_state || '{"reaped":true}';
    if a_job.state = 'plotting' and a_job.task_state ? 'lockwait' then
        -- woken to take a freed slot, and ending instead: the next waiter gets it
        return jobcenter.end_job(a_job, 'error', v_out)
            || jobcenter.pass_lock_wake(a_job.task_state #>> '{lockwait,type}',
                                        a_job.task_state #>> '{lockwait,value}');
    end if;
    return jobcenter.end_job(a_job, 'error', v_out);
end $$;

-- A task failed with `a_err`. Soft errors of actions with a retry policy wait and retry;
-- other errors go to the enclosing catch block, or end the job in 'error'.
create or replace function jobcenter.task_failed(a_job jobcenter.jobs, a_err jsonb) returns bigint[]
language plpgsql as $$
declare
    v_task jobcenter.tasks;
    v_retry jsonb;
    v_tries integer := coalesce((a_job.task_state ->> 'tries')::integer, 0);
    v_wait interval;
    v_timeout timestamptz;
begin
    select * into v_task from jobcenter.tasks where task_id = a_job.task_id;
    select config -> 'retry' into v_retry from jobcenter.actions where action_id = v_task.action_id;
    if a_err ->> 'class' = 'soft' and v_retry is not null
       and v_tries < coalesce((v_retry ->> 'tries')::integer, 1) then
        v_wait := jobcenter.retry_wait(v_retry, v_tries);
        v_timeout := clock_timestamp() + v_wait;
        perform jobcenter.log_step(a_job, 'retrywait', a_job.variables,
            a_job.task_state -> 'inargs', null,
            jsonb_build_object('error', a_err, 'tries', v_tries, 'wait', v_wait::text));
        update jobcenter.jobs set
            state = 'retrywait', timeout = v_timeout, cookie = null, worker_id = null,
            task_state = task_state || jsonb_build_object('error', a_err)
        where job_id = a_job.job_id;
        perform jobcenter.notify_timer(v_timeout);
        return '{}';
    end if;
    return jobcenter.raise_job_error(a_job, a_err);
end $$;

-- The wait before retry number `a_tries` + 1. The original's `interval × sqrt(tries)`, or ours:
-- fixed, or exponential capped at max_interval; with optional ±25 % jitter.
create or replace function jobcenter.retry_wait(a_retry jsonb, a_tries integer) returns interval
language plpgsql volatile as $$
declare
    v_base interval := coalesce(jobcenter.to_interval(a_retry -> 'interval'), interval '1 minute');
    v_tries integer := greatest(a_tries, 1);
    v_wait interval;
    v_max interval := jobcenter.to_interval(a_retry -> 'max_interval');
begin
    v_wait := case coalesce(a_retry ->> 'backoff', 'sqrt')
        when 'fixed' then v_base
        when 'exponential' then v_base * power(2, least(v_tries - 1, 30))
        else v_base * sqrt(v_tries)
    end;
    if v_max is not null and v_wait > v_max then
        v_wait := v_max;
    end if;
    if coalesce((a_retry ->> 'jitter')::boolean, false) then
        v_wait := v_wait * (0.75 + random() * 0.5);
    end if;
    return v_wait;
end $$;

-- Raises an error in a job: to the catch block of the current task (with the error object in
-- e._error), or, for uncatchable classes and outside any try, the job ends in 'error'.
create or replace function jobcenter.raise_job_error(a_job jobcenter.jobs, a_err jsonb) returns bigint[]
language plpgsql as $$
declare
    v_catch integer;
begin
    select on_error_task_id into v_catch from jobcenter.tasks where task_id = a_job.task_id;
    if v_catch is not null and a_err ->> 'class' not in ('fatal', 'abort') then
        perform jobcenter.log_step(a_job, 'error', a_job.variables, a_job.task_state -> 'inargs',
            null, jsonb_build_object('error', a_err, 'caught', true));
        update jobcenter.jobs set
            state = 'done',
            environment = environment || jsonb_build_object('_error', a_err),
            task_state = jsonb_build_object('next', v_catch),
            task_completed = clock_timestamp(), cookie = null, timeout = null, worker_id = null
        where job_id = a_job.job_id;
        return array[a_job.job_id];
    end if;
    return jobcenter.end_job(a_job, 'error', jsonb_build_object('error', a_err));
end $$;

-- The plotter ---------------------------------------------------------------------------------

-- The plotter (`jobcenter.plot`, src/plot.rs) on job row `j`, as it is in memory; with
-- `a_outputs` in state 'working', the outputs of its call.
create or replace function jobcenter.plot_job(j jobcenter.jobs, a_outputs jsonb default null)
returns jsonb language plpgsql as $$
begin
    return jobcenter.plot(j.workflow_id, j.task_id, j.state::text, j.task_state, j.arguments,
        j.environment, j.variables, j.stepcounter, j.max_steps,
        coalesce(extract(epoch from j.task_entered)::double precision, 0), a_outputs);
end $$;

-- Writes what the plotter (`jobcenter.plot`, src/plot.rs) did to job `a_job` in memory: its step
-- log in one insert, then the job row once: as ready for a worker (notified), ended (end_job),
-- or at the step the SQL driver runs next. With `a_insert` the job is new and its row is
-- inserted rather than updated. Returns the jobs to drive.
create or replace function jobcenter.apply_plot(a_job jobcenter.jobs, a_plot jsonb,
    a_insert boolean default false)
returns bigint[] language plpgsql as $$
declare
    j jobcenter.jobs := a_job;
    v_stop text := a_plot ->> 'stop';
    v_payload jsonb;
    v_log jsonb;
    v_end jobcenter.job_state;
begin
    j.task_id := (a_plot ->> 'task_id')::integer;
    j.stepcounter := (a_plot ->> 'stepcounter')::integer;
    j.variables := a_plot -> 'variables';
    j.task_state := a_plot -> 'task_state';
    j.state := (a_plot ->> 'state')::jobcenter.job_state;
    j.cookie := null;
    j.timeout := null;
    j.worker_id := null;
    if (a_plot ->> 'moved')::boolean then
        j.task_entered := to_timestamp((a_plot ->> 'entered')::double precision);
        j.task_started := null;
        j.task_completed := null;
    elsif j.state = 'done' then
        j.task_completed := clock_timestamp();
    end if;
    -- the steps in one insert; a job that ended gets its end's row (end_job's log_step) in it
    v_log := a_plot -> 'log';
    if v_stop = 'end' then
        v_end := jobcenter.end_state(j, 'finished');
        v_log := v_log || jsonb_build_array(jsonb_build_object('task_id', j.task_id, 'end', true,
            'outargs', a_plot -> 'out', 'entered', extract(epoch from j.task_entered),
            'started', extract(epoch from j.task_started),
            'completed', extract(epoch from clock_timestamp())));
    end if;
    insert into jobcenter.job_task_log (job_id, workflow_id, task_id, state, variables, inargs,
        outargs, task_entered, task_started, worker_id, task_state, task_completed)
    select a_job.job_id, a_job.workflow_id, (r ->> 'task_id')::integer,
        case when r ? 'end' then v_end else 'done' end,
        nullif(r -> 'variables', 'null'), nullif(r -> 'inargs', 'null'), r -> 'outargs',
        case when r ? 'call' then a_job.task_entered
             else to_timestamp((r ->> 'entered')::double precision) end,
        case when r ? 'call' then a_job.task_started
             else to_timestamp((r ->> 'started')::double precision) end,
        case when r ? 'call' then a_job.worker_id end,
        nullif(r -> 'task_state', 'null'), to_timestamp((r ->> 'completed')::double precision)
    from jsonb_array_elements(v_log) with ordinality as l(r, n)
    order by l.n;
    if v_stop = 'ready' then
        j.state := 'ready';
        j.ready_action_id := (a_plot ->> 'queue')::integer;
        j.task_state := jsonb_build_object('inargs', a_plot -> 'inargs', 'env', a_plot -> 'env',
            'tries', 0);
    end if;
    -- an end's row is written by end_job (a new job's is inserted first)
    if a_insert then
        with n as (insert into jobcenter.jobs select (j).* returning job_id, arguments)
        insert into jobcenter.job_arguments select job_id, arguments from n;
    elsif v_stop is distinct from 'end' then
        update jobcenter.jobs set
            state = j.state, task_id = j.task_id, stepcounter = j.stepcounter,
            variables = j.variables, task_state = j.task_state, task_entered = j.task_entered,
            task_started = j.task_started, task_completed = j.task_completed,
            ready_action_id = j.ready_action_id, cookie = null, timeout = null, worker_id = null
        where job_id = j.job_id;
    end if;
    if v_stop = 'end' then
        return jobcenter.end_job(j, 'finished', a_plot -> 'out', true, a_logged => true);
    end if;
    if v_stop = 'ready' then
        v_payload := jsonb_build_object('job_id', j.job_id);
        if (a_plot ->> 'filter')::boolean then
            v_payload := v_payload || jsonb_build_object('workers',
                jobcenter.eligible_workers((select action_id from jobcenter.tasks
                                            where task_id = j.task_id), a_plot -> 'inargs'));
        end if;
        perform pg_notify('action:' || j.ready_action_id || ':ready', v_payload::text);
        return '{}';
    end if;
    return array[j.job_id];
end $$;

-- Runs the plotter on job `j` (locked by the caller) when it can move it: the jobs to drive,
-- or null when the SQL driver must run the step itself.
create or replace function jobcenter.try_plot(j jobcenter.jobs) returns bigint[]
language plpgsql as $$
declare
    v_plot jsonb;
begin
    if not jobcenter.plottable(j.workflow_id, j.task_id, j.state::text, j.stepcounter, j.max_steps) then
        return null;
    end if;
    v_plot := jobcenter.plot_job(j);
    if v_plot is null then
        return null;
    end if;
    return jobcenter.apply_plot(j, v_plot);
end $$;

-- The driver ------------------------------------------------------------------------------------

create or replace function jobcenter.drive(a_jobs bigint[]) returns void language plpgsql as $$
declare
    v_queue bigint[] := a_jobs;
    v_job bigint;
begin
    while cardinality(v_queue) > 0 loop
        v_job := v_queue[1];
        v_queue := v_queue[2:];
        v_queue := v_queue || jobcenter.step(v_job);
    end loop;
end $$;

-- One step of one job: choose the next task ('done') or run the current one ('plotting').
create or replace function jobcenter.step(a_job_id bigint) returns bigint[] language plpgsql as $$
declare
    j jobcenter.jobs;
    t jobcenter.tasks;
    a jobcenter.actions;
    v_next integer;
    v_parent_state jobcenter.job_state;
    v_wake bigint[];
begin
    -- Job rows are locked FOR NO KEY UPDATE, never FOR UPDATE: updating a child row takes a
    -- KEY SHARE lock on its parent's row (the parentjob_id foreign key), and FOR UPDATE would
    -- conflict with it, deadlocking two children that end at once against each other.
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update;
    if not found or j.state not in ('done', 'plotting') then
        return '{}';
    end if;
    v_wake := jobcenter.carry_out_abort(j);
    if v_wake is not null then
        return v_wake;
    end if;
    if j.parentjob_id is not null and not j.detached then
        select state into v_parent_state from jobcenter.jobs where job_id = j.parentjob_id;
        if v_parent_state is null or v_parent_state in ('finished', 'error', 'zombie') then
            return jobcenter.end_job(j, 'error', jsonb_build_object('error',
                jobcenter.error_obj('abort', 'parent job ' || j.parentjob_id || ' ended')));
        end if;
    end if;
    v_wake := jobcenter.try_plot(j);
    if v_wake is not null then
        return v_wake;
    end if;
    select * into t from jobcenter.tasks where task_id = j.task_id;
    if j.state = 'done' then
        v_next := coalesce((j.task_state ->> 'next')::integer, t.next_task_id);
        if j.stepcounter >= j.max_steps then
            return jobcenter.end_job(j, 'error', jsonb_build_object('error',
                jobcenter.task_error_obj(j, 'fatal',
                    format('max_steps (%s) exceeded', j.max_steps))));
        end if;
        update jobcenter.jobs set
            state = 'plotting', task_id = v_next, stepcounter = stepcounter + 1,
            task_entered = clock_timestamp(), task_started = null, task_completed = null,
            task_state = '{}', cookie = null, timeout = null, worker_id = null
        where job_id = a_job_id;
        return array[a_job_id];
    end if;
    select * into a from jobcenter.actions where action_id = t.action_id;
    return case a.type
        when 'system' then jobcenter.do_system_task(j, t)
        when 'action' then jobcenter.do_action_task(j, t, a)
        when 'procedure' then jobcenter.do_procedure_task(j, t, a)
        when 'workflow' then jobcenter.do_workflow_task(j, t, a)
    end;
end $$;

-- Runs the imap of a task. Returns the inputs, or {"_error": …}.
create or replace function jobcenter.run_imap(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_extra jsonb default '{}')
returns jsonb language plpgsql as $$
declare
    v_res jsonb;
begin
    v_res := jobcenter.jcl_run(a_task.attributes, 'imap',
        jobcenter.ctx(a_job, coalesce(a_extra, '{}') || '{"i":{}}'));
    if v_res ? '_error' then
        return v_res;
    end if;
    return coalesce(v_res -> 'i', '{}');
end $$;

-- Runs the omap of a task with the call's outputs in o. Returns the variables, or {"_error": …}.
create or replace function jobcenter.run_omap(a_job jobcenter.jobs, a_task jobcenter.tasks, a_out jsonb,
    a_variables jsonb default null)
returns jsonb language plpgsql as $$
declare
    v_res jsonb;
begin
    v_res := jobcenter.jcl_run(a_task.attributes, 'omap',
        jsonb_build_object('a', a_job.arguments, 'e', a_job.environment,
            'v', coalesce(a_variables, a_job.variables), 'o', coalesce(a_out, '{}')));
    if v_res ? '_error' then
        return v_res;
    end if;
    return jsonb_build_object('v', v_res -> 'v');
end $$;

-- Builds and checks the inputs of a call: the task's imap (with `a_extra` namespaces), then the
-- callee's declared inputs (defaults filled in). Returns {"args": …} or {"_error": message};
-- with `a_name` the message says which call it was.
create or replace function jobcenter.call_inputs(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_action_id integer, a_name text, a_extra jsonb default '{}')
returns jsonb language plpgsql as $$
declare
    v_in jsonb;
    v_checked jsonb;
begin
    v_in := jobcenter.run_imap(a_job, a_task, a_extra);
    if v_in ? '_error' then
        return v_in;
    end if;
    v_checked := jobcenter.check_inputs(a_action_id, v_in);
    if v_checked ? '_error' and a_name is not null then
        return jsonb_build_object('_error', format('calling %s: %s', a_name, v_checked ->> '_error'));
    end if;
    return v_checked;
end $$;

-- Actions performed by workers ----------------------------------------------------------------

-- Workers (by name) whose announcement of action `a_action_id` accepts a task with `a_inargs`.
-- Any version of the action counts, as for get_task.
create or replace function jobcenter.eligible_workers(a_action_id integer, a_inargs jsonb) returns jsonb
language sql stable as $$
    select coalesce(jsonb_agg(w.name order by w.worker_id), '[]')
    from jobcenter.worker_actions wa join jobcenter.workers w using (worker_id)
    join jobcenter.actions a on a.action_id = wa.action_id
    where a.type = 'action' and a.name = (select name from jobcenter.actions where action_id = a_action_id)
      and w.stopped is null
      and (wa.filter is null or a_inargs @> wa.filter)
$$;

-- The ready queue of an action: one per action name across its versions (the id of its first
-- version), so a task made ready for an older version reaches the workers of the newest one.
-- `ready_action_id` and the channel `action:<queue>:ready` use it.
create or replace function jobcenter.action_queue(a_name text) returns integer
language plpgsql stable as $$
begin
    return (select action_id from jobcenter.actions where name = a_name and type = 'action'
            order by version limit 1);
end $$;

-- Makes a task ready for a worker and tells the workers.
create or replace function jobcenter.make_ready(a_job jobcenter.jobs, a_action jobcenter.actions,
    a_inargs jsonb, a_env jsonb, a_tries integer)
returns void language plpgsql as $$
declare
    v_payload jsonb := jsonb_build_object('job_id', a_job.job_id);
    v_queue integer := jobcenter.action_queue(a_action.name);
begin
    update jobcenter.jobs set
        state = 'ready', ready_action_id = v_queue, cookie = null, worker_id = null, timeout = null,
        task_state = jsonb_build_object('inargs', a_inargs, 'env', a_env, 'tries', a_tries)
    where job_id = a_job.job_id;
    if a_action.config ? 'filter' then
        v_payload := v_payload || jsonb_build_object('workers',
            jobcenter.eligible_workers(a_action.action_id, a_inargs));
    end if;
    perform pg_notify('action:' || v_queue || ':ready', v_payload::text);
end $$;

create or replace function jobcenter.do_action_task(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_action jobcenter.actions)
returns bigint[] language plpgsql as $$
declare
    v_checked jsonb;
    v_env jsonb;
begin
    v_checked := jobcenter.call_inputs(a_job, a_task, a_action.action_id, a_action.name);
    if v_checked ? '_error' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_checked ->> '_error'));
    end if;
    select coalesce(jsonb_object_agg(i.name, a_job.environment -> i.name), '{}') into v_env
    from jobcenter.action_inputs i
    where i.action_id = a_action.action_id and i.destination = 'environment'
      and a_job.environment ? i.name;
    perform jobcenter.make_ready(a_job, a_action, v_checked -> 'args', v_env, 0);
    return '{}';
end $$;

-- The outputs of a call arrived: check them, run the omap, continue.
create or replace function jobcenter.call_done(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_action_id integer, a_inargs jsonb, a_out jsonb)
returns bigint[] language plpgsql as $$
declare
    v_checked jsonb;
    v_vars jsonb;
    v_name text;
begin
    v_checked := jobcenter.check_outputs(a_action_id, a_out);
    if v_checked ? '_error' then
        select name into v_name from jobcenter.actions where action_id = a_action_id;
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('%s returned bad outputs: %s', v_name, v_checked ->> '_error')));
    end if;
    v_vars := jobcenter.run_omap(a_job, a_task, v_checked -> 'out');
    if v_vars ? '_error' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_vars ->> '_error'));
    end if;
    return jobcenter.finish_step(a_job, v_vars -> 'v', null, a_inargs, v_checked -> 'out');
end $$;

-- Procedures: actions run inline as PostgreSQL functions `name(jsonb) returns jsonb`, as the
-- role that owns the workflow (call_procedure in privileges.sql).
create or replace function jobcenter.do_procedure_task(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_action jobcenter.actions)
returns bigint[] language plpgsql as $$
declare
    v_checked jsonb;
    v_out jsonb;
begin
    v_checked := jobcenter.call_inputs(a_job, a_task, a_action.action_id, a_action.name);
    if v_checked ? '_error' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_checked ->> '_error'));
    end if;
    if a_action.name !~ '^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('procedure name %s is not a function name', a_action.name)));
    end if;
    begin
        v_out := jobcenter.call_procedure(a_job.workflow_id, a_action.name, v_checked -> 'args');
    exception when others then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('procedure %s failed: %s', a_action.name, sqlerrm)));
    end;
    if v_out ? 'error' then
        return jobcenter.raise_job_error(a_job, jobcenter.outargs_error(a_job, v_out -> 'error'));
    end if;
    return jobcenter.call_done(a_job, a_task, a_action.action_id, v_checked -> 'args', v_out);
end $$;

-- The error object of an `error` key in outargs: a string is a normal error's message, an
-- object keeps its class (default normal).
create or replace function jobcenter.outargs_error(a_job jobcenter.jobs, a_error jsonb) returns jsonb
language plpgsql stable as $$
begin
    if jsonb_typeof(a_error) = 'object' then
        return jobcenter.task_error_obj(a_job, coalesce(a_error ->> 'class', 'normal'),
            coalesce(a_error ->> 'msg', a_error::text)) || (a_error - 'class' - 'msg');
    end if;
    return jobcenter.task_error_obj(a_job, 'normal', coalesce(a_error #>> '{}', 'error'));
end $$;
