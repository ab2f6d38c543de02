//! `chaos`: the mixed load ([`crate::agents`]) through two gateways while faults are
//! injected one after the other, round after round; then the checks, from the tables and
//! the clients' records: every job a client was told was created ended exactly once, no
//! worker task's outputs were applied twice, no live job is stuck, no ended job left locks,
//! subscriptions or queued events behind.
//!
//! A fault's `down_s` is how long it lasted (from the kill to the restart, the storm, the
//! held transaction); `recover_s` is the time from its end until the engine showed it works
//! again (its probe: a job created after the fault finished, of the kind or the gateway the
//! fault hit; the killed worker's tasks moved on; the killed client's jobs answered).

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::agents::{INPUT_SPAN, STEP};
use crate::engine::{self, Engine, Shape};
use crate::sql;
use crate::summary::round_to;

/// How long a probe may wait before the fault counts as not recovered.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Pause between two faults.
const GAP: Duration = Duration::from_secs(3);

/// How long a killed process stays down.
const DOWN: Duration = Duration::from_secs(1);

/// Examples quoted per finding.
const QUOTED: usize = 5;

/// A fault the bench can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Maestro,
    Jcapi,
    Worker,
    Client,
    Crash,
    Failover,
    Xmin,
    Terminate,
}

impl Fault {
    pub const ALL: [Fault; 8] = [
        Fault::Maestro,
        Fault::Jcapi,
        Fault::Worker,
        Fault::Client,
        Fault::Crash,
        Fault::Xmin,
        Fault::Terminate,
        Fault::Failover,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::Maestro => "maestro",
            Fault::Jcapi => "jcapi",
            Fault::Worker => "worker",
            Fault::Client => "client",
            Fault::Crash => "crash",
            Fault::Failover => "failover",
            Fault::Xmin => "xmin",
            Fault::Terminate => "terminate",
        }
    }

    pub fn parse(s: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == s.trim())
    }

    fn what(self) -> &'static str {
        match self {
            Fault::Maestro => "kill -9 the maestro, start it again",
            Fault::Jcapi => "kill -9 one of the two gateways, start it again on its ports",
            Fault::Worker => "kill -9 the worker holding the most tasks, start it again",
            Fault::Client => "kill -9 a client waiting for job_done, start it again",
            Fault::Crash => "pg_ctl stop -m immediate on the primary, start it again",
            Fault::Failover => "kill the primary, promote the standby (then a new standby)",
            Fault::Xmin => "hold a repeatable-read transaction open",
            Fault::Terminate => {
                "pg_terminate_backend every maestro and jcapi session, 4 times a second"
            }
        }
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub faults: Vec<Fault>,
    pub rounds: usize,
    /// The load runs at least this long.
    pub seconds: u64,
    pub workers: usize,
    pub clients: usize,
    pub inflight: usize,
    pub slots: u32,
    /// How long the xmin fault holds its transaction.
    pub hold: Duration,
    /// How long the terminate storm lasts.
    pub storm: Duration,
    /// How long the clients may take to get their last answers after the load.
    pub drain: Duration,
    pub jcapi: PathBuf,
    pub maestro: PathBuf,
}

/// One injected fault.
#[derive(Debug, Clone)]
struct Injected {
    fault: Fault,
    round: usize,
    down: Duration,
    recover: Option<Duration>,
    note: String,
}

/// How the engine shows it recovered.
#[derive(Debug, Clone)]
enum Probe {
    /// A top-level job created after the fault began has finished (of this workflow; of a
    /// client of this gateway).
    Finished {
        workflow: Option<&'static str>,
        gateway: Option<i64>,
    },
    /// None of these jobs is still `working` for this worker, or waiting to retry.
    Released { worker_id: i64, jobs: Vec<i64> },
    /// The client's records answer every one of these jobs.
    Answered { records: PathBuf, jobs: Vec<i64> },
}

