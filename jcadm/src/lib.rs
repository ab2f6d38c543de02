//! jcadm, jobcenter's admin tool, as a library: [`run`] executes a parsed command line against
//! the database and writes tables (or JSON) to a writer; `main.rs` is a thin wrapper.
//!
//! The views ([`queries`]) read the documented tables; the operations change state only
//! through the extension's procedures ([`procs`]); the workflow graph ([`graph`]) is a
//! reusable model with DOT and SVG renderers.

pub mod cli;
mod error;
mod gateway;
pub mod graph;
pub mod procs;
pub mod queries;
mod render;
pub mod table;

use std::io::{BufRead, IsTerminal, Write};

use serde_json::{json, Value};
use tokio_postgres::Client;

pub use cli::Cli;
use cli::{Command, Format};
pub use error::Error;

/// Connects to the database named by a libpq connection string (TLS parameters included).
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    let config = jc_db::connect_config(dsn, "jcadm")?;
    let (client, connection) = config.connect().await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("jcadm: connection lost: {e}");
        }
    });
    Ok(client)
}

/// Runs one command, writing its result to `out`.
pub async fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Error> {
    let json = cli.json;
    if let Command::Gateway {
        url,
        user,
        password,
        cacert,
    } = &cli.command
    {
        let v = gateway::fetch(url, user, password, cacert.as_deref()).await?;
        return show(out, json, &v, || render::gateway(&v));
    }
    let dsn = cli
        .dsn
        .as_deref()
        .ok_or_else(|| Error::BadInput("no database: give --dsn or set JC_DSN".into()))?;
    let c = connect(dsn).await?;
    match &cli.command {
        Command::Jobs {
            states,
            workflow,
            since,
            limit,
            before,
            archived,
        } => {
            let since = match since {
                Some(s) => Some(queries::resolve_since(&c, s).await?),
                None => None,
            };
            let filter = queries::JobFilter {
                states: states.iter().map(|s| s.as_str()).collect(),
                workflow: workflow.clone(),
                since,
                before: *before,
                limit: *limit,
                archived: *archived,
            };
            let (rows, next) = queries::jobs(&c, &filter).await?;
            if json {
                emit(out, &json!({"jobs": rows, "next_before": next}))
            } else {
                Ok(out.write_all(render::jobs(&rows, next).as_bytes())?)
            }
        }
        Command::Errors { workflows, limit } => {
            let rows = queries::errors(&c, workflows, *limit).await?;
            show(out, json, &Value::from(rows.clone()), || {
                render::errors(&rows)
            })
        }
        Command::Locks => {
            let v = queries::locks(&c).await?;
            show(out, json, &v, || render::locks(&v))
        }
        Command::Workers => {
            let rows = queries::workers(&c).await?;
            show(out, json, &Value::from(rows.clone()), || {
                render::workers(&rows)
            })
        }
        Command::Stale => {
            let rows = queries::stale(&c).await?;
            show(out, json, &Value::from(rows.clone()), || {
                render::stale(&rows)
            })
        }
        Command::Schedules => {
            let rows = queries::schedules(&c).await?;
            show(out, json, &Value::from(rows.clone()), || {
                render::schedules(&rows)
            })
        }
        Command::Events => {
            let v = queries::events(&c).await?;
            show(out, json, &v, || render::events(&v))
        }
        Command::Job { id } => {
            let v = queries::job(&c, *id).await?;
            show(out, json, &v, || render::job(&v))
        }
        Command::Tree { id } => {
            let rows = queries::tree(&c, *id).await?;
            show(out, json, &Value::from(rows.clone()), || {
                render::tree(&rows)
            })
        }
        Command::Source { id } => {
            let v = queries::source(&c, *id).await?;
            show(out, json, &v, || render::source(&v))
        }
        Command::Graph {
            workflow,
            job,
            format,
        } => {
            let g = graph::load(&c, workflow, *job).await?;
            if json {
                return emit(out, &serde_json::to_value(&g)?);
            }
            let text = match format {
                Format::Dot => graph::dot::render(&g),
                Format::Svg => graph::svg::render(&g)?,
            };
            Ok(out.write_all(text.as_bytes())?)
        }
        Command::Cancel { ids, reason, yes } => {
            let jobs = queries::job_summaries(&c, ids).await?;
            confirm(&format!("cancel job {}", jobs.join(", ")), *yes)?;
            let mut results = vec![];
            for &id in ids {
                results.push((id, procs::cancel(&c, id, reason).await));
            }
            report(out, json, "cancelled", results)
        }
        Command::Retry { ids, reason, yes } => {
            let jobs = queries::job_summaries(&c, ids).await?;
            confirm(&format!("retry job {}", jobs.join(", ")), *yes)?;
            let mut results = vec![];
            for &id in ids {
                results.push((id, procs::retry(&c, id, reason).await));
            }
            report(out, json, "retried", results)
        }
        Command::RetryNow { ids, yes } => {
            let jobs = queries::job_summaries(&c, ids).await?;
            confirm(&format!("retry now job {}", jobs.join(", ")), *yes)?;
            let mut results = vec![];
            for &id in ids {
                results.push((id, procs::retry_now(&c, id).await));
            }
            report(out, json, "made ready", results)
        }
        Command::Disable { name, kind, yes } => {
            set_disabled(&c, out, json, name, kind.as_deref(), true, *yes).await
        }
        Command::Enable { name, kind, yes } => {
            set_disabled(&c, out, json, name, kind.as_deref(), false, *yes).await
        }
        Command::Archive { yes } => {
            confirm("archive every ended job tree past its retention now", *yes)?;
            let n = procs::archive(&c).await?;
            if json {
                emit(out, &json!({"archived": n}))
            } else {
                Ok(writeln!(out, "archived {n} jobs")?)
            }
        }
        Command::Gateway { .. } => unreachable!("answered before connecting"),
    }
}

