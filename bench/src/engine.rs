//! The whole engine as processes, for `chaos` and `soak`: the PostgreSQL pair ([`Pair`]), the
//! load's JCL compiled into it, the maestro, two gateways sharing the load, and the worker
//! and client agents ([`crate::agents`]), all on the multi-host connection string, each of
//! which can be killed (SIGKILL) and started again where it was.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::Value;
use tokio::process::{Child, Command};

use crate::agents::{self, Spec};
use crate::conn::Conn;
use crate::e2e::{self, Setup};
use crate::gateway::Gateway;
use crate::nodes::Pair;
use crate::sql;

/// Worker names start with this.
pub const WORKER_PREFIX: &str = "chaos-w";

/// How the engine is set up.
#[derive(Debug, Clone)]
pub struct Shape {
    pub jcapi: PathBuf,
    pub maestro: PathBuf,
    pub standby: bool,
    pub workers: usize,
    pub clients: usize,
    pub slots: u32,
    pub inflight: usize,
    pub task_ms: u64,
    pub flaky: f64,
    /// Extra `JC_` variables for the maestro.
    pub maestro_env: Vec<(String, String)>,
    /// Engine settings written before the load starts.
    pub settings: Vec<(String, Value)>,
}

/// A running engine; everything is killed when it is dropped.
#[derive(Debug)]
pub struct Engine {
    pub dsn: String,
    setup: Setup,
    shape: Shape,
    pub dir: PathBuf,
    maestro: Option<Child>,
    gateways: Vec<Option<Gateway>>,
    ports: Vec<[u16; 3]>,
    pub workers: Vec<Agent>,
    pub clients: Vec<Agent>,
    /// Last, so that it is dropped (PostgreSQL stopped) after the processes are killed.
    pub pair: Pair,
}

/// A worker or client process.
#[derive(Debug)]
pub struct Agent {
    pub spec: Spec,
    child: Option<Child>,
}

impl Agent {
    /// Whether it has exited (a client that is done); its failure is an error.
    pub fn try_exited(&mut self) -> anyhow::Result<bool> {
        match &mut self.child {
            None => Ok(true),
            Some(child) => match child.try_wait()? {
                None => Ok(false),
                Some(status) if status.success() => Ok(true),
                Some(status) => bail!(
                    "agent {} ({}) exited with {status}",
                    self.spec.name,
                    self.spec.role
                ),
            },
        }
    }
}

impl Engine {
    /// Starts PostgreSQL, loads the workload, starts the maestro and the gateways, then the
    /// workers and the clients (which start creating jobs at once).
    pub async fn start(shape: Shape) -> anyhow::Result<Engine> {
        let pair = Pair::start(shape.standby).await?;
        let dsn = pair.dsn();
        let setup = e2e::Setup::new(shape.jcapi.clone()).await?;
        let dir = setup.dir().to_owned();
        {
            let mut db =
                tokio_postgres::connect(&pair.primary_dsn(crate::nodes::DB), tokio_postgres::NoTls)
                    .await
                    .context("could not connect to the primary")?;
            let conn = db.1;
            tokio::spawn(conn);
            let c = &mut db.0;
            let sources: Vec<jcc::SourceFile> = agents::SOURCES
                .iter()
                .map(|(name, text)| jcc::SourceFile::new(*name, *text))
                .collect();
            let (parsed, diagnostics) = jcc::parse(sources.clone());
            if !diagnostics.is_empty() {
                bail!("the load's JCL: {}", jcc::render(&diagnostics, &sources));
            }
            let (out, _) =
                jcc::db::compile_and_write(c, &parsed, &jcc::db::WriteOptions::default())
                    .await
                    .context("could not compile the load's JCL")?;
            if out.has_errors() {
                bail!(
                    "the load's JCL: {}",
                    jcc::render(&out.diagnostics, &sources)
                );
            }
            sql::allow_gateway_users(
                c,
                &[e2e::CLIENT_USER.to_owned(), e2e::WORKER_USER.to_owned()],
                &[e2e::WORKER_USER.to_owned()],
            )
            .await?;
            for (name, value) in &shape.settings {
                sql::set_setting(c, name, value).await?;
            }
        }
        let mut engine = Engine {
            pair,
            dsn,
            setup,
            dir,
            maestro: None,
            gateways: vec![],
            ports: vec![],
            workers: vec![],
            clients: vec![],
            shape,
        };
        engine.start_maestro()?;
        for g in 0..2 {
            let log = engine.dir.join(format!("jcapi{g}.log"));
            let gw = Gateway::start_at(
                engine.setup.jcapi(),
                &engine.dsn,
                engine.setup.users_file(),
                &log,
                [0, 0, 0],
            )
            .await?;
            engine.ports.push(gw.ports());
            engine.gateways.push(Some(gw));
        }
        for w in 0..engine.shape.workers {
            let spec = Spec {
                role: "worker".into(),
                port: engine.ports[w % 2][0],
                user: e2e::WORKER_USER.into(),
                records: engine.dir.join(format!("worker{w}.jsonl")),
                name: format!("{WORKER_PREFIX}{w}"),
                slots: engine.shape.slots,
                task_ms: engine.shape.task_ms,
                flaky: engine.shape.flaky,
                index: w as i64,
                inflight: 0,
                stop_file: engine.stop_file(),
            };
            let agent = engine.spawn_agent(spec)?;
            engine.workers.push(agent);
        }
        for i in 0..engine.shape.clients {
            let spec = Spec {
                role: "client".into(),
                port: engine.ports[i % 2][0],
                user: e2e::CLIENT_USER.into(),
                records: engine.dir.join(format!("client{i}.jsonl")),
                name: format!("chaos-c{i}"),
                slots: 0,
                task_ms: 0,
                flaky: 0.0,
                index: i as i64,
                inflight: engine.shape.inflight,
                stop_file: engine.stop_file(),
            };
            let agent = engine.spawn_agent(spec)?;
            engine.clients.push(agent);
        }
        Ok(engine)
    }

