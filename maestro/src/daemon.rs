//! The maestro's loops: the LISTEN connection, the timer loop, the maintenance loop and the
//! gateway check.
//!
//! The LISTEN connection only wakes the timer loop: a `timer` notification may bring the next
//! wake-up forward, and every (re)connection makes it re-read the state (crash recovery, due
//! timeouts, the next due time), since notifications sent while it was away are lost. The
//! calls themselves go through a pool, and a failed call is retried with back-off, so a
//! PostgreSQL restart is waited out. Shutdown is checked between calls, never during one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::Pool;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::time::{sleep_until, Instant};
use tokio_postgres::AsyncMessage;

use crate::metrics::{self, Call, Metrics};
use crate::{Config, Error};

/// How often the gateway check runs: a dead gateway's workers are withdrawn within this
/// after its `gateway_timeout`.
const GATEWAY_CHECK: Duration = Duration::from_secs(1);

/// `do_timeout()` handles at most this many jobs per call; a full batch means call again.
const TIMEOUT_BATCH: i32 = 1000;

/// The first wait after a failure; it doubles up to `reconnect_max`.
const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// While a due timer is held by another transaction (another maestro firing it), poll this
/// often at first, doubling up to [`BUSY_MAX`].
const BUSY_MIN: Duration = Duration::from_millis(10);
const BUSY_MAX: Duration = Duration::from_secs(1);

/// What the LISTEN connection tells the timer loop.
#[derive(Debug)]
enum Event {
    /// (Re)connected and listening: notifications may have been missed.
    Connected,
    /// A timeout was set, due at this Unix time.
    Timer(f64),
}

/// A doubling wait between `min` and `max`.
#[derive(Debug)]
struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    fn next(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    fn reset(&mut self) {
        self.next = self.min;
    }
}

pub(crate) async fn run(
    config: Config,
    shutdown: impl std::future::Future<Output = ()>,
    metrics: Arc<Metrics>,
    on_metrics: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let pg = jc_db::connect_config(&config.dsn, "maestro").map_err(Error::Dsn)?;
    let pool = jc_db::pool(&pg, config.pool_size).map_err(|e| Error::Pool(e.to_string()))?;

    let metrics_server = match &config.metrics {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Metrics {
                    addr: addr.clone(),
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| Error::Metrics {
                addr: addr.clone(),
                source,
            })?;
            tracing::info!(addr = %local, "serving /metrics");
            on_metrics(local);
            Some(tokio::spawn(metrics::serve(
                listener,
                metrics.clone(),
                pool.clone(),
            )))
        }
        None => None,
    };

    tracing::info!(
        dsn = %crate::redact(&config.dsn),
        maintenance_interval = ?config.maintenance_interval,
        "maestro starting"
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (event_tx, event_rx) = mpsc::unbounded_channel();
    let listener = tokio::spawn(listen(pg, event_tx, metrics.clone(), config.reconnect_max));
    let timer = tokio::spawn(timer_loop(
        pool.clone(),
        event_rx,
        stop_rx.clone(),
        metrics.clone(),
        config.clone(),
    ));
    let maintenance = tokio::spawn(maintenance_loop(
        pool.clone(),
        stop_rx.clone(),
        metrics.clone(),
        config.clone(),
    ));
    let gateways = tokio::spawn(gateway_loop(pool.clone(), stop_rx, metrics.clone()));

    shutdown.await;
    tracing::info!("shutting down: finishing the calls in flight");
    let _ = stop_tx.send(true);
    // A join error would mean a loop panicked; there is nothing left to do about it here.
    let _ = timer.await;
    let _ = maintenance.await;
    let _ = gateways.await;
    listener.abort();
    if let Some(server) = metrics_server {
        server.abort();
    }
    pool.close();
    tracing::info!("maestro stopped");
    Ok(())
}

