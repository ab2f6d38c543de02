//! Group commit of the workers' results, and their survival across a database outage.
//!
//! Every `task_done` (a notification) and every result of a `tasks_done` goes to one queue.
//! The commit loop takes the first result and, while another batch is in the database, waits
//! `task_done_window` for more (or until [`MAX_BATCH`] are there; with none in the database
//! it sends at once), then finishes them all with one `jobcenter.tasks_done` call (which
//! finishes together what it can and each other result in a subtransaction of its own, so
//! one result's error is its own); at most [`IN_FLIGHT`] batches are in the database at once,
//! and results arriving meanwhile join the next batch. A result is then answered on its own:
//! applied, or refused with the engine's error (an unknown cookie: `JC003`). Results that
//! lost a deadlock or a serialization conflict (`40P01`, `40001`) go again, up to
//! [`MAX_CONFLICTS`] times. When a connection here waits for the job of a result (`create_job`
//! with `wait`, `get_job_status` with `notify`), the batch's transaction also reads the outputs
//! of those jobs, and the ones the batch ended are sent their `job_done` once it commits, with
//! no `job:finished` round trip and no second read (the end loop's).
//!
//! A batch that cannot reach the database (no connection, the connection closed, PostgreSQL
//! restarting) is kept and sent again with back-off until the database answers: a result is
//! lost to no outage. Sending one again is harmless, since a cookie finishes its task once:
//! a batch applied just before its connection broke is answered `JC003` the second time,
//! which means the same to the worker (its task is no longer its own). Until its result is
//! answered a task keeps its worker's slot ([`crate::dispatch::Dispatch::done`]), and a
//! connection that closes waits for its results before the gateway disconnects its worker
//! ([`Pending::idle`]), so the engine never fails a task whose result is on its way.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jc_proto::{ErrorKind, ErrorObject};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;

use crate::group::Gather;
use crate::metrics::Metrics;
use crate::server::{check_jobs, deliver, lock, Shared};

/// The most results in one `tasks_done` call (the engine takes up to 1000).
pub(crate) const MAX_BATCH: usize = 1000;
/// Batches in the database at once.
const IN_FLIGHT: usize = 4;
/// How often a result that lost a deadlock is sent again before it is refused.
const MAX_CONFLICTS: u32 = 10;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The results of one connection that are not yet answered.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    count: AtomicUsize,
    drained: Notify,
}

impl Pending {
    fn add(self: &Arc<Self>) -> PendingGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        PendingGuard(self.clone())
    }

    /// How many results of the connection are on their way.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Returns once every result of the connection is answered.
    pub async fn idle(&self) {
        loop {
            let drained = self.drained.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            drained.await;
        }
    }
}

/// Counts one result as pending until it is dropped (answered, or given up at shutdown).
#[derive(Debug)]
struct PendingGuard(Arc<Pending>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// What became of one result: `Ok` when the engine applied it.
pub(crate) type Outcome = Result<(), ErrorObject>;

/// One result on its way to the database.
#[derive(Debug)]
pub(crate) struct Done {
    cookie: String,
    outargs: Value,
    reply: Option<oneshot::Sender<Outcome>>,
    conflicts: u32,
    _pending: PendingGuard,
}

impl Done {
    /// A result of a connection whose results `pending` counts; `reply` is told the outcome
    /// (none for the `task_done` notification, which is not answered).
    pub fn new(
        cookie: String,
        outargs: Value,
        pending: &Arc<Pending>,
        reply: Option<oneshot::Sender<Outcome>>,
    ) -> Done {
        Done {
            cookie,
            outargs,
            reply,
            conflicts: 0,
            _pending: pending.add(),
        }
    }
}

/// The commit loop; see the module docs. It ends when every sender is gone.
pub(crate) async fn commit_loop(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Done>) {
    Gather::new(shared.config.task_done_window, MAX_BATCH, IN_FLIGHT)
        .serve(rx, |batch| {
            let shared = shared.clone();
            async move { flush(&shared, batch).await }
        })
        .await;
}

/// Whether a failed call may succeed when sent again: the database was unreachable, the
/// connection broke, the server is shutting down or starting, or it has no room.
pub(crate) fn transient(e: &jc_db::Error) -> bool {
    let jc_db::Error::Postgres(pg) = e else {
        return false;
    };
    match pg.code() {
        None => true,
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P") || matches!(c, "53300" | "40001" | "40P01")
        }
    }
}

