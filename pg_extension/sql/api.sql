-- jobcenter API: the procedures clients and workers call (directly with psql, or through the
-- gateway), with the original's names and argument order.
--
-- Bad input raises an exception with a jobcenter SQLSTATE (class JC) and changes nothing:
--   JC001 unknown workflow or action   JC002 invalid arguments    JC003 unknown or used cookie
--   JC004 not authorized               JC005 unknown job          JC006 unknown worker
--   JC007 wrong state for the request  JC008 disabled workflow    JC009 invalid workflow model

-- The newest version of workflow `a_wfname` for tag list `a_tag` ('a:b' tries a, then b, then
-- the untagged versions).
create or replace function jobcenter.find_workflow(a_wfname text, a_tag text default null)
returns jobcenter.actions language plpgsql stable as $$
declare
    v_wf jobcenter.actions;
    v_tag text;
begin
    if a_tag is not null then
        foreach v_tag in array string_to_array(a_tag, ':') loop
            select a.* into v_wf from jobcenter.actions a
            join jobcenter.action_version_tags t using (action_id)
            where a.name = a_wfname and a.type = 'workflow' and t.tag = v_tag
            order by a.version desc limit 1;
            if found then
                return v_wf;
            end if;
        end loop;
    end if;
    select a.* into v_wf from jobcenter.actions a
    where a.name = a_wfname and a.type = 'workflow'
      and not exists (select 1 from jobcenter.action_version_tags t where t.action_id = a.action_id)
    order by a.version desc limit 1;
    if not found then
        raise exception using errcode = 'JC001',
            message = format('no workflow named %s%s', a_wfname,
                case when a_tag is null then '' else ' for tags ' || a_tag end),
            hint = 'compile it with jcc, or check the name';
    end if;
    return v_wf;
end $$;

