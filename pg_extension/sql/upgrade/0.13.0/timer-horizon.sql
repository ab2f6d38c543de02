-- 0.13.0, engine: the setting timer_horizon. A timeout due further off than it is not
-- notified on the channel timer (notify_timer); the maestro sleeps no longer than it
-- (timer_horizon()). A database that already has the setting keeps its value.
insert into jobcenter.settings (name, value) values ('timer_horizon', '"10 seconds"')
    on conflict (name) do nothing;
