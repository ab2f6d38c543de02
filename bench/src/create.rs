//! `bench create`: C clients call `create_job` of `calltest`, one job per transaction,
//! N jobs in all; jobs per second. With a prefill the same database is then filled with
//! P finished jobs in `jobs_archive` and their step log (copies of a real finished job, in
//! a few large INSERT … SELECT generate_series statements) and the clients run again, so
//! the rate on an empty table and on a large one can be compared.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::conn::Conn;
use crate::sql::{self, Api};
use crate::summary::{rate, round_to};
use crate::workload::{self, ACTION, WORKFLOW};

/// Archived jobs written per statement (one transaction each) while prefilling.
const PREFILL_CHUNK: i64 = 50_000;

/// What one round of creating measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub clients: usize,
    pub jobs: usize,
    pub elapsed: Duration,
    /// Rows in `jobs`, `jobs_archive` and `job_task_log` when the round began.
    pub rows_before: (i64, i64, i64),
}

impl Outcome {
    pub fn jobs_per_s(&self) -> f64 {
        rate(self.jobs as f64, self.elapsed.as_secs_f64())
    }

    pub fn json(&self) -> Value {
        let (jobs, archive, log) = self.rows_before;
        json!({
            "clients": self.clients,
            "jobs": self.jobs,
            "elapsed_s": round_to(self.elapsed.as_secs_f64(), 3),
            "jobs_per_s": round_to(self.jobs_per_s(), 1),
            "rows_before": { "jobs": jobs, "jobs_archive": archive, "job_task_log": log },
        })
    }
}

/// Loads the workload into `db`, a fresh database with the extension.
pub async fn load(db: &testkit::TestDb) -> anyhow::Result<()> {
    workload::load(&Conn::open(&db.dsn).await?.client, None, None).await
}

/// `clients` connections create `jobs` jobs together, one per transaction; `first_input`
/// numbers the jobs' inputs (so rounds on one database stay distinguishable).
pub async fn run(
    db: &testkit::TestDb,
    clients: usize,
    jobs: usize,
    first_input: i64,
) -> anyhow::Result<Outcome> {
    let control = Conn::open(&db.dsn).await?;
    let rows_before = sql::table_rows(&control.client).await?;
    let mut prepared = Vec::with_capacity(clients);
    for _ in 0..clients {
        let conn = Conn::open(&db.dsn).await?;
        let api = Api::prepare(&conn.client).await?;
        prepared.push((conn, api));
    }
    let start = Instant::now();
    let mut running = JoinSet::new();
    for (i, (conn, api)) in prepared.into_iter().enumerate() {
        let inputs: Vec<i64> = (i..jobs)
            .step_by(clients)
            .map(|n| first_input + n as i64)
            .collect();
        running.spawn(async move {
            for input in inputs {
                api.create_job(&conn.client, WORKFLOW, &json!({ "input": input }))
                    .await
                    .with_context(|| format!("create_job({WORKFLOW}, input {input})"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.context("a client panicked")??;
    }
    let elapsed = start.elapsed();
    let (after, _, _) = sql::table_rows(&control.client).await?;
    ensure!(
        after - rows_before.0 == jobs as i64,
        "{} jobs were created, not {jobs}",
        after - rows_before.0
    );
    Ok(Outcome {
        clients,
        jobs,
        elapsed,
        rows_before,
    })
}

/// What a prefill wrote and how long it took.
#[derive(Debug, Clone)]
pub struct Prefill {
    pub archived: i64,
    pub elapsed: Duration,
}

impl Prefill {
    pub fn json(&self) -> Value {
        json!({
            "archived_jobs": self.archived,
            "elapsed_s": round_to(self.elapsed.as_secs_f64(), 3),
        })
    }
}

/// Fills `jobs_archive` with `n` finished jobs and `job_task_log` with their steps: one job
/// of `calltest` is run to the end by a worker, then copied `n` times, and the tables are
/// vacuumed and analysed as on a system that has been running for a while.
pub async fn prefill(db: &testkit::TestDb, n: i64) -> anyhow::Result<Prefill> {
    let start = Instant::now();
    let conn = Conn::open(&db.dsn).await?;
    let c = &conn.client;
    let api = Api::prepare(c).await?;
    let worker = "bench-prefill";
    sql::announce(c, worker, ACTION).await?;
    let template = api
        .create_job(c, WORKFLOW, &json!({ "input": -1 }))
        .await
        .context("could not create the prefill's template job")?;
    let task = api
        .get_task(c, worker, ACTION, Some(template))
        .await?
        .context("the template job's task was not ready")?;
    api.task_done(c, &task.cookie, &workload::add(&task.inargs)?)
        .await?;
    let (state, _) = sql::job_result(c, template).await?;
    ensure!(
        state == "finished",
        "the template job {template} ended {state}"
    );

    let first = sql::reserve_job_ids(c, n).await?;
    let mut from = first;
    while from < first + n {
        let to = (from + PREFILL_CHUNK).min(first + n) - 1;
        sql::copy_finished_job(c, template, from, to).await?;
        from = to + 1;
    }
    sql::vacuum_job_tables(c).await?;
    Ok(Prefill {
        archived: n,
        elapsed: start.elapsed(),
    })
}
