-- jobcenter admin procedures: what an operator does by hand (`jcadm`), beside the client API
-- in api.sql. Like the API they raise JCnnn SQLSTATEs for bad requests and change nothing then.

-- A job waiting to retry a task (`retrywait`) becomes ready now instead of when its back-off
-- ends (the original's retry_task_now). The tries so far still count against the action's
-- retry limit. Errors: JC005 unknown job, JC007 not in retrywait.
create or replace function jobcenter.retry_now(a_job_id bigint) returns boolean
language plpgsql as $$
declare
    j jobcenter.jobs;
    v_action jobcenter.actions;
begin
    select * into j from jobcenter.jobs where job_id = a_job_id for no key update;
    if not found then
        raise exception using errcode = 'JC005', message = format('no live job %s', a_job_id);
    end if;
    if j.state <> 'retrywait' then
        raise exception using errcode = 'JC007',
            message = format('job %s is %s, only a job in retrywait can be retried now', a_job_id, j.state);
    end if;
    select a.* into v_action from jobcenter.actions a join jobcenter.tasks t using (action_id)
    where t.task_id = j.task_id;
    perform jobcenter.make_ready(j, v_action, j.task_state -> 'inargs', j.task_state -> 'env',
        coalesce((j.task_state ->> 'tries')::integer, 0));
    return true;
end $$;

-- Disables (a_disabled true) or enables a version of an action, procedure or workflow: the
-- newest without a_version; a_type picks one kind when several share the name. A disabled
-- workflow version starts no new jobs (create_job raises JC008); jobs already running go on.
-- Returns the row changed and whether it was disabled before. Errors: JC001 unknown name or
-- version, JC002 a system action, or a name of several kinds without a_type.
create or replace function jobcenter.set_disabled(a_name text, a_disabled boolean,
    a_version integer default null, a_type jobcenter.action_type default null)
returns table (o_action_id integer, o_type text, o_version integer, o_was boolean)
language plpgsql as $$
declare
    v_kinds text[];
    v_action jobcenter.actions;
begin
    if a_type = 'system' then
        raise exception using errcode = 'JC002', message = 'system actions cannot be disabled';
    end if;
    select array_agg(distinct type::text order by type::text) into v_kinds from jobcenter.actions
    where name = a_name and type <> 'system' and (a_type is null or type = a_type);
    if v_kinds is null then
        raise exception using errcode = 'JC001', message = format('no action or workflow named %s', a_name);
    end if;
    if cardinality(v_kinds) > 1 then
        raise exception using errcode = 'JC002',
            message = format('%s names several kinds (%s)', a_name, array_to_string(v_kinds, ', ')),
            hint = 'say which one';
    end if;
    select * into v_action from jobcenter.actions
    where name = a_name and type = v_kinds[1]::jobcenter.action_type
      and (a_version is null or version = a_version)
    order by version desc limit 1
    for update;
    if not found then
        raise exception using errcode = 'JC001',
            message = format('%s %s has no version %s', v_kinds[1], a_name, a_version);
    end if;
    -- an enabled version keeps no reason disable_action gave
    update jobcenter.actions set disabled = a_disabled,
        config = case when a_disabled then config else config - 'disabled_reason' end
    where action_id = v_action.action_id;
    return query select v_action.action_id, v_action.type::text, v_action.version, v_action.disabled;
end $$;

-- The newest version of each action, procedure and workflow name per version tag (tag null:
-- of its untagged versions), the versions create_job and the compiler choose.
create or replace function jobcenter.latest_actions()
returns table (action_id integer, name text, type jobcenter.action_type, tag text)
language sql stable as $$
    select max(a.action_id), a.name, a.type, t.tag
    from jobcenter.actions a left join jobcenter.action_version_tags t using (action_id)
    group by a.name, a.type, t.tag
$$;

-- The original's disable_action: disables version `an_action_id` (of an action, procedure or
-- workflow), its reason kept in its config as `disabled_reason`, unless a live job runs it or
-- a workflow that calls it, directly or through other workflows. Newest enabled versions of
-- workflows that call it are named in a NOTICE. Returns the original's 'disabled: <id>'.
-- Errors: JC001 unknown id, JC002 a system action, JC007 live jobs depend on it.
create or replace function jobcenter.disable_action(an_action_id integer, a_reason text default '')
returns text language plpgsql as $$
declare
    v_action jobcenter.actions;
    v_jobs bigint;
    v_users text;
