-- jobcenter system actions: the steps the engine performs itself (negative action ids).

create or replace function jobcenter.do_system_task(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
declare
    v_res jsonb;
    v_in jsonb;
    v_next integer;
    v_label text;
begin
    case a_task.action_id
    when -1 then  -- start: take the workflow's automatic locks
        return jobcenter.do_start(a_job, a_task);
    when -2 then
        return jobcenter.do_end(a_job, a_task);
    when -3 then  -- no_op
        return jobcenter.finish_step(a_job, a_job.variables);
    when -4 then  -- eval
        v_res := jobcenter.jcl_run(a_task.attributes, 'code', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        return jobcenter.finish_step(a_job, v_res -> 'v');
    when -5 then  -- branch
        v_res := jobcenter.jcl_eval(a_task.attributes, 'cond', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        if jobcenter.jcl_truthy(v_res -> 'value') then
            select to_task_id into v_next from jobcenter.next_tasks
            where from_task_id = a_task.task_id and "when" = 'true';
        end if;
        return jobcenter.finish_step(a_job, a_job.variables, v_next);
    when -6 then  -- switch
        v_res := jobcenter.jcl_eval(a_task.attributes, 'value', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        v_label := jobcenter.jcl_tostring(v_res -> 'value');
        select to_task_id into v_next from jobcenter.next_tasks
        where from_task_id = a_task.task_id and "when" = v_label;
        return jobcenter.finish_step(a_job, a_job.variables, v_next);
    when -7 then
        return jobcenter.do_reap_child(a_job, a_task);
    when -13 then
        return jobcenter.do_wait_for_children(a_job, a_task);
    else
        null;
    end case;

    -- The remaining system actions take inputs built by their imap.
    v_res := jobcenter.call_inputs(a_job, a_task, a_task.action_id, null);
    if v_res ? '_error' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
    end if;
    v_in := v_res -> 'args';
    case a_task.action_id
    when -8 then  -- subscribe
        insert into jobcenter.event_subscriptions (job_id, name, mask)
        values (a_job.job_id, v_in ->> 'name', v_in -> 'mask')
        on conflict (job_id, name) do update set mask = excluded.mask;
        return jobcenter.finish_step(a_job, a_job.variables, null, v_in);
    when -9 then  -- unsubscribe
        delete from jobcenter.event_subscriptions
        where job_id = a_job.job_id and name = v_in ->> 'name';
        return jobcenter.finish_step(a_job, a_job.variables, null, v_in);
    when -10 then
        return jobcenter.do_wait_for_event(a_job, a_task, v_in);
    when -11 then  -- raise_error
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_in ->> 'msg'));
    when -12 then  -- raise_event
        return jobcenter.finish_step(a_job, a_job.variables, null, v_in)
            || jobcenter.deliver_event(v_in -> 'event', a_job.environment ->> 'jcclient');
    when -14 then
        return jobcenter.do_lock(a_job, a_task, v_in);
    when -15 then
        return jobcenter.do_unlock(a_job, v_in);
    when -16 then
        return jobcenter.do_sleep(a_job, v_in);
    end case;
    return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'fatal',
        format('unknown system action %s', a_task.action_id)));
end $$;

