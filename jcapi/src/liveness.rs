//! The gateway's registration in the engine and the lock that tells the maestro it lives.
//!
//! On a connection of its own the gateway registers (`jobcenter.gateway_register`) and so
//! holds its session-level advisory lock for as long as that connection lives; workers
//! announced through it record its id. When the gateway dies the lock goes with its session
//! and the maestro withdraws its workers within seconds (`do_gateway_check`). When the
//! connection breaks (a PostgreSQL restart frees every lock) the loop reconnects at once and
//! takes the lock again under the same id, well within `gateway_timeout`, so the maestro
//! leaves a live gateway's workers alone. Should the maestro have found it dead all the same
//! (the database was out of reach longer than that), the registration starts a new gateway
//! and every worker connection is closed: its workers reconnect and announce again, and the
//! tasks they hold are still theirs for `worker_grace`. Workers announced before the first
//! registration (the database away at the start) are attached once it succeeds.

use std::sync::Arc;
use std::time::Duration;

use crate::metrics::Metrics;
use crate::server::{lock, Shared};

const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// Short, so the lock is back soon after the database is: the maestro waits only
/// `gateway_timeout` (5 s) for it.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Keeps the gateway registered and its lock held; see the module docs.
pub(crate) async fn gateway_loop(shared: Arc<Shared>, pg: jc_db::Pg, name: String) {
    let mut stop = shared.stop.clone();
    let mut backoff = BACKOFF_FIRST;
    let mut id: Option<i32> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        match pg.connect().await {
            Ok((client, connection)) => {
                let mut driver = tokio::spawn(connection);
                match jc_db::gateway_register(&client, id, &name).await {
                    Ok((gateway, new)) => {
                        if new {
                            tracing::warn!(
                                was = id,
                                gateway,
                                "the gateway was found dead while away: its workers reconnect"
                            );
                            shared.rejoin.send_modify(|n| *n += 1);
                        }
                        id = Some(gateway);
                        shared.gateway.send_replace(gateway);
                        backoff = BACKOFF_FIRST;
                        tracing::info!(gateway, "gateway registered");
                        attach(&shared, &client, gateway).await;
                        tokio::select! {
                            _ = &mut driver => {
                                Metrics::inc(&shared.metrics.db_errors);
                                tracing::warn!(gateway, "the gateway's lock connection was lost; reconnecting");
                            }
                            _ = stop.changed() => {
                                driver.abort();
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        driver.abort();
                        Metrics::inc(&shared.metrics.db_errors);
                        tracing::warn!(error = %e, "gateway registration failed; retrying");
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "gateway lock connection failed; retrying"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// Attaches the workers announced before the gateway registered (the database was away at
/// its start); those that failed stay listed for the next registration.
async fn attach(shared: &Shared, client: &tokio_postgres::Client, gateway: i32) {
    let ids = std::mem::take(&mut *lock(&shared.unattached));
    for (i, worker_id) in ids.iter().enumerate() {
        if let Err(e) = jc_db::gateway_attach(client, *worker_id, gateway).await {
            tracing::warn!(error = %e, worker_id, "attaching a worker to the gateway failed");
            lock(&shared.unattached).extend_from_slice(&ids[i..]);
            return;
        }
    }
}
