-- jobcenter child jobs: call of a workflow (waits), split/map (start now, wait later),
-- detachflow (nobody waits), reaping in order, child errors.

-- Creates a child job of `a_parent` at the start task of workflow `a_wf`, with the call's
-- `priority` or else its parent's. Returns its id, or raises a job error in the parent
-- (returned as {"_error": …} by the caller's check).
create or replace function jobcenter.new_child(a_parent jobcenter.jobs, a_task jobcenter.tasks,
    a_wf jobcenter.actions, a_args jsonb, a_env jsonb, a_detach boolean)
returns bigint language plpgsql as $$
declare
    v_start integer;
    v_id bigint;
    v_priority integer := coalesce((a_task.attributes ->> 'priority')::integer, a_parent.priority);
begin
    -- as create_job: replace_action waits for this job to be seen
    perform pg_catalog.pg_advisory_xact_lock_shared(jobcenter.replace_lock_class(), a_wf.action_id);
    select task_id into v_start from jobcenter.tasks where workflow_id = a_wf.action_id and action_id = -1;
    with n as (
        insert into jobcenter.jobs (workflow_id, task_id, parentjob_id, parenttask_id, state,
            arguments, environment, task_entered, max_steps, current_depth, detached, priority,
            ready_rank, job_state)
        values (a_wf.action_id, v_start, a_parent.job_id, a_task.task_id, 'plotting', a_args,
            (a_parent.environment - '_error') || coalesce(a_wf.wfenv, '{}') || coalesce(a_env, '{}'),
            clock_timestamp(),
            coalesce((a_wf.config ->> 'max_steps')::integer, (jobcenter.setting('max_steps'))::integer, 99),
            a_parent.current_depth + 1, a_detach, v_priority, jobcenter.ready_rank(now(), v_priority),
            -- a quiet job's children are quiet too
            case when a_parent.job_state ? 'quiet' then '{"quiet": true}'::jsonb else '{}' end)
        returning job_id, arguments),
    a as (insert into jobcenter.job_arguments select job_id, arguments from n)
    select job_id into v_id from n;
    return v_id;
end $$;

-- A task calling a workflow: start the child job(s); when the task waits (`call`), wait for
-- them and then map each one's outputs in order.
create or replace function jobcenter.do_workflow_task(a_job jobcenter.jobs, a_task jobcenter.tasks,
    a_wf jobcenter.actions)
returns bigint[] language plpgsql as $$
declare
    v_attr jsonb := a_task.attributes;
    v_wait boolean := coalesce((v_attr ->> 'wait')::boolean, true);
    v_detach boolean := coalesce((v_attr ->> 'detach')::boolean, false);
    v_wf jobcenter.actions := a_wf;
    v_res jsonb;
    v_list jsonb;
    v_checked jsonb;
    v_children bigint[] := '{}';
    v_max_depth integer;
    v_name text;
    v_elem jsonb;
    v_idx integer := 0;
begin
    if a_job.task_state ? 'spawned' then
        return jobcenter.collect_children(a_job, a_task);
    end if;
    if v_attr ? 'dispatch' then
        v_res := jobcenter.jcl_eval(v_attr, 'dispatch', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        v_name := jobcenter.jcl_tostring(v_res -> 'value');
        if not coalesce(v_attr -> 'candidates', '[]') ? v_name then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
                format('%s is not one of the workflows of interface %s', v_name, a_wf.name)));
        end if;
        select * into v_wf from jobcenter.actions where name = v_name and type = 'workflow'
        order by version desc limit 1;
        if not found then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
                format('no workflow %s', v_name)));
        end if;
    end if;
    v_max_depth := coalesce((v_wf.config ->> 'max_depth')::integer, (jobcenter.setting('max_depth'))::integer, 9);
    if a_job.current_depth + 1 > v_max_depth then
        return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'fatal',
            format('max_depth (%s) exceeded calling %s', v_max_depth, v_wf.name)));
    end if;
    if v_attr ? 'map_using' then
        v_res := jobcenter.jcl_eval(v_attr, 'map_using', jobcenter.ctx(a_job));
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        v_list := v_res -> 'value';
        if jsonb_typeof(v_list) is distinct from 'array' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal',
                format('map %s using: %s is not an array', v_wf.name, coalesce(v_list, 'null'))));
        end if;
    else
        v_list := '[null]';
    end if;
    for v_elem in select value from jsonb_array_elements(v_list) loop
        v_idx := v_idx + 1;
        v_checked := jobcenter.call_inputs(a_job, a_task, v_wf.action_id, v_wf.name,
            case when v_attr ? 'map_using' then jsonb_build_object('e',
                a_job.environment || jsonb_build_object('_v', v_elem, '_i', v_idx)) end);
        if v_checked ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_checked ->> '_error'));
        end if;
        v_children := v_children || jobcenter.new_child(a_job, a_task, v_wf, v_checked -> 'args',
            case when v_attr ? 'map_using' then jsonb_build_object('_v', v_elem, '_i', v_idx) end,
            v_detach);
    end loop;
    if v_wait and not v_detach then
        if cardinality(v_children) = 0 then
            return jobcenter.finish_step(a_job, a_job.variables);
        end if;
        update jobcenter.jobs set state = 'childwait',
            task_state = jsonb_build_object('spawned', to_jsonb(v_children))
        where job_id = a_job.job_id;
        -- the children run first; the last one to end wakes us
        return v_children;
    end if;
    return v_children || jobcenter.finish_step(a_job, a_job.variables, null, null,
        jsonb_build_object('children', to_jsonb(v_children)));
