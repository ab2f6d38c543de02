//! `jcclient`: create a job and wait for its result, ask a job's status, cancel or retry a
//! job, raise an event — JSON in and out.
//!
//! Exit status: 0 success; 1 the job ended in error (its `{"error": …}` is printed); 3
//! `status` of a job still running; 2 anything else (connection, authentication, usage).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use jc_cli::conn::{client_config, ConnFile, ConnOpts};
use jc_cli::read_json_arg;
use jc_client::{Client, Error, JobRequest};
use serde_json::{json, Value};

#[derive(Debug, Parser)]
#[command(name = "jcclient", version, about = "jobcenter command-line client")]
struct Cli {
    /// A TOML file with the connection settings (host, port, tls, ca, cert, key, ws, user,
    /// password, token).
    #[arg(long, env = "JC_CLIENT_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(flatten)]
    conn: ConnOpts,
    /// Print compact JSON even on a terminal, and no progress line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create a job and wait for its end; prints its outputs.
    Call {
        /// The workflow.
        workflow: String,
        /// The inputs: JSON, `-` for standard input, `@FILE` for a file.
        #[arg(default_value = "{}")]
        inargs: String,
        /// Version tags to try, `a:b`.
        #[arg(long)]
        vtag: Option<String>,
        /// Seconds to wait for the job (then the answer is a time-out error; the job goes on).
        #[arg(long)]
        timeout: Option<f64>,
        /// The client environment (JSON) passed to the job.
        #[arg(long)]
        clenv: Option<String>,
        /// Idempotency key: a second call of the workflow with the same key returns the
        /// first call's job (while it lives, or within the server's `job_key_retention`).
        #[arg(long)]
        key: Option<String>,
        /// The job's priority, -1000 to 1000 (default 0): served before lower priorities,
        /// with aging.
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Only create the job and print its id.
        #[arg(long)]
        no_wait: bool,
    },
    /// A job's outputs once it has ended (exit status 3 while it runs).
    Status {
        job_id: i64,
        /// Wait for the job to end.
        #[arg(long)]
        wait: bool,
    },
    /// A job in detail: state, inputs, outputs and step log.
    Job { job_id: i64 },
    /// Cancel a live job.
    Cancel {
        job_id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Restart a job that ended in error.
    Retry {
        job_id: i64,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Raise an event (a JSON object, `-` or `@FILE`).
    Event { event: String },
}

/// How the process ends.
enum Outcome {
    Ok,
    JobError,
    Running,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let pretty = !cli.json && std::io::stdout().is_terminal();
    let progress = !cli.json && std::io::stderr().is_terminal();
    match run(cli, pretty, progress).await {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::JobError) => ExitCode::from(1),
        Ok(Outcome::Running) => ExitCode::from(3),
        Err(e) => {
            eprintln!("jcclient: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn print(v: &Value, pretty: bool) -> anyhow::Result<()> {
    let text = if pretty {
        serde_json::to_string_pretty(v)?
    } else {
        v.to_string()
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

async fn run(cli: Cli, pretty: bool, progress: bool) -> anyhow::Result<Outcome> {
    let file = match &cli.config {
        Some(p) => ConnFile::load(p)?,
        None => ConnFile::default(),
    };
    let mut config = client_config(&cli.conn, &file)?;
    // A command-line client does not hang on a dead gateway: no reconnection loops.
    config.reconnect = matches!(cli.cmd, Cmd::Call { .. } | Cmd::Status { wait: true, .. });
    let client = Client::new(config);
    match cli.cmd {
        Cmd::Call {
            workflow,
            inargs,
            vtag,
            timeout,
            clenv,
            key,
            priority,
            no_wait,
        } => {
            let inargs = read_json_arg(&inargs).context("the inputs")?;
            let clenv = match clenv {
                Some(c) => Some(read_json_arg(&c).context("--clenv")?),
                None => None,
            };
            let req = JobRequest {
                wfname: workflow,
                inargs,
                vtag,
                timeout,
                clenv,
                key,
                priority,
            };
            let job_id = client.create_job(&req).await?;
            if no_wait {
                print(&json!(job_id), pretty)?;
                return Ok(Outcome::Ok);
            }
            wait(&client, job_id, pretty, progress).await
        }
        Cmd::Status { job_id, wait: true } => wait(&client, job_id, pretty, progress).await,
        Cmd::Status {
            job_id,
            wait: false,
        } => match client.get_job_status(job_id).await? {
            Some(out) => {
                print(&out, pretty)?;
                Ok(if is_error(&out) {
                    Outcome::JobError
                } else {
                    Outcome::Ok
                })
            }
            None => {
                print(&Value::Null, pretty)?;
                if progress {
                    eprintln!("job {job_id} is still running");
                }
                Ok(Outcome::Running)
            }
        },
        Cmd::Job { job_id } => {
            let info = client.get_job(job_id).await?;
            print(&serde_json::to_value(info)?, pretty)?;
            Ok(Outcome::Ok)
        }
        Cmd::Cancel { job_id, reason } => {
            let r = client.cancel_job(job_id, reason.as_deref()).await?;
            print(&json!(r), pretty)?;
            Ok(Outcome::Ok)
        }
        Cmd::Retry { job_id, reason } => {
            let r = client.retry_job(job_id, reason.as_deref()).await?;
            print(&json!(r), pretty)?;
            Ok(Outcome::Ok)
        }
        Cmd::Event { event } => {
            let event = read_json_arg(&event).context("the event")?;
            let id = client.raise_event(event).await?;
            print(&json!(id), pretty)?;
            Ok(Outcome::Ok)
        }
    }
}

fn is_error(out: &Value) -> bool {
    out.as_object()
        .is_some_and(|m| m.len() == 1 && m.contains_key("error"))
}

/// Waits for the job, with a progress line on a terminal; prints the outputs.
async fn wait(
    client: &Client,
    job_id: i64,
    pretty: bool,
    progress: bool,
) -> anyhow::Result<Outcome> {
    let waiting = client.wait_job(job_id);
    let result = if progress {
        let ticker = ticker(client.clone(), job_id);
        tokio::pin!(waiting);
        tokio::pin!(ticker);
        let r = tokio::select! {
            r = &mut waiting => r,
            () = &mut ticker => unreachable_ticker(),
        };
        eprint!("\r\x1b[2K");
        r
    } else {
        waiting.await
    };
    match result {
        Ok(out) => {
            print(&out, pretty)?;
            Ok(Outcome::Ok)
        }
        Err(Error::Job { job_id, error }) => {
            print(&json!({ "error": error }), pretty)?;
            if progress {
                eprintln!(
                    "job {job_id} failed: {}",
                    error
                        .get("msg")
                        .and_then(Value::as_str)
                        .map_or_else(|| error.to_string(), str::to_owned)
                );
            }
            Ok(Outcome::JobError)
        }
        Err(e) => Err(e.into()),
    }
}

fn unreachable_ticker() -> jc_client::Result<Value> {
    Err(Error::Protocol("the progress line stopped".into()))
}

/// Redraws `job N: state, step k, 3.2 s` on standard error until dropped.
async fn ticker(client: Client, job_id: i64) {
    let start = Instant::now();
    let mut state = String::from("running");
    let mut last_poll: Option<Instant> = None;
    let spinner = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    let mut i = 0;
    loop {
        if last_poll.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            last_poll = Some(Instant::now());
            if let Ok(Ok(info)) =
                tokio::time::timeout(Duration::from_millis(500), client.get_job(job_id)).await
            {
                state = format!("{}, step {}", info.state, info.steps.len());
            }
        }
        eprint!(
            "\r\x1b[2K{} job {job_id}: {state}, {:.1} s",
            spinner[i % spinner.len()],
            start.elapsed().as_secs_f64()
        );
        let _ = std::io::stderr().flush();
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
