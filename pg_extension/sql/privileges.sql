-- jobcenter privileges: who may call what, and as whom the engine acts.
--
-- Loaded last (after every other file and every Rust function), and written to be run again:
-- the upgrade script runs it after re-creating the functions, since CREATE OR REPLACE
-- FUNCTION resets SECURITY DEFINER and SET search_path. Every statement is idempotent and
-- refers to the API functions by name only, never by signature.
--
-- The model (ARCHITECTURE.md, "Privileges"):
-- * The public API functions are SECURITY DEFINER, owned by the extension's owner, with
--   search_path fixed to pg_catalog, jobcenter, pg_temp. Nothing else in the schema is
--   executable by PUBLIC, and no table is readable or writable by PUBLIC.
-- * Callers get EXECUTE through group roles (NOLOGIN, created if missing):
--     jobcenter_client    create_job, get_job_status, find_jobs, cancel_job, retry_job,
--                         raise_event, get_workflow_info, check_if_lock_exists, error_seen;
--                         the views jobcenter.my_jobs and jobcenter.my_job_steps (its own jobs)
--     jobcenter_worker    announce, withdraw, disconnect, ping, get_task, task_done,
--                         poll_tasks
--     jobcenter_compiler  load_action, replace_action, the schedule functions,
--                         get_stale_actions; reads the definition tables (actions, tasks,
--                         inputs, outputs, types, schedules) and deletes schedules (jcc drops
--                         those a file lost)
--     jobcenter_gateway   client and worker, rate_room, start_room, and reads jobs, the archive, the
--                         step log, actions, tasks and announcements (jcapi's own queries)
--     jobcenter_admin     all of the above, the maintenance functions (the maestro), the
--                         operator's retry_now, set_disabled (jcadm) and disable_action, reads
--                         every table, writes the role, impersonation, environment and
--                         settings tables; sees and acts on every job and worker
-- * The identity of a call is jobcenter.caller(a_impersonate): the calling role
--   (jobcenter.invoker(): the role of SET ROLE, else the session user, or the owner of the
--   procedure step that is running), or the role it impersonates.
-- * A procedure step runs as the role that owns the workflow (actions.owner, the role that
--   loaded it), through jobcenter.run_as, never as the session that drives the job.

-- Roles -------------------------------------------------------------------------------------------

do $$
declare
    r text;
begin
    foreach r in array array['jobcenter_client', 'jobcenter_worker', 'jobcenter_compiler',
                             'jobcenter_gateway', 'jobcenter_admin'] loop
        if not exists (select 1 from pg_catalog.pg_roles where rolname = r) then
            execute format('create role %I nologin', r);
        end if;
    end loop;
end $$;

do $$
declare
    r record;
begin
    for r in select * from (values
                ('jobcenter_client', 'jobcenter_gateway'), ('jobcenter_worker', 'jobcenter_gateway'),
                ('jobcenter_client', 'jobcenter_admin'), ('jobcenter_worker', 'jobcenter_admin'),
                ('jobcenter_compiler', 'jobcenter_admin'), ('jobcenter_gateway', 'jobcenter_admin'))
                as g(grp, member)
             where not pg_catalog.pg_has_role(member, grp, 'MEMBER') loop
        execute format('grant %I to %I', r.grp, r.member);
    end loop;
end $$;

-- Identities --------------------------------------------------------------------------------------

-- The role a call comes from: the owner of the procedure step running in this backend, else
-- the role set with SET ROLE, else the session user. Unlike current_user it is the same
-- inside the SECURITY DEFINER API functions.
create or replace function jobcenter.invoker() returns text
language plpgsql stable as $$
begin
    return coalesce(
        pg_catalog.pg_get_userbyid(jobcenter.step_owner())::text,
        nullif(pg_catalog.current_setting('role'), 'none'),
        session_user::text);
end $$;

-- Whether identity `a_who` is an administrator: the calling PostgreSQL role itself when it is
-- a superuser or a member of jobcenter_admin (an impersonated name never is, whatever
-- database role shares it), or a jobcenter role in jobcenter_admin (jc_role_members).
create or replace function jobcenter.is_admin(a_who text) returns boolean
language plpgsql stable security definer set search_path = pg_catalog, jobcenter, pg_temp as $$
begin
    return (a_who = jobcenter.invoker() and exists (
                select 1 from pg_catalog.pg_roles r where r.rolname = a_who
                  and (r.rolsuper or pg_catalog.pg_has_role(r.oid, 'jobcenter_admin', 'MEMBER'))))
        or jobcenter.has_role(a_who, 'jobcenter_admin');
end $$;

-- Whether identity `a_who` may act for `a_for` (a job's client, a worker's owner): it is that
-- identity, an administrator, or may impersonate it. True when `a_for` is unknown (rows made
-- before 0.2 recorded no owner).
create or replace function jobcenter.may_act_for(a_who text, a_for text) returns boolean
language plpgsql stable as $$
begin
    -- cheapest first: the gateway finishing results for its users lands on the second test,
    -- and is_admin (SECURITY DEFINER, its own search_path) is the dearest
    if a_for is null or a_who = a_for then
        return true;
    end if;
    if exists (select 1 from jobcenter.jc_impersonate_roles
               where rolename = a_who and impersonates = a_for) then
        return true;
    end if;
    return jobcenter.is_admin(a_who);
end $$;

-- Whether the caller may see and act on job `a_job_id` (live or archived): it is the job's
-- client (or may act for it). True for an unknown job, which the caller reports as such.
create or replace function jobcenter.may_see_job(a_job_id bigint) returns boolean
language plpgsql stable as $$
begin
    return jobcenter.may_act_for(jobcenter.caller(null), (
        select environment ->> 'jcclient' from jobcenter.jobs where job_id = a_job_id
        union all
        select environment ->> 'jcclient' from jobcenter.jobs_archive where job_id = a_job_id
        limit 1));
end $$;

-- The event rule: an event raised by `a_raiser` reaches the subscriptions of job `a_job_id`
-- only when the raiser may act for the job's client (is it, may impersonate it, or is an
-- administrator) or holds the role the job's workflow declares (`role:`). Other
-- subscriptions do not match it, so a raiser learns nothing about them.
create or replace function jobcenter.may_raise_to(a_raiser text, a_job_id bigint) returns boolean
language sql stable as $$
    select coalesce((
        select jobcenter.may_act_for(a_raiser, j.environment ->> 'jcclient')
            or (a.rolename is not null and jobcenter.has_role(a_raiser, a.rolename))
        from jobcenter.jobs j join jobcenter.actions a on a.action_id = j.workflow_id
        where j.job_id = a_job_id), false)
