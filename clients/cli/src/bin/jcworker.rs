//! `jcworker`: serves the actions of a TOML file — shell commands and HTTP endpoints — until
//! SIGINT or SIGTERM, then finishes the tasks in hand and exits.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use jc_cli::conn::{client_config, ConnOpts};
use jc_cli::exec;
use jc_cli::worker_config::{Executor, WorkerFile};
use jc_client::{AnnounceOptions, Client};

#[derive(Debug, Parser)]
#[command(
    name = "jcworker",
    version,
    about = "jobcenter worker: shell commands and HTTP endpoints as actions"
)]
struct Cli {
    /// The worker file: [connection] and [actions.NAME] tables.
    #[arg(long, short, env = "JC_WORKER_CONFIG")]
    config: PathBuf,
    /// The name to announce under (default: the file's workername, else user@host:program:pid).
    #[arg(long, env = "JC_WORKERNAME")]
    workername: Option<String>,
    #[command(flatten)]
    conn: ConnOpts,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("JC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jcworker: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (file, specs) = WorkerFile::load(&cli.config)?;
    let mut config = client_config(&cli.conn, &file.connection)?;
    if let Some(n) = cli.workername {
        config.workername = Some(n);
    }
    let client = Client::new(config);
    for spec in &specs {
        let opts = AnnounceOptions {
            slots: Some(spec.slots),
            slotgroup: None,
            filter: spec.filter.clone(),
        };
        client
            .announce(&spec.name, exec::handler(spec), opts)
            .await
            .with_context(|| format!("announcing {}", spec.name))?;
        let what = match &spec.executor {
            Executor::Command { command, .. } => format!("command {command:?}"),
            Executor::Http { url, .. } => format!("POST {url}"),
        };
        tracing::info!(
            "serving {} ({what}, {} slot{})",
            spec.name,
            spec.slots,
            if spec.slots == 1 { "" } else { "s" }
        );
    }
    tracing::info!("worker {} ready", client.workername());
    let stopper = client.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("stopping: finishing the tasks in hand");
        stopper.stop();
    });
    client.work().await?;
    client.close().await;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
