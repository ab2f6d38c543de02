//! `--e2e`: the bench's workload through the real gateway. A round is a fresh database with
//! the workload and two gateway users, a `jcapi` of its own, N workers and M clients, each a
//! `jc-client` connection over one transport (TCP or WebSocket): the workers announce `add`
//! and answer `counter + step`; the clients create jobs of `calltest` (`call_nb`) and wait
//! for their `job_done` (`wait_job`). Every job is checked: created once, performed once,
//! ended with output input + step.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Handler, Task, TaskError};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::conn::Conn;
use crate::gateway::{self, Gateway};
use crate::round::{self, Outcome};
use crate::sql;
use crate::workload::{self, ACTION, STEP, WORKFLOW};

/// The gateway user the clients log in as.
pub const CLIENT_USER: &str = "benchclient";

/// The gateway user the workers log in as.
pub const WORKER_USER: &str = "benchworker";

/// How long the workers may take to stop once every job has finished.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Failed jobs quoted in an error.
const QUOTED: usize = 5;

/// How clients and workers reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Netstrings over TCP.
    Tcp,
    /// WebSocket text frames.
    Ws,
}

impl Transport {
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        match s.trim() {
            "tcp" => Some(Transport::Tcp),
            "ws" => Some(Transport::Ws),
            _ => None,
        }
    }
}

/// The gateway binary and its users file, shared by all rounds.
#[derive(Debug)]
pub struct Setup {
    jcapi: PathBuf,
    /// The users file and the gateways' logs; removed when the bench ends.
    dir: tempfile::TempDir,
    users_file: PathBuf,
    client_password: String,
    worker_password: String,
}

impl Setup {
    /// Writes a users file with [`CLIENT_USER`] and [`WORKER_USER`], whose passwords are
    /// hashed by `jcapi --hash-password` (argon2, as a real deployment has them).
    pub async fn new(jcapi: PathBuf) -> anyhow::Result<Setup> {
        let dir = tempfile::Builder::new()
            .prefix("jc-bench-")
            .tempdir()
            .context("could not create a temporary directory")?;
        // Not a secret worth much (a private database that lives for the bench), but not
        // guessable by other users of the machine either.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ u128::from(std::process::id()) << 64;
        let client_password = format!("client-{nonce:x}");
        let worker_password = format!("worker-{nonce:x}");
        let client_hash = gateway::hash_password(&jcapi, &client_password).await?;
        let worker_hash = gateway::hash_password(&jcapi, &worker_password).await?;
        let users_file = dir.path().join("users.toml");
        std::fs::write(
            &users_file,
            format!(
                "[users.{CLIENT_USER}]\npassword = {client_hash:?}\n\n\
                 [users.{WORKER_USER}]\npassword = {worker_hash:?}\n"
            ),
        )
        .with_context(|| format!("could not write {}", users_file.display()))?;
        Ok(Setup {
            jcapi,
            dir,
            users_file,
            client_password,
            worker_password,
        })
    }

    pub fn jcapi(&self) -> &std::path::Path {
        &self.jcapi
    }

    /// The directory for logs, removed when the bench ends.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn users_file(&self) -> &std::path::Path {
        &self.users_file
    }

    pub fn client_password(&self) -> &str {
        &self.client_password
    }

    pub fn worker_password(&self) -> &str {
        &self.worker_password
    }
}

/// What to run in a round.
#[derive(Debug, Clone)]
pub struct Plan {
    pub transport: Transport,
    pub workers: usize,
    /// Tasks each worker performs at once.
    pub slots: u32,
    pub clients: usize,
    pub jobs: usize,
    /// Most unfinished jobs at any time (all clients together); `None`: no limit.
    pub inflight: Option<usize>,
    pub timeout: Duration,
}

/// What the gateway counted in a round (its `/metrics`).
#[derive(Debug, Clone, Default)]
pub struct GatewayFigures {
    pub offered: u64,
    /// Offers not taken within the offer time-out (10 s), so given to another worker.
    pub offers_expired: u64,
    pub db_errors: u64,
    pub slow_clients: u64,
    /// Transactions of the gateway's group commits: creates, takes, results.
    pub create_batches: u64,
    pub take_batches: u64,
    pub done_batches: u64,
}

/// What a round measured.
#[derive(Debug, Clone)]
pub struct E2eOutcome {
    pub transport: Transport,
    pub slots: u32,
    /// Latencies from just before `create_job` to the return of `wait_job` (the `job_done`).
    pub outcome: Outcome,
    pub gateway: GatewayFigures,
}

