-- jobcenter schema: the tables of the state machine.
-- Loaded first (bootstrap). Only the procedures in engine.sql change job state.

create type jobcenter.action_type as enum ('system', 'action', 'procedure', 'workflow');

create type jobcenter.job_state as enum (
    'ready',      -- waiting for a worker
    'working',    -- a worker has it
    'eventwait',  -- waiting for an event
    'childwait',  -- waiting for child jobs
    'sleeping',   -- sleeping until its timeout
    'lockwait',   -- waiting for a lock
    'retrywait',  -- waiting to retry after a soft error
    'done',       -- the current step finished, the next one is not chosen yet
    'plotting',   -- the current task is about to run
    'zombie',     -- a finished child whose parent has not reaped it yet
    'finished',
    'error'
);

-- The type registry: every type name a declaration may use, with its JSON Schema.
create table jobcenter.json_schemas (
    type text primary key,
    base boolean not null default false,
    schema jsonb not null
);

insert into jobcenter.json_schemas (type, base, schema) values
    ('null', true, '{"type":"null"}'),
    ('boolean', true, '{"type":"boolean"}'),
    ('number', true, '{"type":"number"}'),
    ('string', true, '{"type":"string"}'),
    ('array', true, '{"type":"array"}'),
    ('object', true, '{"type":"object"}'),
    ('integer', false, '{"type":"integer"}'),
    ('json', false, '{}'),
    ('event', false, '{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"event_id":{"type":"integer"},"when":{"type":"string"},"data":{}}}'),
    ('error', false, '{"type":"object","required":["class","msg"],"properties":{"class":{"type":"string"},"msg":{"type":"string"}}}');

-- Every callable thing: system actions (negative ids), actions, procedures, workflows.
create table jobcenter.actions (
    action_id serial primary key,
    name text not null,
    type jobcenter.action_type not null,
    version integer not null default 0,
    wfenv jsonb,
    rolename text,
    config jsonb not null default '{}',
    src text,
    srcmd5 text,
    disabled boolean not null default false,
    created timestamptz not null default now(),
    -- the role that loaded it (privileges.sql sets the default): a workflow's procedure
    -- steps run as this role, and only it (or an admin) loads new versions
    owner text,
    unique (type, name, version)
);
create index actions_name on jobcenter.actions (name, version desc);

-- Version tags (`jcc --tags a:b`): create_job with tag 'a:b' tries a, then b, then untagged.
create table jobcenter.action_version_tags (
    action_id integer not null references jobcenter.actions on delete cascade,
    tag text not null,
    primary key (action_id, tag)
);

create type jobcenter.destination as enum ('arguments', 'environment');

create table jobcenter.action_inputs (
    action_id integer not null references jobcenter.actions on delete cascade,
    name text not null,
    type text not null references jobcenter.json_schemas (type),
    optional boolean not null default false,
    "default" jsonb,
    destination jobcenter.destination not null default 'arguments',
    primary key (action_id, name)
);

create table jobcenter.action_outputs (
    action_id integer not null references jobcenter.actions on delete cascade,
    name text not null,
    type text not null references jobcenter.json_schemas (type),
    optional boolean not null default false,
    primary key (action_id, name)
);

-- One compiled step of a workflow.
create table jobcenter.tasks (
    task_id serial primary key,
    workflow_id integer not null references jobcenter.actions on delete cascade,
    action_id integer not null references jobcenter.actions,
    next_task_id integer references jobcenter.tasks deferrable initially deferred,
    on_error_task_id integer references jobcenter.tasks deferrable initially deferred,
    attributes jsonb not null default '{}'
);
create index tasks_workflow on jobcenter.tasks (workflow_id);
create index tasks_action on jobcenter.tasks (action_id);

-- Conditional edges: 'true' for a branch, a case label for a switch.
create table jobcenter.next_tasks (
    from_task_id integer not null references jobcenter.tasks on delete cascade,
    to_task_id integer not null references jobcenter.tasks on delete cascade,
    "when" text not null,
    primary key (from_task_id, "when")
);

-- Lock types a workflow may use (declared in its `locks:` section), with the most jobs that
-- may hold one value at once (`limit N`; 1: a mutex).
create table jobcenter.locktypes (
    locktype text primary key,
    max_holders integer not null default 1 check (max_holders >= 1)
);

create table jobcenter.workflow_locks (
    workflow_id integer not null references jobcenter.actions on delete cascade,
    locktype text not null references jobcenter.locktypes,
    value jsonb,          -- compiled expression taken at job start; null = '_' placeholder
    manual boolean not null default false,
    inherit boolean not null default false,
    primary key (workflow_id, locktype)
);