/// Finishes a batch: sends it until the database answers, then answers every result.
async fn flush(shared: &Shared, mut batch: Vec<Done>) {
    let mut backoff = BACKOFF_FIRST;
    let mut outage: Option<Instant> = None;
    while !batch.is_empty() {
        let pairs: Vec<(&str, &Value)> = batch
            .iter()
            .map(|d| (d.cookie.as_str(), &d.outargs))
            .collect();
        Metrics::inc(&shared.metrics.task_done_batches);
        let waited = waited_jobs(shared, &batch);
        tracing::debug!(results = batch.len(), waited = waited.len(), "group commit");
        let answered = match shared.pool.get().await {
            Ok(db) if waited.is_empty() => jc_db::pooled::tasks_done(&db, &pairs)
                .await
                .map_err(|e| (transient(&e), e.to_string(), Some(e))),
            Ok(db) => jc_db::pooled::tasks_done_reading_ends(&db, &pairs, &waited)
                .await
                .map(|d| {
                    deliver_ends(shared, d.ends);
                    d.outcomes
                })
                .map_err(|e| (transient(&e), e.to_string(), Some(e))),
            Err(e) => Err((!shared.pool.is_closed(), e.to_string(), None)),
        };
        let heard = lock(&shared.waiters).done_reading(&waited);
        if !heard.is_empty() {
            // ended otherwise (or the read failed): read as job:finished would have
            check_jobs(shared, heard);
        }
        let outcomes = match answered {
            Ok(outcomes) if outcomes.len() == batch.len() => outcomes,
            Ok(outcomes) => {
                let why = format!(
                    "tasks_done answered {} of {} results",
                    outcomes.len(),
                    batch.len()
                );
                refuse_all(
                    shared,
                    batch,
                    ErrorObject::new(ErrorKind::InternalError, why),
                );
                return;
            }
            Err((true, why, _)) => {
                Metrics::inc(&shared.metrics.db_errors);
                if outage.is_none() {
                    tracing::warn!(results = batch.len(), error = %why,
                        "tasks_done cannot reach the database: keeping the results");
                    outage = Some(Instant::now());
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err((false, why, e)) => {
                let e = match e {
                    Some(e) => shared.db_error(e),
                    None => ErrorObject::new(ErrorKind::InternalError, why),
                };
                refuse_all(shared, batch, e);
                return;
            }
        };
        if let Some(since) = outage.take() {
            tracing::info!(results = batch.len(), after = ?since.elapsed(),
                "tasks_done reached the database again");
        }
        backoff = BACKOFF_FIRST;
        let mut again = Vec::new();
        for (mut d, o) in batch.drain(..).zip(outcomes) {
            if o.retryable() && d.conflicts < MAX_CONFLICTS {
                d.conflicts += 1;
                Metrics::inc(&shared.metrics.task_done_conflicts);
                again.push(d);
                continue;
            }
            let outcome = match o.code {
                None => Ok(()),
                Some(code) => Err(refusal(&code, o.message.unwrap_or_default())),
            };
            finish(shared, d, outcome);
        }
        batch = again;
    }
}

/// The batch committed: the waiters of the jobs it ended are told at once. Should their
/// read have failed, their `job:finished` tells them instead.
fn deliver_ends(shared: &Shared, ends: Result<Vec<(i64, Value)>, jc_db::Error>) {
    match ends {
        Ok(ends) => {
            for (job_id, outargs) in ends {
                Metrics::inc(&shared.metrics.ends_at_commit);
                deliver(shared, job_id, outargs);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not read the ends of finished tasks"),
    }
}

/// The jobs of `batch`'s tasks that a connection here waits for, marked as read by this
/// batch (a `job:finished` meanwhile leaves them to it).
fn waited_jobs(shared: &Shared, batch: &[Done]) -> Vec<i64> {
    let jobs: Vec<i64> = {
        let dispatch = lock(&shared.dispatch);
        batch
            .iter()
            .filter_map(|d| dispatch.job_of(&d.cookie))
            .collect()
    };
    lock(&shared.waiters).start_reading(jobs)
}

fn refuse_all(shared: &Shared, batch: Vec<Done>, e: ErrorObject) {
    for d in batch {
        finish(shared, d, Err(e.clone()));
    }
}

/// The engine's refusal of one result as the error its worker is answered.
fn refusal(sqlstate: &str, message: String) -> ErrorObject {
    let kind = ErrorKind::from_sqlstate(sqlstate).unwrap_or(ErrorKind::InternalError);
    ErrorObject::new(kind, message).with_data(serde_json::json!({ "sqlstate": sqlstate }))
}

fn finish(shared: &Shared, d: Done, outcome: Outcome) {
    // The message names the cookie, which is never logged.
    if let Err(e) = &outcome {
        tracing::info!(code = e.code, "task_done refused");
    }
    lock(&shared.dispatch).done(&d.cookie, Instant::now());
    if let Some(reply) = d.reply {
        let _ = reply.send(outcome);
    }
}