/// Keeps a connection LISTENing on `timer`, reconnecting with back-off, and forwards what it
/// hears to the timer loop. Ends when the timer loop is gone.
async fn listen(
    pg: jc_db::Pg,
    events: mpsc::UnboundedSender<Event>,
    metrics: Arc<Metrics>,
    reconnect_max: Duration,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN, reconnect_max);
    while !events.is_closed() {
        match pg.connect().await {
            Ok((client, mut connection)) => {
                let forward = events.clone();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                if let Ok(epoch) = n.payload().parse::<f64>() {
                                    let _ = forward.send(Event::Timer(epoch));
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return Some(e),
                        }
                    }
                    None
                });
                match client.batch_execute("LISTEN timer").await {
                    Ok(()) => {
                        backoff.reset();
                        metrics.listen_connects.inc();
                        tracing::info!("listening for timer notifications");
                        let _ = events.send(Event::Connected);
                        let why = driver.await.ok().flatten();
                        tracing::warn!(
                            error = why.map(|e| e.to_string()),
                            "the LISTEN connection was lost; reconnecting"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; reconnecting");
                        driver.abort();
                    }
                }
                drop(client);
            }
            Err(e) => tracing::warn!(error = %e, "could not connect; retrying"),
        }
        tokio::time::sleep(backoff.next()).await;
    }
}

/// What one round of the timer loop did.
#[derive(Debug)]
struct Round {
    fired: i32,
    scheduled: i32,
    /// Seconds until the next due timeout or schedule run, `None` if there is none.
    next: Option<f64>,
    /// The engine's timer horizon in seconds (`timer_horizon()`): timeouts due further off
    /// are not notified, so the loop sleeps no longer than this. `None`: every timeout is.
    horizon: Option<f64>,
}

/// What the timer loop carries from one round to the next.
#[derive(Debug)]
struct LoopState {
    /// Run crash recovery (and re-read the engine's functions) in the next round.
    recover: bool,
    /// The engine has `timer_horizon()` (an engine before 0.13.0 notifies every timeout).
    has_horizon: bool,
}

/// Sleeps until the next due time, fires what is due, and again; see the module docs.
async fn timer_loop(
    pool: Pool,
    mut events: mpsc::UnboundedReceiver<Event>,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    config: Config,
) {
    let mut state = LoopState {
        recover: true,
        has_horizon: false,
    };
    let mut errors = Backoff::new(BACKOFF_MIN, config.reconnect_max);
    let mut busy = Backoff::new(BUSY_MIN, BUSY_MAX);
    // The due time the loop last slept for, to measure how late it woke.
    let mut due: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        // How long to wait, and whether something is due at its end.
        let (wait, for_due) = match round(&pool, &metrics, &config, &mut state, &mut due, &stop)
            .await
        {
            Ok(r) => {
                errors.reset();
                let max_sleep = sleep_cap(config.max_sleep, r.horizon);
                if r.fired > 0 || r.scheduled > 0 {
                    tracing::debug!(fired = r.fired, scheduled = r.scheduled, "timers fired");
                }
                match r.next {
                    // Something is due that nobody could take: another maestro holds it.
                    Some(secs) if secs <= 0.0 && r.fired == 0 && r.scheduled == 0 => {
                        (busy.next(), true)
                    }
                    Some(secs) => {
                        busy.reset();
                        let wait = Duration::from_secs_f64(secs.max(0.0));
                        (wait.min(max_sleep), wait <= max_sleep)
                    }
                    None => {
                        busy.reset();
                        (max_sleep, false)
                    }
                }
            }
            Err(e) => {
                metrics.db_errors.inc();
                let wait = errors.next();
                tracing::warn!(error = %e, retry_in = ?wait, "timer loop: a database call failed");
                (wait, false)
            }
        };
        let deadline = Instant::now() + wait;
        due = for_due.then_some(deadline);
        match wait_until(deadline, &mut events, &mut stop).await {
            // A notification brought the deadline forward: something is due then.
            Wake::Due(at) if at < deadline => due = Some(at),
            Wake::Due(_) => {}
            Wake::Reconnected => {
                state.recover = true;
                due = None;
            }
            Wake::Stop => return,
        }
    }
}

