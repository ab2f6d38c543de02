//! `bench drain`: N jobs of `calltest` (one call of action `add`, typed inputs and outputs,
//! every step logged) are created first, then W SQL workers drain them, each taking one
//! task per call (`get_task`, then `task_done`) until none is left, as graphile-worker's
//! perfTest drains its queue. The rate is jobs per second from the workers' first call to
//! the last `task_done`. Without a limit, each worker first takes and finishes
//! [`WARM_UP`] more jobs before the clock starts (its backend compiles the engine's
//! functions, plans their statements and reads the workflow at its first take and finish,
//! 10 to 20 ms), as graphile-worker's perfTest subtracts its workers' start. With a limit,
//! at most N run at once: `--limit N` gives `add` a concurrency limit (`config: concurrency
//! = N`, at most N tasks at work), `--lock-limit N` drains `calltest_limited`, which holds a
//! counted lock of N holders from its start to its end (the others wait for a slot).
//! `--task-timeout S` gives `add` a time-out of S seconds, so every task taken gets one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::conn::Conn;
use crate::round;
use crate::sql::{self, Api};
use crate::summary::{rate, round_to};
use crate::workload::{self, ACTION, WORKFLOW};

/// Jobs created per statement while setting up (one transaction each).
const CREATE_CHUNK: i64 = 1000;

/// The most tasks one get_tasks or tasks_done call takes.
pub const MAX_BATCH: usize = 1000;

/// Jobs each worker takes and finishes before the clock starts, when there is no limit:
/// two, so that a batched worker's warm-up is a batch (tasks_done of one task takes the
/// single task's way).
pub const WARM_UP: usize = 2;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub jobs: usize,
    pub workers: usize,
    /// Tasks per call (1 to [`MAX_BATCH`]).
    pub batch: usize,
    /// Whether the jobs' ends are notified (`job:finished`). By default they are quiet
    /// (`create_job(..., a_notify => false)`): nobody waits for them, as nobody is told of a
    /// graphile-worker job's completion.
    pub notify: bool,
    /// A limit on how many run at once.
    pub limit: Option<workload::Limit>,
    /// The action's `timeout` in seconds (its config), none by default: every task taken
    /// gets a time-out.
    pub task_timeout: Option<u32>,
    pub timeout: Duration,
}

/// Refuses a plan the engine cannot run, before any cluster is started.
pub fn check(plan: &Plan) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_BATCH).contains(&plan.batch),
        "--batch takes 1 to {MAX_BATCH} tasks per call, not {}",
        plan.batch
    );
    ensure!(
        plan.limit.is_none_or(|l| l.n() > 0),
        "--limit takes at least 1 holder"
    );
    Ok(())
}

/// What a drain measured.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub jobs: usize,
    pub workers: usize,
    pub batch: usize,
    /// Whether the jobs' ends were notified ([`Plan::notify`]).
    pub notify: bool,
    /// [`Plan::limit`].
    pub limit: Option<workload::Limit>,
    /// [`Plan::task_timeout`].
    pub task_timeout: Option<u32>,
    /// Creating the jobs beforehand (not part of the rate).
    pub setup: Duration,
    /// From the workers' start to the last `task_done`.
    pub elapsed: Duration,
    /// Mean time of one `get_task` and one `task_done` call, as the workers saw them.
    pub get_task_ms: f64,
    pub task_done_ms: f64,
    /// WAL bytes the cluster wrote per job while the clock ran.
    pub wal_per_job: f64,
}

impl Outcome {
    pub fn jobs_per_s(&self) -> f64 {
        rate(self.jobs as f64, self.elapsed.as_secs_f64())
    }

    pub fn json(&self) -> Value {
        json!({
            "jobs": self.jobs,
            "workers": self.workers,
            "tasks_per_call": self.batch,
            "ends_notified": self.notify,
            "concurrency_limit": self.limit.map(|l| l.n()),
            "limited_by": self.limit.map(|l| l.kind()),
            "task_timeout_s": self.task_timeout,
            "setup_s": round_to(self.setup.as_secs_f64(), 3),
            "elapsed_s": round_to(self.elapsed.as_secs_f64(), 3),
            "jobs_per_s": round_to(self.jobs_per_s(), 1),
            "mean_call_ms": {
                "get_task": round_to(self.get_task_ms, 3),
                "task_done": round_to(self.task_done_ms, 3),
            },
            "wal_bytes_per_job": round_to(self.wal_per_job, 0),
        })
    }
}

