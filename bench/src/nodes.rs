//! The chaos and soak modes' PostgreSQL: a primary and (for failover) a streaming standby,
//! two private clusters on 127.0.0.1 in one temporary directory, reached through one
//! multi-host connection string (`target_session_attrs=read-write`). The primary can be
//! crashed (`pg_ctl stop -m immediate`) and started again, or killed and its standby promoted;
//! the dead node's directory then becomes the new primary's standby (`pg_basebackup -R`), so
//! failover can be repeated. Replication is synchronous while a standby runs, so a commit a
//! client was told of survives the failover.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::conn::Conn;
use crate::sql;

/// The database the engine runs in.
pub const DB: &str = "chaos";

/// Where initdb and pg_ctl live unless `JC_PG_BINDIR` says otherwise (as testkit).
const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How long a standby may take to stream after its base backup.
const STREAM_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Node {
    data: PathBuf,
    port: u16,
}

/// A primary and, with `standby`, a standby of it; both stopped and removed when dropped.
#[derive(Debug)]
pub struct Pair {
    bin_dir: PathBuf,
    as_postgres: bool,
    base: PathBuf,
    nodes: [Node; 2],
    primary: usize,
    standby: bool,
}

impl Pair {
    /// initdb, start, the database with the extension and (`standby`) the standby.
    pub async fn start(standby: bool) -> anyhow::Result<Pair> {
        let base = tempfile::Builder::new()
            .prefix("jc-chaos-")
            .tempdir()
            .context("could not create a temporary directory")?
            .keep();
        let bin_dir = std::env::var_os("JC_PG_BINDIR")
            .map_or_else(|| PathBuf::from(DEFAULT_BIN_DIR), PathBuf::from);
        let first = free_port()?;
        let mut second = free_port()?;
        while second == first {
            second = free_port()?;
        }
        let ports = [first, second];
        let mut pair = Pair {
            bin_dir,
            as_postgres: rustix::process::geteuid().is_root(),
            nodes: [0, 1].map(|i| Node {
                data: base.join(format!("node{i}")),
                port: ports[i],
            }),
            base,
            primary: 0,
            standby: false,
        };
        std::fs::create_dir(pair.base.join("socket"))?;
        if pair.as_postgres {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg("postgres:").arg(&pair.base);
            run(chown).await?;
        }
        let mut initdb = pair.tool("initdb");
        initdb
            .arg("-D")
            .arg(&pair.nodes[0].data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"]);
        run(initdb).await?;
        let socket = pair
            .base
            .join("socket")
            .to_string_lossy()
            .replace('\'', "''");
        // Durable: an immediate stop must not lose a commit a client was told of.
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket}'\n\
             max_connections = 300\nshared_buffers = 64MB\nfsync = on\n\
             synchronous_commit = on\nfull_page_writes = on\nwal_keep_size = '512MB'\n\
             log_min_messages = warning\n"
        );
        let conf = pair.nodes[0].data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&settings);
        std::fs::write(&conf, text)?;
        pair.pg_ctl_start(0).await?;
        let admin = Conn::open(&pair.node_dsn(0, "postgres")).await?;
        admin
            .client
            .batch_execute(&format!("create database {DB}"))
            .await
            .context("could not create the database")?;
        let db = Conn::open(&pair.node_dsn(0, DB)).await?;
        db.client
            .batch_execute("create extension jobcenter cascade")
            .await
            .context(
                "could not create extension jobcenter (is it installed in JC_PG_BINDIR's \
                 PostgreSQL?)",
            )?;
        if standby {
            pair.add_standby().await?;
        }
        Ok(pair)
    }

    /// The engine's connection string: both nodes, the writable one chosen.
    pub fn dsn(&self) -> String {
        multi_host_dsn([self.nodes[0].port, self.nodes[1].port])
    }

    /// The current primary's connection string for `db`.
    pub fn primary_dsn(&self, db: &str) -> String {
        self.node_dsn(self.primary, db)
    }

    fn node_dsn(&self, node: usize, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.nodes[node].port
        )
    }

    /// The primary's port, for the report.
    pub fn primary_port(&self) -> u16 {
        self.nodes[self.primary].port
    }

    /// Whether a standby runs (failover is possible).
    pub fn has_standby(&self) -> bool {
        self.standby
    }

    /// `pg_ctl stop -m immediate` of the primary: every backend killed, no checkpoint.
    pub async fn crash_primary(&self) -> anyhow::Result<()> {
        self.pg_ctl_stop(self.primary, "immediate").await
    }

    /// Starts the primary again after [`Pair::crash_primary`] (crash recovery).
    pub async fn start_primary(&self) -> anyhow::Result<()> {
        self.pg_ctl_start(self.primary).await
    }

    /// Kills the primary and promotes the standby, which is the primary from now on.
    pub async fn fail_over(&mut self) -> anyhow::Result<()> {
        if !self.standby {
            bail!("failover needs a standby");
        }
        self.pg_ctl_stop(self.primary, "immediate").await?;
        let standby = 1 - self.primary;
        let mut promote = self.tool("pg_ctl");
        promote
            .arg("-D")
            .arg(&self.nodes[standby].data)
            .args(["-w", "promote"]);
        run(promote).await?;
        self.primary = standby;
        self.standby = false;
        Ok(())
    }

    /// The dead node's directory becomes a fresh standby of the primary.
    pub async fn rebuild_standby(&mut self) -> anyhow::Result<()> {
        let node = 1 - self.primary;
        let data = &self.nodes[node].data;
        if data.exists() {
            std::fs::remove_dir_all(data)
                .with_context(|| format!("could not remove {}", data.display()))?;
        }
        self.add_standby().await
    }

    async fn add_standby(&mut self) -> anyhow::Result<()> {
        let node = 1 - self.primary;
        let mut backup = self.tool("pg_basebackup");
        backup
            .arg("-D")
            .arg(&self.nodes[node].data)
            .args(["-h", "127.0.0.1", "-U", "postgres", "-R", "-X", "stream"])
            .args(["-c", "fast", "-p"])
            .arg(self.nodes[self.primary].port.to_string());
        run(backup).await?;
        self.pg_ctl_start(node).await?;
        let primary = Conn::open(&self.primary_dsn("postgres")).await?;
        let deadline = Instant::now() + STREAM_TIMEOUT;
        while sql::streaming_standbys(&primary.client).await? == 0 {
            if Instant::now() > deadline {
                bail!(
                    "the standby did not stream within {} s",
                    STREAM_TIMEOUT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // Set after the base backup, so the standby's copy of the settings never waits for
        // a standby of its own once promoted.
        sql::set_synchronous_standby(&primary.client, true).await?;
        self.standby = true;
        Ok(())
    }

    fn tool(&self, tool: &str) -> Command {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        // The tools complain about a working directory they cannot enter, such as /root.
        command.current_dir(&self.base);
        command
    }

    async fn pg_ctl_start(&self, node: usize) -> anyhow::Result<()> {
        let n = &self.nodes[node];
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&n.data)
            .arg("-l")
            .arg(n.data.join("postgres.log"))
            .arg("-o")
            .arg(format!("-p {}", n.port))
            .args(["-w", "start"]);
        run(pg_ctl).await.with_context(|| {
            format!(
                "PostgreSQL did not start; its log:\n{}",
                log_tail(&n.data.join("postgres.log"))
            )
        })
    }

    async fn pg_ctl_stop(&self, node: usize, mode: &str) -> anyhow::Result<()> {
        let mut pg_ctl = self.tool("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.nodes[node].data)
            .args(["-m", mode, "-w", "stop"]);
        run(pg_ctl).await
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for node in &self.nodes {
            if node.data.join("postmaster.pid").exists() {
                let mut pg_ctl = self.tool("pg_ctl");
                pg_ctl
                    .arg("-D")
                    .arg(&node.data)
                    .args(["-m", "immediate", "-w", "stop"]);
                let _ = pg_ctl.output();
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.base) {
            eprintln!("could not remove {}: {e}", self.base.display());
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    let line = format!("{command:?}");
    let out = tokio::process::Command::from(command)
        .output()
        .await
        .with_context(|| format!("could not run {line}"))?;
    if !out.status.success() {
        bail!(
            "{line} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Both nodes on 127.0.0.1; libpq's (and tokio-postgres's) multi-host form.
fn multi_host_dsn(ports: [u16; 2]) -> String {
    format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname={DB} \
         target_session_attrs=read-write connect_timeout=3",
        ports[0], ports[1]
    )
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemons read their connection string with `jc_db::connect_config`: both hosts and
    /// the read-write requirement must survive it.
    #[test]
    fn the_daemons_take_the_multi_host_string_as_is() -> anyhow::Result<()> {
        let pg = jc_db::connect_config(&multi_host_dsn([5001, 5002]), "maestro")?;
        assert_eq!(pg.config.get_hosts().len(), 2);
        assert_eq!(pg.config.get_ports(), [5001, 5002]);
        assert_eq!(
            pg.config.get_target_session_attrs(),
            tokio_postgres::config::TargetSessionAttrs::ReadWrite
        );
        Ok(())
    }
}
