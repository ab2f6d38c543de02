//! Group commit of the workers' takes (`get_task`, `get_tasks`).
//!
//! Every take goes to one queue; the take loop gathers them as the other group commits do
//! (`crate::group`: a take goes at once unless a batch is in the database, then waits up
//! to `get_task_window` for company) and makes each batch in one transaction and one round
//! trip (`jc_db::pooled::takes`), so takes of different workers that arrive together share
//! one commit flush. A take refused there (a worker the engine no longer knows) makes the
//! batch go again one take per transaction, so its error is its own. The dispatcher's
//! bookkeeping (offers, claims, slots) is the connection's, before and after, as for a take
//! of its own.

use std::sync::Arc;

use jc_proto::{ErrorKind, ErrorObject};
use tokio::sync::mpsc;

use crate::group::{ask, refuse_all, Gather, Reply};
use crate::metrics::Metrics;
use crate::server::Shared;

/// The most takes in one transaction.
const MAX_BATCH: usize = 100;
/// Batches in the database at once: one committing while the next one takes.
const IN_FLIGHT: usize = 2;

/// What one take got: its tasks (none when there was none), or the error to answer with.
pub(crate) type Outcome = Result<Vec<jc_db::Task>, ErrorObject>;

/// One take on its way to the database.
#[derive(Debug)]
pub(crate) struct Take {
    pub worker: String,
    pub action: String,
    pub what: jc_db::TakeWhat,
    pub reply: Reply<Vec<jc_db::Task>>,
}

/// Sends a take to the take loop and waits for what it got.
pub(crate) async fn take(
    shared: &Shared,
    worker: &str,
    action: &str,
    what: jc_db::TakeWhat,
) -> Outcome {
    ask(&shared.takes, |reply| Take {
        worker: worker.to_owned(),
        action: action.to_owned(),
        what,
        reply,
    })
    .await
}

/// The take loop; see the module docs. It ends when every sender is gone.
pub(crate) async fn take_loop(shared: Arc<Shared>, rx: mpsc::UnboundedReceiver<Take>) {
    Gather::new(shared.config.get_task_window, MAX_BATCH, IN_FLIGHT)
        .serve(rx, |batch| {
            let shared = shared.clone();
            async move { make(&shared, batch).await }
        })
        .await;
}

/// Makes a batch of takes and answers every one of them.
async fn make(shared: &Shared, batch: Vec<Take>) {
    let db = match shared.db().await {
        Ok(db) => db,
        Err(e) => return refuse_all(batch.into_iter().map(|t| t.reply), &e),
    };
    Metrics::inc(&shared.metrics.take_batches);
    let takes: Vec<jc_db::Take<'_>> = batch
        .iter()
        .map(|t| jc_db::Take {
            worker: &t.worker,
            action: &t.action,
            what: t.what,
        })
        .collect();
    match jc_db::pooled::takes(&db, &takes).await {
        Ok(got) if got.len() == batch.len() => {
            for (t, g) in batch.into_iter().zip(got) {
                let _ = t.reply.send(g.map_err(|e| shared.db_error(e)));
            }
        }
        Ok(got) => {
            let why = format!("{} takes answered {} times", batch.len(), got.len());
            let e = ErrorObject::new(ErrorKind::InternalError, why);
            refuse_all(batch.into_iter().map(|t| t.reply), &e);
        }
        Err(e) => refuse_all(batch.into_iter().map(|t| t.reply), &shared.db_error(e)),
    }
}
