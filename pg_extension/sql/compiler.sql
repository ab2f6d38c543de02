-- jobcenter compiler support: `jcc --replace`, an in-place fix of the newest version of an
-- action or workflow that keeps its interface (inputs and outputs).

-- The declared inputs of a model, in the shape of jobcenter.action_inputs rows.
create or replace function jobcenter.model_inputs(a_model jsonb) returns jsonb
language sql immutable as $$
    select coalesce(jsonb_agg(jsonb_build_object(
            'name', p ->> 'name', 'type', p ->> 'type',
            'optional', coalesce((p ->> 'optional')::boolean, false) or p ? 'default',
            'default', p -> 'default',
            'destination', coalesce(p ->> 'destination', 'arguments'))
        order by p ->> 'name'), '[]')
    from jsonb_array_elements(coalesce(a_model -> 'inputs', '[]')) p
$$;

create or replace function jobcenter.model_outputs(a_model jsonb) returns jsonb
language sql immutable as $$
    select coalesce(jsonb_agg(jsonb_build_object(
            'name', p ->> 'name', 'type', p ->> 'type',
            'optional', coalesce((p ->> 'optional')::boolean, false))
        order by p ->> 'name'), '[]')
    from jsonb_array_elements(coalesce(a_model -> 'outputs', '[]')) p
$$;

-- The first half of the key of a version's replace lock (the second is its action id):
-- create_job and new_child hold it shared to their commit, replace_action exclusively.
create or replace function jobcenter.replace_lock_class() returns integer
language sql immutable as $$ select hashtext('jobcenter.replace') $$;

-- Replaces version `a_action_id` (the newest of its name) by `a_model`: same name, kind,
-- inputs and outputs, no job of it still running. Settings, source and locks are replaced;
-- a workflow's task rows are reused in order (ended jobs keep pointing at valid rows), rows
-- are added as needed, and rows left over are made no_ops leading to the end (never deleted:
-- an ended job may still name one). Returns the action id.
create or replace function jobcenter.replace_action(a_action_id integer, a_model jsonb)
returns integer language plpgsql as $$
declare
    v_act jobcenter.actions;
    v_old integer[];
    v_ids jsonb := '{}';
    v_task jsonb;
    v_task_id integer;
    v_end integer;
    v_n integer := 0;
begin
    begin
        perform jobcenter.check_model(a_model);
    exception when others then
        raise exception using errcode = 'JC009', message = sqlerrm;
    end;
    perform pg_advisory_xact_lock(hashtext('jobcenter.load_action'));
    select * into v_act from jobcenter.actions where action_id = a_action_id for update;
    -- Waits for the transactions creating jobs of this version (create_job and new_child hold
    -- this lock shared to their commit) and keeps new ones out until this commits: the check
    -- for running jobs below sees every job of the old code, and a job created after it runs
    -- the new code.
    perform pg_catalog.pg_advisory_xact_lock(jobcenter.replace_lock_class(), a_action_id);
    if not found or v_act.type = 'system' then
        raise exception using errcode = 'JC001',
            message = format('no action or workflow with id %s', a_action_id);
    end if;
    if v_act.name <> a_model ->> 'name' or v_act.type::text <> a_model ->> 'kind' then
        raise exception using errcode = 'JC009',
            message = format('the model is %s %s, not %s %s', a_model ->> 'kind', a_model ->> 'name',
                v_act.type, v_act.name);
    end if;
    if exists (select 1 from jobcenter.actions
               where name = v_act.name and type = v_act.type and version > v_act.version) then
        raise exception using errcode = 'JC007',
            message = format('%s %s version %s is not the newest version', v_act.type, v_act.name, v_act.version);
    end if;
    if (select coalesce(jsonb_agg(jsonb_build_object('name', name, 'type', type,
                'optional', optional, 'default', "default", 'destination', destination::text)
                order by name), '[]')
        from jobcenter.action_inputs where action_id = a_action_id)
       is distinct from jobcenter.model_inputs(a_model)
       or (select coalesce(jsonb_agg(jsonb_build_object('name', name, 'type', type,
                'optional', optional) order by name), '[]')
           from jobcenter.action_outputs where action_id = a_action_id)
       is distinct from jobcenter.model_outputs(a_model) then
        raise exception using errcode = 'JC009',
            message = format('%s %s: the inputs or outputs differ from version %s',
                v_act.type, v_act.name, v_act.version),
            hint = 'a changed interface needs a new version: compile without --replace';
    end if;
    if exists (select 1 from jobcenter.jobs
               where workflow_id = a_action_id and state not in ('finished', 'error', 'zombie')) then
        raise exception using errcode = 'JC007',
            message = format('jobs of %s %s version %s are running', v_act.type, v_act.name, v_act.version),
            hint = 'wait for them to end, or compile without --replace to make a new version';
    end if;
    update jobcenter.actions set wfenv = a_model -> 'wfenv', rolename = a_model ->> 'role',
        config = coalesce(a_model -> 'config', '{}'), src = a_model ->> 'src',
        srcmd5 = md5(a_model ->> 'src')
    where action_id = a_action_id;
    if v_act.type <> 'workflow' then
        return a_action_id;
    end if;
    delete from jobcenter.workflow_locks where workflow_id = a_action_id;
    perform jobcenter.write_locks(a_action_id, a_model);
    select coalesce(array_agg(task_id order by task_id), '{}') into v_old
    from jobcenter.tasks where workflow_id = a_action_id;
    delete from jobcenter.next_tasks where from_task_id = any(v_old) or to_task_id = any(v_old);
    -- first pass: the rows (old ones reused in order); second pass: the references
    for v_task in select * from jsonb_array_elements(a_model -> 'tasks') loop
        v_n := v_n + 1;
        if v_n <= cardinality(v_old) then
            v_task_id := v_old[v_n];
            update jobcenter.tasks set action_id = jobcenter.resolve_callee(v_task -> 'callee'),
                attributes = coalesce(v_task -> 'attributes', '{}'),
                next_task_id = null, on_error_task_id = null
            where task_id = v_task_id;
        else
            insert into jobcenter.tasks (workflow_id, action_id, attributes)
            values (a_action_id, jobcenter.resolve_callee(v_task -> 'callee'), coalesce(v_task -> 'attributes', '{}'))
            returning task_id into v_task_id;
        end if;
        v_ids := v_ids || jsonb_build_object(v_task ->> 'id', v_task_id);
        if v_task -> 'callee' ->> 'system' = 'end' then
            v_end := v_task_id;
        end if;
    end loop;
    perform jobcenter.link_tasks(a_model, v_ids);
    -- The old rows left over become no-ops leading to the end, never deleted: ended jobs may
    -- still name them, and `jobs` has no foreign keys to tasks and actions (their checks would
    -- lock the same rows for every job), so the rows jobs name must stay; a later compile
    -- reuses them in order.
    update jobcenter.tasks set action_id = -3, attributes = jsonb_build_object('ir', jobcenter.jcl_ir_version()),
        next_task_id = v_end, on_error_task_id = null
    where task_id = any(v_old[v_n + 1:]);
    -- this backend's cached model of it is stale now (others see the new actions row's xmin)
    perform jobcenter.model_changed(a_action_id);
    return a_action_id;
end $$;
