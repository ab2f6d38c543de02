//! Group commit of `create_job` calls.
//!
//! Every `create_job` without a `key` goes to one queue. The create loop takes the first and,
//! while another batch is in the database, waits `create_job_window` for more (or until
//! [`MAX_BATCH`] are there; with none in the database it sends at once), then makes them all
//! in one transaction and one round trip (`jc_db::pooled::create_jobs`); at most
//! [`IN_FLIGHT`] batches are in the database at once, and creates arriving meanwhile join the
//! next batch. Why: a job's creation notifies its first task's action (`action:<id>:ready`),
//! and PostgreSQL serialises the commits of notifying transactions (each holds its
//! notification lock until its commit is flushed), so creates committed one by one queue
//! there; a batch takes one turn. Should one create of a batch be refused, the batch is made
//! again one create per transaction, so a create's error is its own (as alone). A create
//! with a `key` goes alone, a batch of one made at once and outside the loop: it may wait on
//! the key's row for another create of the same key, which must not hold up, or deadlock, a
//! batch.

use std::sync::Arc;

use jc_proto::{ErrorKind, ErrorObject};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::group::{ask, refuse_all, stopping, Gather, Reply};
use crate::metrics::Metrics;
use crate::server::Shared;

/// The most creates in one transaction.
const MAX_BATCH: usize = 100;
/// Batches in the database at once: one committing while the next one runs its creates.
const IN_FLIGHT: usize = 2;

/// What became of one create: the new job's id, or the error to answer with.
pub(crate) type Outcome = Result<i64, ErrorObject>;

/// A `create_job` of a gateway user.
#[derive(Debug)]
pub(crate) struct Call {
    pub wfname: String,
    pub args: Value,
    pub tag: Option<String>,
    /// The gateway user the job is created for (impersonated).
    pub who: String,
    pub env: Option<Value>,
    pub key: Option<String>,
    pub priority: Option<i32>,
}

/// One `create_job` on its way to the database.
#[derive(Debug)]
pub(crate) struct Create {
    call: Call,
    reply: Reply<i64>,
}

/// Makes the job `call` asks for: with the creates arriving meanwhile (the create loop's
/// batch), or alone when it has a key (see the module docs).
pub(crate) async fn create(shared: &Shared, call: Call) -> Outcome {
    if call.key.is_none() {
        return ask(&shared.creates, |reply| Create { call, reply }).await;
    }
    let (reply, answer) = oneshot::channel();
    make(shared, vec![Create { call, reply }]).await;
    answer.await.unwrap_or_else(|_| Err(stopping()))
}

/// The create loop; see the module docs. It ends when every sender is gone.
pub(crate) async fn create_loop(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Create>) {
    Gather::new(shared.config.create_job_window, MAX_BATCH, IN_FLIGHT)
        .serve(rx, |batch| {
            let shared = shared.clone();
            async move { make(&shared, batch).await }
        })
        .await;
}

/// Makes a batch and answers every create of it.
async fn make(shared: &Shared, batch: Vec<Create>) {
    let db = match shared.db().await {
        Ok(db) => db,
        Err(e) => return refuse_all(batch.into_iter().map(|c| c.reply), &e),
    };
    fn opts(c: &Call) -> jc_db::CreateJob<'_> {
        jc_db::CreateJob {
            tag: c.tag.as_deref(),
            impersonate: Some(c.who.as_str()),
            env: c.env.as_ref(),
            start_at: None,
            key: c.key.as_deref(),
            priority: c.priority,
            // the client is told of the job's end (job_done), through job:finished
            quiet: false,
        }
    }
    Metrics::inc(&shared.metrics.create_job_batches);
    let jobs: Vec<_> = batch
        .iter()
        .map(|c| (c.call.wfname.as_str(), &c.call.args, opts(&c.call)))
        .collect();
    match jc_db::pooled::create_jobs(&db, &jobs).await {
        Ok(made) if made.len() == batch.len() => {
            for (c, m) in batch.into_iter().zip(made) {
                let outcome = match m {
                    Ok(job) => {
                        Metrics::inc(&shared.metrics.jobs_created);
                        tracing::debug!(job_id = job.job_id, wfname = %c.call.wfname,
                            who = %c.call.who, "job created");
                        Ok(job.job_id)
                    }
                    Err(e) => Err(shared.db_error(e)),
                };
                let _ = c.reply.send(outcome);
            }
        }
        Ok(made) => {
            let why = format!("{} creates answered {} times", batch.len(), made.len());
            let e = ErrorObject::new(ErrorKind::InternalError, why);
            refuse_all(batch.into_iter().map(|c| c.reply), &e);
        }
        Err(e) => refuse_all(batch.into_iter().map(|c| c.reply), &shared.db_error(e)),
    }
}