-- end: run the workflow output map, check the outputs, finish the job.
create or replace function jobcenter.do_end(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
declare
    v_res jsonb;
    v_checked jsonb;
begin
    v_res := jobcenter.jcl_run(a_task.attributes, 'wfomap', jobcenter.ctx(a_job, '{"o":{}}'));
    if v_res ? '_error' then
        return jobcenter.end_job(a_job, 'error', jsonb_build_object('error',
            jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error')));
    end if;
    v_checked := jobcenter.check_outputs(a_job.workflow_id, coalesce(v_res -> 'o', '{}'));
    if v_checked ? '_error' then
        return jobcenter.end_job(a_job, 'error', jsonb_build_object('error',
            jobcenter.task_error_obj(a_job, 'normal', 'workflow output: ' || (v_checked ->> '_error'))));
    end if;
    return jobcenter.end_job(a_job, 'finished', v_checked -> 'out');
end $$;

-- Sleep -----------------------------------------------------------------------------------------

create or replace function jobcenter.do_sleep(a_job jobcenter.jobs, a_in jsonb) returns bigint[]
language plpgsql as $$
declare
    v_wait interval := jobcenter.to_interval(a_in -> 'timeout');
    v_timeout timestamptz;
begin
    if v_wait is null then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('sleep: %s is not an interval', a_in -> 'timeout')));
    end if;
    v_timeout := clock_timestamp() + v_wait;
    update jobcenter.jobs set state = 'sleeping', timeout = v_timeout,
        task_state = jsonb_build_object('inargs', a_in)
    where job_id = a_job.job_id;
    perform jobcenter.notify_timer(v_timeout);
    return '{}';
end $$;

-- Events ----------------------------------------------------------------------------------------

-- Queues an event raised by `a_raised_by` for every subscription whose mask it contains and
-- whose job that identity may raise events to (jobcenter.may_raise_to); returns the jobs to
-- wake (those waiting for one of the matched subscriptions).
create or replace function jobcenter.deliver_event(a_eventdata jsonb, a_raised_by text) returns bigint[]
language plpgsql as $$
declare
    v_event_id bigint;
    v_wake bigint[];
begin
    insert into jobcenter.job_events (eventdata, raised_by) values (a_eventdata, a_raised_by)
    returning event_id into v_event_id;
    insert into jobcenter.queued_events (subscription_id, event_id)
    select subscription_id, v_event_id from jobcenter.event_subscriptions s
    where a_eventdata @> s.mask and jobcenter.may_raise_to(a_raised_by, s.job_id);
    -- Queuing took a key-share lock on each matched subscription row, so a waiter reading its
    -- queue under its subscription rows (next_event) either saw this event or is woken here.
    -- A waiter locked by another transaction is being moved by it (its time-out, an abort, a
    -- wait that reads the queue): never waited for.
    with waiting as (
        select j.job_id from jobcenter.jobs j
        where j.state = 'eventwait' and exists (
            select 1 from jobcenter.event_subscriptions s join jobcenter.queued_events q using (subscription_id)
            where s.job_id = j.job_id and q.event_id = v_event_id
              and j.task_state -> 'events' ? s.name)
        order by j.job_id
        for no key update of j skip locked
    ), woken as (
        update jobcenter.jobs j set state = 'plotting', timeout = null
        from waiting w where j.job_id = w.job_id
        returning j.job_id)
    select coalesce(array_agg(job_id order by job_id), '{}') into v_wake from woken;
    return v_wake;
end $$;

-- wait_for_event: take the oldest queued event of the named subscriptions, or wait for one.
create or replace function jobcenter.do_wait_for_event(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_in jsonb)
returns bigint[] language plpgsql as $$
declare
    v_events jsonb := case jsonb_typeof(a_in -> 'events') when 'array' then a_in -> 'events'
                           else jsonb_build_array(a_in -> 'events') end;
    v_wait interval := jobcenter.to_interval(a_in -> 'timeout');
    v_timeout timestamptz;
    v_event jsonb;
begin
    -- A name the job has not subscribed to never matches, as in the original (jcc warns).
    v_event := jobcenter.next_event(a_job.job_id, v_events);
    if v_event is not null then
        return jobcenter.event_arrived(a_job, a_task, a_in, v_event);
    end if;
    if v_wait is null then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('wait_for_event: timeout %s is not an interval', a_in -> 'timeout')));
    end if;
    v_timeout := clock_timestamp() + v_wait;
    update jobcenter.jobs set state = 'eventwait', timeout = v_timeout,
        task_state = jsonb_build_object('inargs', a_in, 'events', v_events)
    where job_id = a_job.job_id;
    perform jobcenter.notify_timer(v_timeout);
    return '{}';
end $$;