$$;

-- Whether identity `a_who` may serve (announce) action `a_action`: it holds the action's role
-- (`role:`). An action without one is served by whoever may act for its owner (the role that
-- loaded it: the owner, an administrator, or one who may impersonate it) and by members of
-- the jobcenter role the setting `default_worker_role` names (`workers`; JSON null opens such
-- actions to every identity, the rule before 0.3).
create or replace function jobcenter.may_serve(a_who text, a_action jobcenter.actions) returns boolean
language sql stable as $$
    select case when a_action.rolename is not null then jobcenter.has_role(a_who, a_action.rolename)
        else jobcenter.may_act_for(a_who, a_action.owner)
            or jobcenter.has_role(a_who, jobcenter.setting('default_worker_role') #>> '{}') end
$$;

-- Workers -----------------------------------------------------------------------------------------

-- The live worker row named `a_workername` for identity `a_who`, created when there is none.
-- A name belongs to the identity that first announced it (workers.owner of its newest row,
-- live or stopped): another identity is refused (JC004), whichever gateway it comes through.
create or replace function jobcenter.claim_worker(a_workername text, a_who text) returns bigint
language plpgsql as $$
declare
    v_id bigint;
    v_owner text;
    v_stopped timestamptz;
begin
    select worker_id, owner, stopped into v_id, v_owner, v_stopped from jobcenter.workers
    where name = a_workername order by stopped is null desc, worker_id desc limit 1;
    if found and not jobcenter.may_act_for(a_who, v_owner) then
        raise exception using errcode = 'JC004',
            message = format('worker name %s belongs to another user', a_workername),
            hint = 'choose another worker name';
    end if;
    if found and v_stopped is null then
        return v_id;
    end if;
    insert into jobcenter.workers (name, owner) values (a_workername, a_who)
    returning worker_id into v_id;
    return v_id;
end $$;

-- The owner of live worker `a_workername`, when the caller may act for it (else JC004); null
-- for no live worker of that name.
create or replace function jobcenter.check_worker_access(a_workername text) returns text
language plpgsql stable as $$
declare
    v_owner text;
begin
    select owner into v_owner from jobcenter.workers where name = a_workername and stopped is null;
    if found then
        perform jobcenter.check_worker_owner(a_workername, v_owner);
    end if;
    return v_owner;
end $$;

-- The rule of check_worker_access for a caller that read the worker's owner itself
-- (take_tasks): the caller acts for `a_owner`, or JC004.
create or replace function jobcenter.check_worker_owner(a_workername text, a_owner text)
returns void language plpgsql stable as $$
begin
    if not jobcenter.may_act_for(jobcenter.caller(null), a_owner) then
        raise exception using errcode = 'JC004',
            message = format('%s may not act for worker %s', jobcenter.caller(null), a_workername);
    end if;
end $$;

-- Ownership of actions and workflows ------------------------------------------------------------

-- (the columns are in schema.sql; rows made before this file ran get its runner as owner)
update jobcenter.actions set owner = jobcenter.invoker() where owner is null;
alter table jobcenter.actions alter column owner set default jobcenter.invoker();
alter table jobcenter.actions alter column owner set not null;

-- A new version of a name belongs to the loader, who must own the newest version (or be an
-- administrator); only the owner or an administrator changes a version in place.
create or replace function jobcenter.actions_owner() returns trigger
language plpgsql as $$
declare
    v_me text := jobcenter.invoker();
    v_owner text;
begin
    if tg_op = 'INSERT' then
        new.owner := v_me;
        select owner into v_owner from jobcenter.actions
        where type = new.type and name = new.name order by version desc limit 1;
    else
        -- the owner never changes (a row without one, from before 0.2, gets it filled in)
        v_owner := old.owner;
        new.owner := coalesce(old.owner, new.owner);
    end if;
    if v_owner is not null and v_owner <> v_me and not jobcenter.is_admin(v_me) then
        raise exception using errcode = 'JC004',
            message = format('%s %s belongs to %s, not %s', new.type, new.name, v_owner, v_me),
            hint = 'the owner or an administrator loads its new versions';
    end if;
    return new;
end $$;
create or replace trigger actions_owner before insert or update on jobcenter.actions
for each row execute function jobcenter.actions_owner();

-- Procedure steps -----------------------------------------------------------------------------------

-- Runs procedure `a_name` (a function `name(jsonb) returns jsonb`; an unqualified name is in
-- schema public) with `a_args`, as the role that owns workflow `a_workflow_id`, with
-- search_path pg_catalog, public, pg_temp. It can do only what that role can: EXECUTE on the
-- function, and whatever the function itself does, are checked against the owner.
create or replace function jobcenter.call_procedure(a_workflow_id integer, a_name text, a_args jsonb)
returns jsonb language plpgsql set search_path = pg_catalog, public, pg_temp as $$
declare
    v_owner text;
    v_role oid;
    v_sql text;
begin
    select owner into v_owner from jobcenter.actions where action_id = a_workflow_id;
    select oid into v_role from pg_catalog.pg_roles where rolname = v_owner;
    if v_role is null then
        raise exception 'the workflow''s owner % is not a database role', v_owner;
    end if;
    select format('select %I.%I($1)', n.nspname, p.proname) into v_sql
    from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where p.oid = pg_catalog.to_regprocedure(
        case when a_name like '%.%' then a_name else 'public.' || a_name end || '(jsonb)');
    if v_sql is null then
        raise exception 'there is no function %(jsonb)', a_name;
    end if;
    return jobcenter.run_as(v_role, v_sql, a_args);
end $$;

-- Read views ----------------------------------------------------------------------------------------

-- The caller's own jobs, live and archived (every job for an administrator).
create or replace view jobcenter.my_jobs with (security_barrier) as
    select j.job_id, a.name as workflow, a.version, j.state::text as state, j.arguments,
           j.out_args, j.parentjob_id, j.job_created, j.job_finished, false as archived
    from jobcenter.jobs j join jobcenter.actions a on a.action_id = j.workflow_id
    where j.environment ->> 'jcclient' = jobcenter.invoker() or jobcenter.is_admin(jobcenter.invoker())
    union all
    select j.job_id, a.name, a.version, j.state::text, j.arguments, j.out_args, j.parentjob_id,
           j.job_created, j.job_finished, true
    from jobcenter.jobs_archive j join jobcenter.actions a on a.action_id = j.workflow_id
    where j.environment ->> 'jcclient' = jobcenter.invoker() or jobcenter.is_admin(jobcenter.invoker());

-- The step log of the caller's own jobs.
create or replace view jobcenter.my_job_steps with (security_barrier) as
    select l.job_id, l.task_id, l.state::text as state, l.inargs, l.outargs, l.variables,
           l.task_entered, l.task_started, l.task_completed, l.worker_id
    from jobcenter.job_task_log l
    where exists (select 1 from jobcenter.my_jobs m where m.job_id = l.job_id);

-- Grants --------------------------------------------------------------------------------------------

revoke all on all tables in schema jobcenter from public;
revoke all on all sequences in schema jobcenter from public;
revoke all on all functions in schema jobcenter from public;
grant usage on schema jobcenter to jobcenter_client, jobcenter_worker, jobcenter_compiler,
    jobcenter_gateway, jobcenter_admin;

do $$
declare
    v_api constant jsonb := '{
        "jobcenter_client": ["create_job", "get_job_status", "find_jobs", "cancel_job",
            "retry_job", "raise_event", "raise_event_id", "get_workflow_info", "check_if_lock_exists",
            "error_seen"],
        "jobcenter_worker": ["announce", "withdraw", "disconnect", "ping", "get_task",
            "get_tasks", "task_done", "tasks_done", "task_failed", "poll_tasks"],
        "jobcenter_compiler": ["load_action", "replace_action", "create_schedule",
            "drop_schedule", "enable_schedule", "get_workflow_info", "get_stale_actions"],
        "jobcenter_gateway": ["gateway_register", "gateway_attach", "rate_room", "start_room"],
        "jobcenter_admin": ["do_timeout", "next_timeout", "timer_horizon", "do_crash_recovery",
            "do_worker_check", "do_gateway_check", "do_archival_and_cleanup", "do_schedules", "next_schedule",
            "retry_now", "set_disabled", "disable_action"]
    }';
    -- pure functions and the identity functions the views use: every role may call them
    v_everyone constant text[] := array['invoker', 'is_admin', 'step_owner', 'action_queue',
        'cron_check', 'cron_next', 'cron_prev', 'jcl_ir_version', 'jcl_eval', 'jcl_truthy', 'jcl_tostring',
        'check_value', 'check_model'];
    v_grp text;
    r record;