/// A job a client created and waited for.
#[derive(Debug)]
struct Done {
    job_id: i64,
    input: i64,
    start: Instant,
    end: Instant,
    out: Result<Value, String>,
}

/// Jobs created and waited for so far, all clients together.
#[derive(Debug, Default)]
struct Progress {
    created: AtomicUsize,
    done: AtomicUsize,
}

/// Runs one round on `db`, a fresh database with the extension.
pub async fn run(db: &testkit::TestDb, setup: &Setup, plan: &Plan) -> anyhow::Result<E2eOutcome> {
    let control = Conn::open(&db.dsn).await?;
    let c = &control.client;
    workload::load(c, None, None).await?;
    // The gateway acts for its users: jobcenter roles its database role may impersonate.
    sql::allow_gateway_users(
        c,
        &[CLIENT_USER.to_owned(), WORKER_USER.to_owned()],
        &[WORKER_USER.to_owned()],
    )
    .await?;

    let log = setup.dir.path().join(format!(
        "jcapi-{}-{}w.log",
        plan.transport.name(),
        plan.workers
    ));
    let gateway = Gateway::start(&setup.jcapi, &db.dsn, &setup.users_file, &log).await?;
    match drive(c, &gateway, setup, plan).await {
        Ok(outcome) => {
            let status = gateway.stop().await?;
            if !status.success() {
                eprintln!("warning: jcapi exited with {status} after SIGTERM");
            }
            Ok(outcome)
        }
        Err(e) => Err(anyhow!(
            "{e:#}\n\njcapi's log, last lines:\n{}",
            gateway.log_tail()
        )),
    }
}