async fn set_disabled(
    c: &Client,
    out: &mut dyn Write,
    json: bool,
    spec: &str,
    kind: Option<&str>,
    disabled: bool,
    yes: bool,
) -> Result<(), Error> {
    let (name, version) = graph::parse_name(spec)?;
    let verb = if disabled { "disable" } else { "enable" };
    let which = version.map_or("the newest version".to_owned(), |v| format!("version {v}"));
    confirm(&format!("{verb} {which} of {name}"), yes)?;
    let d = procs::set_disabled(c, name, version, kind, disabled).await?;
    if json {
        return emit(out, &serde_json::to_value(&d)?);
    }
    let state = if disabled { "disabled" } else { "enabled" };
    let before = match (d.was, disabled) {
        (true, true) => " (it already was)",
        (false, false) => " (it was not disabled)",
        _ => "",
    };
    Ok(writeln!(
        out,
        "{} {} version {} {state}{before}",
        d.kind, d.name, d.version
    )?)
}

/// Asks on the terminal whether to do `what`; `yes` answers for the user. Without a terminal
/// and without `yes` nothing is done.
fn confirm(what: &str, yes: bool) -> Result<(), Error> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::NotConfirmed(what.to_owned()));
    }
    eprint!("{what}? [y/N] ");
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(Error::Declined(what.to_owned())),
    }
}

/// Prints the outcome of an operation on each job; fails when one of them failed.
fn report(
    out: &mut dyn Write,
    json: bool,
    done: &str,
    mut results: Vec<(i64, Result<(), Error>)>,
) -> Result<(), Error> {
    // A procedure the extension lacks fails every job alike: say it once.
    if let Some(i) = results
        .iter()
        .position(|(_, r)| matches!(r, Err(Error::MissingProcedure { .. })))
    {
        return results.swap_remove(i).1;
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    if json {
        let rows: Vec<Value> = results
            .iter()
            .map(|(id, r)| match r {
                Ok(()) => json!({"job_id": id, "ok": true}),
                Err(e) => {
                    json!({"job_id": id, "ok": false, "code": e.code(), "error": e.to_string()})
                }
            })
            .collect();
        emit(out, &Value::from(rows))?;
    } else {
        for (id, r) in &results {
            match r {
                Ok(()) => writeln!(out, "job {id}: {done}")?,
                Err(e) => writeln!(out, "job {id}: not {done}: {e}")?,
            }
        }
    }
    if failed > 0 {
        return Err(Error::Failed {
            failed,
            of: results.len(),
        });
    }
    Ok(())
}

fn emit(out: &mut dyn Write, v: &Value) -> Result<(), Error> {
    serde_json::to_writer_pretty(&mut *out, v)?;
    Ok(writeln!(out)?)
}

fn show(
    out: &mut dyn Write,
    json: bool,
    v: &Value,
    human: impl FnOnce() -> String,
) -> Result<(), Error> {
    if json {
        emit(out, v)
    } else {
        Ok(out.write_all(human().as_bytes())?)
    }
}