begin
    select * into v_action from jobcenter.actions where action_id = an_action_id for update;
    if not found then
        raise exception using errcode = 'JC001', message = format('not found: %s', an_action_id);
    end if;
    if v_action.type = 'system' then
        raise exception using errcode = 'JC002', message = 'system actions cannot be disabled';
    end if;
    -- the action and every workflow version calling it, transitively (UNION ends cycles)
    with recursive tree (action_id) as (
        select an_action_id
        union
        select t.workflow_id from tree join jobcenter.tasks t on t.action_id = tree.action_id
    )
    select count(*) into v_jobs from jobcenter.jobs j
    where j.workflow_id in (select action_id from tree) and j.job_finished is null;
    if v_jobs > 0 then
        raise exception using errcode = 'JC007', message = format('not disabled: %s', an_action_id),
            detail = format('%s live jobs run it or a workflow calling it', v_jobs),
            hint = 'cancel them or wait until they end';
    end if;
    with recursive tree (action_id) as (
        select an_action_id
        union
        select t.workflow_id from tree join jobcenter.tasks t on t.action_id = tree.action_id
    )
    select string_agg(a.name || ' (' || a.action_id || ')', ', ' order by a.action_id)
    into v_users
    from tree join jobcenter.actions a using (action_id)
    where a.action_id <> an_action_id and not a.disabled
      and a.action_id in (select l.action_id from jobcenter.latest_actions() l);
    if v_users is not null then
        raise notice 'workflows found that rely on action (%): %', an_action_id, v_users;
    end if;
    update jobcenter.actions set disabled = true,
        config = config || jsonb_build_object('disabled_reason', coalesce(a_reason, ''))
    where action_id = an_action_id;
    return format('disabled: %s', an_action_id);
end $$;

-- The original's get_stale_actions: the calls of the newest enabled workflow versions to a
-- version that is no longer the newest of its name and tag (the callee was compiled again
-- after the caller), with the workflows nobody calls above each (`top_level_ids`, newest
-- versions only), every id on the paths between them (`found`), and the callee's newest
-- version of the same tag. One row per stale call and callee tag.
create or replace function jobcenter.get_stale_actions()
returns table (top_level_ids integer[], workflow_name text, workflow_id integer,
    workflow_version integer, name text, action_id integer, version integer,
    latest_action_id integer, latest_version integer, found integer[],
    type jobcenter.action_type, tag text)
language sql stable as $$
    with recursive latest as (
        select * from jobcenter.latest_actions()
    ), calls as (
        select distinct t.workflow_id as caller_id, t.action_id as callee_id
        from jobcenter.tasks t where t.action_id <> t.workflow_id
    ), stale as (
        select c.caller_id, c.callee_id
        from calls c join jobcenter.actions wf on wf.action_id = c.caller_id
        where not wf.disabled
          and c.caller_id in (select l.action_id from latest l)
          and c.callee_id not in (select l.action_id from latest l)
    ), up (caller_id, callee_id, found, stale_caller, stale_callee) as (
        -- from each stale call up through the callers; a row without caller is a top
        select s.caller_id, s.callee_id, array[s.callee_id], s.caller_id, s.callee_id from stale s
        union all
        select c.caller_id, u.caller_id, u.found || u.caller_id, u.stale_caller, u.stale_callee
        from up u left join calls c on c.callee_id = u.caller_id
        where u.caller_id is not null and u.caller_id <> all (u.found)
    ), grouped as (
        select array_agg(distinct u.callee_id order by u.callee_id) as top_level_ids,
               array_agg(distinct f order by f) as found, u.stale_caller, u.stale_callee
        from up u, unnest(u.found) f
        where u.caller_id is null and u.callee_id in (select l.action_id from latest l)
        group by u.stale_caller, u.stale_callee
    )
    select g.top_level_ids, wf.name, wf.action_id, wf.version, a.name, a.action_id, a.version,
           l.action_id, la.version, g.found, a.type, avt.tag
    from grouped g
    join jobcenter.actions wf on wf.action_id = g.stale_caller
    join jobcenter.actions a on a.action_id = g.stale_callee
    left join jobcenter.action_version_tags avt on avt.action_id = a.action_id
    left join latest l on l.name = a.name and l.type = a.type
        and l.tag is not distinct from avt.tag
    left join jobcenter.actions la on la.action_id = l.action_id
    order by wf.action_id, a.action_id, avt.tag
$$;

-- A job's descendants in the archive are found by parent (jcadm tree).
create index if not exists jobs_archive_parent on jobcenter.jobs_archive (parentjob_id)
    where parentjob_id is not null;