/// Runs the plan; the figures as JSON. Fails only when the bench itself cannot run: lost or
/// doubled jobs are figures.
pub async fn run(plan: &Plan) -> anyhow::Result<Value> {
    let shape = Shape {
        jcapi: plan.jcapi.clone(),
        maestro: plan.maestro.clone(),
        standby: plan.faults.contains(&Fault::Failover),
        workers: plan.workers,
        clients: plan.clients,
        slots: plan.slots,
        inflight: plan.inflight,
        task_ms: 100,
        flaky: 0.3,
        maestro_env: vec![],
        settings: vec![],
    };
    let mut engine = Engine::start(shape).await?;
    match drive(&mut engine, plan).await {
        Ok(v) => Ok(v),
        Err(e) => Err(anyhow::anyhow!(
            "{e:#}\n\nthe logs, last lines:\n{}",
            engine.log_tails()
        )),
    }
}

async fn drive(engine: &mut Engine, plan: &Plan) -> anyhow::Result<Value> {
    let started = Instant::now();
    // Warm-up: the load flows before the first fault.
    let since = SystemTime::now();
    let warm = wait_probe(
        engine,
        &Probe::Finished {
            workflow: None,
            gateway: None,
        },
        since,
    )
    .await
    .context("no job finished before the first fault")?;
    eprintln!("chaos: load flowing after {:.1} s", warm.as_secs_f64());
    let mut injected = vec![];
    for round in 1..=plan.rounds {
        for &fault in &plan.faults {
            eprintln!("chaos: round {round}, {}", fault.name());
            let i = inject(engine, plan, fault, round).await?;
            eprintln!(
                "chaos:   down {:.1} s, recovered in {}; {}",
                i.down.as_secs_f64(),
                i.recover
                    .map_or("(not within the time-out)".to_owned(), |d| format!(
                        "{:.1} s",
                        d.as_secs_f64()
                    )),
                i.note
            );
            injected.push(i);
            tokio::time::sleep(GAP).await;
        }
    }
    let rest = Duration::from_secs(plan.seconds).saturating_sub(started.elapsed());
    tokio::time::sleep(rest).await;
    let load = started.elapsed();
    eprintln!(
        "chaos: stopping the clients after {:.0} s of load",
        load.as_secs_f64()
    );
    let drained = engine.drain_clients(plan.drain).await?;
    // Children and retries of jobs whose clients gave up still end.
    let settle = Instant::now();
    let c = engine.connect().await?;
    while !sql::live_jobs(&c.client).await?.is_empty() && settle.elapsed() < plan.drain {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let checks = check(engine, &c.client).await?;
    engine.stop().await?;
    let report = json!({
        "plan": {
            "faults": plan.faults.iter().map(|f| f.name()).collect::<Vec<_>>(),
            "rounds": plan.rounds,
            "seconds": plan.seconds,
            "workers": plan.workers,
            "clients": plan.clients,
            "inflight_per_client": plan.inflight,
            "slots_per_action": plan.slots,
            "xmin_hold_s": plan.hold.as_secs(),
            "terminate_storm_s": plan.storm.as_secs(),
            "load": "jobs of chaos.one, child, sleep, event, lock, retry in turn; workers take \
                     100 ms per task, 30% of chaos.flaky's tasks answer a soft error",
        },
        "load_s": round_to(load.as_secs_f64(), 1),
        "clients_drained": drained,
        "faults": injected.iter().map(|i| json!({
            "fault": i.fault.name(),
            "what": i.fault.what(),
            "round": i.round,
            "down_s": round_to(i.down.as_secs_f64(), 2),
            "recover_s": i.recover.map(|d| round_to(d.as_secs_f64(), 2)),
            "note": i.note,
        })).collect::<Vec<_>>(),
        "checks": checks,
    });
    print_table(&report);
    Ok(report)
}

async fn inject(
    engine: &mut Engine,
    plan: &Plan,
    fault: Fault,
    round: usize,
) -> anyhow::Result<Injected> {
    let at = SystemTime::now();
    let begun = Instant::now();
    let mut note = String::new();
    let probe = match fault {
        Fault::Maestro => {
            engine.kill_maestro().await?;
            tokio::time::sleep(DOWN).await;
            engine.restart_maestro()?;
            Probe::Finished {
                workflow: Some("chaos.sleep"),
                gateway: None,
            }
        }
        Fault::Jcapi => {
            let g = (round - 1) % 2;
            engine.kill_gateway(g).await?;
            tokio::time::sleep(DOWN).await;
            engine.restart_gateway(g).await?;
            note = format!("gateway {g}");
            Probe::Finished {
                workflow: None,
                gateway: Some(g as i64),
            }
        }
        Fault::Worker => {
            let deadline = Instant::now() + Duration::from_secs(20);
            let (name, worker_id, jobs) = loop {
                let c = engine.connect().await?;
                if let Some(busy) = sql::busiest_worker(&c.client, engine::WORKER_PREFIX).await? {
                    break busy;
                }
                if Instant::now() > deadline {
                    bail!("no worker held a task within 20 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            let w = engine.kill_worker(&name).await?;
            note = format!("{name} held {} tasks", jobs.len());
            tokio::time::sleep(DOWN).await;
            engine.restart_worker(w)?;
            Probe::Released { worker_id, jobs }
        }
        Fault::Client => {
            let i = (round - 1) % engine.clients.len();
            let records = engine.clients[i].spec.records.clone();
            engine.kill_client(i).await?;
            let jobs = engine::unanswered(&records);
            note = format!("client {i} waited for {} jobs", jobs.len());
            tokio::time::sleep(DOWN).await;
            engine.restart_client(i)?;
            Probe::Answered { records, jobs }
        }
        Fault::Crash => {
            engine.pair.crash_primary().await?;
            tokio::time::sleep(Duration::from_secs(2)).await;
            engine.pair.start_primary().await?;
            Probe::Finished {
                workflow: None,
                gateway: None,
            }
        }
        Fault::Failover => {
            if !engine.pair.has_standby() {
                bail!("no standby to fail over to");
            }
            engine.pair.fail_over().await?;
            note = format!("primary now on port {}", engine.pair.primary_port());
            Probe::Finished {
                workflow: None,
                gateway: None,
            }
        }
        Fault::Xmin => {
            let holder = engine.connect().await?;
            sql::hold_xmin(&holder.client).await?;
            let before = answers(engine);
            tokio::time::sleep(plan.hold).await;
            note = format!("{} jobs answered meanwhile", answers(engine) - before);
            // A crash may have ended it already; either way it is over.
            let _ = holder.client.batch_execute("commit").await;
            Probe::Finished {
                workflow: None,
                gateway: None,
            }
        }
        Fault::Terminate => {
            let mut terminated = 0;
            let before = answers(engine);
            while begun.elapsed() < plan.storm {
                if let Ok(c) = engine.connect().await {
                    terminated += sql::terminate_engine(&c.client).await.unwrap_or(0);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            note = format!(
                "{terminated} sessions terminated, {} jobs answered meanwhile",
                answers(engine) - before
            );
            Probe::Finished {
                workflow: None,
                gateway: None,
            }
        }
    };
    let down = begun.elapsed();
    let ended = Instant::now();
    let recover = wait_probe(engine, &probe, at)
        .await
        .ok()
        .map(|_| ended.elapsed());
    if fault == Fault::Failover {
        let rebuilt = Instant::now();
        engine.pair.rebuild_standby().await?;
        note.push_str(&format!(
            "; new standby streaming after {:.1} s",
            rebuilt.elapsed().as_secs_f64()
        ));
    }
    Ok(Injected {
        fault,
        round,
        down,
        recover,
        note,
    })
}

/// Answers the clients got so far.
fn answers(engine: &Engine) -> usize {
    engine::read_clients(engine)
        .answers
        .values()
        .map(Vec::len)
        .sum()
}

/// Waits until `probe` passes (a fresh connection each try: the database may be down);
/// how long it took, or an error after [`RECOVERY_TIMEOUT`].
async fn wait_probe(engine: &Engine, probe: &Probe, since: SystemTime) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let passed = match probe {
            Probe::Answered { records, jobs } => engine::answered_all(records, jobs),
            _ => match engine.connect().await {
                Ok(c) => match probe {
                    Probe::Finished { workflow, gateway } => sql::finished_since(
                        &c.client,
                        since,
                        *workflow,
                        gateway.map(|g| (INPUT_SPAN, g)),
                    )
                    .await
                    .unwrap_or(false),
                    Probe::Released { worker_id, jobs } => {
                        sql::still_held(&c.client, *worker_id, jobs).await.ok() == Some(0)
                    }
                    Probe::Answered { .. } => false,
                },
                Err(_) => false,
            },
        };
        if passed {
            return Ok(start.elapsed());
        }
        if start.elapsed() > RECOVERY_TIMEOUT {
            bail!("not recovered within {} s", RECOVERY_TIMEOUT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The checks after the load, as JSON.
async fn check(engine: &Engine, c: &tokio_postgres::Client) -> anyhow::Result<Value> {
    let records = engine::read_clients(engine);
    let performed = engine::read_workers(engine);
    let ids: Vec<i64> = records.created.keys().copied().collect();
    let ends = sql::job_ends(c, &ids).await?;
    let mut found = std::collections::HashMap::new();
    for (id, state, out) in ends {
        found.insert(id, (state, out));
    }
    let (mut finished, mut lost, mut failed, mut wrong) = (0, vec![], vec![], vec![]);
    for (id, (input, kind)) in &records.created {
        match found.get(id) {
            Some((state, Some(out))) if state == "finished" => {
                if *out == json!({ "output": input + STEP }) {
                    finished += 1;
                } else {
                    wrong.push(format!("job {id} ({kind}, input {input}) answered {out}"));
                }
            }
            Some((state, out)) if state == "error" => failed.push(format!(
                "job {id} ({kind}): {}",
                out.as_ref().map_or_else(
                    || "no outputs".to_owned(),
                    |o| o["error"]["msg"].to_string()
                )
            )),
            Some((state, _)) => lost.push(format!("job {id} ({kind}) still {state}")),
            None => lost.push(format!("job {id} ({kind}) is in no table")),
        }
    }
    let ended_twice = sql::ended_twice(c).await?;
    let applied_twice = sql::applied_twice(c).await?;
    // A client's two answers to one job must agree (a restarted client may ask again).
    let mut answers_differ = vec![];
    let mut unanswered = 0;
    for id in records.created.keys() {
        match records.answers.get(id) {
            None => unanswered += 1,
            Some(a) if a.windows(2).any(|w| w[0] != w[1]) => {
                answers_differ.push(format!("job {id}: {a:?}"));
            }
            Some(_) => {}
        }
    }
    let (retried_jobs, retries) = sql::retries(c).await?;
    let mut causes = serde_json::Map::new();
    for (msg, n) in sql::retry_causes(c).await? {
        let cause = retry_cause(&msg);
        let sum = causes.get(cause).and_then(Value::as_i64).unwrap_or(0) + n;
        causes.insert(cause.to_owned(), json!(sum));
    }
    let live = sql::live_jobs(c).await?;
    let stuck: Vec<String> = live
        .iter()
        .filter(|(_, _, reason)| !reason)
        .map(|(id, state, _)| format!("job {id} {state}"))
        .collect();
    let (locks, subscriptions, queued) = sql::orphans(c).await?;
    let performed_again = performed.values().filter(|n| **n > 1).count();
    let quote = |v: &[String]| v.iter().take(QUOTED).cloned().collect::<Vec<_>>();
    let doubled = ended_twice.len() + applied_twice.len() + answers_differ.len();
    Ok(json!({
        "jobs_created": records.created.len(),
        "jobs_finished": finished,
        "lost": lost.len(),
        "doubled": doubled,
        "failed_by_a_fault": failed.len(),
        "wrong_outputs": wrong.len(),
        "jobs_retried": retried_jobs,
        "retries": retries,
        "retries_by_cause": causes,
        "tasks_performed": performed.values().map(|n| u64::from(*n)).sum::<u64>(),
        "jobs_whose_tasks_were_performed_again": performed_again,
        "creates_unacknowledged": records.unacknowledged,
        "jobs_unanswered_by_clients": unanswered,
        "ended_twice": ended_twice.len(),
        "outputs_applied_twice": applied_twice.len(),
        "answers_differ": answers_differ.len(),
        "live_jobs_left": live.len(),
        "stuck": stuck.len(),
        "orphans": { "locks": locks, "subscriptions": subscriptions, "queued_events": queued },
        "examples": {
            "lost": quote(&lost),
            "failed_by_a_fault": quote(&failed),
            "wrong_outputs": quote(&wrong),
            "stuck": quote(&stuck),
            "ended_twice": ended_twice.iter().take(QUOTED).map(|(j, n)| format!("job {j} {n} times")).collect::<Vec<_>>(),
            "outputs_applied_twice": applied_twice.iter().take(QUOTED).map(|(j, t, n)| format!("job {j} task {t} {n} times")).collect::<Vec<_>>(),
            "answers_differ": quote(&answers_differ),
        },
    }))
}

/// What a retry's error message says happened: the flaky worker's soft error, a worker that
/// disconnected with the task (`disconnect`), or a task whose result never came (its
/// time-out: the worker, its gateway or its `task_done` was lost).
fn retry_cause(msg: &str) -> &'static str {
    if msg.contains("flaky worker") {
        "flaky_worker"
    } else if msg.contains("disconnected") {
        "worker_disconnected"
    } else if msg.contains("time") {
        "timed_out"
    } else {
        "other"
    }
}

fn print_table(report: &Value) {
    println!(
        "{:>5} {:>9} {:>7} {:>9}  note",
        "round", "fault", "down_s", "recover_s"
    );
    for f in report["faults"].as_array().into_iter().flatten() {
        println!(
            "{:>5} {:>9} {:>7.2} {:>9}  {}",
            f["round"].to_string(),
            f["fault"].as_str().unwrap_or_default(),
            f["down_s"].as_f64().unwrap_or_default(),
            f["recover_s"]
                .as_f64()
                .map_or("never".to_owned(), |r| format!("{r:.2}")),
            f["note"].as_str().unwrap_or_default()
        );
    }
    let c = &report["checks"];
    println!();
    for key in [
        "jobs_created",
        "jobs_finished",
        "lost",
        "doubled",
        "failed_by_a_fault",
        "wrong_outputs",
        "jobs_retried",
        "retries",
        "tasks_performed",
        "creates_unacknowledged",
        "jobs_unanswered_by_clients",
        "live_jobs_left",
        "stuck",
    ] {
        println!("{key:>28}: {}", c[key]);
    }
    println!("{:>28}: {}", "retries_by_cause", c["retries_by_cause"]);
    println!("{:>28}: {}", "orphans", c["orphans"]);
    for (what, examples) in c["examples"].as_object().into_iter().flatten() {
        for e in examples.as_array().into_iter().flatten() {
            println!("  {what}: {}", e.as_str().unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_are_told_apart_by_their_messages() {
        for (msg, cause) in [
            ("flaky worker: try again", "flaky_worker"),
            ("worker chaos-w1 disconnected", "worker_disconnected"),
            (
                "timeout: worker chaos-w0 did not finish in time",
                "timed_out",
            ),
            ("something else", "other"),
        ] {
            assert_eq!(retry_cause(msg), cause, "{msg}");
        }
    }

    #[test]
    fn faults_parse_by_name() {
        for f in Fault::ALL {
            assert_eq!(Fault::parse(f.name()), Some(f));
        }
        assert_eq!(Fault::parse(" crash "), Some(Fault::Crash));
        assert_eq!(Fault::parse("meteor"), None);
    }
}