/// What one worker did: tasks finished and the time spent in each call.
#[derive(Debug, Default)]
struct Worked {
    tasks: usize,
    get_task_calls: usize,
    get_task: Duration,
    task_done: Duration,
}

/// Runs one drain on `db`, a fresh database with the extension.
pub async fn run(db: &testkit::TestDb, plan: &Plan) -> anyhow::Result<Outcome> {
    check(plan)?;
    let control = Conn::open(&db.dsn).await?;
    let c = &control.client;
    workload::load(c, plan.limit, plan.task_timeout).await?;
    let workflow = plan.limit.map_or(WORKFLOW, |l| l.workflow());
    let warm_up = if plan.limit.is_none() { WARM_UP } else { 0 };
    let setup_start = Instant::now();
    let jobs = (plan.jobs + warm_up * plan.workers) as i64;
    let mut from = 0;
    while from < jobs {
        let to = (from + CREATE_CHUNK).min(jobs) - 1;
        sql::create_jobs(c, workflow, from, to, plan.notify).await?;
        from = to + 1;
    }
    let setup = setup_start.elapsed();

    // Every worker connects, prepares, announces and warms up before the clock starts, one
    // after the other: each takes exactly its warm-up jobs, the oldest.
    let (go_tx, go_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    let untaken = Arc::new(AtomicUsize::new(plan.jobs));
    for w in 0..plan.workers {
        let conn = Conn::open(&db.dsn).await?;
        let api = Api::prepare(&conn.client).await?;
        let name = format!("bench-w{w}");
        sql::announce(&conn.client, &name, ACTION).await?;
        let mut warmed = 0;
        while warmed < warm_up {
            let took = take_and_finish(
                &conn.client,
                &api,
                &name,
                plan.batch.min(warm_up - warmed),
                &mut Worked::default(),
            )
            .await
            .context("the warm-up")?;
            ensure!(took > 0, "worker {name} found no job to warm up with");
            warmed += took;
        }
        workers.spawn(work(
            conn,
            api,
            name,
            plan.batch,
            untaken.clone(),
            go_rx.clone(),
        ));
    }
    let wal_start = wal_lsn(c).await?;
    let start = Instant::now();
    let _ = go_tx.send(true);
    let drained = tokio::time::timeout(plan.timeout, async {
        let mut all = Vec::with_capacity(plan.workers);
        while let Some(joined) = workers.join_next().await {
            all.push(joined.context("a worker panicked")??);
        }
        anyhow::Ok(all)
    })
    .await;
    let elapsed = start.elapsed();
    let wal: f64 = c
        .query_one(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::float8",
            &[&wal_start],
        )
        .await
        .context("could not read the WAL position")?
        .get(0);
    let worked = match drained {
        Ok(worked) => worked?,
        Err(_) => anyhow::bail!(
            "the drain did not end within {} s; jobs by state: {}",
            plan.timeout.as_secs(),
            round::states(c)
                .await
                .unwrap_or_else(|e| format!("(unknown: {e:#})"))
        ),
    };
    let tasks: usize = worked.iter().map(|w| w.tasks).sum();
    ensure!(
        tasks == plan.jobs,
        "the workers finished {tasks} tasks, not {}",
        plan.jobs
    );
    round::check_jobs(c, jobs as usize).await?;
    let mean = |total: Duration, calls: usize| {
        round_to(total.as_secs_f64() * 1000.0 / calls.max(1) as f64, 6)
    };
    let get_task_calls = worked.iter().map(|w| w.get_task_calls).sum();
    Ok(Outcome {
        jobs: plan.jobs,
        workers: plan.workers,
        batch: plan.batch,
        notify: plan.notify,
        limit: plan.limit,
        task_timeout: plan.task_timeout,
        setup,
        elapsed,
        get_task_ms: mean(worked.iter().map(|w| w.get_task).sum(), get_task_calls),
        task_done_ms: mean(worked.iter().map(|w| w.task_done).sum(), tasks),
        wal_per_job: wal / plan.jobs.max(1) as f64,
    })
}

/// The cluster's WAL position, as text.
async fn wal_lsn(c: &tokio_postgres::Client) -> anyhow::Result<String> {
    Ok(c.query_one("select pg_current_wal_lsn()::text", &[])
        .await
        .context("could not read the WAL position")?
        .get(0))
}

/// A worker: once told to go, takes and finishes tasks of `add` until every job's task was
/// taken (`untaken` counts down; none makes another task): one task per `get_task` and
/// `task_done`, or with `batch` > 1 up to `batch` per `get_tasks` and one `tasks_done` for
/// them. Without a limit every job is ready before the start; with one a job becomes ready
/// when a slot frees, so a worker finding none ready while some are untaken tries again 1 ms
/// later.
async fn work(
    conn: Conn,
    api: Api,
    name: String,
    batch: usize,
    untaken: Arc<AtomicUsize>,
    mut go: watch::Receiver<bool>,
) -> anyhow::Result<Worked> {
    go.wait_for(|&go| go)
        .await
        .context("the drain was called off")?;
    let c = &conn.client;
    let mut worked = Worked::default();
    loop {
        let took = take_and_finish(c, &api, &name, batch, &mut worked).await?;
        if took == 0 {
            if untaken.load(Ordering::SeqCst) == 0 {
                return Ok(worked);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        untaken.fetch_sub(took, Ordering::SeqCst);
    }
}

/// One take and one finish: up to `batch` tasks by `get_task` (1) or `get_tasks`, then
/// `task_done` or `tasks_done` for what was taken; how many tasks that was (0: none was
/// ready), also counted in `worked` with the time of each call.
async fn take_and_finish(
    c: &tokio_postgres::Client,
    api: &Api,
    name: &str,
    batch: usize,
    worked: &mut Worked,
) -> anyhow::Result<usize> {
    let limit = i32::try_from(batch).context("--batch")?;
    let t = Instant::now();
    let tasks = if batch == 1 {
        api.get_task(c, name, ACTION, None)
            .await
            .with_context(|| format!("get_task of worker {name}"))?
            .into_iter()
            .collect()
    } else {
        api.get_tasks(c, name, ACTION, limit)
            .await
            .with_context(|| format!("get_tasks of worker {name}"))?
    };
    worked.get_task += t.elapsed();
    worked.get_task_calls += 1;
    if tasks.is_empty() {
        return Ok(0);
    }
    let results = tasks
        .iter()
        .map(|task| Ok((task.cookie.clone(), workload::add(&task.inargs)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let t = Instant::now();
    if let [(cookie, out)] = results.as_slice() {
        api.task_done(c, cookie, out)
            .await
            .with_context(|| format!("task_done of worker {name} for job {}", tasks[0].job_id))?;
    } else {
        api.tasks_done(c, &results)
            .await
            .with_context(|| format!("tasks_done of worker {name}"))?;
    }
    worked.task_done += t.elapsed();
    worked.tasks += tasks.len();
    Ok(tasks.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A drain of `jobs` jobs by `workers` workers, one task per call, quiet, unlimited.
    fn small(jobs: usize, workers: usize) -> Plan {
        Plan {
            jobs,
            workers,
            batch: 1,
            notify: false,
            limit: None,
            task_timeout: None,
            timeout: Duration::from_secs(120),
        }
    }

    /// Against a real cluster: every job is drained and checked (created, performed once,
    /// finished with its output), and the rate is measured.
    #[tokio::test]
    async fn a_small_drain_finishes_every_job() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let plan = small(30, 3);
        let o = run(&db, &plan).await?;
        assert_eq!((o.jobs, o.workers), (30, 3));
        assert!(o.jobs_per_s() > 0.0 && o.task_done_ms > 0.0, "{o:?}");
        let j = o.json();
        assert_eq!(j["tasks_per_call"], json!(1));
        assert_eq!(j["ends_notified"], json!(false));
        assert_eq!(j["jobs"], json!(30));
        // every job wrote its steps and its end: the WAL of the drain is counted
        assert!(o.wal_per_job > 100.0, "{o:?}");
        // the warm-up jobs were taken before the clock, finished, and not counted
        let c = Conn::open(&db.dsn).await?;
        let finished: i64 = c
            .client
            .query_one(
                "select count(*) from jobcenter.jobs where state = 'finished'",
                &[],
            )
            .await?
            .get(0);
        assert_eq!(finished, (30 + 3 * WARM_UP) as i64);
        Ok(())
    }

    /// Batched: get_tasks and tasks_done drain every job too.
    #[tokio::test]
    async fn a_batched_drain_finishes_every_job() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let plan = Plan {
            batch: 10,
            notify: true,
            ..small(45, 2)
        };
        let o = run(&db, &plan).await?;
        assert_eq!(o.jobs, 45);
        assert_eq!(o.json()["tasks_per_call"], json!(10));
        assert_eq!(o.json()["ends_notified"], json!(true));
        Ok(())
    }

    /// With an action time-out: every task taken gets one (the maestro would fire it), the
    /// drain finishes every job, and the figures say which drain it was.
    #[tokio::test]
    async fn a_drain_of_an_action_with_a_time_out_finishes_every_job() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let plan = Plan {
            task_timeout: Some(300),
            ..small(30, 3)
        };
        let o = run(&db, &plan).await?;
        assert_eq!(o.jobs, 30);
        assert_eq!(o.json()["task_timeout_s"], json!(300));
        let c = Conn::open(&db.dsn).await?;
        let config: Value = c
            .client
            .query_one(
                "select config from jobcenter.actions where name = $1",
                &[&workload::ACTION],
            )
            .await?
            .get(0);
        assert_eq!(config["timeout"], json!("300 seconds"));
        // a task taken now gets its time-out five minutes on
        let job: i64 = c
            .client
            .query_one(
                "select job_id from jobcenter.create_job($1, '{\"input\": 1}')",
                &[&WORKFLOW],
            )
            .await?
            .get(0);
        c.client
            .execute("select jobcenter.announce('w_probe', $1)", &[&ACTION])
            .await?;
        c.client
            .execute("select jobcenter.get_task('w_probe', $1)", &[&ACTION])
            .await?;
        let left: f64 = c
            .client
            .query_one(
                "select extract(epoch from timeout - clock_timestamp())::float8
                 from jobcenter.jobs where job_id = $1",
                &[&job],
            )
            .await?
            .get(0);
        assert!((290.0..=300.0).contains(&left), "time-out in {left} s");
        Ok(())
    }

    /// With a counted-lock limit: every job passes through the counted lock, none is left
    /// waiting for a slot, and the slots are all given back.
    #[tokio::test]
    async fn a_limited_drain_finishes_every_job_and_frees_every_slot() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let plan = Plan {
            limit: Some(workload::Limit::Lock(3)),
            ..small(40, 4)
        };
        let o = run(&db, &plan).await?;
        assert_eq!(o.jobs, 40);
        assert_eq!(o.json()["concurrency_limit"], json!(3));
        let c = Conn::open(&db.dsn).await?;
        let held: i64 = c
            .client
            .query_one("select count(*) from jobcenter.locks", &[])
            .await?
            .get(0);
        assert_eq!(held, 0, "slots left held after the drain");
        let limited: i64 = c
            .client
            .query_one(
                "select count(*) from jobcenter.jobs j
                 join jobcenter.actions w on w.action_id = j.workflow_id
                 where w.name = $1 and j.state = 'finished'",
                &[&workload::LIMITED],
            )
            .await?
            .get(0);
        assert_eq!(
            limited,
            40,
            "the jobs were not all of {}",
            workload::LIMITED
        );
        Ok(())
    }

    /// With an action concurrency limit of 2 and 4 workers: every job is drained (workers
    /// refused a slot try again), and no third task of `add` was ever at work at once.
    #[tokio::test]
    async fn an_action_limited_drain_finishes_every_job() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let plan = Plan {
            limit: Some(workload::Limit::Action(2)),
            ..small(40, 4)
        };
        let o = run(&db, &plan).await?;
        assert_eq!(o.jobs, 40);
        assert_eq!(o.json()["limited_by"], json!("action concurrency"));
        let c = Conn::open(&db.dsn).await?;
        // the slots' cookies: at most 2 distinct tasks ever overlapped, seen from the step
        // log: no task started while two others were started and not yet finished
        let most: i64 = c
            .client
            .query_one(
                "select coalesce(max(n), 0) from (
                     select (select count(*) from jobcenter.jobs o
                             where o.task_started <= j.task_started
                               and o.task_completed > j.task_started) as n
                     from jobcenter.jobs j) x",
                &[],
            )
            .await?
            .get(0);
        assert!(most <= 2, "{most} tasks of add at work at once");
        Ok(())
    }
}
