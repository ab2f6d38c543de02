-- 0.3.0, security: actions without role: are served by their owner and the members of the
-- role setting default_worker_role names (privileges.sql, may_serve); check_if_lock_exists
-- answers only about jobs the caller may reach (function bodies, re-created after this file).
insert into jobcenter.settings (name, value) values ('default_worker_role', '"workers"');
insert into jobcenter.jc_roles (rolename) values ('workers') on conflict do nothing;