    /// The file whose existence tells the clients to stop creating jobs.
    pub fn stop_file(&self) -> PathBuf {
        self.dir.join("stop")
    }

    fn spawn_agent(&self, spec: Spec) -> anyhow::Result<Agent> {
        let exe = std::env::current_exe().context("could not find the bench's executable")?;
        let password = if spec.role == "worker" {
            self.setup.worker_password()
        } else {
            self.setup.client_password()
        };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{}.log", spec.name)))?;
        let child = Command::new(exe)
            .arg("chaos-agent")
            .arg(serde_json::to_string(&spec)?)
            .env(agents::PASSWORD_VAR, password)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("could not start an agent")?;
        Ok(Agent {
            spec,
            child: Some(child),
        })
    }

    fn start_maestro(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("maestro.log"))?;
        let mut cmd = Command::new(&self.shape.maestro);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("JC_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("JC_DSN", &self.dsn)
            .env("JC_LOG_LEVEL", "warn")
            .env("JC_RECONNECT_MAX", "1s")
            .envs(self.shape.maestro_env.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true);
        self.maestro = Some(cmd.spawn().context("could not start the maestro")?);
        Ok(())
    }

    /// SIGKILL to the maestro.
    pub async fn kill_maestro(&mut self) -> anyhow::Result<()> {
        if let Some(mut m) = self.maestro.take() {
            m.kill().await?;
        }
        Ok(())
    }

    pub fn restart_maestro(&mut self) -> anyhow::Result<()> {
        self.start_maestro()
    }

    /// SIGKILL to gateway `g`.
    pub async fn kill_gateway(&mut self, g: usize) -> anyhow::Result<()> {
        if let Some(gw) = self.gateways[g].take() {
            gw.kill().await?;
        }
        Ok(())
    }

    /// Starts gateway `g` again on its ports.
    pub async fn restart_gateway(&mut self, g: usize) -> anyhow::Result<()> {
        let log = self.dir.join(format!("jcapi{g}.log"));
        let gw = Gateway::start_at(
            self.setup.jcapi(),
            &self.dsn,
            self.setup.users_file(),
            &log,
            self.ports[g],
        )
        .await?;
        self.gateways[g] = Some(gw);
        Ok(())
    }

    /// SIGKILL to the worker named `name`; its index.
    pub async fn kill_worker(&mut self, name: &str) -> anyhow::Result<usize> {
        let w = self
            .workers
            .iter()
            .position(|a| a.spec.name == name)
            .with_context(|| format!("no worker {name}"))?;
        if let Some(mut child) = self.workers[w].child.take() {
            child.kill().await?;
        }
        Ok(w)
    }