/// One round: recovery when asked, every due timeout, every due schedule, the next due time.
async fn round(
    pool: &Pool,
    metrics: &Metrics,
    config: &Config,
    state: &mut LoopState,
    due: &mut Option<Instant>,
    stop: &watch::Receiver<bool>,
) -> Result<Round, Error> {
    let object = pool.get().await?;
    let client: &tokio_postgres::Client = &object;
    if state.recover {
        apply_settings(client, config).await?;
        state.has_horizon = client
            .query_one(
                "select to_regprocedure('jobcenter.timer_horizon()') is not null",
                &[],
            )
            .await?
            .try_get(0)?;
        let started = Instant::now();
        let n = jc_db::do_crash_recovery(client).await?;
        metrics.call(Call::DoCrashRecovery, started.elapsed());
        metrics.recovered.inc_by(n as u64);
        if n > 0 {
            tracing::info!(jobs = n, "crash recovery drove jobs on");
        }
        state.recover = false;
    }
    if let Some(at) = due.take() {
        metrics
            .wake_lateness
            .observe(Instant::now().saturating_duration_since(at).as_secs_f64());
    }
    let mut fired = 0;
    loop {
        let started = Instant::now();
        let n = jc_db::do_timeout(client).await?;
        metrics.call(Call::DoTimeout, started.elapsed());
        metrics.timers_fired.inc_by(n as u64);
        fired += n;
        if n < TIMEOUT_BATCH || *stop.borrow() {
            break;
        }
    }
    let started = Instant::now();
    let scheduled = jc_db::do_schedules(client).await?;
    metrics.call(Call::DoSchedules, started.elapsed());
    metrics.schedule_runs.inc_by(scheduled as u64);
    let row = client
        .query_one(
            if state.has_horizon {
                "select jobcenter.next_timeout(), jobcenter.next_schedule(), \
                 jobcenter.timer_horizon()"
            } else {
                "select jobcenter.next_timeout(), jobcenter.next_schedule(), \
                 null::float8"
            },
            &[],
        )
        .await?;
    let timeout: Option<f64> = row.try_get(0)?;
    let schedule: Option<f64> = row.try_get(1)?;
    let horizon: Option<f64> = row.try_get(2)?;
    let next = match (timeout, schedule) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Round {
        fired,
        scheduled,
        next,
        horizon,
    })
}

/// The longest the timer loop may sleep: `max_sleep`, or the engine's timer horizon when that
/// is shorter (a timeout due beyond the horizon is not notified, so a longer sleep could miss
/// it). A horizon that is no positive number of seconds is ignored.
fn sleep_cap(max_sleep: Duration, horizon: Option<f64>) -> Duration {
    match horizon {
        Some(h) if h.is_finite() && h > 0.0 => max_sleep.min(Duration::from_secs_f64(h)),
        _ => max_sleep,
    }
}

/// Writes the settings the configuration gives to `jobcenter.settings`.
async fn apply_settings(client: &tokio_postgres::Client, config: &Config) -> Result<(), Error> {
    let upsert = "insert into jobcenter.settings (name, value) values ($1, to_jsonb($2::text)) \
                  on conflict (name) do update set value = excluded.value";
    if let Some(policy) = &config.dead_worker_policy {
        client
            .execute(upsert, &[&"dead_worker_policy", policy])
            .await?;
    }
    if let Some(timeout) = &config.worker_timeout {
        // Cast first, so that a bad interval fails here and not in do_worker_check.
        client
            .execute(
                "insert into jobcenter.settings (name, value) \
                 values ('worker_timeout', to_jsonb($1::text::interval::text)) \
                 on conflict (name) do update set value = excluded.value",
                &[timeout],
            )
            .await?;
    }
    Ok(())
}

