-- Stale workers of a dead gateway (issue 11 item 6): the gateways table, the workers'
-- gateway and orphan mark, and the two settings of do_gateway_check.

create table jobcenter.gateways (
    gateway_id serial primary key,
    name text not null,
    owner text not null,
    started timestamptz not null default now(),
    locked timestamptz not null default now(),
    missing_since timestamptz
);

alter table jobcenter.workers
    add column gateway_id integer references jobcenter.gateways on delete set null,
    add column orphaned boolean not null default false;
create index workers_gateway on jobcenter.workers (gateway_id) where stopped is null;
create index workers_orphaned on jobcenter.workers (stopped) where orphaned;

insert into jobcenter.settings (name, value) values
    ('gateway_timeout', '"5 seconds"'),
    ('worker_grace', '"30 seconds"');
