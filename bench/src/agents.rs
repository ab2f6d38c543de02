//! The chaos and soak load's workers and clients, each a process of its own (`bench
//! chaos-agent SPEC`, SPEC a JSON [`Spec`]) so that it can be killed with SIGKILL: jc-client
//! connections to one gateway that reconnect. Each appends what it was told to a records
//! file, one JSON object a line, which outlives the process:
//!
//! - a worker: `{"p": job_id, "a": action}` for every task it performed;
//! - a client: `{"c": job_id, "input": n, "kind": k}` once `create_job` answered the id, and
//!   `{"d": job_id, "out": outputs}` or `{"d": job_id, "error": message}` once `wait_job`
//!   answered. A client started again waits for the jobs its records show unanswered.
//!
//! A client stops creating jobs when the stop file exists, and exits once every job it
//! created has been answered.

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Handler, Task, TaskError};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The environment variable that carries the gateway user's password to an agent (not its
/// command line, which every user of the machine can read).
pub const PASSWORD_VAR: &str = "JC_BENCH_AGENT_PASSWORD";

/// The workflows of the load, by kind: the kind of job `n` is `KINDS[n % KINDS.len()]`.
pub const KINDS: [&str; 6] = ["one", "child", "sleep", "event", "lock", "retry"];

/// Inputs of client `i` are `i * INPUT_SPAN + n`, so a job's input names its client.
pub const INPUT_SPAN: i64 = 1_000_000;

/// Every job's output is its input plus this.
pub const STEP: i64 = 3;

/// Values of the lock the lock jobs contend for.
const LOCK_SLOTS: i64 = 3;

/// The JCL of the load, compiled into the database before it starts.
pub const SOURCES: [(&str, &str); 8] = [
    ("add.jcl", include_str!("../chaos/add.jcl")),
    ("flaky.jcl", include_str!("../chaos/flaky.jcl")),
    ("one.jcl", include_str!("../chaos/one.jcl")),
    ("child.jcl", include_str!("../chaos/child.jcl")),
    ("sleep.jcl", include_str!("../chaos/sleep.jcl")),
    ("event.jcl", include_str!("../chaos/event.jcl")),
    ("lock.jcl", include_str!("../chaos/lock.jcl")),
    ("retry.jcl", include_str!("../chaos/retry.jcl")),
];

/// The workflow of a kind.
pub fn workflow(kind: &str) -> String {
    format!("chaos.{kind}")
}

/// What an agent process does.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Spec {
    /// "worker" or "client".
    pub role: String,
    /// The gateway's TCP port on 127.0.0.1.
    pub port: u16,
    pub user: String,
    pub records: PathBuf,
    /// Worker: its name; client: unused.
    pub name: String,
    /// Worker: tasks at once per action.
    pub slots: u32,
    /// Worker: how long each task takes.
    pub task_ms: u64,
    /// Worker: the share of chaos.flaky's tasks answered with a soft error.
    pub flaky: f64,
    /// Client: its number (its inputs start at `index * INPUT_SPAN`).
    pub index: i64,
    /// Client: unanswered jobs at most.
    pub inflight: usize,
    /// Client: stop creating once this file exists.
    pub stop_file: PathBuf,
}

/// Runs the agent `spec` (a JSON [`Spec`]) until it is done (a client) or killed (a worker).
pub async fn run(spec: &str) -> anyhow::Result<()> {
    let spec: Spec = serde_json::from_str(spec).context("chaos-agent: a bad spec")?;
    let password = std::env::var(PASSWORD_VAR)
        .with_context(|| format!("chaos-agent: no password in {PASSWORD_VAR}"))?;
    let records = Records::open(&spec.records)?;
    let config = Config {
        workername: (spec.role == "worker").then(|| spec.name.clone()),
        reconnect: true,
        ..Config::new(
            Endpoint::tcp("127.0.0.1", spec.port),
            Auth::Password {
                who: spec.user.clone(),
                password,
            },
        )
    };
    match spec.role.as_str() {
        "worker" => worker(&spec, config, records).await,
        "client" => client(&spec, config, records).await,
        other => anyhow::bail!("chaos-agent: no role {other:?}"),
    }
}

/// An append-only file of JSON lines, written with one `write` each (so a kill never
/// leaves half a line behind another).
#[derive(Debug, Clone)]
struct Records(Arc<Mutex<std::fs::File>>);

impl Records {
    fn open(path: &Path) -> anyhow::Result<Records> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("could not open {}", path.display()))?;
        Ok(Records(Arc::new(Mutex::new(file))))
    }

    fn write(&self, v: &Value) {
        let line = format!("{v}\n");
        let mut file = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.write_all(line.as_bytes()) {
            eprintln!("chaos-agent: could not write a record: {e}");
        }
    }
}

/// A small xorshift generator: the flaky worker's coin.
#[derive(Debug)]
struct Coin(u64);

impl Coin {
    fn new() -> Coin {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32;
        Coin(seed | 1)
    }