-- Live jobs. workflow_id, task_id and parenttask_id name rows of actions and tasks, which the
-- engine never deletes (a compile in place turns the tasks it no longer needs into no-ops,
-- compiler.sql). They have no foreign keys: the check of one takes a KEY SHARE lock on the
-- referenced row at every insert and every move to another task, so all the jobs of a
-- workflow would lock the same few rows (a multixact of every concurrent mover), a tenth
-- of a batched drain's time.
create table jobcenter.jobs (
    job_id bigserial primary key,
    workflow_id integer not null,
    task_id integer not null,
    parentjob_id bigint references jobcenter.jobs on delete set null,
    parenttask_id integer,
    state jobcenter.job_state not null,
    arguments jsonb not null default '{}',
    environment jsonb not null default '{}',
    variables jsonb not null default '{}',
    out_args jsonb,
    cookie uuid,
    timeout timestamptz,
    task_entered timestamptz,
    task_started timestamptz,
    task_completed timestamptz,
    job_created timestamptz not null default now(),
    job_finished timestamptz,
    stepcounter integer not null default 0,
    max_steps integer not null default 99,
    current_depth integer not null default 1,
    aborted boolean not null default false,
    detached boolean not null default false,
    priority integer not null default 0,
    worker_id bigint,
    -- the action of the current task while the job is 'ready' (set by make_ready), so that
    -- get_task reads its queue in index order
    ready_action_id integer,
    task_state jsonb not null default '{}',
    job_state jsonb not null default '{}',
    -- the order of the job's ready tasks: its creation time less `priority` times the setting
    -- `priority_aging` (ready_rank), fixed when the job is created
    ready_rank timestamptz not null default now()
);
create unique index jobs_cookie on jobcenter.jobs (cookie) where cookie is not null;
-- The ready queue of each action, in the order get_task takes it.
create index jobs_ready on jobcenter.jobs (ready_action_id, ready_rank, job_id) where state = 'ready';
create index jobs_timeout on jobcenter.jobs (timeout) where timeout is not null;
create index jobs_parent on jobcenter.jobs (parentjob_id) where parentjob_id is not null;
create index jobs_state on jobcenter.jobs (state);
create index jobs_worker on jobcenter.jobs (worker_id) where worker_id is not null;
-- The waiters of each lock value, oldest first (a release wakes one per freed slot)
create index jobs_lockwait on jobcenter.jobs ((task_state -> 'lockwait'), job_id) where state = 'lockwait';
-- The tasks at work of each concurrency-limited action, with their slots (take_slots)
create index jobs_slots on jobcenter.jobs (ready_action_id) where state = 'working' and task_state ? 'slot';

-- The arguments of the live jobs, for find_jobs' containment search. They are in a table of
-- their own so that its GIN index is written once per job, when the job is created: an index
-- of `jobs` would get new entries at every update of the row (none of them is HOT: each
-- changes `state`), three or more per job, a sixth of a batched drain's time. A job's
-- arguments never change; every insert into `jobs` inserts here in the same statement, and
-- archival deletes the rows of the jobs it moves.
create table jobcenter.job_arguments (
    job_id bigint primary key,
    arguments jsonb not null
);
create index job_arguments_arguments on jobcenter.job_arguments using gin (arguments jsonb_path_ops);

-- Aborts that could not be carried out at once because another transaction held the job's
-- row (a transaction holding a parent never waits for a child's row; see ARCHITECTURE.md,
-- "Locking protocol"). The job's next step carries it out, get_task never hands the job out,
-- and do_timeout carries out every one left (next_timeout is 0 while any is pending). The
-- aborted job is marked reaped: its parent no longer waits for it.
create table jobcenter.job_aborts (
    job_id bigint primary key references jobcenter.jobs on delete cascade,
    error jsonb not null,
    requested timestamptz not null default now()
);

-- Finished jobs, moved out of `jobs` by archival.
create table jobcenter.jobs_archive (
    job_id bigint primary key,
    workflow_id integer not null,
    parentjob_id bigint,
    state jobcenter.job_state not null,
    arguments jsonb,
    environment jsonb,
    variables jsonb,
    out_args jsonb,
    job_created timestamptz,
    job_finished timestamptz,
    stepcounter integer,
    archived timestamptz not null default now()
);
create index jobs_archive_archived on jobcenter.jobs_archive (archived);
create index jobs_archive_arguments on jobcenter.jobs_archive using gin (arguments jsonb_path_ops);

