//! The gathering of a group commit's batches, shared by the results (`crate::commit`), the
//! creates (`crate::create`) and the takes (`crate::take`).
//!
//! A batch starts with the first call in the queue. While another batch is in the database it
//! waits `window` for more (or until `max` are there); with none in the database it goes at
//! once, since waiting would only add the window to its latency (as PostgreSQL's
//! `commit_delay` waits only with `commit_siblings` active). It then waits for one of the
//! flights, and the calls that came meanwhile join it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use jc_proto::{ErrorKind, ErrorObject};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// At most `flights` batches in the database at once.
#[derive(Debug)]
pub(crate) struct Gather {
    window: Duration,
    max: usize,
    flights: usize,
    permits: Arc<Semaphore>,
}

impl Gather {
    pub fn new(window: Duration, max: usize, flights: usize) -> Gather {
        Gather {
            window,
            max,
            flights,
            permits: Arc::new(Semaphore::new(flights)),
        }
    }

    /// The next batch and its flight (held until the batch is answered); `None` when every
    /// sender is gone.
    pub async fn next<T>(
        &self,
        rx: &mut mpsc::UnboundedReceiver<T>,
    ) -> Option<(Vec<T>, OwnedSemaphorePermit)> {
        let first = rx.recv().await?;
        let mut batch = vec![first];
        let deadline = Instant::now() + self.window;
        let wait = !self.window.is_zero() && self.permits.available_permits() < self.flights;
        while batch.len() < self.max {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) if !wait => break,
                Err(_) => tokio::select! {
                    c = rx.recv() => match c {
                        Some(c) => batch.push(c),
                        None => break,
                    },
                    () = tokio::time::sleep_until(deadline) => break,
                },
            }
        }
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        while batch.len() < self.max {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        Some((batch, permit))
    }

    /// Gathers the batches of `rx` and makes each with `make`, on a task of its own that
    /// holds the batch's flight; ends when every sender is gone.
    pub async fn serve<T, F, Fut>(&self, mut rx: mpsc::UnboundedReceiver<T>, make: F)
    where
        F: Fn(Vec<T>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        while let Some((batch, permit)) = self.next(&mut rx).await {
            let made = make(batch);
            tokio::spawn(async move {
                made.await;
                drop(permit);
            });
        }
    }
}

/// Where a batched call is answered.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, ErrorObject>>;

/// The answer to a call whose loop is gone.
pub(crate) fn stopping() -> ErrorObject {
    ErrorObject::new(ErrorKind::InternalError, "the gateway is shutting down")
}

/// Queues the call `call` makes of its reply and waits for the answer.
pub(crate) async fn ask<C, T>(
    queue: &mpsc::UnboundedSender<C>,
    call: impl FnOnce(Reply<T>) -> C,
) -> Result<T, ErrorObject> {
    let (reply, answer) = oneshot::channel();
    if queue.send(call(reply)).is_err() {
        return Err(stopping());
    }
    answer.await.unwrap_or_else(|_| Err(stopping()))
}

/// Answers every call of a batch with error `e`.
pub(crate) fn refuse_all<T>(replies: impl IntoIterator<Item = Reply<T>>, e: &ErrorObject) {
    for r in replies {
        let _ = r.send(Err(e.clone()));
    }
}