async fn drive(
    c: &tokio_postgres::Client,
    gateway: &Gateway,
    setup: &Setup,
    plan: &Plan,
) -> anyhow::Result<E2eOutcome> {
    let endpoint = match plan.transport {
        Transport::Tcp => Endpoint::tcp("127.0.0.1", gateway.tcp.port()),
        Transport::Ws => Endpoint::websocket(format!("ws://{}/", gateway.ws)),
    };
    // No reconnecting: a dropped connection fails the round instead of hiding in it.
    let config = |who: &str, password: &str, workername: Option<String>| Config {
        workername,
        reconnect: false,
        ..Config::new(
            endpoint.clone(),
            Auth::Password {
                who: who.to_owned(),
                password: password.to_owned(),
            },
        )
    };

    // Everyone connects and the workers announce before the first job is created.
    let performed: Arc<Mutex<HashMap<i64, u32>>> = Arc::default();
    let mut workers = Vec::with_capacity(plan.workers);
    let mut working = JoinSet::new();
    for w in 0..plan.workers {
        let name = format!("bench-w{w}");
        let worker = Client::connect(config(WORKER_USER, &setup.worker_password, Some(name)))
            .await
            .with_context(|| format!("worker {w} could not connect to {}", endpoint.address()))?;
        let performed = performed.clone();
        let handler = Handler::new_async(move |task: Task| {
            let performed = performed.clone();
            async move {
                *performed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .entry(task.job_id)
                    .or_insert(0) += 1;
                workload::add(&task.inargs).map_err(|e| TaskError::fatal(format!("{e:#}")))
            }
        });
        let options = AnnounceOptions {
            slots: Some(plan.slots),
            ..AnnounceOptions::default()
        };
        worker
            .announce(ACTION, handler, options)
            .await
            .with_context(|| format!("worker {w} could not announce {ACTION}"))?;
        let serving = worker.clone();
        working.spawn(async move { serving.work().await });
        workers.push(worker);
    }
    let mut clients = Vec::with_capacity(plan.clients);
    for i in 0..plan.clients {
        clients.push(
            Client::connect(config(CLIENT_USER, &setup.client_password, None))
                .await
                .with_context(|| {
                    format!("client {i} could not connect to {}", endpoint.address())
                })?,
        );
    }

    let progress = Arc::new(Progress::default());
    let inflight = plan.inflight.map(|n| Arc::new(Semaphore::new(n)));
    let mut creating = JoinSet::new();
    for (i, client) in clients.iter().enumerate() {
        // Client i creates jobs i, i + M, i + 2M, … (the job's input is its number).
        let inputs: Vec<i64> = (i..plan.jobs)
            .step_by(plan.clients)
            .map(|n| n as i64)
            .collect();
        creating.spawn(create_and_wait(
            client.clone(),
            inputs,
            inflight.clone(),
            progress.clone(),
        ));
    }
    let deadline = tokio::time::sleep(plan.timeout);
    tokio::pin!(deadline);
    let mut done: Vec<Done> = Vec::with_capacity(plan.jobs);
    loop {
        tokio::select! {
            joined = creating.join_next() => match joined {
                Some(joined) => done.extend(joined.context("a client panicked")??),
                None => break,
            },
            Some(joined) = working.join_next() => {
                let why = match joined {
                    Ok(Ok(())) => "without an error".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => format!("panicked: {e}"),
                };
                bail!("a worker stopped during the round: {why}");
            }
            () = &mut deadline => {
                bail!(
                    "only {} of {} jobs done within {} s ({} created); jobs by state: {}",
                    progress.done.load(Ordering::SeqCst),
                    plan.jobs,
                    plan.timeout.as_secs(),
                    progress.created.load(Ordering::SeqCst),
                    round::states(c).await.unwrap_or_else(|e| format!("(unknown: {e:#})")),
                );
            }
        }
    }

    for w in &workers {
        w.stop();
    }
    tokio::time::timeout(STOP_GRACE, async {
        while let Some(joined) = working.join_next().await {
            joined
                .context("a worker panicked")?
                .context("a worker failed")?;
        }
        anyhow::Ok(())
    })
    .await
    .context("the workers did not stop")??;
    for client in workers.iter().chain(&clients) {
        client.close().await;
    }

    check(&done, &performed, plan.jobs)?;
    round::check_jobs(c, plan.jobs).await?;
    let add_steps: i64 = c
        .query_one(
            "select count(*) from jobcenter.job_task_log l \
             join jobcenter.tasks t using (task_id) \
             join jobcenter.actions a on a.action_id = t.action_id \
             where a.name = $1 and l.state = 'done'",
            &[&ACTION],
        )
        .await
        .context("could not count the steps of the action")?
        .get(0);
    ensure!(
        add_steps == plan.jobs as i64,
        "{add_steps} steps of {ACTION} were done, not one per job ({})",
        plan.jobs
    );
    let steps: i64 = c
        .query_one("select count(*) from jobcenter.job_task_log", &[])
        .await
        .context("could not count the steps")?
        .get(0);

    let metrics = gateway.metrics().await?;
    let figure = |name: &str| metrics.get(name).map_or(0, |v| *v as u64);
    let figures = GatewayFigures {
        offered: figure("jcapi_tasks_offered_total"),
        offers_expired: figure("jcapi_offers_expired_total"),
        db_errors: figure("jcapi_db_errors_total"),
        slow_clients: figure("jcapi_slow_clients_total"),
        create_batches: figure("jcapi_create_job_batches_total"),
        take_batches: figure("jcapi_take_batches_total"),
        done_batches: figure("jcapi_task_done_batches_total"),
    };

    let first = done
        .iter()
        .map(|d| d.start)
        .min()
        .context("no job was created")?;
    let last = done.iter().map(|d| d.end).max().context("no job ended")?;
    let mut latencies: Vec<Duration> = done
        .iter()
        .map(|d| d.end.saturating_duration_since(d.start))
        .collect();
    latencies.sort_unstable();
    Ok(E2eOutcome {
        transport: plan.transport,
        slots: plan.slots,
        outcome: Outcome {
            workers: plan.workers,
            jobs: plan.jobs,
            elapsed: last.saturating_duration_since(first),
            steps,
            latencies,
        },
        gateway: figures,
    })
}

/// A client: creates one job of `calltest` per input, one after the other, and waits for
/// each one's `job_done` on a task of its own.
async fn create_and_wait(
    client: Client,
    inputs: Vec<i64>,
    inflight: Option<Arc<Semaphore>>,
    progress: Arc<Progress>,
) -> anyhow::Result<Vec<Done>> {
    let mut waits = JoinSet::new();
    for input in inputs {
        let permit = match &inflight {
            Some(s) => Some(s.clone().acquire_owned().await?),
            None => None,
        };
        let start = Instant::now();
        let job_id = client
            .call_nb(WORKFLOW, json!({ "input": input }))
            .await
            .with_context(|| format!("create_job({WORKFLOW}, input {input})"))?;
        progress.created.fetch_add(1, Ordering::SeqCst);
        let (client, progress) = (client.clone(), progress.clone());
        waits.spawn(async move {
            let out = client.wait_job(job_id).await;
            let end = Instant::now();
            drop(permit);
            progress.done.fetch_add(1, Ordering::SeqCst);
            Done {
                job_id,
                input,
                start,
                end,
                out: out.map_err(|e| e.to_string()),
            }
        });
    }
    let mut done = Vec::with_capacity(waits.len());
    while let Some(joined) = waits.join_next().await {
        done.push(joined.context("a wait for job_done panicked")?);
    }
    Ok(done)
}