/// Why [`wait_until`] returned.
#[derive(Debug)]
enum Wake {
    /// The deadline (perhaps brought forward to this time by a notification) came.
    Due(Instant),
    Reconnected,
    Stop,
}

/// The instant of a Unix time given by the database (the past is now).
fn instant_of(epoch: f64) -> Instant {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let ahead = epoch - now;
    if ahead.is_finite() && ahead > 0.0 {
        Instant::now() + Duration::from_secs_f64(ahead)
    } else {
        Instant::now()
    }
}

/// Waits for `deadline`, brought forward by nearer `timer` notifications.
async fn wait_until(
    mut deadline: Instant,
    events: &mut mpsc::UnboundedReceiver<Event>,
    stop: &mut watch::Receiver<bool>,
) -> Wake {
    let mut listening = true;
    loop {
        tokio::select! {
            _ = sleep_until(deadline) => return Wake::Due(deadline),
            event = events.recv(), if listening => match event {
                Some(Event::Timer(epoch)) => deadline = deadline.min(instant_of(epoch)),
                Some(Event::Connected) => return Wake::Reconnected,
                None => listening = false,
            },
            _ = stop.changed() => return Wake::Stop,
        }
    }
}

/// Dead workers and archival, every `maintenance_interval`.
async fn maintenance_loop(
    pool: Pool,
    mut stop: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    config: Config,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        if let Err(e) = maintain(&pool, &metrics).await {
            metrics.db_errors.inc();
            tracing::warn!(error = %e, "maintenance: a database call failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(config.maintenance_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn maintain(pool: &Pool, metrics: &Metrics) -> Result<(), Error> {
    let object = pool.get().await?;
    let client: &tokio_postgres::Client = &object;
    let started = Instant::now();
    let dead = jc_db::do_worker_check(client).await?;
    metrics.call(Call::DoWorkerCheck, started.elapsed());
    metrics.workers_disconnected.inc_by(dead as u64);
    if dead > 0 {
        tracing::info!(workers = dead, "disconnected silent workers");
    }
    let started = Instant::now();
    let archived = jc_db::do_archival_and_cleanup(client).await?;
    metrics.call(Call::DoArchivalAndCleanup, started.elapsed());
    metrics.archived.inc_by(archived as u64);
    if archived > 0 {
        tracing::info!(jobs = archived, "archived ended jobs");
    }
    Ok(())
}

/// The workers of dead gateways, every [`GATEWAY_CHECK`]: withdrawn within seconds of their
/// gateway's death, rather than at the worker check `worker_timeout` later.
async fn gateway_loop(pool: Pool, mut stop: watch::Receiver<bool>, metrics: Arc<Metrics>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match pool.get().await {
            Ok(object) => {
                let started = Instant::now();
                match jc_db::do_gateway_check(&**object).await {
                    Ok(withdrawn) => {
                        metrics.call(Call::DoGatewayCheck, started.elapsed());
                        metrics.workers_withdrawn.inc_by(withdrawn as u64);
                        if withdrawn > 0 {
                            tracing::info!(
                                workers = withdrawn,
                                "withdrew the workers of dead gateways"
                            );
                        }
                    }
                    Err(e) => {
                        metrics.db_errors.inc();
                        tracing::warn!(error = %e, "gateway check: a database call failed");
                    }
                }
            }
            Err(e) => {
                metrics.db_errors.inc();
                tracing::warn!(error = %e, "gateway check: no database connection");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(GATEWAY_CHECK) => {}
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sleep_is_capped_by_a_shorter_horizon_only() {
        let minute = Duration::from_secs(60);
        assert_eq!(sleep_cap(minute, None), minute);
        assert_eq!(sleep_cap(minute, Some(5.0)), Duration::from_secs(5));
        assert_eq!(sleep_cap(minute, Some(600.0)), minute);
        assert_eq!(sleep_cap(minute, Some(0.0)), minute);
        assert_eq!(sleep_cap(minute, Some(f64::NAN)), minute);
    }
}