end $$;

-- Children of `a_job` started by task `a_task_id` (or by any task when null) not yet reaped.
-- Children of an earlier run (before retry_job) and children with an abort request are not.
create or replace function jobcenter.unreaped_children(a_job_id bigint, a_task_id integer)
returns setof jobcenter.jobs language sql stable as $$
    select c.* from jobcenter.jobs c
    where c.parentjob_id = a_job_id and not c.detached and not (c.job_state ? 'reaped')
      and (a_task_id is null or c.parenttask_id = a_task_id)
      and c.job_id > coalesce((select (p.job_state ->> 'children_after')::bigint
                               from jobcenter.jobs p where p.job_id = a_job_id), 0)
      and not exists (select 1 from jobcenter.job_aborts x where x.job_id = c.job_id)
    order by c.job_id
$$;

-- Checks the children of a wait: null when all have finished; otherwise the step result
-- (still waiting, or a childerror raised in the parent).
create or replace function jobcenter.children_pending(a_job jobcenter.jobs, a_task_id integer)
returns bigint[] language plpgsql as $$
declare
    c jobcenter.jobs;
    s jobcenter.jobs;
    d jobcenter.jobs;
    v_holder bigint;
    v_wake bigint[] := '{}';
    v_err jsonb;
    v_id bigint;
    v_skipped bigint[] := '{}';
