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
    update jobcenter.actions set disabled = a_disabled where action_id = v_action.action_id;
    return query select v_action.action_id, v_action.type::text, v_action.version, v_action.disabled;
end $$;

-- A job's descendants in the archive are found by parent (jcadm tree).
create index if not exists jobs_archive_parent on jobcenter.jobs_archive (parentjob_id)
    where parentjob_id is not null;
