//! Helpers for the engine tests: a database with the extension, loading models, a worker
//! that answers by hand, the step log and a notification listener.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

pub use jc_db as db;
pub use testkit::flow;

/// A fresh database with the extension, and a client on it.
pub async fn setup() -> (testkit::TestDb, Client) {
    let db = testkit::Cluster::shared()
        .await
        .expect("cluster")
        .new_db()
        .await
        .expect("database");
    let client = db.connect().await.expect("connect");
    (db, client)
}

/// Loads models in order.
pub async fn load(c: &Client, models: &[jcl::Model]) {
    for m in models {
        db::load_model(c, m, &[])
            .await
            .unwrap_or_else(|e| panic!("loading {}: {e}", m.name));
    }
}

/// Takes one task of `action` as `worker` (announcing first) and finishes it with `f(inargs)`.
/// Returns the task's job id and inputs.
pub async fn work_one(
    c: &Client,
    worker: &str,
    action: &str,
    f: impl FnOnce(&Value) -> Value,
) -> (i64, Value) {
    db::announce(c, worker, action, None, None)
        .await
        .expect("announce");
    let task = db::get_task(c, worker, action, None)
        .await
        .expect("get_task")
        .unwrap_or_else(|| panic!("no ready task of {action}"));
    let out = f(&task.inargs);
    db::task_done(c, task.cookie, &out)
        .await
        .expect("task_done");
    (task.job_id, task.inargs)
}

/// The job's state.
pub async fn state(c: &Client, job_id: i64) -> String {
    c.query_one(
        "select state::text from jobcenter.jobs where job_id = $1",
        &[&job_id],
    )
    .await
    .expect("job state")
    .get(0)
}

/// The states logged for a job, in order, as `action:state` (e.g. `start:done`).
pub async fn log_states(c: &Client, job_id: i64) -> Vec<String> {
    c.query(
        "select a.name || ':' || l.state::text from jobcenter.job_task_log l \
         join jobcenter.tasks t using (task_id) join jobcenter.actions a on a.action_id = t.action_id \
         where l.job_id = $1 order by l.job_task_log_id",
        &[&job_id],
    )
    .await
    .expect("log")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The row count of a table, to assert that bad input changed nothing.
pub async fn count(c: &Client, table: &str) -> i64 {
    c.query_one(&format!("select count(*) from jobcenter.{table}"), &[])
        .await
        .expect("count")
        .get(0)
}

/// A connection that LISTENs on channels and collects (channel, payload) pairs.
#[derive(Debug)]
pub struct Listener {
    client: Client,
    rx: mpsc::UnboundedReceiver<(String, String)>,
}

impl Listener {
    pub async fn new(db: &testkit::TestDb, channels: &[&str]) -> Listener {
        let (client, mut conn) = tokio_postgres::connect(&db.dsn, NoTls)
            .await
            .expect("listener connect");
        let (tx, rx) = mpsc::unbounded_channel();
        let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        tokio::spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                if let AsyncMessage::Notification(n) = msg {
                    let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
                }
            }
        });
        for ch in channels {
            client
                .batch_execute(&format!("LISTEN \"{ch}\""))
                .await
                .expect("listen");
        }
        Listener { client, rx }
    }

    /// The next notification, waiting up to 5 s.
    pub async fn next(&mut self) -> Option<(String, String)> {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// Every notification that arrives within `wait`.
    pub async fn drain(&mut self, wait: Duration) -> Vec<(String, String)> {
        let mut out = vec![];
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(Some(n)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            out.push(n);
        }
        let _ = &self.client;
        out
    }
}
