//! `bench peers`: the engine beside graphile-worker on the same private cluster, with the
//! same job count, in interleaved rounds (ours, then the peer's, each on a fresh database)
//! and a commit probe before every run, since this disk's commit rate swings several-fold.
//!
//! graphile-worker is installed from npm into a cache directory when missing, and driven
//! by `bench/peers/graphile.js` (its perfTest's way: jobs queued by one `add_jobs`, drained
//! by `runOnce`). Its `add_job` is called from here, over the same client library as ours.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::task::JoinSet;

use crate::conn::Conn;
use crate::summary::{rate, round_to, Spread};
use crate::{create, drain, e2e, sql};

/// The graphile-worker release measured: 0.17.x runs on the node 20 installed here (0.18
/// needs node 22).
pub const GRAPHILE_VERSION: &str = "0.17.3";

/// The driver script, kept in the repository.
pub const DRIVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/graphile.js");

/// Where graphile-worker is installed by default: `.jc/peers` of the workspace.
pub fn default_cache() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.jc/peers")
}

/// graphile-worker, installed and ready to run.
#[derive(Debug)]
pub struct Peer {
    node_modules: PathBuf,
    pub node: String,
}

impl Peer {
    /// Checks node, and installs graphile-worker [`GRAPHILE_VERSION`] into `cache` with npm
    /// unless that version is there.
    pub async fn install(cache: &Path) -> anyhow::Result<Peer> {
        let node = output(Command::new("node").arg("--version"))
            .await
            .context("graphile-worker needs node (https://nodejs.org) on the PATH")?;
        let node_modules = cache.join("node_modules");
        let installed = std::fs::read_to_string(node_modules.join("graphile-worker/package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .and_then(|p| p.get("version").and_then(Value::as_str).map(str::to_owned));
        if installed.as_deref() != Some(GRAPHILE_VERSION) {
            eprintln!(
                "peers: installing graphile-worker {GRAPHILE_VERSION} into {} …",
                cache.display()
            );
            std::fs::create_dir_all(cache)
                .with_context(|| format!("could not create {}", cache.display()))?;
            output(
                Command::new("npm")
                    .args([
                        "install",
                        "--no-audit",
                        "--no-fund",
                        "--no-save",
                        "--prefix",
                    ])
                    .arg(cache)
                    .arg(format!("graphile-worker@{GRAPHILE_VERSION}")),
            )
            .await
            .context("npm could not install graphile-worker")?;
        }
        Ok(Peer {
            node_modules,
            node: node.trim().to_owned(),
        })
    }

    async fn driver(&self, url: &str, args: &[&str]) -> anyhow::Result<Value> {
        let out = output(
            Command::new("node")
                .arg(DRIVER)
                .args(args)
                .env("DATABASE_URL", url)
                .env("NODE_PATH", &self.node_modules),
        )
        .await
        .with_context(|| format!("graphile.js {}", args.join(" ")))?;
        let line = out.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .with_context(|| format!("graphile.js printed no JSON result: {out:?}"))
    }

    /// Installs graphile-worker's schema into the database at `url`.
    pub async fn migrate(&self, url: &str) -> anyhow::Result<()> {
        self.driver(url, &["migrate"]).await.map(drop)
    }

    /// Queues `jobs` jobs and drains them with `concurrency`; jobs per second and the WAL
    /// bytes written per job.
    pub async fn drain(
        &self,
        url: &str,
        jobs: usize,
        concurrency: usize,
        batched: bool,
    ) -> anyhow::Result<(f64, f64)> {
        let result = self
            .driver(
                url,
                &[
                    "drain",
                    &jobs.to_string(),
                    &concurrency.to_string(),
                    if batched { "batched" } else { "unbatched" },
                ],
            )
            .await?;
        let figure = |key: &str| {
            result
                .get(key)
                .and_then(Value::as_f64)
                .with_context(|| format!("graphile.js drain printed no {key}: {result}"))
        };
        Ok((figure("jobs_per_s")?, figure("wal_bytes_per_job")?))
    }
}

/// Runs `command`; its standard output, or an error with its standard error.
async fn output(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("could not run {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8(out.stdout).context("the output is not UTF-8")
}

/// A node-postgres URL for database `db` of `cluster` (the driver takes no libpq strings).
pub fn url(cluster: &testkit::Cluster, db: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{db}", cluster.port())
}

/// graphile-worker's `add_job` from `clients` connections, one job per transaction, `jobs`
/// in all, on a database with its schema; jobs per second.
pub async fn peer_create(dsn: &str, clients: usize, jobs: usize) -> anyhow::Result<f64> {
    let mut prepared = Vec::with_capacity(clients);
    for _ in 0..clients {
        let conn = Conn::open(dsn).await?;
        let add = conn.client.prepare(sql::PEER_ADD_JOB).await?;
        prepared.push((conn, add));
    }
    let start = Instant::now();
    let mut running = JoinSet::new();
    for (i, (conn, add)) in prepared.into_iter().enumerate() {
        let ids: Vec<i32> = (i..jobs).step_by(clients).map(|n| n as i32).collect();
        running.spawn(async move {
            for id in ids {
                conn.client
                    .query_one(&add, &[&id])
                    .await
                    .with_context(|| format!("graphile_worker.add_job of job {id}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.context("a client panicked")??;
    }
    let elapsed = start.elapsed();
    let control = Conn::open(dsn).await?;
    let queued = sql::peer_queued(&control.client).await?;
    ensure!(
        queued == jobs as i64,
        "graphile-worker queued {queued} jobs, not {jobs}"
    );
    Ok(rate(jobs as f64, elapsed.as_secs_f64()))
}

/// One run's rate and the commit probe's reading just before it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub jobs_per_s: f64,
    pub probe: f64,
    /// The WAL the run wrote per job (the drains).
    pub wal_per_job: Option<f64>,
}

/// One round of a comparison: ours and the peer's readings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    pub ours: Reading,
    pub peer: Reading,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.ours.jobs_per_s / self.peer.jobs_per_s
    }
}

/// What the drains' note says of our jobs' ends ([`Plan::notify`]).
fn quiet_note(notify: bool) -> Option<&'static str> {
    (!notify).then_some(
        "our jobs are quiet (create_job(..., a_notify => false)): their ends are notified to \
         nobody, as nobody is told of a graphile-worker job's completion; --notify-ends drains \
         notified ones",
    )
}

/// A comparison over all rounds: what each side ran, the target ratio, and the rounds.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub name: &'static str,
    pub ours: &'static str,
    pub peer: &'static str,
    /// The target for ours / peer.
    pub target: f64,
    pub note: Option<&'static str>,
    pub rounds: Vec<Pair>,
}

impl Comparison {
    pub fn ratios(&self) -> Option<Spread> {
        Spread::of(&self.rounds.iter().map(Pair::ratio).collect::<Vec<_>>())
    }

    pub fn json(&self) -> Value {
        let reading = |r: &Reading| {
            json!({
                "jobs_per_s": round_to(r.jobs_per_s, 1),
                "probe_commits_per_s_before": r.probe,
                "wal_bytes_per_job": r.wal_per_job.map(|w| round_to(w, 0)),
            })
        };
        json!({
            "ours": self.ours,
            "peer": self.peer,
            "note": self.note,
            "target_ratio": self.target,
            "ratio": self.ratios().map(|s| s.json(3)),
            "rounds": self.rounds.iter().map(|p| json!({
                "ours": reading(&p.ours),
                "peer": reading(&p.peer),
                "ratio": round_to(p.ratio(), 3),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn print(&self) {
        println!("{}: ours = {}; peer = {}", self.name, self.ours, self.peer);
        if let Some(note) = self.note {
            println!("  ({note})");
        }
        println!(
            "  {:>5} {:>10} {:>8} {:>10} {:>8} {:>7} {:>9} {:>9}",
            "round", "ours/s", "probe", "peer/s", "probe", "ratio", "ours_wal", "peer_wal"
        );
        let wal = |r: &Reading| r.wal_per_job.map_or("-".to_owned(), |w| format!("{w:.0}"));
        for (i, p) in self.rounds.iter().enumerate() {
            println!(
                "  {:>5} {:>10.1} {:>8.0} {:>10.1} {:>8.0} {:>7.3} {:>9} {:>9}",
                i + 1,
                p.ours.jobs_per_s,
                p.ours.probe,
                p.peer.jobs_per_s,
                p.peer.probe,
                p.ratio(),
                wal(&p.ours),
                wal(&p.peer)
            );
        }
        if let Some(s) = self.ratios() {
            println!(
                "  ratio ours/peer: median {:.3} (min {:.3}, max {:.3}); target ≥ {}",
                s.median, s.min, s.max, self.target
            );
        }
        println!();
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub jobs: usize,
    pub rounds: usize,
    pub workers: usize,
    pub clients: usize,
    pub probe: Duration,
    /// Whether our drained jobs' ends are notified ([`drain::Plan::notify`]).
    pub notify: bool,
    pub timeout: Duration,
}

/// Tasks per call of our batched drain.
const BATCH: usize = 100;

/// The four comparisons, each round interleaved: drain (ours, peer unbatched, peer
/// batched), create (ours, peer), through the gateway (ours; against the peer's unbatched
/// drain of the same round).
pub async fn run(
    cluster: &testkit::Cluster,
    peer: &Peer,
    setup: &e2e::Setup,
    plan: &Plan,
) -> anyhow::Result<Vec<Comparison>> {
    let w = plan.workers;
    let mut drain_cmp = Comparison {
        name: "drain",
        ours: "SQL workers, get_task + task_done, one task per call",
        peer: "graphile-worker runOnce, 1 process, one job per query",
        target: 1.0,
        note: quiet_note(plan.notify),
        rounds: vec![],
    };
    let mut batched = Comparison {
        name: "drain_batched",
        ours: "SQL workers, get_tasks + tasks_done, up to 100 tasks per call",
        peer: "graphile-worker runOnce, local queue 500, batched completions",
        target: 0.5,
        note: quiet_note(plan.notify),
        rounds: vec![],
    };
    let mut create_cmp = Comparison {
        name: "create",
        ours: "create_job, one job per transaction",
        peer: "graphile_worker.add_job, one job per transaction",
        target: 1.0,
        note: None,
        rounds: vec![],
    };
    let mut e2e_cmp = Comparison {
        name: "e2e",
        ours: "bench --e2e: jcapi over TCP, jc-client workers and clients",
        peer: "graphile-worker unbatched drain of the same round",
        target: 0.5,
        note: None,
        rounds: vec![],
    };
    for round in 1..=plan.rounds {
        let probe = || crate::machine::probe(cluster, plan.probe);
        eprintln!("peers: round {round} of {}", plan.rounds);

        let p = probe().await?;
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        let ours_drain = drain::run(
            &db,
            &drain::Plan {
                jobs: plan.jobs,
                workers: w,
                batch: 1,
                notify: plan.notify,
                limit: None,
                task_timeout: None,
                timeout: plan.timeout,
            },
        )
        .await
        .context("our drain failed")?;
        let ours_drain = Reading {
            jobs_per_s: ours_drain.jobs_per_s(),
            probe: p,
            wal_per_job: Some(ours_drain.wal_per_job),
        };

        let peer_unbatched = peer_round(cluster, peer, plan, false, &probe).await?;
        let p = probe().await?;
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        let ours_batched = drain::run(
            &db,
            &drain::Plan {
                jobs: plan.jobs,
                workers: w,
                batch: BATCH,
                notify: plan.notify,
                limit: None,
                task_timeout: None,
                timeout: plan.timeout,
            },
        )
        .await
        .context("our batched drain failed")?;
        let ours_batched = Reading {
            jobs_per_s: ours_batched.jobs_per_s(),
            probe: p,
            wal_per_job: Some(ours_batched.wal_per_job),
        };
        let peer_batched = peer_round(cluster, peer, plan, true, &probe).await?;
        drain_cmp.rounds.push(Pair {
            ours: ours_drain,
            peer: peer_unbatched,
        });
        batched.rounds.push(Pair {
            ours: ours_batched,
            peer: peer_batched,
        });

        let p = probe().await?;
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        create::load(&db).await?;
        let ours_create = create::run(&db, plan.clients, plan.jobs, 0)
            .await
            .context("our create round failed")?;
        let ours_create = Reading {
            jobs_per_s: ours_create.jobs_per_s(),
            probe: p,
            wal_per_job: None,
        };
        let p = probe().await?;
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        peer.migrate(&url(cluster, &db.name)).await?;
        let peer_create = Reading {
            jobs_per_s: peer_create(&db.dsn, plan.clients, plan.jobs)
                .await
                .context("graphile-worker's add_job round failed")?,
            probe: p,
            wal_per_job: None,
        };
        create_cmp.rounds.push(Pair {
            ours: ours_create,
            peer: peer_create,
        });

        let p = probe().await?;
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        let e2e = e2e::run(
            &db,
            setup,
            &e2e::Plan {
                transport: e2e::Transport::Tcp,
                workers: w,
                slots: 1,
                clients: plan.clients,
                jobs: plan.jobs,
                inflight: None,
                timeout: plan.timeout,
            },
        )
        .await
        .context("our end-to-end round failed")?;
        e2e_cmp.rounds.push(Pair {
            ours: Reading {
                jobs_per_s: e2e.outcome.jobs_per_s(),
                probe: p,
                wal_per_job: None,
            },
            peer: peer_unbatched,
        });
    }
    Ok(vec![drain_cmp, batched, create_cmp, e2e_cmp])
}

/// A probe, then the peer's drain on a fresh database.
async fn peer_round<F, P>(
    cluster: &testkit::Cluster,
    peer: &Peer,
    plan: &Plan,
    batched: bool,
    probe: &F,
) -> anyhow::Result<Reading>
where
    F: Fn() -> P,
    P: std::future::Future<Output = anyhow::Result<f64>>,
{
    let p = probe().await?;
    let db = cluster
        .new_db()
        .await
        .context("could not create a database")?;
    let url = url(cluster, &db.name);
    peer.migrate(&url).await?;
    let (jobs_per_s, wal_per_job) = peer
        .drain(&url, plan.jobs, plan.workers, batched)
        .await
        .with_context(|| {
            format!(
                "graphile-worker's {} drain failed",
                if batched { "batched" } else { "unbatched" }
            )
        })?;
    if jobs_per_s <= 0.0 {
        bail!("graphile-worker's drain reported {jobs_per_s} jobs/s");
    }
    Ok(Reading {
        jobs_per_s,
        probe: p,
        wal_per_job: Some(wal_per_job),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(ours: f64, peer: f64) -> Pair {
        Pair {
            ours: Reading {
                jobs_per_s: ours,
                probe: 100.0,
                wal_per_job: Some(2000.0),
            },
            peer: Reading {
                jobs_per_s: peer,
                probe: 200.0,
                wal_per_job: None,
            },
        }
    }

    #[test]
    fn comparisons_report_ratios_with_the_probe_readings() -> anyhow::Result<()> {
        let c = Comparison {
            name: "drain",
            ours: "o",
            peer: "p",
            target: 1.0,
            note: None,
            rounds: vec![
                pair(800.0, 3200.0),
                pair(900.0, 3000.0),
                pair(700.0, 2000.0),
            ],
        };
        let s = c.ratios().context("no ratios")?;
        assert_eq!((s.min, s.median, s.max), (0.25, 0.3, 0.35));
        let j = c.json();
        assert_eq!(j["ratio"], json!({"median": 0.3, "min": 0.25, "max": 0.35}));
        assert_eq!(
            j["rounds"][0],
            json!({
                "ours": {"jobs_per_s": 800.0, "probe_commits_per_s_before": 100.0,
                         "wal_bytes_per_job": 2000.0},
                "peer": {"jobs_per_s": 3200.0, "probe_commits_per_s_before": 200.0,
                         "wal_bytes_per_job": null},
                "ratio": 0.25,
            })
        );
        assert_eq!(j["target_ratio"], json!(1.0));
        Ok(())
    }
}
