-- 0.1.0 -> 0.2.0, the privilege model (privileges.sql): who owns what, who raised an event.
--
-- The roles, grants, read views, the actions_owner trigger and the SECURITY DEFINER
-- attributes of the API functions are in privileges.sql, which is idempotent and must run
-- whole at the END of the upgrade script, after the functions are re-created: re-creating a
-- function resets SECURITY DEFINER and its search_path, and a function that is dropped and
-- created again (a changed signature) loses its grants and is executable by PUBLIC.

-- the role that loaded an action or workflow: procedure steps run as the workflow's owner
alter table jobcenter.actions add column owner text;
update jobcenter.actions set owner = (
    select r.rolname from pg_catalog.pg_extension e join pg_catalog.pg_roles r on r.oid = e.extowner
    where e.extname = 'jobcenter');
alter table jobcenter.actions alter column owner set not null;

-- a worker name belongs to the identity that first announced it
alter table jobcenter.workers add column owner text;
create index workers_name on jobcenter.workers (name, worker_id);

-- who raised an event
alter table jobcenter.job_events add column raised_by text;

-- deliver_event(a_eventdata, a_raised_by) replaces deliver_event(a_eventdata)
drop function jobcenter.deliver_event(jsonb);

-- procedure steps run as their workflow's owner; API functions see the step's owner
CREATE OR REPLACE FUNCTION jobcenter."run_as"(
	"owner" oid, /* pg_sys :: Oid */
	"sql" TEXT, /* & str */
	"arg" jsonb /* JsonB */
) RETURNS jsonb /* Option < JsonB > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'run_as_wrapper';
revoke all on function jobcenter.run_as(oid, text, jsonb) from public;

CREATE OR REPLACE FUNCTION jobcenter."step_owner"() RETURNS oid /* Option < pg_sys :: Oid > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'step_owner_wrapper';
