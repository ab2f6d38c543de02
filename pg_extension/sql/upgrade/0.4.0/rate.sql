-- Rate limits of actions (an action's config `rate`): the start times of each rate-limited
-- ready queue's last window, and when a full window has room again.
create table jobcenter.action_rates (
    queue integer primary key,
    starts timestamptz[] not null default '{}',
    per interval,
    wake timestamptz
);
create index action_rates_wake on jobcenter.action_rates (wake) where wake is not null;