    fn heads(&mut self, p: f64) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

async fn worker(spec: &Spec, config: Config, records: Records) -> anyhow::Result<()> {
    let client = Client::new(config);
    let coin = Arc::new(Mutex::new(Coin::new()));
    for action in ["chaos.add", "chaos.flaky"] {
        let (records, coin) = (records.clone(), coin.clone());
        let (delay, flaky) = (Duration::from_millis(spec.task_ms), spec.flaky);
        let handler = Handler::new_async(move |task: Task| {
            let (records, coin) = (records.clone(), coin.clone());
            async move {
                records.write(&json!({ "p": task.job_id, "a": task.actionname }));
                tokio::time::sleep(delay).await;
                let fail = task.actionname == "chaos.flaky"
                    && coin
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .heads(flaky);
                if fail {
                    return Err(TaskError::soft("flaky worker: try again"));
                }
                add(&task.inargs).map_err(|e| TaskError::fatal(format!("{e:#}")))
            }
        });
        let options = AnnounceOptions {
            slots: Some(spec.slots),
            ..AnnounceOptions::default()
        };
        // The gateway (or the database behind it) may be down right now.
        loop {
            match client
                .announce(action, handler.clone(), options.clone())
                .await
            {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("chaos-agent {}: announce {action}: {e}; again", spec.name);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
    loop {
        if let Err(e) = client.work().await {
            eprintln!("chaos-agent {}: {e}; working again", spec.name);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// `{"counter": counter + step}`.
fn add(inargs: &Value) -> anyhow::Result<Value> {
    let number = |key: &str| {
        inargs
            .get(key)
            .and_then(Value::as_i64)
            .with_context(|| format!("a task without an integer {key}: {inargs}"))
    };
    let sum = number("counter")?
        .checked_add(number("step")?)
        .context("the sum overflows")?;
    Ok(json!({ "counter": sum }))
}

/// What a client's records say: the inputs it used and its unanswered jobs.
#[derive(Debug, Default)]
struct Past {
    last_input: i64,
    unanswered: BTreeMap<i64, i64>,
}

fn read_past(path: &Path, first_input: i64) -> Past {
    let mut past = Past {
        last_input: first_input,
        ..Past::default()
    };
    let mut answered = HashSet::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let (Some(id), Some(input)) = (v["c"].as_i64(), v["input"].as_i64()) {
            past.last_input = past.last_input.max(input);
            past.unanswered.insert(id, input);
        } else if let Some(id) = v["d"].as_i64() {
            answered.insert(id);
        } else if let Some(input) = v["unacknowledged"].as_i64() {
            past.last_input = past.last_input.max(input);
        }
    }
    past.unanswered.retain(|id, _| !answered.contains(id));
    past
}

async fn client(spec: &Spec, config: Config, records: Records) -> anyhow::Result<()> {
    let client = Client::new(config);
    let past = read_past(&spec.records, spec.index * INPUT_SPAN);
    let inflight = Arc::new(Semaphore::new(spec.inflight.max(1)));
    let mut waits = JoinSet::new();
    let wait = |job_id: i64, permit, waits: &mut JoinSet<()>| {
        let (client, records) = (client.clone(), records.clone());
        waits.spawn(async move {
            let answer = match client.wait_job(job_id).await {
                Ok(out) => json!({ "d": job_id, "out": out }),
                Err(e) => json!({ "d": job_id, "error": e.to_string() }),
            };
            records.write(&answer);
            drop(permit);
        });
    };
    for &job_id in past.unanswered.keys() {
        let permit = inflight.clone().acquire_owned().await?;
        wait(job_id, permit, &mut waits);
    }
    let mut input = past.last_input;
    while !spec.stop_file.exists() {
        let permit = inflight.clone().acquire_owned().await?;
        // Reap finished waits as we go.
        while waits.try_join_next().is_some() {}
        input += 1;
        let kind = KINDS[(input % KINDS.len() as i64) as usize];
        let mut args = json!({ "input": input });
        if kind == "lock" {
            args["slot"] = json!(format!("s{}", input % LOCK_SLOTS));
        }
        match client.call_nb(&workflow(kind), args).await {
            Ok(job_id) => {
                records.write(&json!({ "c": job_id, "input": input, "kind": kind }));
                wait(job_id, permit, &mut waits);
            }
            Err(e) => {
                // The job may exist; it was not acknowledged, so it is not counted.
                records.write(&json!({ "unacknowledged": input, "error": e.to_string() }));
                drop(permit);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    while waits.join_next().await.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_client_knows_its_unanswered_jobs_and_inputs() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.jsonl");
        std::fs::write(
            &path,
            "{\"c\":10,\"input\":2000001,\"kind\":\"child\"}\n\
             {\"c\":11,\"input\":2000002,\"kind\":\"sleep\"}\n\
             {\"d\":10,\"out\":{\"output\":2000004}}\n\
             {\"unacknowledged\":2000003,\"error\":\"x\"}\n{\"c\":1",
        )?;
        let past = read_past(&path, 2 * INPUT_SPAN);
        assert_eq!(past.last_input, 2_000_003);
        assert_eq!(
            past.unanswered.into_iter().collect::<Vec<_>>(),
            [(11, 2_000_002)]
        );
        let fresh = read_past(&dir.path().join("none"), 3 * INPUT_SPAN);
        assert_eq!(
            (fresh.last_input, fresh.unanswered.len()),
            (3 * INPUT_SPAN, 0)
        );
        Ok(())
    }

    #[test]
    fn the_coin_falls_both_ways_about_as_often_as_asked() {
        let mut coin = Coin::new();
        let heads = (0..10_000).filter(|_| coin.heads(0.3)).count();
        assert!((2_500..3_500).contains(&heads), "{heads}");
    }
}
