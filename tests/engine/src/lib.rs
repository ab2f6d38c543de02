//! Helpers for the engine tests: a database with the extension, loading models, a worker
//! that answers by hand, the step log and a notification listener.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

pub use jc_db as db;
pub use testkit::{examples, flow};

/// Short names for the expressions and statements the tests' models are made of.
pub mod expr {
    use jcl::build::{assign, bin, path, var};
    use jcl::{AssignOp, BinOp, Expr, Ns, Path, Stmt};

    /// `a.<keys>`: a workflow argument.
    pub fn a(keys: &[&str]) -> Expr {
        var(Ns::A, keys)
    }
    /// `v.<keys>`: a workflow variable.
    pub fn v(keys: &[&str]) -> Expr {
        var(Ns::V, keys)
    }
    /// `o.<keys>`: an output of the called action.
    pub fn o(keys: &[&str]) -> Expr {
        var(Ns::O, keys)
    }
    /// `e.<keys>`: the environment.
    pub fn e(keys: &[&str]) -> Expr {
        var(Ns::E, keys)
    }
    /// The target `v.<keys>`.
    pub fn vp(keys: &[&str]) -> Path {
        path(Ns::V, keys)
    }
    /// The target `i.<keys>` (an input of the called action).
    pub fn ip(keys: &[&str]) -> Path {
        path(Ns::I, keys)
    }
    /// The target `o.<keys>` (an output of the workflow).
    pub fn op(keys: &[&str]) -> Path {
        path(Ns::O, keys)
    }
    /// `l . r`.
    pub fn cat(l: Expr, r: Expr) -> Expr {
        bin(BinOp::Concat, l, r)
    }
    /// `target <<= value`.
    pub fn push(target: Path, value: Expr) -> Stmt {
        assign(target, AssignOp::Push, value)
    }
}

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

/// Creates a job of `wf` with `args`; returns its id.
pub async fn create(c: &Client, wf: &str, args: Value) -> i64 {
    db::create_job(c, wf, &args, Default::default())
        .await
        .unwrap_or_else(|e| panic!("create_job {wf}: {e}"))
        .job_id
}

/// Creates `n` jobs of `calltest` with inputs 0 .. n - 1; returns their ids in order.
pub async fn create_calltests(c: &Client, n: i64) -> Vec<i64> {
    let mut out = vec![];
    for i in 0..n {
        out.push(create(c, "calltest", serde_json::json!({"input": i})).await);
    }
    out
}

/// How many jobs are in `state`.
pub async fn jobs_in(c: &Client, state: &str) -> i64 {
    c.query_one(
        "select count(*) from jobcenter.jobs where state::text = $1",
        &[&state],
    )
    .await
    .expect("count jobs")
    .get(0)
}

/// What poll_tasks offers worker `w`: the count of its one row, 0 when there is none.
pub async fn polled(c: &Client, w: i64) -> i64 {
    c.query_opt(
        "select count from jobcenter.poll_tasks(array[$1::bigint])",
        &[&w],
    )
    .await
    .expect("poll_tasks")
    .map_or(0, |r| r.get(0))
}

/// The output of an ended job (panics while it runs).
pub async fn output(c: &Client, job: i64) -> Value {
    db::get_job_status(c, job)
        .await
        .expect("get_job_status")
        .unwrap_or_else(|| panic!("job {job} has not ended"))
}

/// The engine's error code of a call that must fail.
pub fn code_of<T: std::fmt::Debug>(r: Result<T, db::Error>) -> db::ErrorCode {
    let e = r.expect_err("the call should fail");
    e.code()
        .unwrap_or_else(|| panic!("not an engine error: {e}"))
}

/// The id of the newest version of the action or workflow `name`.
pub async fn action_id(c: &Client, name: &str) -> i32 {
    c.query_one(
        "select action_id from jobcenter.actions where name = $1 order by version desc limit 1",
        &[&name],
    )
    .await
    .expect("action id")
    .get(0)
}

/// The children of a job, oldest first.
pub async fn children(c: &Client, parent: i64) -> Vec<i64> {
    c.query(
        "select job_id from jobcenter.jobs where parentjob_id = $1 order by job_id",
        &[&parent],
    )
    .await
    .expect("children")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// The one child of a job (panics unless there is exactly one).
pub async fn only_child(c: &Client, parent: i64) -> i64 {
    let kids = children(c, parent).await;
    assert_eq!(kids.len(), 1, "children of job {parent}: {kids:?}");
    kids[0]
}

/// Makes the job's timeout due now, so the next do_timeout fires it.
pub async fn make_due(c: &Client, job_id: i64) {
    c.execute(
        "update jobcenter.jobs set timeout = now() where job_id = $1",
        &[&job_id],
    )
    .await
    .expect("make due");
}

/// Seconds from now to the job's timeout, and the timeout as a Unix epoch.
pub async fn timeout_of(c: &Client, job: i64) -> (f64, f64) {
    let r = c
        .query_one(
            "select extract(epoch from timeout - now())::float8, \
             extract(epoch from timeout)::float8 from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .expect("timeout");
    (r.get(0), r.get(1))
}

/// Takes the task of `action` of one given job (as worker `w`) and finishes it with
/// `f(inargs)`; returns the inputs.
pub async fn work_job(
    c: &Client,
    action: &str,
    job: i64,
    f: impl FnOnce(&Value) -> Value,
) -> Value {
    db::announce(c, "w", action, None, None)
        .await
        .expect("announce");
    let t = db::get_task(c, "w", action, Some(job))
        .await
        .expect("get_task")
        .unwrap_or_else(|| panic!("no ready {action} task for job {job}"));
    db::task_done(c, &t.cookie, &f(&t.inargs))
        .await
        .expect("task_done");
    t.inargs
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
    db::task_done(c, &task.cookie, &out)
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

/// `\df jobcenter.<name>`: (arguments, result) of every function of that name.
pub async fn df(c: &Client, name: &str) -> Vec<(String, String)> {
    c.query(
        "select pg_get_function_arguments(p.oid), pg_get_function_result(p.oid)
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         where n.nspname = 'jobcenter' and p.proname = $1 order by 1",
        &[&name],
    )
    .await
    .expect("df")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
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