    /// SIGKILL to client `i`.
    pub async fn kill_client(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.clients[i].child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    pub fn restart_worker(&mut self, w: usize) -> anyhow::Result<()> {
        let agent = self.spawn_agent(self.workers[w].spec.clone())?;
        self.workers[w] = agent;
        Ok(())
    }

    pub fn restart_client(&mut self, i: usize) -> anyhow::Result<()> {
        let agent = self.spawn_agent(self.clients[i].spec.clone())?;
        self.clients[i] = agent;
        Ok(())
    }

    /// The resident memory (kB) of the maestro and of each gateway, from /proc.
    pub fn rss_kb(&self) -> (Option<u64>, Vec<Option<u64>>) {
        let maestro = self.maestro.as_ref().and_then(Child::id).and_then(rss_of);
        let gateways = self
            .gateways
            .iter()
            .map(|g| g.as_ref().and_then(Gateway::pid).and_then(rss_of))
            .collect();
        (maestro, gateways)
    }

    /// A fresh connection to whichever node is the primary now.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        Conn::open(&self.dsn).await
    }

    /// Tells the clients to stop, and waits (at most `within`) for each to exit once its
    /// jobs are answered; false when some did not.
    pub async fn drain_clients(&mut self, within: Duration) -> anyhow::Result<bool> {
        std::fs::write(self.stop_file(), b"")?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut all = true;
            for c in &mut self.clients {
                all &= c.try_exited()?;
            }
            if all {
                return Ok(true);
            }
            if tokio::time::Instant::now() > deadline {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops everything but PostgreSQL.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for a in self.clients.iter_mut().chain(self.workers.iter_mut()) {
            if let Some(mut child) = a.child.take() {
                child.kill().await?;
            }
        }
        for g in &mut self.gateways {
            if let Some(gw) = g.take() {
                gw.stop().await?;
            }
        }
        self.kill_maestro().await
    }

    /// The last lines of the logs, for an error.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for name in ["maestro.log", "jcapi0.log", "jcapi1.log"] {
            let text = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out.push_str(&format!(
                "--- {name}\n{}\n",
                lines[lines.len().saturating_sub(10)..].join("\n")
            ));
        }
        out
    }
}

fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the clients' records say, all clients together.
#[derive(Debug, Default)]
pub struct ClientRecords {
    /// Job id → (input, kind) for every job a client was told was created.
    pub created: BTreeMap<i64, (i64, String)>,
    /// Job id → the answers `wait_job` gave (more than one when a restarted client asked
    /// again before its first answer was written).
    pub answers: BTreeMap<i64, Vec<Result<Value, String>>>,
    /// `create_job` calls that failed (their job may exist).
    pub unacknowledged: usize,
}

/// Reads every client's records.
pub fn read_clients(engine: &Engine) -> ClientRecords {
    let mut r = ClientRecords::default();
    for c in &engine.clients {
        for v in lines(&c.spec.records) {
            if let (Some(id), Some(input)) = (v["c"].as_i64(), v["input"].as_i64()) {
                let kind = v["kind"].as_str().unwrap_or_default().to_owned();
                r.created.insert(id, (input, kind));
            } else if let Some(id) = v["d"].as_i64() {
                let answer = match v.get("out") {
                    Some(out) => Ok(out.clone()),
                    None => Err(v["error"].as_str().unwrap_or_default().to_owned()),
                };
                r.answers.entry(id).or_default().push(answer);
            } else if v.get("unacknowledged").is_some() {
                r.unacknowledged += 1;
            }
        }
    }
    r
}

/// Tasks the workers performed, by job: how many times.
pub fn read_workers(engine: &Engine) -> HashMap<i64, u32> {
    let mut performed = HashMap::new();
    for w in &engine.workers {
        for v in lines(&w.spec.records) {
            if let Some(id) = v["p"].as_i64() {
                *performed.entry(id).or_insert(0) += 1;
            }
        }
    }
    performed
}

/// Job ids client `i`'s records show created and not yet answered.
pub fn unanswered(records: &Path) -> Vec<i64> {
    let mut open = BTreeMap::new();
    for v in lines(records) {
        if let Some(id) = v["c"].as_i64() {
            open.insert(id, ());
        } else if let Some(id) = v["d"].as_i64() {
            open.remove(&id);
        }
    }
    open.into_keys().collect()
}

/// Whether client records show an answer for every job of `jobs`.
pub fn answered_all(records: &Path, jobs: &[i64]) -> bool {
    let answered: std::collections::HashSet<i64> =
        lines(records).filter_map(|v| v["d"].as_i64()).collect();
    jobs.iter().all(|j| answered.contains(j))
}

fn lines(path: &Path) -> impl Iterator<Item = Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect::<Vec<_>>()
        .into_iter()
}
