//! Helpers for the tests of the real `maestro` binary: start it on a test database, stop it
//! with a signal, read its JSON log and its `/metrics`, and wait for jobs.
#![allow(dead_code, clippy::unwrap_used)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jcl::build::{path, set, var};
use jcl::Ns;
use serde_json::Value;
use tokio_postgres::Client;

pub use jc_db as db;
pub use testkit::flow;

static NEXT_LOG: AtomicU64 = AtomicU64::new(0);

/// A running maestro process; killed when dropped.
#[derive(Debug)]
pub struct Maestro {
    pub child: Child,
    pub log: PathBuf,
}

impl Maestro {
    /// Starts the binary on `dsn` with JSON logs and `/metrics` on a free port, plus `args`.
    pub fn start(dsn: &str, args: &[&str]) -> Maestro {
        let log = std::env::temp_dir().join(format!(
            "maestro-test-{}-{}.log",
            std::process::id(),
            NEXT_LOG.fetch_add(1, Ordering::Relaxed)
        ));
        let file = File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_maestro"))
            .args(["--log-format", "json", "--metrics", "127.0.0.1:0"])
            .args(args)
            .env("JC_DSN", dsn)
            .env("JC_LOG_LEVEL", "maestro=debug,info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        Maestro { child, log }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log lines (JSON objects) whose message is `msg`.
    pub fn logged(&self, msg: &str) -> Vec<Value> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["fields"]["message"] == msg)
            .collect()
    }

    /// The address `/metrics` is served on, once the maestro has said so.
    pub async fn metrics_addr(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.logged("serving /metrics").first() {
                return line["fields"]["addr"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no metrics address:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The body of GET /metrics.
    pub async fn metrics(&self) -> String {
        let addr = self.metrics_addr().await;
        tokio::task::spawn_blocking(move || {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    }

    /// The value of an unlabelled metric line `name value`.
    pub async fn metric(&self, name: &str) -> f64 {
        let body = self.metrics().await;
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in\n{body}"))
            .parse()
            .unwrap()
    }

    /// Sends SIGTERM (or another signal) and waits up to 10 s for the exit.
    pub async fn signal(mut self, sig: rustix::process::Signal) -> ExitStatus {
        rustix::process::kill_process(rustix::process::Pid::from_child(&self.child), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "did not exit:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// kill -9.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Maestro {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- maestro log {} ---\n{}", self.log.display(), self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A fresh database with the extension on the shared cluster, and a client on it.
pub async fn setup() -> (testkit::TestDb, Client) {
    let db = testkit::Cluster::shared()
        .await
        .unwrap()
        .new_db()
        .await
        .unwrap();
    let client = db.connect().await.unwrap();
    (db, client)
}

/// Loads models in order.
pub async fn load(c: &Client, models: &[jcl::Model]) {
    for m in models {
        db::load_model(c, m, &[]).await.unwrap();
    }
}

/// `sleeper(t)`: sleeps `t` seconds, returns `t`.
pub fn sleeper() -> jcl::Model {
    let mut f = flow::Flow::workflow("sleeper")
        .input("t", "number")
        .output("t", "number");
    f.system(
        jcl::SystemAction::Sleep,
        vec![set(path(Ns::I, &["timeout"]), var(Ns::A, &["t"]))],
    );
    f.end(vec![set(path(Ns::O, &["t"]), var(Ns::A, &["t"]))])
}

/// Waits until `n` maestros are LISTENing on the database.
pub async fn wait_listening(c: &Client, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let listening: i64 = c
            .query_one(
                "select count(*) from pg_stat_activity where datname = current_database() \
                 and application_name = 'maestro' and query = 'LISTEN timer'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if listening >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{listening} of {n} maestros listening"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the job has ended; returns its output.
pub async fn wait_job(c: &Client, job_id: i64, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some(out) = db::get_job_status(c, job_id).await.unwrap() {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "job {job_id} did not end in {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until no job is live (all finished or in error), up to `within`.
pub async fn wait_all_ended(c: &Client, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let live: i64 = c
            .query_one(
                "select count(*) from jobcenter.jobs where state not in ('finished', 'error')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if live == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{live} jobs still live after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Per job, how many job_task_log rows have `state` (every job of the database).
pub async fn log_counts(c: &Client, state: &str) -> Vec<(i64, i64)> {
    c.query(
        "select j.job_id, count(l.job_id) from jobcenter.jobs j \
         left join jobcenter.job_task_log l on l.job_id = j.job_id and l.state::text = $1 \
         group by j.job_id order by j.job_id",
        &[&state],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}
