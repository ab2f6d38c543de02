//! The database side of a compile: the catalog of callees and types, writing the models as
//! new versions (or replacing the newest version in place) in one transaction serialised
//! against other compilers, the schedules of the workflows written, and the listing of stale
//! workflows.
//!
//! A workflow's schedules (its `schedule:` section) are checked by the database's own cron
//! parser before anything is written (`jobcenter.cron_check`, and `cron_next` for an
//! expression that never fires again: JC0224). After the workflow is written they are
//! created or replaced with `jobcenter.create_schedule(…, a_replace => true, a_source =>
//! 'jcc')` under the name `WORKFLOW/NAME`, and the schedules jcc made for that workflow
//! earlier that the file no longer has are dropped; schedules made by hand (`source` null) are
//! never dropped. A file whose source is unchanged is skipped, schedules included. With
//! `--tags`, the schedules start the tagged version (`a_tag`).

use std::collections::{BTreeSet, HashMap};

use jcl::{ActionKind, Destination, Param};
use jcl_syntax::Diagnostic;
use tokio_postgres::{Client, GenericClient};

use crate::schedule::{self, Schedule};
use crate::{catalog::Interface, codes, Catalog, Error, Output, Parsed, Unit};

/// The advisory lock `jobcenter.load_action` takes; the compiler takes it first so that the
/// whole compile (catalog, checks and writes) is atomic with respect to other compilers.
const LOCK_SQL: &str = "select pg_advisory_xact_lock(hashtext('jobcenter.load_action'))";