begin
    for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p
             join pg_catalog.pg_language l on l.oid = p.prolang
             where p.pronamespace = 'jobcenter'::regnamespace and l.lanname in ('sql', 'plpgsql')
               -- an internal overload (it takes a job row, e.g. task_failed) is not the API
               and not 'jobcenter.jobs'::regtype::oid = any(p.proargtypes::oid[])
               and p.proname in (select jsonb_array_elements_text(g.value)
                                 from jsonb_each(v_api) g) loop
        execute format('alter function %s security definer set search_path = pg_catalog, jobcenter, pg_temp', r.fn);
    end loop;
    for v_grp in select jsonb_object_keys(v_api) loop
        for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p
                 where p.pronamespace = 'jobcenter'::regnamespace
                   and not 'jobcenter.jobs'::regtype::oid = any(p.proargtypes::oid[])
                   and p.proname in (select jsonb_array_elements_text(v_api -> v_grp)) loop
            execute format('grant execute on function %s to %I', r.fn, v_grp);
        end loop;
    end loop;
    for r in select p.oid::regprocedure as fn from pg_catalog.pg_proc p
             where p.pronamespace = 'jobcenter'::regnamespace and p.proname = any(v_everyone) loop
        execute format('grant execute on function %s to jobcenter_client, jobcenter_worker, '
            'jobcenter_compiler, jobcenter_gateway, jobcenter_admin', r.fn);
    end loop;
end $$;

grant select on jobcenter.my_jobs, jobcenter.my_job_steps to jobcenter_client;
grant select on jobcenter.actions, jobcenter.action_inputs, jobcenter.action_outputs,
    jobcenter.action_version_tags, jobcenter.tasks, jobcenter.next_tasks, jobcenter.json_schemas,
    jobcenter.locktypes, jobcenter.workflow_locks, jobcenter.schedules to jobcenter_compiler;
grant delete on jobcenter.schedules to jobcenter_compiler;
grant select on jobcenter.jobs, jobcenter.jobs_archive, jobcenter.job_task_log, jobcenter.actions,
    jobcenter.tasks, jobcenter.worker_actions to jobcenter_gateway;
grant select on all tables in schema jobcenter to jobcenter_admin;
grant insert, update, delete on jobcenter.jc_roles, jobcenter.jc_role_members,
    jobcenter.jc_impersonate_roles, jobcenter.jc_env, jobcenter.settings to jobcenter_admin;