/// Fails unless every job was created once, performed once and answered input + step.
fn check(done: &[Done], performed: &Mutex<HashMap<i64, u32>>, jobs: usize) -> anyhow::Result<()> {
    ensure!(
        done.len() == jobs,
        "{} jobs were created, not {jobs}",
        done.len()
    );
    let mut ids = HashSet::with_capacity(jobs);
    for d in done {
        ensure!(
            ids.insert(d.job_id),
            "create_job returned job id {} twice",
            d.job_id
        );
    }
    let wrong: Vec<String> = done
        .iter()
        .filter_map(|d| {
            let want = json!({ "output": d.input + STEP });
            match &d.out {
                Ok(out) if *out == want => None,
                Ok(out) => Some(format!(
                    "job {} (input {}) answered {out}",
                    d.job_id, d.input
                )),
                Err(e) => Some(format!("job {} (input {}): {e}", d.job_id, d.input)),
            }
        })
        .collect();
    if !wrong.is_empty() {
        bail!(
            "{} of {jobs} jobs failed or answered other than input + {STEP}: {}",
            wrong.len(),
            wrong[..wrong.len().min(QUOTED)].join("; ")
        );
    }
    let performed = performed.lock().unwrap_or_else(PoisonError::into_inner);
    let twice: Vec<String> = performed
        .iter()
        .filter(|(_, n)| **n != 1)
        .map(|(job, n)| format!("job {job} {n} times"))
        .take(QUOTED)
        .collect();
    ensure!(
        twice.is_empty(),
        "the workers performed tasks more than once: {}",
        twice.join(", ")
    );
    if let Some(missing) = ids.iter().find(|id| !performed.contains_key(id)) {
        bail!("no worker performed the task of job {missing}, yet it ended");
    }
    ensure!(
        performed.len() == jobs,
        "the workers performed {} tasks, not {jobs}",
        performed.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(job_id: i64, input: i64, out: Result<Value, String>) -> Done {
        let now = Instant::now();
        Done {
            job_id,
            input,
            start: now,
            end: now,
            out,
        }
    }

    fn performed(jobs: &[(i64, u32)]) -> Mutex<HashMap<i64, u32>> {
        Mutex::new(jobs.iter().copied().collect())
    }

    fn fails(d: &[Done], p: &[(i64, u32)], jobs: usize, why: &str) {
        match check(d, &performed(p), jobs) {
            Ok(()) => panic!("accepted; expected: {why}"),
            Err(e) => assert!(format!("{e:#}").contains(why), "{e:#} lacks {why:?}"),
        }
    }

    #[test]
    fn every_job_is_checked() {
        let good = |id: i64, input: i64| done(id, input, Ok(json!({ "output": input + STEP })));
        let all = [good(10, 0), good(11, 1)];
        check(&all, &performed(&[(10, 1), (11, 1)]), 2).expect("two good jobs");
        fails(&all, &[(10, 1), (11, 1)], 3, "2 jobs were created, not 3");
        fails(
            &[good(10, 0), good(10, 1)],
            &[(10, 1)],
            2,
            "returned job id 10 twice",
        );
        fails(
            &[good(10, 0), done(11, 1, Ok(json!({ "output": 1 })))],
            &[(10, 1), (11, 1)],
            2,
            "job 11 (input 1) answered {\"output\":1}",
        );
        fails(
            &[good(10, 0), done(11, 1, Err("job 11 failed".into()))],
            &[(10, 1), (11, 1)],
            2,
            "1 of 2 jobs failed",
        );
        fails(&all, &[(10, 1), (11, 2)], 2, "job 11 2 times");
        fails(&all, &[(10, 1)], 2, "performed the task of job 11");
        fails(&all, &[(10, 1), (11, 1), (12, 1)], 2, "performed 3 tasks");
    }
}
