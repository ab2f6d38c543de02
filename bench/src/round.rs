//! One round of the benchmark: N SQL workers and M clients on a fresh database, until every
//! job has finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio_postgres::Client;

use crate::conn::Conn;
use crate::sql::{self, Api};
use crate::workload::{self, ACTION, STEP, WORKFLOW};

/// How often an idle worker polls although no notification came: NOTIFY is only a hint.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// How long the workers may take to stop once every job has finished.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What to run in a round.
#[derive(Debug, Clone)]
pub struct Plan {
    pub workers: usize,
    pub clients: usize,
    pub jobs: usize,
    /// Most unfinished jobs at any time (all clients together); `None`: no limit.
    pub inflight: Option<usize>,
    pub timeout: Duration,
}

/// What a round measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub workers: usize,
    pub jobs: usize,
    /// From the first `create_job` call to the last finish notification.
    pub elapsed: Duration,
    /// Rows of `job_task_log` (one per step) written during the round.
    pub steps: i64,
    /// Per job, from just before `create_job` to the arrival of its finish notification;
    /// sorted.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    pub fn jobs_per_s(&self) -> f64 {
        self.jobs as f64 / self.elapsed.as_secs_f64()
    }

    pub fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64()
    }

    /// The nearest-rank `p`-th percentile of the latencies (0 < p ≤ 100).
    pub fn latency_percentile(&self, p: f64) -> Duration {
        let n = self.latencies.len();
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.latencies
            .get(rank.clamp(1, n.max(1)) - 1)
            .copied()
            .unwrap_or_default()
    }

    pub fn latency_max(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
}

/// The jobs one client created: (job id, the moment just before its `create_job`).
type Created = Vec<(i64, Instant)>;