-- Takes the oldest queued event of the job's subscriptions named in `a_events`: the event
-- object for the omap, or null. The subscription rows are locked first (FOR UPDATE conflicts
-- with the key-share lock a raiser's queuing takes), so an event queued by a transaction that
-- is still open is waited for and seen, never missed.
create or replace function jobcenter.next_event(a_job_id bigint, a_events jsonb) returns jsonb
language plpgsql as $$
declare
    r record;
begin
    perform 1 from jobcenter.event_subscriptions
    where job_id = a_job_id and a_events ? name
    order by subscription_id for update;
    select q.subscription_id, q.event_id, s.name, e.eventdata, e."when" into r
    from jobcenter.queued_events q
    join jobcenter.event_subscriptions s using (subscription_id)
    join jobcenter.job_events e using (event_id)
    where s.job_id = a_job_id and a_events ? s.name
    order by q.event_id limit 1;
    if not found then
        return null;
    end if;
    delete from jobcenter.queued_events
    where subscription_id = r.subscription_id and event_id = r.event_id;
    return jsonb_build_object('name', r.name, 'event_id', r.event_id, 'when', r."when",
        'data', r.eventdata);
end $$;

-- An event (or the time-out pseudo-event {"name":"timeout"}) ends a wait_for_event.
create or replace function jobcenter.event_arrived(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_in jsonb, a_event jsonb)
returns bigint[] language plpgsql as $$
declare
    v_vars jsonb;
    v_out jsonb := jsonb_build_object('event', a_event);
begin
    v_vars := jobcenter.run_omap(a_job, a_task, v_out);
    if v_vars ? '_error' then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_vars ->> '_error'));
    end if;
    return jobcenter.finish_step(a_job, v_vars -> 'v', null, a_in, v_out);
end $$;

-- Locks -----------------------------------------------------------------------------------------

-- Whether `a_ancestor` is a (transitive) parent of `a_job_id`.
create or replace function jobcenter.is_ancestor(a_ancestor bigint, a_job_id bigint) returns boolean
language sql stable as $$
    with recursive up(job_id, depth) as (
        select parentjob_id, 1 from jobcenter.jobs where job_id = a_job_id
        union all
        select j.parentjob_id, up.depth + 1 from jobcenter.jobs j join up using (job_id)
        where up.depth < 100
    )
    select exists (select 1 from up where job_id = a_ancestor)
$$;

-- Tries to take a lock. Returns null when the job now holds it (already held, taken over from
-- an ancestor that holds it with `inherit`, or taken in a free slot: a lock type allows
-- max_holders jobs per value), else a holder's job id (the longest holding one; -1 when slots
-- freed meanwhile went to others ten times over). An inherited lock moves to the
-- descendant (so siblings take it in turn, as in the original) and goes back to the ancestor
-- when released (see release_lock).
create or replace function jobcenter.try_lock(a_job jobcenter.jobs, a_type text, a_value text)
returns bigint language plpgsql as $$
declare
    v_holder bigint;
    v_my_inherit boolean;
    v_limit integer;
    v_slot integer;
    v_held integer;
