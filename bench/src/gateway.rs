//! The real `jcapi` binary as a child process for `--e2e`, `chaos` and `soak`: found next to
//! the bench (or given with `--jcapi`; the maestro likewise), started on 127.0.0.1 with TCP,
//! WebSocket and HTTP listeners (on free ports, or on given ones to start it again where it
//! was), its `/metrics` read, and stopped with SIGTERM or killed with SIGKILL. The child is
//! killed if the [`Gateway`] is dropped while it runs (an error, a panic).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, Command};

/// How long the gateway may take to say "ready", and to exit after SIGTERM.
const START_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Lines of the gateway's log quoted in errors.
const LOG_TAIL: usize = 30;

/// The `jcapi` binary to run: `explicit` (`--jcapi`), else the one next to this executable
/// (the same cargo profile directory).
pub fn find(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    find_binary("jcapi", explicit)
}

/// The binary `name` of this workspace: `explicit`, else the one next to this executable.
pub fn find_binary(name: &str, explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.is_file(), "--{name} {}: no such file", path.display());
        return Ok(path.to_owned());
    }
    let exe = std::env::current_exe().context("could not find the bench's own executable")?;
    let dir = exe
        .parent()
        .with_context(|| format!("{} has no directory", exe.display()))?;
    let path = dir.join(name);
    if !path.is_file() {
        let release = if dir.ends_with("debug") {
            ""
        } else {
            " --release"
        };
        bail!(
            "no {name} binary at {}: build it first: cargo build{release} -p {name} \
             (or give its path with --{name} PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `jcapi --hash-password` with `password` on standard input: the hash for the users
/// file.
pub async fn hash_password(bin: &Path, password: &str) -> anyhow::Result<String> {
    let mut child = Command::new(bin)
        .arg("--hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not run {} --hash-password", bin.display()))?;
    let mut stdin = child.stdin.take().context("no standard input")?;
    stdin.write_all(format!("{password}\n").as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    ensure!(
        out.status.success(),
        "{} --hash-password failed ({}): {}",
        bin.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let hash = String::from_utf8(out.stdout)
        .context("the password hash is not UTF-8")?
        .trim()
        .to_owned();
    ensure!(!hash.is_empty(), "jcapi --hash-password printed nothing");
    Ok(hash)
}

/// A running gateway and where it listens.
#[derive(Debug)]
pub struct Gateway {
    child: Child,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub http: SocketAddr,
    log: PathBuf,
}

impl Gateway {
    /// Starts `bin` on database `dsn` with the users of `users_file`, logging warnings and
    /// errors to `log`; returns once it printed "ready". `JC_` variables of the environment
    /// are not passed on, so the gateway runs with its defaults.
    pub async fn start(
        bin: &Path,
        dsn: &str,
        users_file: &Path,
        log: &Path,
    ) -> anyhow::Result<Gateway> {
        Gateway::start_at(bin, dsn, users_file, log, [0, 0, 0]).await
    }

    /// [`Gateway::start`] on the TCP, WebSocket and HTTP ports `ports` (0: a free one); the
    /// log is appended to.
    pub async fn start_at(
        bin: &Path,
        dsn: &str,
        users_file: &Path,
        log: &Path,
        ports: [u16; 3],
    ) -> anyhow::Result<Gateway> {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("could not create {}", log.display()))?;
        let [tcp, ws, http] = ports;
        let mut cmd = Command::new(bin);
        cmd.arg("--dsn")
            .arg(dsn)
            .arg("--users-file")
            .arg(users_file)
            .arg("--listen")
            .arg(format!("tcp:127.0.0.1:{tcp}"))
            .arg("--listen")
            .arg(format!("ws:127.0.0.1:{ws}"))
            .arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .args(["--log-level", "warn"])
            // Every bench client and worker comes from 127.0.0.1: the per-peer connection
            // limit that protects a real gateway would refuse them.
            .args(["--max-connections-per-peer", "100000"]);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("JC_") {
                cmd.env_remove(name);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("could not start {}", bin.display()))?;
        let stdout = child.stdout.take().context("no standard output")?;
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs: HashMap<String, SocketAddr> = HashMap::new();
        let ready = tokio::time::timeout(START_STOP_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if line == "ready" {
                    return Ok(true);
                }
                if let Some((kind, addr)) = line
                    .strip_prefix("listening ")
                    .and_then(|rest| rest.split_once(' '))
                {
                    if let Ok(addr) = addr.parse() {
                        addrs.insert(kind.to_owned(), addr);
                    }
                }
            }
            Ok::<_, std::io::Error>(false)
        })
        .await;
        match ready {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => bail!(
                "jcapi exited before it was ready; its log:\n{}",
                log_tail(log)
            ),
            Ok(Err(e)) => bail!("could not read jcapi's output: {e}"),
            Err(_) => bail!(
                "jcapi was not ready within {} s; its log:\n{}",
                START_STOP_TIMEOUT.as_secs(),
                log_tail(log)
            ),
        }
        // Nothing more is expected on standard output, but it must not fill up.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = |kind: &str| {
            addrs
                .get(kind)
                .copied()
                .with_context(|| format!("jcapi did not say where its {kind} listener is"))
        };
        Ok(Gateway {
            tcp: addr("tcp")?,
            ws: addr("ws")?,
            http: addr("http")?,
            child,
            log: log.to_owned(),
        })
    }

    /// The ports it listens on: TCP, WebSocket, HTTP (for [`Gateway::start_at`]).
    pub fn ports(&self) -> [u16; 3] {
        [self.tcp.port(), self.ws.port(), self.http.port()]
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// SIGKILL, and waits for the exit.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("could not kill jcapi")
    }

    /// The last lines of the gateway's log.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// The unlabelled figures of `/metrics` (counters and gauges), by name.
    pub async fn metrics(&self) -> anyhow::Result<HashMap<String, f64>> {
        let text = tokio::time::timeout(Duration::from_secs(10), async {
            let mut s = tokio::net::TcpStream::connect(self.http).await?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                .await?;
            let mut out = String::new();
            s.read_to_string(&mut out).await?;
            Ok::<_, std::io::Error>(out)
        })
        .await
        .context("jcapi's /metrics did not answer within 10 s")?
        .context("could not read jcapi's /metrics")?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (name, value) = l.split_once(' ')?;
                Some((name.to_owned(), value.trim().parse().ok()?))
            })
            .collect())
    }

    /// SIGTERM, and waits for the gateway to exit (killing it after
    /// [`START_STOP_TIMEOUT`]).
    pub async fn stop(mut self) -> anyhow::Result<ExitStatus> {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|id| rustix::process::Pid::from_raw(i32::try_from(id).ok()?))
        {
            // It may have exited already; wait() tells.
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        match tokio::time::timeout(START_STOP_TIMEOUT, self.child.wait()).await {
            Ok(status) => Ok(status?),
            Err(_) => {
                self.child.start_kill()?;
                let status = self.child.wait().await?;
                bail!(
                    "jcapi did not exit within {} s of SIGTERM and was killed ({status})",
                    START_STOP_TIMEOUT.as_secs()
                )
            }
        }
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail
    }
}
