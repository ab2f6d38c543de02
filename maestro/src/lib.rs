//! The maestro: the daemon that drives what needs a clock or a crash.
//!
//! Steps that need no worker run inline in the procedures that make them reachable; what is
//! left needs time to pass or a process to die, and that is the maestro's:
//!
//! - **Timers**: it sleeps until the earliest `jobs.timeout` or schedule run (at most
//!   `max_sleep`, and at most the engine's `timer_horizon()`: a timeout due further off is not
//!   notified), re-armed by `timer` notifications (payload: the due time as a Unix epoch) when
//!   a nearer one appears, then calls `do_timeout()` (again while it returns its batch limit)
//!   and `do_schedules()`.
//! - **Maintenance**, every `maintenance_interval`: `do_worker_check()` (dead workers) and
//!   `do_archival_and_cleanup()`.
//! - **Gateways**, every second: `do_gateway_check()` withdraws the workers of a gateway
//!   (jcapi) whose lock has been free for `gateway_timeout`, and applies the dead-worker
//!   policy to their tasks after `worker_grace`.
//! - **Recovery**: `do_crash_recovery()` at start and after every reconnection.
//!
//! NOTIFY is a hint: after every (re)connection of its LISTEN connection it re-reads the
//! state. Every procedure it calls takes its rows with `SKIP LOCKED`, so several maestros
//! may run against one database. [`run`] returns once `shutdown` completes, after finishing
//! the call in flight.

mod config;
mod daemon;
mod error;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

pub use config::{redact, Config, Layer, LogFormat, ENV_VARS};
pub use error::Error;
pub use metrics::Metrics;

/// Runs the maestro until `shutdown` completes. Database outages are waited out (with
/// back-off), not returned; errors are only those of the set-up (a bad connection string,
/// a metrics address that cannot be bound).
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    run_with(config, shutdown, Arc::new(Metrics::default()), |_| {}).await
}

/// [`run`] with the caller's metrics, and `on_metrics` told the address `/metrics` is served
/// on (useful with port 0).
pub async fn run_with(
    config: Config,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
    on_metrics: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    daemon::run(config, shutdown, metrics, on_metrics).await
}
