//! The `maestro` command: reads the layered configuration, sets up logging, and runs the
//! maestro library until SIGTERM or SIGINT.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use maestro::{Config, Layer, LogFormat};

/// The jobcenter maestro: fires timers and schedules, recovers after crashes, ends dead
/// workers and archives finished jobs.
///
/// Settings come from the defaults, then --config FILE (TOML), then JC_ environment
/// variables (JC_DSN, JC_POOL_SIZE, JC_MAINTENANCE_INTERVAL, JC_MAX_SLEEP, JC_RECONNECT_MAX,
/// JC_METRICS, JC_LOG_FORMAT, JC_LOG_LEVEL, JC_DEAD_WORKER_POLICY, JC_WORKER_TIMEOUT), then
/// these flags.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file with any of the settings below (keys as the flags, with underscores).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database: a libpq connection string or a postgres:// URL.
    #[arg(long)]
    dsn: Option<String>,
    /// Connections in the pool for the calls.
    #[arg(long)]
    pool_size: Option<usize>,
    /// How often to look for dead workers and archive ended jobs (e.g. 1m, 30s).
    #[arg(long, value_name = "DURATION")]
    maintenance_interval: Option<String>,
    /// The longest sleep without re-reading the next due time.
    #[arg(long, value_name = "DURATION")]
    max_sleep: Option<String>,
    /// The longest wait between reconnection attempts.
    #[arg(long, value_name = "DURATION")]
    reconnect_max: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Log lines as `pretty` text or `json`.
    #[arg(long)]
    log_format: Option<String>,
    /// A tracing filter, e.g. `info` or `maestro=debug`.
    #[arg(long)]
    log_level: Option<String>,
    /// Sets the dead_worker_policy setting: `error` or `requeue`.
    #[arg(long)]
    dead_worker_policy: Option<String>,
    /// Sets the worker_timeout setting (a PostgreSQL interval, e.g. "3 minutes").
    #[arg(long)]
    worker_timeout: Option<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    dump_config: bool,
}

impl Args {
    fn layer(&self) -> Layer {
        Layer {
            dsn: self.dsn.clone(),
            pool_size: self.pool_size,
            maintenance_interval: self.maintenance_interval.clone(),
            max_sleep: self.max_sleep.clone(),
            reconnect_max: self.reconnect_max.clone(),
            metrics: self.metrics.clone(),
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            dead_worker_policy: self.dead_worker_policy.clone(),
            worker_timeout: self.worker_timeout.clone(),
        }
    }
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("bad log_level {:?}", config.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGTERM; only SIGINT stops gracefully");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut layers = Vec::new();
    if let Some(path) = &args.config {
        layers.push(Layer::from_file(path)?);
    }
    layers.push(Layer::from_env(|k| std::env::var(k).ok())?);
    layers.push(args.layer());
    let config = Config::resolve(layers)?;
    if args.dump_config {
        print!("{}", config.dump());
        return Ok(());
    }
    init_logging(&config)?;
    // One thread is plenty for a process that mostly waits on PostgreSQL.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(maestro::run(config, signalled()))?;
    Ok(())
}