begin
    select inherit into v_my_inherit from jobcenter.workflow_locks
    where workflow_id = a_job.workflow_id and locktype = a_type;
    v_my_inherit := coalesce(v_my_inherit, false);
    select coalesce(max_holders, 1) into v_limit from jobcenter.locktypes where locktype = a_type;
    if exists (select 1 from jobcenter.locks
               where locktype = a_type and lockvalue = a_value and job_id = a_job.job_id) then
        return null;
    end if;
    select l.job_id into v_holder from jobcenter.locks l
    where l.locktype = a_type and l.lockvalue = a_value and l.inherit
      and jobcenter.is_ancestor(l.job_id, a_job.job_id)
    order by l.slot limit 1 for update;
    if found then
        update jobcenter.locks set
            job_id = a_job.job_id, inherit = v_my_inherit,
            inherited_from = inherited_from || v_holder
        where locktype = a_type and lockvalue = a_value and job_id = v_holder;
        return null;
    end if;
    -- A holder may leave between the look at the free slots and the look at the holders, so
    -- both are tried again (in practice at most twice).
    for i in 1 .. 10 loop
        for v_slot in select g from generate_series(0, v_limit - 1) g
                      where g not in (select slot from jobcenter.locks
                                      where locktype = a_type and lockvalue = a_value) loop
            -- A taker of a free slot holds the slot's advisory lock until it commits, and the
            -- first look passes over a slot another taker has: no waiting on each other's
            -- inserts (two releasers each handing their freed slot on never wait for one
            -- another). The later looks take a racing taker's slot in turn: the insert waits
            -- for its transaction.
            if i > 1 or pg_try_advisory_xact_lock(
                    hashtext('jobcenter.slot ' || a_type || ' ' || a_value), v_slot) then
                insert into jobcenter.locks (locktype, lockvalue, job_id, inherit, slot)
                values (a_type, a_value, a_job.job_id, v_my_inherit, v_slot)
                on conflict do nothing;
                if found then
                    return null;
                end if;
            end if;
        end loop;
        -- Every holder's row, locked and counted in one statement: a release not yet
        -- committed is waited for (else its wake-up would miss this job's wait), and when all
        -- v_limit slots are counted each is locked, so every holder's release waits for this
        -- transaction and then sees the wait. A slot freed or taken meanwhile (a row this
        -- statement did not see) makes the count fall short: look again.
        select count(*) into v_held from (
            select 1 from jobcenter.locks where locktype = a_type and lockvalue = a_value
            for update) held;
        if v_held >= v_limit then
            select job_id into v_holder from jobcenter.locks
            where locktype = a_type and lockvalue = a_value order by taken, slot limit 1;
            return v_holder;
        end if;
    end loop;
    return -1;
end $$;

-- Whether job `a_holder` waits for job `a_job_id` for ever: it is that job, an ancestor of it
-- waiting for its children, or it waits for a lock all of whose holders do (lock_blocked).
-- `a_seen` holds the holders on the path here (a cycle without `a_job_id` is not its
-- deadlock), and a path longer than 100 lock waits is taken as no deadlock.
create or replace function jobcenter.lock_deadlock(a_job_id bigint, a_holder bigint,
    a_seen bigint[] default '{}')
returns boolean language plpgsql stable as $$
declare
    v_state jobcenter.job_state;
    v_ts jsonb;
begin
    if a_holder = a_job_id then
        return true;
    end if;
    if a_holder = any(a_seen) or cardinality(a_seen) >= 100 then
        return false;
    end if;
    select state, task_state into v_state, v_ts from jobcenter.jobs where job_id = a_holder;
    if v_state = 'childwait' and jobcenter.is_ancestor(a_holder, a_job_id) then
        return true;
    end if;
    if v_state is distinct from 'lockwait' then
        return false;
    end if;
    return jobcenter.lock_blocked(a_job_id, v_ts #>> '{lockwait,type}',
        v_ts #>> '{lockwait,value}', a_seen || a_holder);
end $$;

-- Whether waiting for lock (a_type, a_value) would never end for job `a_job_id`: every slot of
-- the lock is held, each by a job that waits for `a_job_id` for ever (lock_deadlock). With a
-- limit of 1 this is the chain of lock waits leading back to the job.
create or replace function jobcenter.lock_blocked(a_job_id bigint, a_type text, a_value text,
    a_seen bigint[] default '{}')
returns boolean language plpgsql stable as $$
declare
    v_holder bigint;
    v_held integer := 0;
begin
    for v_holder in select job_id from jobcenter.locks
                    where locktype = a_type and lockvalue = a_value order by slot loop
        if not jobcenter.lock_deadlock(a_job_id, v_holder, a_seen) then
            return false;
        end if;
        v_held := v_held + 1;
    end loop;
    return v_held > 0 and v_held >= (select max_holders from jobcenter.locktypes where locktype = a_type);
end $$;

-- The transaction-level lock every check of the lock-wait graph (lock_deadlock) holds.
create or replace function jobcenter.lock_graph_lock() returns void language sql as $$
    select pg_advisory_xact_lock(hashtext('jobcenter.lockgraph'))
$$;

-- Waits for a lock held by `a_holder`, per `a_wait`: true/'yes' waits for ever, false/'no' is
-- an error of class 'lock', an interval waits that long.
create or replace function jobcenter.wait_for_lock(a_job jobcenter.jobs, a_type text, a_value text,
    a_holder bigint, a_wait jsonb, a_in jsonb)
returns bigint[] language plpgsql as $$
declare
    v_wait interval;
    v_timeout timestamptz;
begin
    if a_wait = 'false'::jsonb or a_wait = '"no"'::jsonb then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'lock',
            format('lock %s %s is held by job %s', a_type, a_value, a_holder)));
    end if;
    -- Serialised with every other check of the lock-wait graph, and made after the lock is
    -- ours: two jobs starting to wait at once see each other's wait (the second one's check
    -- runs after the first one's transaction has committed).
    perform jobcenter.lock_graph_lock();
    if jobcenter.lock_blocked(a_job.job_id, a_type, a_value) then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'lock',
            format('deadlock: waiting for lock %s %s held by job %s', a_type, a_value, a_holder)));
    end if;
    if not (a_wait = 'true'::jsonb or a_wait = '"yes"'::jsonb) then
        v_wait := jobcenter.to_interval(a_wait);
        if v_wait is null then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
                format('lock wait %s is not yes, no or an interval', a_wait)));
        end if;
        -- keep the first deadline across wake-ups
        v_timeout := coalesce((a_job.task_state ->> 'deadline')::timestamptz, clock_timestamp() + v_wait);
        perform jobcenter.notify_timer(v_timeout);
    end if;
    update jobcenter.jobs set state = 'lockwait', timeout = v_timeout,
        task_state = jsonb_strip_nulls(jsonb_build_object('inargs', a_in,
            'lockwait', jsonb_build_object('type', a_type, 'value', a_value),
            'holder', a_holder, 'deadline', v_timeout))
    where job_id = a_job.job_id;
    return '{}';
