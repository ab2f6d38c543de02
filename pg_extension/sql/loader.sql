-- jobcenter loader: writes a compiled workflow model (what `jcc` emits, see the jcl crate's
-- `model` module) into the tables as a new version of its action or workflow.

create or replace function jobcenter.resolve_callee(a_callee jsonb) returns integer
language plpgsql stable as $$
declare
    v_id integer;
begin
    if a_callee ? 'system' then
        select action_id into v_id from jobcenter.actions
        where type = 'system' and name = a_callee ->> 'system';
        if not found then
            raise exception using errcode = 'JC009',
                message = format('unknown system action %s', a_callee ->> 'system');
        end if;
        return v_id;
    end if;
    select action_id into v_id from jobcenter.actions
    where name = a_callee #>> '{named,name}' and type <> 'system'
      and (a_callee #>> '{named,kind}' is null or type::text = a_callee #>> '{named,kind}')
    order by version desc, action_id desc limit 1;
    if not found then
        raise exception using errcode = 'JC001',
            message = format('unknown callee %s', a_callee #>> '{named,name}'),
            hint = 'compile the called action or workflow first, or in the same run';
    end if;
    return v_id;
end $$;

-- Writes a workflow model's `locks:` declarations (lock types are created as needed; a
-- declared `limit` sets the lock type's max_holders, for every workflow using it).
create or replace function jobcenter.write_locks(a_workflow_id integer, a_model jsonb) returns void
language plpgsql as $$
declare
    v_lock jsonb;
begin
    for v_lock in select * from jsonb_array_elements(coalesce(a_model -> 'locks', '[]')) loop
        insert into jobcenter.locktypes (locktype, max_holders)
        values (v_lock ->> 'locktype', coalesce((v_lock ->> 'limit')::integer, 1))
        on conflict (locktype) do update set max_holders = excluded.max_holders
        where v_lock ? 'limit';
        insert into jobcenter.workflow_locks (workflow_id, locktype, value, manual, inherit)
        values (a_workflow_id, v_lock ->> 'locktype', v_lock -> 'value',
            coalesce((v_lock ->> 'manual')::boolean, false), coalesce((v_lock ->> 'inherit')::boolean, false));
    end loop;
end $$;

-- The second pass of writing a workflow's tasks: with `a_ids` mapping the model's local task
-- ids to task rows, sets each row's next and on-error task, its attributes (`spawn_task`
-- mapped too) and its conditional edges.
create or replace function jobcenter.link_tasks(a_model jsonb, a_ids jsonb) returns void
language plpgsql as $$
declare
    v_task jsonb;
    v_task_id integer;
    v_attr jsonb;
    v_edge jsonb;
begin
    for v_task in select * from jsonb_array_elements(a_model -> 'tasks') loop
        v_task_id := (a_ids ->> (v_task ->> 'id'))::integer;
        v_attr := coalesce(v_task -> 'attributes', '{}');
        if v_attr ? 'spawn_task' then
            v_attr := v_attr || jsonb_build_object('spawn_task', (a_ids ->> (v_attr ->> 'spawn_task'))::integer);
        end if;
        update jobcenter.tasks set
            next_task_id = (a_ids ->> (v_task ->> 'next'))::integer,
            on_error_task_id = (a_ids ->> (v_task ->> 'on_error'))::integer,
            attributes = v_attr
        where task_id = v_task_id;
        for v_edge in select * from jsonb_array_elements(coalesce(v_task -> 'edges', '[]')) loop
            insert into jobcenter.next_tasks (from_task_id, to_task_id, "when")
            values (v_task_id, (a_ids ->> (v_edge ->> 'to'))::integer, v_edge ->> 'when');
        end loop;
    end loop;
end $$;

create or replace function jobcenter.load_action(a_model jsonb, a_tags text[] default null)
returns integer language plpgsql as $$
declare
    v_kind jobcenter.action_type;
    v_name text := a_model ->> 'name';
    v_version integer;
    v_id integer;
    v_task jsonb;
    v_task_id integer;
    v_ids jsonb := '{}';
    v_param jsonb;
begin
    begin
        perform jobcenter.check_model(a_model);
    exception when others then
        raise exception using errcode = 'JC009', message = sqlerrm;
    end;
    v_kind := (a_model ->> 'kind')::jobcenter.action_type;
    if v_kind = 'system' then
        raise exception using errcode = 'JC009', message = 'system actions cannot be loaded';
    end if;
    -- one loader at a time, so versions are dense and callee resolution is consistent
    perform pg_advisory_xact_lock(hashtext('jobcenter.load_action'));
    select coalesce(max(version), 0) + 1 into v_version from jobcenter.actions
    where type = v_kind and name = v_name;
    insert into jobcenter.actions (name, type, version, wfenv, rolename, config, src, srcmd5)
    values (v_name, v_kind, v_version, a_model -> 'wfenv', a_model ->> 'role',
        coalesce(a_model -> 'config', '{}'), a_model ->> 'src', md5(a_model ->> 'src'))
    returning action_id into v_id;
    for v_param in select * from jsonb_array_elements(coalesce(a_model -> 'inputs', '[]')) loop
        if not exists (select 1 from jobcenter.json_schemas where type = v_param ->> 'type') then
            raise exception using errcode = 'JC009',
                message = format('input %s of %s has unknown type %s', v_param ->> 'name', v_name, v_param ->> 'type');
        end if;
        insert into jobcenter.action_inputs (action_id, name, type, optional, "default", destination)
        values (v_id, v_param ->> 'name', v_param ->> 'type',
            coalesce((v_param ->> 'optional')::boolean, false) or v_param ? 'default',
            v_param -> 'default',
            coalesce(v_param ->> 'destination', 'arguments')::jobcenter.destination);
    end loop;
    for v_param in select * from jsonb_array_elements(coalesce(a_model -> 'outputs', '[]')) loop
        if not exists (select 1 from jobcenter.json_schemas where type = v_param ->> 'type') then
            raise exception using errcode = 'JC009',
                message = format('output %s of %s has unknown type %s', v_param ->> 'name', v_name, v_param ->> 'type');
        end if;
        insert into jobcenter.action_outputs (action_id, name, type, optional)
        values (v_id, v_param ->> 'name', v_param ->> 'type', coalesce((v_param ->> 'optional')::boolean, false));
    end loop;
    if a_tags is not null then
        insert into jobcenter.action_version_tags (action_id, tag)
        select v_id, t from unnest(a_tags) t where t <> '';
    end if;
    if v_kind <> 'workflow' then
        return v_id;
    end if;
    perform jobcenter.write_locks(v_id, a_model);
    -- first pass: the rows; second pass: the references between them
    for v_task in select * from jsonb_array_elements(a_model -> 'tasks') loop
        insert into jobcenter.tasks (workflow_id, action_id, attributes)
        values (v_id, jobcenter.resolve_callee(v_task -> 'callee'), coalesce(v_task -> 'attributes', '{}'))
        returning task_id into v_task_id;
        v_ids := v_ids || jsonb_build_object(v_task ->> 'id', v_task_id);
    end loop;
    perform jobcenter.link_tasks(a_model, v_ids);
    return v_id;
end $$;