-- The queue position of the tasks of a job created at `a_created` with priority `a_priority`
-- (-1000 to 1000, JC002 else): served as if created `a_priority` times `priority_aging`
-- earlier, so a job waits at most (p - q) times `priority_aging` behind jobs of a higher
-- priority p created after it. Ours.
create or replace function jobcenter.ready_rank(a_created timestamptz, a_priority integer)
returns timestamptz language plpgsql stable as $$
begin
    if a_priority not between -1000 and 1000 then
        raise exception using errcode = 'JC002',
            message = format('a priority is from -1000 to 1000, not %s', a_priority);
    end if;
    if a_priority = 0 then
        -- most jobs: no setting to read
        return a_created;
    end if;
    return a_created - a_priority * (jobcenter.setting('priority_aging') #>> '{}')::interval;
end $$;

-- The row of a new top-level job of workflow `a_wf` at its start task, in memory (the column
-- defaults of jobcenter.jobs, its id taken from the sequence).
create or replace function jobcenter.new_job_row(a_wf jobcenter.actions, a_start integer,
    a_args jsonb, a_env jsonb)
returns jobcenter.jobs language plpgsql as $$
declare
    j jobcenter.jobs;
begin
    j.job_id := nextval(pg_catalog.pg_get_serial_sequence('jobcenter.jobs', 'job_id'));
    j.workflow_id := a_wf.action_id;
    j.task_id := a_start;
    j.state := 'plotting';
    j.arguments := a_args;
    j.environment := a_env;
    j.variables := '{}';
    j.task_entered := clock_timestamp();
    j.job_created := now();
    j.stepcounter := 0;
    j.max_steps := coalesce((a_wf.config ->> 'max_steps')::integer,
        (jobcenter.setting('max_steps'))::integer, 99);
    j.current_depth := 1;
    j.aborted := false;
    j.detached := false;
    j.priority := 0;
    j.task_state := '{}';
    j.job_state := '{}';
    j.ready_rank := j.job_created;
    return j;
end $$;

-- Idempotent submission: the job that key `a_key` of workflow `a_wfname` names while it
-- lives or within `job_key_retention` after it ended, or null when the key is free, which
-- claims it for the job the calling transaction creates (create_job then names the job). A
-- create racing with one that claimed the key waits on the key's row until that one commits
-- (then it gets its job) or rolls back (then it claims the key itself).
create or replace function jobcenter.claim_job_key(a_wfname text, a_key text)
returns bigint language plpgsql as $$
declare
    k jobcenter.job_keys;
    v_live boolean;
    v_ended timestamptz;
begin
    if a_key = '' then
        raise exception using errcode = 'JC002', message = 'a job key must not be empty';
    end if;
    loop
        insert into jobcenter.job_keys (wfname, key) values (a_wfname, a_key)
        on conflict do nothing;
        if found then
            return null;
        end if;
        select * into k from jobcenter.job_keys where wfname = a_wfname and key = a_key for update;
        -- gone meanwhile (expired and reclaimed by another create that rolled back): try again
        continue when not found;
        if k.expires is null then
            select j.state not in ('finished', 'error', 'zombie'), coalesce(j.job_finished, now())
            into v_live, v_ended from jobcenter.jobs j where j.job_id = k.job_id;
            if not found then
                select false, a.job_finished into v_live, v_ended
                from jobcenter.jobs_archive a where a.job_id = k.job_id;
            end if;
            k.expires := v_ended + (jobcenter.setting('job_key_retention') #>> '{}')::interval;
        end if;
        if v_live or k.expires > now() then
            return k.job_id;
        end if;
        -- expired (or its job is gone): the key is this create's now
        update jobcenter.job_keys set job_id = null, expires = null
        where wfname = a_wfname and key = a_key;
        return null;
    end loop;
end $$;

-- Starts a job; returns its id and the channel notified when it ends. The parameter and
-- column names are the original's. With a_start_at in the future (ours: delayed start) the job
-- waits in state 'sleeping' at its start task until then (timeout = a_start_at, task_state
-- {"delayed": true}); do_timeout starts it. With a_key (ours: idempotent submission), a
-- create of the same workflow name and key while the first job lives or within
-- `job_key_retention` after it ended returns the first job and creates nothing
-- (claim_job_key). With a_priority (ours, -1000 to 1000, default 0) its tasks are served
-- before those of lower priorities, bounded by aging (ready_rank); its child jobs inherit it.
-- With a_notify false (ours) the job is quiet: nobody is told when it ends (no job:finished,
-- no job:<id>:finished; its children are quiet too), so its end does not wait for
-- PostgreSQL's notification lock; poll get_job_status instead.
create or replace function jobcenter.create_job(
    wfname text, args jsonb, tag text default null, impersonate text default null,
    env jsonb default null, a_start_at timestamptz default null, a_key text default null,
    a_priority integer default null, a_notify boolean default true,
    out job_id bigint, out listenstring text)
returns record language plpgsql as $$
#variable_conflict use_column
declare
    a_wfname alias for $1;
    a_args alias for $2;
    a_tag alias for $3;
    a_impersonate alias for $4;
    a_env alias for $5;
    v_job_state jsonb := case when a_notify is false then '{"quiet": true}' else '{}' end;
    v_wf jobcenter.actions;
    v_who text;
    v_checked jsonb;
    v_start integer;
    v_env jsonb;
    v_job_id bigint;
    j jobcenter.jobs;
    v_plot jsonb;
    v_rank timestamptz := jobcenter.ready_rank(now(), coalesce(a_priority, 0));
begin
    if a_wfname is null then
        raise exception using errcode = 'JC002', message = 'workflow name must not be null';
    end if;
    v_wf := jobcenter.find_workflow(a_wfname, a_tag);
    if v_wf.disabled then
        raise exception using errcode = 'JC008',
            message = format('workflow %s version %s is disabled', v_wf.name, v_wf.version);
    end if;
    v_who := jobcenter.caller(a_impersonate);
    if not jobcenter.has_role(v_who, v_wf.rolename) then
        raise exception using errcode = 'JC004',
            message = format('%s may not start workflow %s', v_who, v_wf.name),
            hint = format('it needs role %s', v_wf.rolename);
    end if;
    if a_env is not null and jsonb_typeof(a_env) <> 'object' then
        raise exception using errcode = 'JC002', message = 'the environment must be a JSON object';
    end if;
    if a_env is not null and jobcenter.check_json(a_env) is not null then
        raise exception using errcode = 'JC002',
            message = 'bad environment: ' || jobcenter.check_json(a_env);
    end if;
    v_checked := jobcenter.check_inputs(v_wf.action_id, a_args);
    if v_checked ? '_error' then
        raise exception using errcode = 'JC002',
            message = format('bad arguments for %s: %s', v_wf.name, v_checked ->> '_error');
    end if;
    if a_key is not null then
        v_job_id := jobcenter.claim_job_key(v_wf.name, a_key);
        if v_job_id is not null then
            job_id := v_job_id;
            listenstring := 'job:' || v_job_id || ':finished';
            return;
        end if;
    end if;
    -- held to the commit: replace_action, which takes it exclusively, waits for this job to be
    -- seen before it looks for running jobs of the version
    perform pg_catalog.pg_advisory_xact_lock_shared(jobcenter.replace_lock_class(), v_wf.action_id);
    select task_id into v_start from jobcenter.tasks where workflow_id = v_wf.action_id and action_id = -1;
    select coalesce(jsonb_object_agg(name, value), '{}') into v_env from jobcenter.jc_env;
    -- the client identity is the engine's to set: a caller's env cannot claim one
    v_env := (coalesce(a_env, '{}') - 'jcclient' - 'jcimpersonate') || coalesce(v_wf.wfenv, '{}')
        || v_env
        || jsonb_strip_nulls(jsonb_build_object('jcclient', v_who, 'jcimpersonate', a_impersonate));
    if a_start_at > clock_timestamp() then
        with n as (
            insert into jobcenter.jobs (workflow_id, task_id, state, arguments, environment,
                task_entered, max_steps, timeout, task_state, priority, ready_rank, job_state)
            values (v_wf.action_id, v_start, 'sleeping', v_checked -> 'args', v_env, clock_timestamp(),
                coalesce((v_wf.config ->> 'max_steps')::integer, (jobcenter.setting('max_steps'))::integer, 99),
                a_start_at, '{"delayed": true}', coalesce(a_priority, 0), v_rank, v_job_state)
            returning job_id, arguments),
        a as (insert into jobcenter.job_arguments select job_id, arguments from n)
        select job_id into v_job_id from n;
        perform jobcenter.notify_timer(a_start_at);
    else
        -- The new job is plotted in memory and its row written once, where it comes to rest.
        j := jobcenter.new_job_row(v_wf, v_start, v_checked -> 'args', v_env);
        j.priority := coalesce(a_priority, 0);
        j.ready_rank := v_rank;
        j.job_state := v_job_state;
        v_job_id := j.job_id;
        v_plot := jobcenter.plot_job(j);
        if v_plot is null then
            with n as (insert into jobcenter.jobs select (j).* returning job_id, arguments)
            insert into jobcenter.job_arguments select job_id, arguments from n;
            perform jobcenter.drive(array[v_job_id]);
        else
            perform jobcenter.drive(jobcenter.apply_plot(j, v_plot, true));
        end if;
    end if;
    if a_key is not null then
        update jobcenter.job_keys k set job_id = v_job_id where k.wfname = v_wf.name and k.key = a_key;
    end if;
    job_id := v_job_id;
    listenstring := 'job:' || v_job_id || ':finished';
end $$;

-- The job's output once it has ended, as the original: (a_job_id, o_out_args) for an ended job,
-- (null, null) while it runs, (null, {"error": …}) for an unknown one.
create or replace function jobcenter.get_job_status(inout a_job_id bigint, out o_out_args jsonb)
returns record language plpgsql stable as $$
declare
    v_state jobcenter.job_state;
begin
    select state, out_args into v_state, o_out_args from jobcenter.jobs where job_id = a_job_id;
    if not found then
        select state, out_args into v_state, o_out_args from jobcenter.jobs_archive where job_id = a_job_id;
    end if;
    -- another user's job is answered as no job, so the answer tells nothing about it
    if not found or not jobcenter.may_see_job(a_job_id) then
        o_out_args := jsonb_build_object('error',
            jobcenter.error_obj('normal', format('no job %s', a_job_id)));
        a_job_id := null;
        return;
    end if;
    if v_state not in ('finished', 'error', 'zombie') then
        a_job_id := null;
        o_out_args := null;
    end if;
end $$;

-- The newest version of action `a_actionname`.
create or replace function jobcenter.find_action(a_actionname text) returns jobcenter.actions
language plpgsql stable as $$
declare
    v_action jobcenter.actions;
begin
    select * into v_action from jobcenter.actions
    where name = a_actionname and type = 'action' order by version desc limit 1;
    if not found then
        raise exception using errcode = 'JC001', message = format('no action named %s', a_actionname);
    end if;
    return v_action;
end $$;

-- The worker performs the action (with a filter: only tasks whose inputs contain it); returns
-- the worker's id and the channel notified when a task of the action is ready (its ready
-- queue's, the same across versions: see action_queue).
create or replace function jobcenter.announce(workername text, actionname text,
    impersonate text default null, filter jsonb default null,
    out worker_id bigint, out listenstring text)
returns record language plpgsql as $$
#variable_conflict use_column
declare
    a_workername alias for $1;
    a_actionname alias for $2;
    a_impersonate alias for $3;
    a_filter alias for $4;
    v_action jobcenter.actions;
    v_who text;
    v_worker_id bigint;
    k text;
begin
    v_action := jobcenter.find_action(a_actionname);
    v_who := jobcenter.caller(a_impersonate);
    if not jobcenter.may_serve(v_who, v_action) then
        raise exception using errcode = 'JC004',
            message = format('%s may not do action %s', v_who, v_action.name),
            hint = case when v_action.rolename is not null
                then format('it needs role %s', v_action.rolename)
                else format('an action without role: is served by its owner %s and by members of role %s (setting default_worker_role)',
                    v_action.owner, jobcenter.setting('default_worker_role') #>> '{}') end;
    end if;
    if a_filter is not null then
        if jsonb_typeof(a_filter) <> 'object' then
            raise exception using errcode = 'JC002', message = 'a filter must be a JSON object';
        end if;
        for k in select jsonb_object_keys(a_filter) loop
            if not coalesce(v_action.config -> 'filter', '[]') ? k then
                raise exception using errcode = 'JC002',
                    message = format('action %s cannot be filtered on %s', v_action.name, k),
                    hint = format('filter keys: %s', coalesce(v_action.config -> 'filter', '[]'));
            end if;
        end loop;
    end if;
    v_worker_id := jobcenter.claim_worker(a_workername, v_who);
    insert into jobcenter.worker_actions (worker_id, action_id, filter)
    values (v_worker_id, v_action.action_id, a_filter)
    on conflict (worker_id, action_id) do update set filter = excluded.filter;
    worker_id := v_worker_id;
    listenstring := 'action:' || jobcenter.action_queue(v_action.name) || ':ready';
end $$;

create or replace function jobcenter.withdraw(a_workername text, a_actionname text) returns boolean
language plpgsql as $$
begin
    perform jobcenter.check_worker_access(a_workername);
    delete from jobcenter.worker_actions wa using jobcenter.workers w, jobcenter.actions a
    where wa.worker_id = w.worker_id and w.name = a_workername and w.stopped is null
      and wa.action_id = a.action_id and a.name = a_actionname and a.type = 'action';
    return found;
end $$;

-- A worker is gone: its announcements end, and the tasks it held fail: with a soft error when
-- the action is retryable, else per the `dead_worker_policy` setting ('error': a normal error;
-- 'requeue': back to ready for another worker). False when no live worker has that name.
create or replace function jobcenter.disconnect(a_workername text) returns boolean
language plpgsql as $$
declare
    v_worker_id bigint;
begin
    perform jobcenter.check_worker_access(a_workername);
    update jobcenter.workers set stopped = now()
    where name = a_workername and stopped is null returning worker_id into v_worker_id;
    if not found then
        return false;
    end if;
    delete from jobcenter.worker_actions where worker_id = v_worker_id;
    perform jobcenter.fail_worker_tasks(v_worker_id, format('worker %s disconnected', a_workername));
    return true;
end $$;

create or replace function jobcenter.fail_worker_tasks(a_worker_id bigint, a_msg text) returns void
language plpgsql as $$
declare
    j jobcenter.jobs;
    v_action jobcenter.actions;
    v_wake bigint[] := '{}';
begin
    for j in select * from jobcenter.jobs where worker_id = a_worker_id and state = 'working'
             order by job_id for no key update loop
        select a.* into v_action from jobcenter.actions a join jobcenter.tasks t using (action_id)
        where t.task_id = j.task_id;
        if coalesce((v_action.config ->> 'retryable')::boolean, false) then
            v_wake := v_wake || jobcenter.task_failed(j, jobcenter.task_error_obj(j, 'soft', a_msg));
        elsif jobcenter.setting('dead_worker_policy') = '"requeue"' then
            perform jobcenter.make_ready(j, v_action, j.task_state -> 'inargs', j.task_state -> 'env',
                coalesce((j.task_state ->> 'tries')::integer, 0));
        else
            v_wake := v_wake || jobcenter.task_failed(j, jobcenter.task_error_obj(j, 'normal', a_msg));
        end if;
    end loop;
    perform jobcenter.drive(v_wake);
end $$;

-- A worker is alive: 'pong', or null when no live worker has that id (or it is another
-- user's: a ping cannot keep someone else's dead worker alive, nor tell that it exists).
create or replace function jobcenter.ping(a_worker_id bigint) returns text language plpgsql as $$
begin
    update jobcenter.workers set last_ping = now()
    where worker_id = a_worker_id and stopped is null
      and jobcenter.may_act_for(jobcenter.caller(null), owner);
    if not found then
        return null;
    end if;
    return 'pong';
end $$;

-- The original's poll of ready work for a gateway's workers `a_worker_ids`: one row per ready
-- queue and announced filter with ready tasks those workers may take, with the channel the
-- queue's tasks are notified on, the workers of that filter (null for an unfiltered
-- announcement, as the original) and how many tasks wait. Workers the caller may not act for
-- (another user's) count as not given. A rate-limited queue counts no more than its window's
-- room, a concurrency-limited one no more than its free slots (start_room), none when either
-- is full.
create or replace function jobcenter.poll_tasks(a_worker_ids bigint[])
returns table (listenstring text, worker_ids bigint[], count bigint)
language sql stable as $$
    select 'action:' || j.ready_action_id || ':ready',
           case when wa.filter is not null
                then array_agg(distinct wa.worker_id order by wa.worker_id) end,
           -- no more than a rate limit and a concurrency limit let start now
           least(count(distinct j.job_id), jobcenter.start_room(j.ready_action_id))
    from jobcenter.worker_actions wa
    join jobcenter.workers w on w.worker_id = wa.worker_id and w.stopped is null
    join jobcenter.actions a on a.action_id = wa.action_id
    join jobcenter.jobs j on j.state = 'ready' and j.ready_action_id = jobcenter.action_queue(a.name)
        and (wa.filter is null or j.task_state -> 'inargs' @> wa.filter)
    where wa.worker_id = any(a_worker_ids)
      and jobcenter.may_act_for(jobcenter.caller(null), w.owner)
      and not exists (select 1 from jobcenter.job_aborts x where x.job_id = j.job_id)
    group by j.ready_action_id, wa.filter
    having coalesce(jobcenter.start_room(j.ready_action_id), 1) > 0
    order by 1, 2
$$;

-- Takes a ready task of an action the worker announced: the given job's, or the first by its
-- job's ready_rank (the oldest, priority with aging first). As the original, one row: all null
-- when there is none (another worker was faster). The first ready task of an action with
-- neither a `rate` nor a `concurrency` config (most takes) is taken here in one statement, as
-- take_tasks takes it: without take_tasks' cursor and set-returning call, which cost a sixth
-- of a take (0.41 -> 0.34 ms a get_task, one client; get_tasks of one 0.38 -> 0.31 ms). Every other take is take_tasks'. The
-- settings are take_tasks', for the same plans.
create or replace function jobcenter.get_task(a_workername text, a_actionname text,
    a_job_id bigint default null,
    out o_job_id bigint, out o_job_cookie text, out o_in_args jsonb, out o_env jsonb)
returns record language plpgsql
set plan_cache_mode = force_generic_plan set enable_sort = off set enable_seqscan = off
set jit = off as $$
declare
    v_worker_id bigint;
    v_owner text;
    v_filter jsonb;
    v_plain boolean;
    v_queue integer;
    v_action_id integer;
    v_timeout interval;
    v_cookie uuid;
    v_task_state jsonb;
    v_until timestamptz;
begin
    if a_job_id is null then
        -- take_tasks' first statement; null when the worker did not announce the action
        select w.worker_id, w.owner, wa.filter,
               not (a.config ? 'rate' or a.config ? 'concurrency'),
               (select q.action_id from jobcenter.actions q where q.name = a_actionname
                  and q.type = 'action' order by q.version limit 1),
               a.action_id, case when a.config ? 'timeout' then jobcenter.to_interval(a.config -> 'timeout') end
        into v_worker_id, v_owner, v_filter, v_plain, v_queue, v_action_id, v_timeout
        from jobcenter.workers w
        join jobcenter.worker_actions wa using (worker_id)
        join jobcenter.actions a using (action_id)
        where w.name = a_workername and w.stopped is null and a.name = a_actionname and a.type = 'action'
        order by a.version desc limit 1;
    end if;
    if not coalesce(v_plain, false) then
        select t.o_job_id, t.o_job_cookie, t.o_in_args, t.o_env
        into o_job_id, o_job_cookie, o_in_args, o_env
        from jobcenter.take_tasks(a_workername, a_actionname, 1, a_job_id) t;
        return;
    end if;
    perform jobcenter.check_worker_owner(a_workername, v_owner);
    -- take_tasks' take of one task with no slot and no rate window
    with picked as (
        select jb.job_id from jobcenter.jobs jb
        where jb.state = 'ready' and jb.ready_action_id = v_queue
          and (v_filter is null or jb.task_state -> 'inargs' @> v_filter)
          and not exists (select 1 from jobcenter.job_aborts x where x.job_id = jb.job_id)
        order by jb.ready_rank, jb.job_id
        limit 1 for no key update of jb skip locked)
    update jobcenter.jobs j set
        state = 'working', cookie = gen_random_uuid(), worker_id = v_worker_id,
        task_started = clock_timestamp(),
        timeout = clock_timestamp() + case when t.action_id = v_action_id then v_timeout
            else (select jobcenter.to_interval(x.config -> 'timeout')
                  from jobcenter.actions x where x.action_id = t.action_id) end,
        task_state = j.task_state || jsonb_build_object('tries',
            coalesce((j.task_state ->> 'tries')::integer, 0) + 1, 'worker', a_workername,
            'taken_by', v_owner)
    from picked p, jobcenter.tasks t
    where j.job_id = p.job_id and t.task_id = j.task_id
    returning j.job_id, j.cookie, j.task_state, j.timeout
    into o_job_id, v_cookie, v_task_state, v_until;
    o_job_cookie := v_cookie::text;
    o_in_args := v_task_state -> 'inargs';
    o_env := v_task_state -> 'env';
    if v_until is not null then
        perform jobcenter.notify_timer(v_until);
    end if;
end $$;

-- A worker finished a task. An `error` key in the outputs means the task failed. The cookie
-- is text, as get_task's o_job_cookie: one that is no UUID holds no task either.
create or replace function jobcenter.task_done(a_jobcookie text, a_out_args jsonb) returns void
language plpgsql as $$
declare
    j jobcenter.jobs;
    t jobcenter.tasks;
    v_plot jsonb;
    v_fast boolean;
    v_cookie uuid;
begin
    v_cookie := jobcenter.cookie_uuid(a_jobcookie);
    if v_cookie is not null then
        -- by the cookie alone, the state tested after: with the state in its condition, a
        -- plan made while few tasks were at work read every task at work through jobs_state
        -- (2.4 ms a call with 5,000 tasks at work; 0.7 ms by the cookie)
        select * into j from jobcenter.jobs where cookie = v_cookie for no key update;
    end if;
    if j.job_id is null or j.state <> 'working' then
        raise exception using errcode = 'JC003',
            message = format('no task holds cookie %s', a_jobcookie),
            detail = 'the task was already done, timed out, or the cookie is wrong';
    end if;
    -- two tests, not one condition: the or-less one with its subquery was planned at every call
    if j.task_state ? 'slot' then
        if exists (select 1 from jobcenter.action_rates x
                   where x.queue = j.ready_action_id and x.refused) then
            perform jobcenter.slot_freed(j.ready_action_id);
        end if;
    end if;
    if not jobcenter.may_act_for(jobcenter.caller(null), j.task_state ->> 'taken_by') then
        raise exception using errcode = 'JC004',
            message = format('%s did not take this task', jobcenter.caller(null));
    end if;
    -- the plotter's guard in separate statements: one condition with the subqueries and the
    -- or-null tests would be planned again at every call
    v_fast := jsonb_typeof(coalesce(a_out_args, '{}')) = 'object'
        and not coalesce(a_out_args, '{}') ? 'error';
    if v_fast then
        v_fast := not exists (select 1 from jobcenter.job_aborts x where x.job_id = j.job_id);
    end if;
    if v_fast and j.parentjob_id is not null and not j.detached then
        v_fast := exists (select 1 from jobcenter.jobs p where p.job_id = j.parentjob_id
                          and p.state not in ('finished', 'error', 'zombie'));
    end if;
    if v_fast then
        -- outputs, omap and the steps after them in memory, the row written once
        v_plot := jobcenter.plot_job(j, coalesce(a_out_args, '{}'));
        if v_plot is not null then
            perform jobcenter.drive(jobcenter.apply_plot(j, v_plot));
            return;
        end if;
    end if;
    select * into t from jobcenter.tasks where task_id = j.task_id;
    if a_out_args is not null and jsonb_typeof(a_out_args) = 'object' and a_out_args ? 'error' then
        perform jobcenter.drive(jobcenter.task_failed(j, jobcenter.outargs_error(j, a_out_args -> 'error')));
        return;
    end if;
    perform jobcenter.drive(jobcenter.call_done(j, t, t.action_id, j.task_state -> 'inargs',
        coalesce(a_out_args, '{}')));
end $$;

-- Takes up to `a_limit` ready tasks of an action the worker announced (only job `a_job_id`'s
-- when given), in the order of their jobs' ready_rank (priority with aging): one row per task
-- taken. get_task and get_tasks call it. Its plans are generic: the custom plans PostgreSQL
-- would otherwise make for the taking statement (it weighs the or-null tests) cost more to
-- plan than to run. They are made without sorts (enable_sort off), so the order of the ready
-- tasks always comes from the index jobs_ready, which the take reads from its head: planned
-- with statistics that make the ready jobs look few (analyzed while none was ready, or
-- job_aborts never analyzed), a plan that reads and sorts every ready job would look as cheap.
-- Nor do they scan `jobs` whole (enable_seqscan off): a generic plan made while the table was
-- small (a fresh database, a gateway's connection opened then) would otherwise scan it at
-- every take as it grows. And without JIT: the sorts that remain (of the rows returned) carry
-- the planner's penalty for a disabled sort, which would put every take over jit_above_cost.
-- An action with a `rate` config (at most `limit` tasks started in any
-- `per`) takes at most the room its queue's window has left, holding the queue's action_rates
-- row meanwhile; one with a `concurrency` config (at most N tasks at work at once) takes at most
-- as many tasks as it finds free slots (take_slots) and gives each task one (task_state slot);
-- an action with neither reads nothing more.
create or replace function jobcenter.take_tasks(a_workername text, a_actionname text,
    a_limit integer, a_job_id bigint,
    out o_job_id bigint, out o_job_cookie text, out o_in_args jsonb, out o_env jsonb)
returns setof record language plpgsql
set plan_cache_mode = force_generic_plan set enable_sort = off set enable_seqscan = off
set jit = off as $$
declare
    v_worker_id bigint;
    v_owner text;
    v_action_id integer;
    v_timeout interval;
    v_queue integer;
    v_filter jsonb;
    v_taker text;
    v_first timestamptz;
    v_rate jsonb;
    v_per interval;
    v_starts timestamptz[];
    v_now timestamptz;
    v_taken integer := 0;
    v_slots integer;
    v_slot integer[];
    c refcursor;
    r record;
begin
    -- the worker, its owner, the newest version it announced and the action's queue (its
    -- oldest version, jobcenter.action_queue) in one statement
    select w.worker_id, w.owner, wa.filter, a.config -> 'rate',
           (a.config ->> 'concurrency')::integer,
           (select q.action_id from jobcenter.actions q where q.name = a_actionname
              and q.type = 'action' order by q.version limit 1),
           a.action_id, case when a.config ? 'timeout' then jobcenter.to_interval(a.config -> 'timeout') end
    into v_worker_id, v_owner, v_filter, v_rate, v_slots, v_queue, v_action_id, v_timeout
    from jobcenter.workers w
    join jobcenter.worker_actions wa using (worker_id)
    join jobcenter.actions a using (action_id)
    where w.name = a_workername and w.stopped is null and a.name = a_actionname and a.type = 'action'
    order by a.version desc limit 1;
    if v_worker_id is null then
        raise exception using errcode = 'JC006',
            message = format('worker %s has not announced action %s', a_workername, a_actionname),
            hint = 'call announce first';
    end if;
    -- check_worker_access's rule, on the owner read above
    perform jobcenter.check_worker_owner(a_workername, v_owner);
    v_taker := v_owner;
    if v_rate is not null then
        loop
            select x.starts into v_starts from jobcenter.action_rates x
            where x.queue = v_queue for update;
            exit when found;
            insert into jobcenter.action_rates (queue) values (v_queue) on conflict do nothing;
        end loop;
        -- read after the lock: the starts of the takers before are in the past
        v_now := clock_timestamp();
        v_per := jobcenter.to_interval(v_rate -> 'per');
        v_starts := array(select s from unnest(v_starts) s where s > v_now - v_per order by s);
        a_limit := least(a_limit, greatest((v_rate ->> 'limit')::integer - cardinality(v_starts), 0));
    end if;
    if v_slots is not null and a_limit > 0 then
        v_slot := jobcenter.take_slots(v_queue, v_slots, a_limit);
        a_limit := cardinality(v_slot);
    end if;
    -- Two small plans (executor start-up is a good part of a take's cost): the oldest ready
    -- tasks, numbered for the slots of a concurrency limit; or job a_job_id's task.
    if a_job_id is null then
        open c for
            with picked as (
                -- any numbering does for the slots: without an order the window sorts nothing
                select q.job_id, q.ready_rank, row_number() over () as rn
                from (select jb.job_id, jb.ready_rank from jobcenter.jobs jb
                      where jb.state = 'ready' and jb.ready_action_id = v_queue
                        and (v_filter is null or jb.task_state -> 'inargs' @> v_filter)
                        and not exists (select 1 from jobcenter.job_aborts x where x.job_id = jb.job_id)
                      order by jb.ready_rank, jb.job_id
                      limit a_limit for no key update of jb skip locked) q),
            taken as (
                update jobcenter.jobs j set
                    state = 'working', cookie = gen_random_uuid(), worker_id = v_worker_id,
                    -- a rate-limited take starts its tasks at the time its window was counted at
                    task_started = coalesce(v_now, clock_timestamp()),
                    -- the time-out of the version the task was made ready for: mostly the
                    -- newest, whose time-out the statement above read
                    timeout = clock_timestamp() + case when t.action_id = v_action_id then v_timeout
                        else (select jobcenter.to_interval(x.config -> 'timeout')
                              from jobcenter.actions x where x.action_id = t.action_id) end,
                    task_state = j.task_state || jsonb_build_object('tries',
                        coalesce((j.task_state ->> 'tries')::integer, 0) + 1, 'worker', a_workername,
                        'taken_by', v_taker)
                        -- the slot of a concurrency-limited action the task holds while at work
                        || case when v_slot is null then '{}'::jsonb
                                else jsonb_build_object('slot', v_slot[p.rn]) end
                from picked p, jobcenter.tasks t
                where j.job_id = p.job_id and t.task_id = j.task_id
                returning j.job_id, j.cookie, j.task_state, j.timeout, p.ready_rank)
            select * from taken order by ready_rank, job_id;
    else
        open c for
            with picked as (
                select jb.job_id, jb.ready_rank from jobcenter.jobs jb
                where jb.job_id = a_job_id and jb.state = 'ready' and jb.ready_action_id = v_queue
                  and (v_filter is null or jb.task_state -> 'inargs' @> v_filter)
                  and not exists (select 1 from jobcenter.job_aborts x where x.job_id = jb.job_id)
                  and a_limit > 0
                for no key update of jb skip locked),
            taken as (
                update jobcenter.jobs j set
                    state = 'working', cookie = gen_random_uuid(), worker_id = v_worker_id,
                    task_started = coalesce(v_now, clock_timestamp()),
                    timeout = clock_timestamp() + case when t.action_id = v_action_id then v_timeout
                        else (select jobcenter.to_interval(x.config -> 'timeout')
                              from jobcenter.actions x where x.action_id = t.action_id) end,
                    task_state = j.task_state || jsonb_build_object('tries',
                        coalesce((j.task_state ->> 'tries')::integer, 0) + 1, 'worker', a_workername,
                        'taken_by', v_taker)
                        || case when v_slot is null then '{}'::jsonb
                                else jsonb_build_object('slot', v_slot[1]) end
                from picked p, jobcenter.tasks t
                where j.job_id = p.job_id and t.task_id = j.task_id
                returning j.job_id, j.cookie, j.task_state, j.timeout, p.ready_rank)
            select * from taken;
    end if;
    loop
        fetch c into r;
        exit when not found;
        o_job_id := r.job_id;
        o_job_cookie := r.cookie::text;
        o_in_args := r.task_state -> 'inargs';
        o_env := r.task_state -> 'env';
        if r.timeout is not null and (v_first is null or r.timeout < v_first) then
            v_first := r.timeout;
        end if;
        v_taken := v_taken + 1;
        return next;
    end loop;
    close c;
    if v_rate is not null then
        perform jobcenter.count_rate(v_queue, v_rate, v_per, v_starts, v_now, v_taken);
    end if;
    if v_first is not null then
        perform jobcenter.notify_timer(v_first);
    end if;
end $$;

-- The slots (0 .. N - 1) of concurrency-limited queue `a_queue` its tasks at work hold.
create or replace function jobcenter.busy_slots(a_queue integer) returns integer[]
language plpgsql stable as $$
begin
    return array(select (jb.task_state ->> 'slot')::integer from jobcenter.jobs jb
                 where jb.state = 'working' and jb.task_state ? 'slot'
                   and jb.ready_action_id = a_queue);
end $$;

-- Takes up to `a_want` free slots of concurrency-limited queue `a_queue` (its newest version's
-- `concurrency` is `a_max`): the lowest ones no task at work holds. A slot is the taker's once
-- it has the slot's transaction-level advisory lock (try: a slot another taker is taking is
-- passed over, no taker waits) and, looked at again after that, no task committed meanwhile
-- holds it. A task holds its slot while it is at work (task_state slot), so no end of a task
-- has to give it back. When every slot is busy the queue's wake-up is set a second on
-- (action_rates, as a full rate window sets it): a task finished meanwhile offers the next ready
-- task at once (slot_freed), and else the maestro's timer offers the ready tasks then.
create or replace function jobcenter.take_slots(a_queue integer, a_max integer, a_want integer)
returns integer[] language plpgsql as $$
declare
    v_busy integer[];
    v_free integer[] := '{}';
    v_got integer[];
    v_tried integer[] := '{}';
    v_wake timestamptz;
begin
    -- Each pass locks the lowest free slots not tried yet (the first pass looks at the busy
    -- ones in the same statement, the later ones use the look before), then looks at the
    -- busy slots again: the locked ones no task committed meanwhile holds are the taker's (a
    -- task committed between the look and the lock holds the others). The query of
    -- busy_slots is here in line (a call costs more than the query). Three rounds of locks at
    -- most; a take that finds enough slots at once runs two statements.
    for pass in 1 .. 3 loop
        v_got := array(select g from generate_series(0, a_max - 1) g
                       where g <> all (coalesce(v_busy, array(
                                 select (jb.task_state ->> 'slot')::integer from jobcenter.jobs jb
                                 where jb.state = 'working' and jb.task_state ? 'slot'
                                   and jb.ready_action_id = a_queue)))
                         and g <> all (v_tried)
                         and pg_try_advisory_xact_lock(hashtext('jobcenter.slots ' || a_queue), g)
                       limit a_want - cardinality(v_free));
        exit when cardinality(v_got) = 0;
        v_tried := v_tried || v_got;
        select s.busy, v_free || array(select f from unnest(v_got) f where f <> all (s.busy))
        into v_busy, v_free
        from (select array(select (jb.task_state ->> 'slot')::integer from jobcenter.jobs jb
                           where jb.state = 'working' and jb.task_state ? 'slot'
                             and jb.ready_action_id = a_queue) as busy) s;
        exit when cardinality(v_free) >= a_want;
    end loop;
    -- two tests, not one condition: with its subquery it would be a statement at every take
    if cardinality(v_free) = 0 then
        if not exists (select 1 from jobcenter.action_rates where queue = a_queue and refused) then
            v_wake := clock_timestamp() + interval '1 second';
            insert into jobcenter.action_rates as x (queue, wake, refused)
            values (a_queue, v_wake, true)
            on conflict (queue) do update set wake = least(x.wake, excluded.wake), refused = true;
            perform jobcenter.notify_timer(v_wake);
        end if;
    end if;
    return v_free;
end $$;

-- A task that held a slot of concurrency-limited queue `a_queue` ends: when a taker found
-- every slot busy since the last offer (action_rates.refused), the next ready task is offered.
create or replace function jobcenter.slot_freed(a_queue integer) returns void
language plpgsql as $$
declare
    v_job bigint;
begin
    update jobcenter.action_rates set refused = false where queue = a_queue and refused;
    if not found then
        return;
    end if;
    select jb.job_id into v_job from jobcenter.jobs jb
    where jb.state = 'ready' and jb.ready_action_id = a_queue
    order by jb.ready_rank, jb.job_id limit 1;
    if v_job is not null then
        perform pg_notify('action:' || a_queue || ':ready', jsonb_build_object('job_id', v_job)::text);
    end if;
end $$;

-- How many more tasks of ready queue `a_queue` its concurrency limit lets start now (free
-- slots), by the newest version's `concurrency` config; null when it has none.
create or replace function jobcenter.slot_room(a_queue integer) returns integer
language sql stable as $$
    select greatest(n.max - cardinality(jobcenter.busy_slots(a_queue)), 0)::integer
    from (select (a.config ->> 'concurrency')::integer as max from jobcenter.actions a
          where a.name = (select q.name from jobcenter.actions q where q.action_id = a_queue)
            and a.type = 'action'
          order by a.version desc limit 1) n
    where n.max is not null
$$;

-- Records `a_taken` starts at `a_now` in the window `a_starts` (those of the last `a_per`,
-- oldest first) of rate-limited queue `a_queue` (its row locked by the caller). A window left
-- full sets the time it has room again and tells the maestro's timer, which then offers the
-- queue's ready tasks again (do_timeout), so a task refused for the rate is not stranded.
create or replace function jobcenter.count_rate(a_queue integer, a_rate jsonb, a_per interval,
    a_starts timestamptz[], a_now timestamptz, a_taken integer)
returns void language plpgsql as $$
declare
    v_starts timestamptz[] := a_starts || array_fill(a_now, array[a_taken]);
    v_over integer := cardinality(v_starts) - (a_rate ->> 'limit')::integer;
    v_wake timestamptz;
begin
    if v_over >= 0 then
        -- room returns when the oldest start that keeps the window full leaves it
        v_wake := v_starts[v_over + 1] + a_per;
    end if;
    -- an earlier wake-up stays: do_timeout set it for tasks still held back
    update jobcenter.action_rates set starts = v_starts, per = a_per, wake = least(wake, v_wake)
    where queue = a_queue;
    if v_wake is not null then
        perform jobcenter.notify_timer(v_wake);
    end if;
end $$;

-- How many more tasks of ready queue `a_queue` its rate limit lets start now, by the newest
-- version's `rate` config; null when it has none.
create or replace function jobcenter.rate_room(a_queue integer) returns integer
language sql stable as $$
    select greatest((n.rate ->> 'limit')::integer - coalesce((
        select count(*) from jobcenter.action_rates x, unnest(x.starts) s
        where x.queue = a_queue
          and s > clock_timestamp() - jobcenter.to_interval(n.rate -> 'per')), 0), 0)::integer
    from (select a.config -> 'rate' as rate from jobcenter.actions a
          where a.name = (select q.name from jobcenter.actions q where q.action_id = a_queue)
            and a.type = 'action'
          order by a.version desc limit 1) n
    where n.rate is not null
$$;

-- How many more tasks of ready queue `a_queue` may start now: the lesser of its rate limit's
-- room and its concurrency limit's free slots (rate_room, slot_room); null when it has
-- neither. The offers (poll_tasks, do_timeout, the gateways' sweep) count with it.
create or replace function jobcenter.start_room(a_queue integer) returns integer
language sql stable as $$
    select least(jobcenter.rate_room(a_queue), jobcenter.slot_room(a_queue))
$$;

-- Takes up to `a_limit` (1 to 1000) ready tasks of an action the worker announced, in the order
-- get_task takes them, in one transaction: one row per task, none when there is none. Ours;
-- get_task stays the original's single-task call.
create or replace function jobcenter.get_tasks(a_workername text, a_actionname text,
    a_limit integer,
    out o_job_id bigint, out o_job_cookie text, out o_in_args jsonb, out o_env jsonb)
returns setof record language plpgsql as $$
begin
    if a_limit is null or a_limit < 1 or a_limit > 1000 then
        raise exception using errcode = 'JC002',
            message = format('get_tasks takes 1 to 1000 tasks, not %s', coalesce(a_limit::text, 'null'));
    end if;
    -- one task as get_task takes it (its one-statement take, mostly)
    if a_limit = 1 then
        select t.o_job_id, t.o_job_cookie, t.o_in_args, t.o_env
        into o_job_id, o_job_cookie, o_in_args, o_env
        from jobcenter.get_task(a_workername, a_actionname) t;
        if o_job_id is not null then
            return next;
        end if;
        return;
    end if;
    return query select * from jobcenter.take_tasks(a_workername, a_actionname, a_limit, null);
end $$;

-- Finishes many tasks in one transaction: `a_results` is an array of {"cookie": …, "outargs":
-- {…}} (outargs with an `error` key fail the task, as task_done). One row per element, in order,
-- o_code null when it was applied, else the SQLSTATE and message task_done raised (40P01 and
-- 40001 are worth sending again). Of two or more, the results the plotter can finish on their
-- jobs' rows alone are finished together first (finish_tasks, in a subtransaction: should it
-- raise, none of them is, and all go the way below). Every other result is finished by
-- task_done in a subtransaction of its own, so one task's unknown cookie, bad outputs or
-- deadlock fails that task alone. Ours.
create or replace function jobcenter.tasks_done(a_results jsonb,
    out o_cookie text, out o_code text, out o_message text)
returns setof record language plpgsql as $$
declare
    r jsonb;
    v_finished boolean;
    v_done text[] := '{}';
    v_count integer;
begin
    if a_results is null or jsonb_typeof(a_results) <> 'array' then
        raise exception using errcode = 'JC002',
            message = 'tasks_done takes an array of {"cookie": ..., "outargs": {...}}';
    end if;
    v_count := jsonb_array_length(a_results);
    if v_count > 1000 then
        raise exception using errcode = 'JC002',
            message = format('tasks_done takes at most 1000 results, not %s', v_count);
    end if;
    -- one result goes to task_done alone: finish_tasks' setup (the outputs by cookie, the
    -- cookie array, its plans) costs more than a batch of one saves (0.1 ms of a 0.8 ms
    -- take and finish, one client)
    if v_count > 1 then
        begin
            v_done := jobcenter.finish_tasks(a_results);
        exception when others then
            v_done := '{}';
        end;
    end if;
    -- finish_tasks finished only cookies that appear once, so a result matches at most one
    for r, v_finished in
        select e.value, d.c is not null
        from jsonb_array_elements(a_results) with ordinality as e(value, n)
        left join unnest(v_done) as d(c)
          on jsonb_typeof(e.value) = 'object' and d.c = e.value ->> 'cookie'
        order by e.n
    loop
        o_cookie := case when jsonb_typeof(r) = 'object' then r ->> 'cookie' end;
        o_code := null;
        o_message := null;
        if not v_finished then
            begin
                if o_cookie is null then
                    raise exception using errcode = 'JC002',
                        message = 'a result needs a string cookie';
                end if;
                perform jobcenter.task_done(o_cookie, r -> 'outargs');
            exception when others then
                o_code := sqlstate;
                o_message := sqlerrm;
            end;
        end if;
        return next;
    end loop;
end $$;

-- tasks_done's batch: finishes together the results task_done's plotter would finish on their
-- jobs' rows alone. Those are the results with outputs (an object, no `error` key) whose cookie
-- appears once in `a_results` and names a task at work that holds no concurrency slot, of a job
-- with no abort request and no parent waiting for it, taken by a role the caller may act for,
-- and whose outputs the plotter takes. Their jobs are locked in job_id order; the ones the
-- plotter ends are ended in one insert and one update (end_plotted; one alone as task_done
-- ends it), the others written as task_done writes them (apply_plot). Returns the cookies it
-- finished; task_done gets the rest.
-- Its plans read `jobs` through the cookie index only (enable_seqscan off, as end_plotted),
-- and are generic: a custom plan for the cookie array (which PostgreSQL kept choosing, the
-- array's length being known) was planned again at every call, a fifth of a one-task call.
create or replace function jobcenter.finish_tasks(a_results jsonb) returns text[]
language plpgsql set plan_cache_mode = force_generic_plan set enable_seqscan = off set jit = off as $$
declare
    v_caller text := jobcenter.caller(null);
    r record;
    j jobcenter.jobs;
    v_plot jsonb;
    v_done text[] := '{}';
    v_jobs jobcenter.jobs[] := '{}';
    v_plots jsonb[] := '{}';
    v_wake bigint[] := '{}';
    v_outputs jsonb;
    v_cookies uuid[];
begin
    -- the outputs by cookie (as uuid::text: a cookie may be spelled in capitals or without
    -- its hyphens), of the cookies that appear once
    select jsonb_object_agg(u::text, jsonb_build_array(c, o)), array_agg(u)
    into v_outputs, v_cookies
    from (select k.u, min(x ->> 'cookie') as c, (array_agg(x -> 'outargs'))[1] as o
          from jsonb_array_elements(a_results) x
          cross join lateral (select jobcenter.cookie_uuid(x ->> 'cookie') as u) k
          where jsonb_typeof(x -> 'cookie') = 'string' and jsonb_typeof(x -> 'outargs') = 'object'
            and not (x -> 'outargs') ? 'error' and k.u is not null
          group by 1
          having count(*) = 1) s;
    for r in
        select jb as job, v_outputs -> jb.cookie::text ->> 0 as cookie,
               v_outputs -> jb.cookie::text -> 1 as outargs
        from jobcenter.jobs jb
        -- the state is tested in the loop, so that the plan reads the cookie index (as
        -- task_done's lookup)
        where jb.cookie = any(v_cookies) and not jb.task_state ? 'slot'
          and (jb.parentjob_id is null or jb.detached)
          and not exists (select 1 from jobcenter.job_aborts x where x.job_id = jb.job_id)
        order by jb.job_id
        for no key update of jb
    loop
        j := r.job;
        continue when j.state <> 'working'
            or not jobcenter.may_act_for(v_caller, j.task_state ->> 'taken_by');
        v_plot := jobcenter.plot_job(j, r.outargs);
        continue when v_plot is null;
        if v_plot ->> 'stop' = 'end' then
            v_jobs := v_jobs || j;
            v_plots := v_plots || v_plot;
        else
            v_wake := v_wake || jobcenter.apply_plot(j, v_plot);
        end if;
        v_done := v_done || r.cookie;
    end loop;
    -- a lone end as task_done ends it: apply_plot's one-row statements cost less than
    -- end_plotted's for one job
    if cardinality(v_jobs) = 1 then
        v_wake := v_wake || jobcenter.apply_plot(v_jobs[1], v_plots[1]);
    elsif cardinality(v_jobs) > 1 then
        v_wake := v_wake || jobcenter.end_plotted(v_jobs, v_plots);
    end if;
    perform jobcenter.drive(v_wake);
    return v_done;
end $$;

-- The original's call for a worker whose task failed: as task_done with outputs
-- {"error": {"class": "normal", "msg": a_errmsg}}.
create or replace function jobcenter.task_failed(a_cookie text, a_errmsg text) returns void
language plpgsql as $$
begin
    perform jobcenter.task_done(a_cookie, jsonb_build_object('error',
        jsonb_build_object('class', 'normal', 'msg', a_errmsg)));
end $$;

-- Publishes an event to every subscription whose mask it contains. As the original, returns
-- true; raise_event_id (ours) returns the event's id.
create or replace function jobcenter.raise_event(a_eventdata jsonb) returns boolean
language plpgsql as $$
begin
    perform jobcenter.raise_event_id(a_eventdata);
    return true;
end $$;

create or replace function jobcenter.raise_event_id(a_eventdata jsonb) returns bigint
language plpgsql as $$
declare
    v_wake bigint[];
    v_event_id bigint;
begin
    if a_eventdata is null or jsonb_typeof(a_eventdata) <> 'object' then
        raise exception using errcode = 'JC002', message = 'event data must be a JSON object';
    end if;
    if jobcenter.check_json(a_eventdata) is not null then
        raise exception using errcode = 'JC002',
            message = 'bad event data: ' || jobcenter.check_json(a_eventdata);
    end if;
    v_wake := jobcenter.deliver_event(a_eventdata, jobcenter.caller(null));
    -- taken before driving: a woken job may raise events of its own
    v_event_id := currval(pg_get_serial_sequence('jobcenter.job_events', 'event_id'));
    perform jobcenter.drive(v_wake);
    return v_event_id;
end $$;

-- Cancels a live job: an uncatchable error of class 'abort'; its children are aborted too.
-- As the original, a job whose task a worker is running is only cancelled with a_force (the
-- worker's task_done then finds no task). Returns 'job <id> cancelled'.
create or replace function jobcenter.cancel_job(a_job_id bigint, a_reason text default '',
    a_force boolean default false)
returns text language plpgsql as $$
declare
    j jobcenter.jobs;
begin
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update;
    if not found or not jobcenter.may_see_job(a_job_id) then
        raise exception using errcode = 'JC005', message = format('no job %s', a_job_id);
    end if;
    if j.state in ('finished', 'error', 'zombie') then
        raise exception using errcode = 'JC007',
            message = format('job %s has already ended (%s)', a_job_id, j.state);
    end if;
    if j.state = 'working' and not coalesce(a_force, false) then
        raise exception using errcode = 'JC007',
            message = format('job %s is working: a worker is running its task', a_job_id),
            hint = 'cancel it with a_force => true';
    end if;
    perform jobcenter.drive(jobcenter.end_job(j, 'error', jsonb_build_object('error',
        jobcenter.task_error_obj(j, 'abort', coalesce(nullif(a_reason, ''), 'cancelled')))));
    return format('job %s cancelled', a_job_id);
end $$;

-- Restarts a job that ended in error from its start, keeping its variables. Returns, as the
-- original, 'retry initiated'.
create or replace function jobcenter.retry_job(a_job_id bigint, a_reason text default '')
returns text language plpgsql as $$
declare
    j jobcenter.jobs;
    v_start integer;
begin
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update;
    if not found or not jobcenter.may_see_job(a_job_id) then
        raise exception using errcode = 'JC005',
            message = format('no live job %s', a_job_id), hint = 'archived jobs cannot be retried';
    end if;
    if j.state <> 'error' then
        raise exception using errcode = 'JC007',
            message = format('job %s is %s, only a job in error can be retried', a_job_id, j.state);
    end if;
    select task_id into v_start from jobcenter.tasks where workflow_id = j.workflow_id and action_id = -1;
    perform jobcenter.log_step(j, 'plotting', j.variables, null, null,
        jsonb_strip_nulls(jsonb_build_object('retry', true, 'reason', nullif(a_reason, ''))));
    update jobcenter.jobs set
        state = 'plotting', task_id = v_start, out_args = null, job_finished = null,
        stepcounter = 0, task_state = '{}', environment = environment - '_error',
        task_entered = clock_timestamp(),
        -- the previous run's children are no longer this run's (unreaped_children), and its
        -- next error is unseen
        job_state = (job_state - 'reaped' - 'error_seen') || jsonb_build_object('children_after',
            (select coalesce(max(c.job_id), 0) from jobcenter.jobs c where c.parentjob_id = a_job_id))
    where job_id = a_job_id;
    perform jobcenter.drive(array[a_job_id]);
    return 'retry initiated';
end $$;

-- The original's acknowledgement of a job's error: records who saw it and when in the
-- ended job's `job_state` (`{"error_seen": {"who": …, "when": …}}`), so lists of unseen errors
-- leave it out, until retry_job starts the job again. Returns the original's message. Errors:
-- JC002 no `a_who`, JC005 no such live job (or another user's), JC007 not ended in error.
create or replace function jobcenter.error_seen(a_job_id bigint, a_who text) returns text
language plpgsql as $$
declare
    j jobcenter.jobs;
    v_seen jsonb;
begin
    if a_who is null or a_who = '' then
        raise exception using errcode = 'JC002', message = 'error_seen needs who saw the error',
            hint = 'error_seen(<job_id>, <who>)';
    end if;
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update;
    if not found or not jobcenter.may_see_job(a_job_id) then
        raise exception using errcode = 'JC005', message = format('job %s not found', a_job_id);
    end if;
    if j.state <> 'error' or j.job_finished is null then
        raise exception using errcode = 'JC007',
            message = format('job %s is not in an error state', a_job_id);
    end if;
    v_seen := jsonb_build_object('who', a_who, 'when', now());
    update jobcenter.jobs set job_state = job_state || jsonb_build_object('error_seen', v_seen)
    where job_id = a_job_id;
    return format('set error_seen for job %s to %s', a_job_id, v_seen);
end $$;

-- Jobs (live and archived) whose arguments contain `a_filter`, optionally in state `a_state`;
-- an array in job id order, as the original.
create or replace function jobcenter.find_jobs(a_filter jsonb, a_state text default null)
returns bigint[] language sql stable as $$
    select coalesce(array_agg(job_id order by job_id), '{}') from (
        -- the live ones through job_arguments (its GIN index), then their rows
        select x.job_id, l.state from jobcenter.job_arguments x
        join jobcenter.jobs l on l.job_id = x.job_id
        where x.arguments @> coalesce(a_filter, '{}')
        union all
        select a.job_id, a.state from jobcenter.jobs_archive a
        where a.arguments @> coalesce(a_filter, '{}')
    ) j
    where (a_state is null or j.state::text = a_state)
      and jobcenter.may_see_job(j.job_id)
$$;

-- Whether a job the caller may reach holds lock (a_locktype, a_lockvalue): a job it may act
-- for (its own), or one of a workflow whose role it holds (the event rule's reach,
-- may_raise_to). A lock held by another user's job is answered as no lock, so the answer
-- tells nothing about other users' work.
create or replace function jobcenter.check_if_lock_exists(a_locktype text, a_lockvalue text)
returns boolean language sql stable as $$
    select exists (select 1 from jobcenter.locks l
                   where l.locktype = a_locktype and l.lockvalue = a_lockvalue
                     and jobcenter.may_raise_to(jobcenter.caller(null), l.job_id))
$$;

-- The interface and settings of the workflow version create_job would run for the same name
-- and tag list (as the original: without a tag, the newest untagged version).
create or replace function jobcenter.get_workflow_info(a_wfname text, a_tag text default null) returns jsonb
language plpgsql stable as $$
declare
    v_wf jobcenter.actions;
begin
    v_wf := jobcenter.find_workflow(a_wfname, a_tag);
    return jsonb_build_object(
        'workflow_id', v_wf.action_id, 'name', v_wf.name, 'version', v_wf.version,
        'role', v_wf.rolename, 'config', v_wf.config, 'disabled', v_wf.disabled,
        'inputs', (select coalesce(jsonb_object_agg(name, jsonb_strip_nulls(jsonb_build_object(
                'type', type, 'optional', optional, 'default', "default"))), '{}')
            from jobcenter.action_inputs where action_id = v_wf.action_id),
        'outputs', (select coalesce(jsonb_object_agg(name, jsonb_build_object(
                'type', type, 'optional', optional)), '{}')
            from jobcenter.action_outputs where action_id = v_wf.action_id));
end $$;