end $$;

create or replace function jobcenter.do_lock(a_job jobcenter.jobs, a_task jobcenter.tasks, a_in jsonb)
returns bigint[] language plpgsql as $$
declare
    v_type text := a_in ->> 'type';
    v_value text := jobcenter.jcl_tostring(a_in -> 'value');
    v_holder bigint;
begin
    if not exists (select 1 from jobcenter.locktypes where locktype = v_type) then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('unknown lock type %s', v_type)));
    end if;
    v_holder := jobcenter.try_lock(a_job, v_type, v_value);
    if v_holder is null then
        return jobcenter.finish_step(a_job, a_job.variables, null, a_in);
    end if;
    return jobcenter.wait_for_lock(a_job, v_type, v_value, v_holder, a_in -> 'wait', a_in);
end $$;

-- Wakes the oldest job waiting for lock (a_type, a_value) to retry its lock step (a releaser
-- freed one slot), and with `a_heir` only a descendant of that job (an inherited lock handed
-- back to it: only they can take it over). Waiters another transaction holds (a releaser of
-- another slot woke them, a time-out) are passed over while another is free; when none is,
-- the held ones are waited for, so a freed slot is never left with a waiter asleep. Returns
-- the woken job (none or one), now 'plotting' (the caller drives it).
create or replace function jobcenter.wake_lock_waiters(a_type text, a_value text,
    a_heir bigint default null)
returns bigint[] language plpgsql as $$
declare
    v_key jsonb := jsonb_build_object('type', a_type, 'value', a_value);
    v_woken bigint;
begin
    select job_id into v_woken from jobcenter.jobs
    where state = 'lockwait' and task_state -> 'lockwait' = v_key
      and (a_heir is null or jobcenter.is_ancestor(a_heir, job_id))
    order by job_id limit 1
    for no key update skip locked;
    if v_woken is null then
        select job_id into v_woken from jobcenter.jobs
        where state = 'lockwait' and task_state -> 'lockwait' = v_key
          and (a_heir is null or jobcenter.is_ancestor(a_heir, job_id))
        order by job_id limit 1
        for no key update;
    end if;
    if v_woken is null then
        return '{}';
    end if;
    update jobcenter.jobs set state = 'plotting', timeout = null where job_id = v_woken;
    return array[v_woken];
end $$;

-- A job woken for lock (a_type, a_value) ends without retrying its lock step (an abort
-- request was carried out first): the slot it was woken for goes to the next waiter, if a slot
-- is free.
create or replace function jobcenter.pass_lock_wake(a_type text, a_value text) returns bigint[]
language plpgsql as $$
begin
    if (select count(*) from jobcenter.locks where locktype = a_type and lockvalue = a_value)
       >= (select coalesce(max(max_holders), 1) from jobcenter.locktypes where locktype = a_type) then
        return '{}';
    end if;
    return jobcenter.wake_lock_waiters(a_type, a_value);