/// Connects with a libpq-style connection string (TLS parameters included, as the daemons
/// read them); the connection runs on the current tokio runtime.
pub async fn connect(dsn: &str) -> Result<Client, Error> {
    let pg = jc_db::connect_config(dsn, "jcc")?;
    let (client, conn) = pg.connect().await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

fn kind(s: &str) -> Option<ActionKind> {
    match s {
        "action" => Some(ActionKind::Action),
        "procedure" => Some(ActionKind::Procedure),
        "workflow" => Some(ActionKind::Workflow),
        "system" => Some(ActionKind::System),
        _ => None,
    }
}

/// The interfaces of the newest version of each of `names` that exists, and the type names.
pub async fn load_catalog(
    c: &impl GenericClient,
    names: &BTreeSet<String>,
) -> Result<Catalog, Error> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let rows = c
        .query(
            "select distinct on (name) action_id, name, type::text, version \
             from jobcenter.actions where name = any($1) and type <> 'system' \
             order by name, version desc, action_id desc",
            &[&names],
        )
        .await?;
    let mut externals = HashMap::new();
    for r in rows {
        let id: i32 = r.try_get(0)?;
        let name: String = r.try_get(1)?;
        let ty: String = r.try_get(2)?;
        let Some(kind) = kind(&ty) else { continue };
        let inputs = c
            .query(
                "select name, type, optional, \"default\", destination::text \
                 from jobcenter.action_inputs where action_id = $1 order by name",
                &[&id],
            )
            .await?
            .into_iter()
            .map(|r| -> Result<Param, Error> {
                let dest: String = r.try_get(4)?;
                Ok(Param {
                    name: r.try_get(0)?,
                    ty: r.try_get(1)?,
                    optional: r.try_get(2)?,
                    default: r.try_get(3)?,
                    destination: if dest == "environment" {
                        Destination::Environment
                    } else {
                        Destination::Arguments
                    },
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = c
            .query(
                "select name, type, optional from jobcenter.action_outputs \
                 where action_id = $1 order by name",
                &[&id],
            )
            .await?
            .into_iter()
            .map(|r| -> Result<Param, Error> {
                Ok(Param {
                    name: r.try_get(0)?,
                    ty: r.try_get(1)?,
                    optional: r.try_get(2)?,
                    default: None,
                    destination: Destination::Arguments,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        externals.insert(
            name.clone(),
            Interface {
                name,
                kind,
                inputs,
                outputs,
                version: Some(r.try_get(3)?),
            },
        );
    }
    let types = c
        .query("select type from jobcenter.json_schemas", &[])
        .await?
        .into_iter()
        .map(|r| r.try_get(0))
        .collect::<Result<BTreeSet<String>, _>>()?;
    Ok(Catalog {
        externals,
        types: Some(types),
    })
}

/// How to write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// Write files whose source is unchanged too.
    pub force: bool,
    /// Version tags for the new versions (`--tags a:b` is `["a", "b"]`).
    pub tags: Vec<String>,
    /// Replace the newest version in place (same interface) instead of adding a version.
    pub replace: bool,
    /// Check and report, but roll everything back.
    pub dry_run: bool,
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Written as a new version.
    Loaded { action_id: i32, version: i32 },
    /// The newest version was replaced in place.
    Replaced { action_id: i32, version: i32 },
    /// The source is the same as the newest version's: nothing written.
    Unchanged { version: i32 },
}

/// One line of the compile report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub file: String,
    pub kind: ActionKind,
    pub name: String,
    pub outcome: Outcome,
    /// The schedules created or replaced (database names, `WORKFLOW/NAME`).
    pub schedules: Vec<String>,
    /// The schedules dropped because the file no longer has them.
    pub dropped: Vec<String>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = format!("{} {}", self.kind.as_str(), self.name);
        match &self.outcome {
            Outcome::Loaded { version, .. } => {
                write!(f, "{}: {what}: loaded as version {version}", self.file)
            }
            Outcome::Replaced { version, .. } => {
                write!(f, "{}: {what}: version {version} replaced", self.file)
            }
            Outcome::Unchanged { version } => {
                write!(f, "{}: {what}: unchanged (version {version})", self.file)
            }
        }?;
        if !self.schedules.is_empty() {
            write!(f, "; schedules {}", self.schedules.join(", "))?;
        }
        if !self.dropped.is_empty() {
            write!(f, "; dropped schedules {}", self.dropped.join(", "))?;
        }
        Ok(())
    }
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => match d.hint() {
            Some(h) => format!("{} ({h})", d.message()),
            None => d.message().to_owned(),
        },
        None => e.to_string(),
    }
}

/// Writes the units (in their order) within the transaction `c`.
pub async fn write_units(
    c: &impl GenericClient,
    units: &[Unit],
    opts: &WriteOptions,
) -> Result<Vec<Report>, Error> {
    let tags: Option<Vec<&str>> =
        (!opts.tags.is_empty()).then(|| opts.tags.iter().map(String::as_str).collect());
    let mut reports = vec![];
    for u in units {
        let m = &u.model;
        let src = m.src.clone().unwrap_or_default();
        let newest = c
            .query_opt(
                "select action_id, version, srcmd5 is not distinct from md5($3) \
                 from jobcenter.actions where name = $1 and type::text = $2 \
                 order by version desc limit 1",
                &[&m.name, &m.kind.as_str(), &src],
            )
            .await?;
        let newest: Option<(i32, i32, bool)> = match newest {
            Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
            None => None,
        };
        if let Some((_, version, true)) = newest {
            if !opts.force {
                reports.push(Report {
                    file: u.file.clone(),
                    kind: m.kind,
                    name: m.name.clone(),
                    outcome: Outcome::Unchanged { version },
                    schedules: vec![],
                    dropped: vec![],
                });
                continue;
            }
        }
        let json = serde_json::to_value(m)?;
        let load_err = |e: tokio_postgres::Error| Error::Load {
            file: u.file.clone(),
            name: m.name.clone(),
            message: db_message(&e),
        };
        let outcome = match (opts.replace, newest) {
            (true, Some((id, version, _))) => {
                c.query_one("select jobcenter.replace_action($1, $2)", &[&id, &json])
                    .await
                    .map_err(load_err)?;
                Outcome::Replaced {
                    action_id: id,
                    version,
                }
            }
            _ => {
                let row = c
                    .query_one("select jobcenter.load_action($1, $2)", &[&json, &tags])
                    .await
                    .map_err(load_err)?;
                let id: i32 = row.try_get(0)?;
                let row = c
                    .query_one(
                        "select version from jobcenter.actions where action_id = $1",
                        &[&id],
                    )
                    .await?;
                Outcome::Loaded {
                    action_id: id,
                    version: row.try_get(0)?,
                }
            }
        };
        let (schedules, dropped) = if m.kind == ActionKind::Workflow {
            let tag = (!opts.tags.is_empty()).then(|| opts.tags.join(":"));
            write_schedules(c, u, tag.as_deref())
                .await
                .map_err(load_err)?
        } else {
            (vec![], vec![])
        };
        reports.push(Report {
            file: u.file.clone(),
            kind: m.kind,
            name: m.name.clone(),
            outcome,
            schedules,
            dropped,
        });
    }
    Ok(reports)
}

/// Creates or replaces the schedules of a written workflow and drops those jcc made for it
/// before that its file no longer has. Returns the names written and dropped.
async fn write_schedules(
    c: &impl GenericClient,
    u: &Unit,
    tag: Option<&str>,
) -> Result<(Vec<String>, Vec<String>), tokio_postgres::Error> {
    let wf = &u.model.name;
    let mut written = vec![];
    for s in &u.schedules {
        let name = s.db_name(wf);
        c.query_one(
            "select jobcenter.create_schedule(a_name => $1, a_wfname => $2, a_cron => $3, \
             a_args => $4, a_timezone => $5, a_missed => $6, a_tag => $7, a_enabled => $8, \
             a_replace => true, a_source => $9)",
            &[
                &name,
                wf,
                &s.cron,
                &s.args,
                &s.timezone,
                &s.missed,
                &tag,
                &s.enabled,
                &schedule::SOURCE,
            ],
        )
        .await?;
        written.push(name);
    }
    let dropped = c
        .query(
            "delete from jobcenter.schedules \
             where source = $1 and wfname = $2 and not (name = any($3)) returning name",
            &[&schedule::SOURCE, wf, &written],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<String>, _>>()?;
    let mut dropped = dropped;
    dropped.sort();
    Ok((written, dropped))
}

/// Asks the database's cron parser about each schedule (the compiler checked only the
/// structure): an expression or time zone it refuses, or an expression that never fires
/// again, is a JC0224 diagnostic.
pub async fn check_schedules(
    c: &impl GenericClient,
    units: &[Unit],
) -> Result<Vec<Diagnostic>, Error> {
    let mut out = vec![];
    for u in units {
        for s in &u.schedules {
            if let Some(d) = check_schedule(c, &u.file, s).await? {
                out.push(d);
            }
        }
    }
    Ok(out)
}

async fn check_schedule(
    c: &impl GenericClient,
    file: &str,
    s: &Schedule,
) -> Result<Option<Diagnostic>, Error> {
    let why: Option<String> = c
        .query_one(
            "select jobcenter.cron_check($1, $2)",
            &[&s.cron, &s.timezone],
        )
        .await?
        .try_get(0)?;
    let hint = "six fields: sec min hour day-of-month month day-of-week (and an optional \
                year), e.g. '0 */5 * * * *', or @daily";
    if let Some(why) = why {
        let (span, message, hint) = match s.tz_span {
            Some(tz) if why.starts_with("unknown time zone") => (
                tz,
                format!("invalid time zone: {why}"),
                "an IANA time zone, e.g. tz = 'Europe/Amsterdam'",
            ),
            _ => (s.cron_span, format!("invalid cron expression: {why}"), hint),
        };
        return Ok(Some(
            Diagnostic::error(codes::SCHEDULE, file, span, message).with_hint(hint),
        ));
    }
    let never: bool = c
        .query_one(
            "select jobcenter.cron_next($1, clock_timestamp(), $2) is null",
            &[&s.cron, &s.timezone],
        )
        .await?
        .try_get(0)?;
    Ok(never.then(|| {
        Diagnostic::error(
            codes::SCHEDULE,
            file,
            s.cron_span,
            format!("the cron expression `{}` never fires again", s.cron),
        )
        .with_hint("check the year field")
    }))
}

/// Compiles parsed files against the database and writes them, all in one transaction that
/// holds the loader's advisory lock from the first read to the commit. Nothing is written
/// when a file has an error, or with `dry_run`.
pub async fn compile_and_write(
    client: &mut Client,
    parsed: &[Parsed],
    opts: &WriteOptions,
) -> Result<(Output, Vec<Report>), Error> {
    let tx = client.transaction().await?;
    tx.execute(LOCK_SQL, &[]).await?;
    let catalog = load_catalog(&tx, &crate::external_names(parsed)).await?;
    let mut out = crate::check_and_lower(parsed, &catalog);
    out.diagnostics
        .extend(check_schedules(&tx, &out.units).await?);
    if out.has_errors() {
        tx.rollback().await?;
        return Ok((out, vec![]));
    }
    let reports = write_units(&tx, &out.units, opts).await?;
    if opts.dry_run {
        tx.rollback().await?;
    } else {
        tx.commit().await?;
    }
    Ok((out, reports))
}

/// A workflow (newest version of its name and tag) with a task calling an older version of a
/// callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stale {
    pub workflow: String,
    pub version: i32,
    pub callee: String,
    pub callee_version: i32,
    pub newest: i32,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (version {}) calls {} version {}, the newest is {}",
            self.workflow, self.version, self.callee, self.callee_version, self.newest
        )
    }
}

/// The stale references: the newest version of each workflow whose tasks call a version of an
/// action or workflow that is not the newest of its name (and tag), as the original's
/// `get_stale_actions` lists them.
pub async fn stale(c: &impl GenericClient) -> Result<Vec<Stale>, Error> {
    let rows = c
        .query(
            "select distinct workflow_name, workflow_version, name, version, latest_version \
             from jobcenter.get_stale_actions() \
             where latest_version is not null \
             order by 1, 3",
            &[],
        )
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Stale {
                workflow: r.try_get(0)?,
                version: r.try_get(1)?,
                callee: r.try_get(2)?,
                callee_version: r.try_get(3)?,
                newest: r.try_get(4)?,
            })
        })
        .collect()
}