-- Idempotency keys of create_job (a_key), per workflow name: the job a key names, and once
-- the job is archived, when the key expires (its job_finished plus `job_key_retention`). The
-- primary key serialises racing creates with one key. job_id is null only inside the
-- transaction that claimed the key, until its job exists. Keys outlive their jobs' rows
-- (archival and its clean-up), so there is no foreign key.
create table jobcenter.job_keys (
    wfname text not null,
    key text not null,
    job_id bigint,
    expires timestamptz,
    primary key (wfname, key)
);
create index job_keys_job on jobcenter.job_keys (job_id);
create index job_keys_expires on jobcenter.job_keys (expires) where expires is not null;

-- The rate limits of actions (`rate` in an action's config): per ready queue, the start times
-- of the tasks taken in the last window (at most the limit), the window's length as last
-- taken with, and when the window has room again for ready tasks it held back (the maestro's
-- timer then offers them: do_timeout). The row lock serialises the takers of a rate-limited
-- action only. A concurrency-limited action (`concurrency`) has a row too once a taker found
-- every slot busy (`refused`, and a wake-up a second on): the next end of a task, or else the
-- timer, offers the ready tasks.
create table jobcenter.action_rates (
    queue integer primary key,
    starts timestamptz[] not null default '{}',
    per interval,
    wake timestamptz,
    refused boolean not null default false
);
create index action_rates_wake on jobcenter.action_rates (wake) where wake is not null;

-- One row per step. Its rows are read by job, in the order they were written (a job's log,
-- the archival's delete), so the primary key is (job_id, job_task_log_id): one index, where a
-- key of job_task_log_id alone beside an index of the job would write two entries per step,
-- a tenth of the WAL a drained job writes.
create table jobcenter.job_task_log (
    job_task_log_id bigserial,
    job_id bigint not null,
    workflow_id integer not null,
    task_id integer not null,
    state jobcenter.job_state not null,
    variables jsonb,
    inargs jsonb,
    outargs jsonb,
    task_entered timestamptz,
    task_started timestamptz,
    task_completed timestamptz not null default clock_timestamp(),
    worker_id bigint,
    task_state jsonb,
    primary key (job_id, job_task_log_id)
);

-- The running gateways (jcapi processes). Each holds the session-level advisory lock
-- (gateway_lock_class(), gateway_id) on a connection of its own while it runs, so that the
-- maestro tells a dead gateway from a live one (do_gateway_check in maintenance.sql).
create table jobcenter.gateways (
    gateway_id serial primary key,
    name text not null,
    -- the role that registered it
    owner text not null,
    started timestamptz not null default now(),
    -- when it last took its lock
    locked timestamptz not null default now(),
    -- when the maestro first found its lock free (null while it is held)
    missing_since timestamptz
);

-- Live workers and what they announced.
create table jobcenter.workers (
    worker_id bigserial primary key,
    name text not null,
    started timestamptz not null default now(),
    stopped timestamptz,
    last_ping timestamptz not null default now(),
    -- the identity that announced it: the name is that user's (see claim_worker)
    owner text,
    -- the gateway it is connected through (null: a direct caller, or a dead gateway's)
    gateway_id integer references jobcenter.gateways on delete set null,
    -- stopped with its gateway: its tasks wait `worker_grace` for a resend of their results
    orphaned boolean not null default false
);
create index workers_name on jobcenter.workers (name, worker_id);
create unique index workers_live on jobcenter.workers (name) where stopped is null;
create index workers_gateway on jobcenter.workers (gateway_id) where stopped is null;
create index workers_orphaned on jobcenter.workers (stopped) where orphaned;

create table jobcenter.worker_actions (
    worker_id bigint not null references jobcenter.workers on delete cascade,
    action_id integer not null references jobcenter.actions,
    filter jsonb,
    primary key (worker_id, action_id)
);

-- Events: subscriptions by name with a mask, events, and the queue between them.
create table jobcenter.event_subscriptions (
    subscription_id bigserial primary key,
    job_id bigint not null references jobcenter.jobs on delete cascade,
    name text not null,
    mask jsonb not null,
    unique (job_id, name)
);
create index event_subscriptions_mask on jobcenter.event_subscriptions using gin (mask);

create table jobcenter.job_events (
    event_id bigserial primary key,
    eventdata jsonb not null,
    "when" timestamptz not null default now(),
    raised_by text        -- the identity that raised it (a user, or a job's client)
);

create table jobcenter.queued_events (
    subscription_id bigint not null references jobcenter.event_subscriptions on delete cascade,
    event_id bigint not null references jobcenter.job_events on delete cascade,
    primary key (subscription_id, event_id)
);

-- Named locks held by jobs: one row per holder, in slots 0 .. max_holders - 1 of its lock
-- type (a mutex has slot 0 only). A job holds at most one slot of a (type, value).
create table jobcenter.locks (
    locktype text not null references jobcenter.locktypes,
    lockvalue text not null,
    job_id bigint not null references jobcenter.jobs on delete cascade,
    inherit boolean not null default false,
    taken timestamptz not null default now(),
    -- a lock taken over from an ancestor holding it with `inherit`: the jobs it goes back to
    -- when released, innermost last
    inherited_from bigint[] not null default '{}',
    slot integer not null default 0,
    primary key (locktype, lockvalue, slot)
);
create index locks_job on jobcenter.locks (job_id);

-- Authorization, separate from PostgreSQL roles.
create table jobcenter.jc_roles (
    rolename text primary key
);
create table jobcenter.jc_role_members (
    rolename text not null references jobcenter.jc_roles on delete cascade,
    member_of text not null references jobcenter.jc_roles on delete cascade,
    primary key (rolename, member_of)
);
create table jobcenter.jc_impersonate_roles (
    rolename text not null,
    impersonates text not null references jobcenter.jc_roles on delete cascade,
    primary key (rolename, impersonates)
);

-- The global environment merged into every job.
create table jobcenter.jc_env (
    name text primary key,
    value jsonb not null
);

-- Engine settings (defaults of limits, retention, policies), readable with psql.
create table jobcenter.settings (
    name text primary key,
    value jsonb not null
);
insert into jobcenter.settings (name, value) values
    ('max_steps', '99'),
    ('max_depth', '9'),
    ('worker_timeout', '"3 minutes"'),
    ('dead_worker_policy', '"error"'),
    -- a gateway whose lock is free this long is dead: its workers are withdrawn
    ('gateway_timeout', '"5 seconds"'),
    -- the tasks of a dead gateway's workers wait this long for their results (resent by the
    -- worker through another connection) before `dead_worker_policy` applies
    ('worker_grace', '"30 seconds"'),
    ('archive_finished_after', '"1 minute"'),
    ('archive_error_after', '"7 days"'),
    -- archived jobs (and their step log) are deleted this long after archival
    ('archive_retention', '"30 days"'),
    -- how long after its job ended an idempotency key of create_job still returns that job
    ('job_key_retention', '"1 day"'),
    -- what one step of job priority is worth in waiting: a job of priority p is served as if
    -- created p times this earlier (ready_rank)
    ('priority_aging', '"1 minute"'),
    -- a timeout due further off than this is not notified on the channel timer: the maestro
    -- sleeps at most this long between its looks at the next due time (notify_timer); a
    -- look costs a few small queries, a notification makes its transaction commit alone
    ('timer_horizon', '"10 seconds"'),
    -- the most rows each kind of clean-up deletes in one call of do_archival_and_cleanup
    ('cleanup_batch', '10000'),
    -- the jobcenter role whose members (besides the owner) serve actions without role:
    -- (privileges.sql, may_serve); null: every identity
    ('default_worker_role', '"workers"');
insert into jobcenter.jc_roles (rolename) values ('workers');

-- The system actions. Their ids are fixed (see jcl::SystemAction::id).
insert into jobcenter.actions (action_id, name, type, version) values
    (-1, 'start', 'system', 0),
    (-2, 'end', 'system', 0),
    (-3, 'no_op', 'system', 0),
    (-4, 'eval', 'system', 0),
    (-5, 'branch', 'system', 0),
    (-6, 'switch', 'system', 0),
    (-7, 'reap_child', 'system', 0),
    (-8, 'subscribe', 'system', 0),
    (-9, 'unsubscribe', 'system', 0),
    (-10, 'wait_for_event', 'system', 0),
    (-11, 'raise_error', 'system', 0),
    (-12, 'raise_event', 'system', 0),
    (-13, 'wait_for_children', 'system', 0),
    (-14, 'lock', 'system', 0),
    (-15, 'unlock', 'system', 0),
    (-16, 'sleep', 'system', 0);

insert into jobcenter.action_inputs (action_id, name, type, optional, "default") values
    (-8, 'name', 'string', false, null),
    (-8, 'mask', 'object', false, null),
    (-9, 'name', 'string', false, null),
    (-10, 'events', 'json', false, null),
    (-10, 'timeout', 'json', true, '60'),
    (-11, 'msg', 'string', false, null),
    (-12, 'event', 'object', false, null),
    (-14, 'type', 'string', false, null),
    (-14, 'value', 'json', false, null),
    (-14, 'wait', 'json', true, 'true'),
    (-15, 'type', 'string', false, null),
    (-15, 'value', 'json', false, null),
    (-16, 'timeout', 'json', false, null);
insert into jobcenter.action_outputs (action_id, name, type, optional) values
    (-10, 'event', 'event', false);