end $$;

-- Releases lock (type, value) held by job `a_job_id` (its slot): an inherited lock goes back
-- to the nearest job it was inherited from that still runs (and one waiting descendant of that
-- job is woken to take it over), any other is deleted (and the oldest waiter is woken to take
-- the slot). Returns the woken waiters.
create or replace function jobcenter.release_lock(a_job_id bigint, a_type text, a_value text)
returns bigint[] language plpgsql as $$
declare
    v_from bigint[];
    v_to bigint;
begin
    select inherited_from into v_from from jobcenter.locks
    where locktype = a_type and lockvalue = a_value and job_id = a_job_id for update;
    if not found then
        return '{}';
    end if;
    while cardinality(v_from) > 0 loop
        v_to := v_from[cardinality(v_from)];
        v_from := v_from[1:cardinality(v_from) - 1];
        -- the ancestor's row, shared: an end of it under way (a cancel) is waited for and
        -- then seen, and one starting later waits for this transaction and then releases
        -- the lock it gets back (an upward wait, rule 2)
        perform 1 from jobcenter.jobs where job_id = v_to
            and state not in ('finished', 'error', 'zombie') for share;
        if found then
            update jobcenter.locks set job_id = v_to, inherit = true, inherited_from = v_from
            where locktype = a_type and lockvalue = a_value and job_id = a_job_id;
            return jobcenter.wake_lock_waiters(a_type, a_value, v_to);
        end if;
    end loop;
    delete from jobcenter.locks where locktype = a_type and lockvalue = a_value and job_id = a_job_id;
    return jobcenter.wake_lock_waiters(a_type, a_value);
end $$;

create or replace function jobcenter.do_unlock(a_job jobcenter.jobs, a_in jsonb) returns bigint[]
language plpgsql as $$
declare
    v_type text := a_in ->> 'type';
    v_value text := jobcenter.jcl_tostring(a_in -> 'value');
begin
    if not exists (select 1 from jobcenter.locks
                   where locktype = v_type and lockvalue = v_value and job_id = a_job.job_id) then
        if exists (select 1 from jobcenter.locks l where l.locktype = v_type and l.lockvalue = v_value
                   and l.inherit and jobcenter.is_ancestor(l.job_id, a_job.job_id)) then
            -- held by an ancestor with inherit and not taken over by this job: nothing to release
            return jobcenter.finish_step(a_job, a_job.variables, null, a_in);
        end if;
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
            format('unlock: job does not hold lock %s %s', v_type, v_value)));
    end if;
    return jobcenter.finish_step(a_job, a_job.variables, null, a_in)
        || jobcenter.release_lock(a_job.job_id, v_type, v_value);
end $$;

-- Releases every lock of an ending job; returns the woken waiters.
create or replace function jobcenter.release_locks(a_job_id bigint) returns bigint[]
language plpgsql as $$
declare
    r record;
    v_wake bigint[] := '{}';
begin
    for r in select locktype, lockvalue from jobcenter.locks where job_id = a_job_id
             order by locktype, lockvalue loop
        v_wake := v_wake || jobcenter.release_lock(a_job_id, r.locktype, r.lockvalue);
    end loop;
    return v_wake;
end $$;

-- start: take the workflow's non-manual locks (declared in `locks:`), then go on.
create or replace function jobcenter.do_start(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
declare
    r record;
    v_res jsonb;
    v_value text;
    v_holder bigint;
begin
    for r in select locktype, value from jobcenter.workflow_locks
             where workflow_id = a_job.workflow_id and not manual and value is not null
             order by locktype loop
        v_res := jobcenter.jcl_eval(jsonb_build_object('ir', jobcenter.jcl_ir_version(), 'value', r.value),
            'value', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        v_value := jobcenter.jcl_tostring(v_res -> 'value');
        v_holder := jobcenter.try_lock(a_job, r.locktype, v_value);
        if v_holder is not null then
            return jobcenter.wait_for_lock(a_job, r.locktype, v_value, v_holder, 'true', null);
        end if;
    end loop;
    return jobcenter.finish_step(a_job, a_job.variables);
end $$;