/// Runs one round on `db`, a fresh database with the extension.
pub async fn run(db: &testkit::TestDb, plan: &Plan) -> anyhow::Result<Outcome> {
    let control = Conn::open(&db.dsn).await?;
    let c = &control.client;
    workload::load(c, None, None).await?;
    let action_id = sql::action_id(c, ACTION).await?;
    let ready = format!("action:{action_id}:ready");

    // Everyone connects, LISTENs and announces before the first job is created.
    let listener = Conn::open(&db.dsn).await?;
    listener.listen("job:finished").await?;
    let mut finishes = listener.notes;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks: JoinSet<anyhow::Result<Created>> = JoinSet::new();
    for w in 0..plan.workers {
        let conn = Conn::open(&db.dsn).await?;
        conn.listen(&ready).await?;
        let name = format!("bench-w{w}");
        sql::announce(&conn.client, &name, ACTION).await?;
        let api = Api::prepare(&conn.client).await?;
        tasks.spawn(work(conn, api, name, stop_rx.clone()));
    }
    let mut clients = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        let client = Conn::open(&db.dsn).await?.client;
        let api = Api::prepare(&client).await?;
        clients.push((client, api));
    }
    let inflight = plan.inflight.map(|n| Arc::new(Semaphore::new(n)));
    for (i, (client, api)) in clients.into_iter().enumerate() {
        // Client i creates jobs i, i + M, i + 2M, … (the job's input is its number).
        let inputs: Vec<i64> = (i..plan.jobs)
            .step_by(plan.clients)
            .map(|n| n as i64)
            .collect();
        tasks.spawn(create(client, api, inputs, inflight.clone()));
    }

    // Collect finish notifications until every job has finished.
    let deadline = tokio::time::Instant::now() + plan.timeout;
    let mut finished: HashMap<i64, Instant> = HashMap::with_capacity(plan.jobs);
    let mut created: Created = Vec::with_capacity(plan.jobs);
    while finished.len() < plan.jobs {
        tokio::select! {
            note = finishes.recv() => {
                let note = note.context("the listener's connection closed")?;
                let job_id: i64 = note.payload.parse().with_context(|| {
                    format!("bad payload on {}: {:?}", note.channel, note.payload)
                })?;
                finished.entry(job_id).or_insert(note.at);
                if let Some(s) = &inflight {
                    s.add_permits(1);
                }
            }
            Some(joined) = tasks.join_next() => {
                created.extend(joined.context("a worker or client panicked")??);
            }
            _ = tokio::time::sleep_until(deadline) => {
                bail!(
                    "only {} of {} jobs finished within {} s; jobs by state: {}",
                    finished.len(),
                    plan.jobs,
                    plan.timeout.as_secs(),
                    states(c).await.unwrap_or_else(|e| format!("(unknown: {e:#})")),
                );
            }
        }
    }
    let _ = stop_tx.send(true);
    let stopped = tokio::time::timeout(STOP_GRACE, async {
        while let Some(joined) = tasks.join_next().await {
            created.extend(joined.context("a worker or client panicked")??);
        }
        anyhow::Ok(())
    })
    .await;
    stopped.context("the workers did not stop")??;

    check_jobs(c, plan.jobs).await?;
    ensure!(
        created.len() == plan.jobs,
        "{} jobs were created, not {}",
        created.len(),
        plan.jobs
    );
    let first = created
        .iter()
        .map(|&(_, at)| at)
        .min()
        .context("no job was created")?;
    let last = finished
        .values()
        .copied()
        .max()
        .context("no job finished")?;
    let mut latencies = created
        .iter()
        .map(|(job_id, start)| {
            finished
                .get(job_id)
                .map(|end| end.saturating_duration_since(*start))
                .with_context(|| format!("job {job_id} finished without a notification"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    latencies.sort_unstable();
    let steps: i64 = c
        .query_one("select count(*) from jobcenter.job_task_log", &[])
        .await
        .context("could not count the steps")?
        .get(0);
    Ok(Outcome {
        workers: plan.workers,
        jobs: plan.jobs,
        elapsed: last.saturating_duration_since(first),
        steps,
        latencies,
    })
}

/// A SQL worker: takes tasks of `add` and finishes them until told to stop; when there is no
/// task it waits for a ready notification, polling again every [`IDLE_POLL`] regardless.
async fn work(
    mut conn: Conn,
    api: Api,
    name: String,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Created> {
    let c = &conn.client;
    while !*stop.borrow() {
        let task = api
            .get_task(c, &name, ACTION, None)
            .await
            .with_context(|| format!("get_task of worker {name}"))?;
        match task {
            Some(task) => {
                let out = workload::add(&task.inargs)?;
                api.task_done(c, &task.cookie, &out)
                    .await
                    .with_context(|| format!("task_done of worker {name}"))?;
            }
            None => {
                tokio::select! {
                    _ = conn.notes.recv() => {
                        // One query finds every task these announced; skip the rest.
                        while conn.notes.try_recv().is_ok() {}
                    }
                    _ = stop.changed() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
            }
        }
    }
    Ok(vec![])
}

/// A client: creates one job of `calltest` per input, one after the other.
async fn create(
    c: Client,
    api: Api,
    inputs: Vec<i64>,
    inflight: Option<Arc<Semaphore>>,
) -> anyhow::Result<Created> {
    let mut created = Vec::with_capacity(inputs.len());
    for input in inputs {
        if let Some(s) = &inflight {
            s.acquire().await?.forget();
        }
        let start = Instant::now();
        let job_id = api
            .create_job(&c, WORKFLOW, &json!({ "input": input }))
            .await
            .with_context(|| format!("create_job({WORKFLOW}, input {input})"))?;
        created.push((job_id, start));
    }
    Ok(created)
}

/// The jobs by state, e.g. `finished 1990, ready 10`.
pub async fn states(c: &Client) -> anyhow::Result<String> {
    let rows = c
        .query(
            "select state::text, count(*) from jobcenter.jobs group by 1 order by 1",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Fails unless all `jobs` jobs finished with output input + step.
pub async fn check_jobs(c: &Client, jobs: usize) -> anyhow::Result<()> {
    if let Some(row) = c
        .query_opt(
            "select job_id, state::text, out_args::text from jobcenter.jobs \
             where state <> 'finished' order by job_id limit 1",
            &[],
        )
        .await?
    {
        let (job_id, state, out): (i64, String, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        bail!(
            "job {job_id} ended in state {state} (output {}); jobs by state: {}",
            out.as_deref().unwrap_or("none"),
            states(c).await?
        );
    }
    let right: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs \
             where out_args = jsonb_build_object('output', (arguments->>'input')::bigint + $1)",
            &[&STEP],
        )
        .await?
        .get(0);
    ensure!(
        right == jobs as i64,
        "only {right} of {jobs} jobs finished with output input + {STEP}"
    );
    Ok(())
}