begin
    select * into c from jobcenter.unreaped_children(a_job.job_id, a_task_id)
    where state = 'error' order by job_id limit 1;
    if found then
        update jobcenter.jobs set job_state = job_state || '{"reaped":true}' where job_id = c.job_id;
        -- The siblings' results can no longer be used: abort and reap the ones this transaction
        -- can lock; a sibling locked by another transaction (one ending it may be waiting for
        -- this parent's row) gets an abort request instead of a wait.
        v_err := jsonb_build_object('error',
            jobcenter.error_obj('abort', format('sibling job %s failed', c.job_id)));
        for v_id in select u.job_id from jobcenter.unreaped_children(a_job.job_id, a_task_id) u
                    where u.job_id <> c.job_id loop
            select * into s from jobcenter.jobs where job_id = v_id
            for no key update skip locked;
            if not found then
                v_skipped := v_skipped || v_id;
                continue;
            end if;
            update jobcenter.jobs set job_state = job_state || '{"reaped":true}'
            where job_id = s.job_id;
            if s.state not in ('finished', 'error', 'zombie') then
                s.job_state := s.job_state || '{"reaped":true}';
                v_wake := v_wake || jobcenter.end_job(s, 'error', v_err);
            end if;
        end loop;
        perform jobcenter.request_aborts(v_skipped, v_err);
        return v_wake || jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'childerror',
            format('child job %s failed: %s', c.job_id, c.out_args #>> '{error,msg}'))
            || jsonb_build_object('child_job_id', c.job_id, 'error', c.out_args -> 'error'));
    end if;
    if exists (select 1 from jobcenter.unreaped_children(a_job.job_id, a_task_id)
               where state not in ('zombie', 'finished')) then
        update jobcenter.jobs set state = 'childwait' where job_id = a_job.job_id;
        -- A descendant that started waiting for a lock before we waited for our children may
        -- now wait for ever (its chain of lock holders leads back to us): a deadlock error.
        -- Only a job holding a lock can be in such a chain; the check is serialised with
        -- every other change of the lock-wait graph.
        if not exists (select 1 from jobcenter.locks where job_id = a_job.job_id) then
            return v_wake;
        end if;
        perform jobcenter.lock_graph_lock();
        for d in with recursive descendants(job_id) as (
                     select job_id from jobcenter.jobs
                     where parentjob_id = a_job.job_id and not detached
                     union
                     select j.job_id from jobcenter.jobs j join descendants on j.parentjob_id = descendants.job_id
                     where not j.detached)
                 select j.* from jobcenter.jobs j join descendants using (job_id)
                 where j.state = 'lockwait' order by j.job_id for no key update of j skip locked loop
            select job_id into v_holder from jobcenter.locks
            where locktype = d.task_state #>> '{lockwait,type}'
              and lockvalue = d.task_state #>> '{lockwait,value}'
            order by taken, slot limit 1;
            if v_holder is not null and jobcenter.lock_blocked(d.job_id,
                    d.task_state #>> '{lockwait,type}', d.task_state #>> '{lockwait,value}') then
                v_wake := v_wake || jobcenter.raise_job_error(d, jobcenter.task_error_obj(d, 'lock',
                    format('deadlock: waiting for lock %s %s held by job %s',
                        d.task_state #>> '{lockwait,type}', d.task_state #>> '{lockwait,value}', v_holder)));
            end if;
        end loop;
        return v_wake;
    end if;
    return null;
end $$;

-- The waiting `call` of a workflow, woken: when all its children are done, map their outputs.
create or replace function jobcenter.collect_children(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
declare
    v_pending bigint[];
begin
    v_pending := jobcenter.children_pending(a_job, a_task.task_id);
    if v_pending is not null then
        return v_pending;
    end if;
    return jobcenter.reap(a_job, a_task, a_task.task_id);
end $$;

-- Applies the omap of `a_task` to each finished child of `a_spawn_task`, in the order they
-- were started, and marks them reaped.
create or replace function jobcenter.reap(a_job jobcenter.jobs, a_task jobcenter.tasks, a_spawn_task integer)
returns bigint[] language plpgsql as $$
declare
    c jobcenter.jobs;
    v_vars jsonb := a_job.variables;
    v_res jsonb;
    v_outs jsonb := '[]';
begin
    for c in select * from jobcenter.unreaped_children(a_job.job_id, a_spawn_task)
             for no key update loop
        v_res := jobcenter.run_omap(a_job, a_task, c.out_args, v_vars);
        if v_res ? '_error' then
            return jobcenter.raise_job_error(a_job, jobcenter.task_error_obj(a_job, 'normal', v_res ->> '_error'));
        end if;
        v_vars := v_res -> 'v';
        v_outs := v_outs || jsonb_build_array(c.out_args);
        update jobcenter.jobs set state = 'finished',
            job_state = job_state || '{"reaped":true}'
        where job_id = c.job_id;
    end loop;
    return jobcenter.finish_step(a_job, v_vars, null, null, v_outs);
end $$;

-- wait_for_children: wait until every started, attached child has ended.
create or replace function jobcenter.do_wait_for_children(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
declare
    v_pending bigint[];
begin
    v_pending := jobcenter.children_pending(a_job, null);
    if v_pending is not null then
        return v_pending;
    end if;
    return jobcenter.finish_step(a_job, a_job.variables);
end $$;

-- reap_child: map the outputs of the children started by task `spawn_task`.
create or replace function jobcenter.do_reap_child(a_job jobcenter.jobs, a_task jobcenter.tasks)
returns bigint[] language plpgsql as $$
begin
    return jobcenter.reap(a_job, a_task, (a_task.attributes ->> 'spawn_task')::integer);
end $$;
