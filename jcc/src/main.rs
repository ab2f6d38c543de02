//! `jcc`: compiles JCL files into the jobcenter database.
//!
//! ```text
//! jcc [--dsn DSN] [--dry-run] [--force] [--replace] [--tags a:b] [--format text|json]
//!     [--warn-no-role] FILE…
//! jcc --emit FILE…          print the compiled models as JSON (no database)
//! jcc [--dsn DSN] --stale   list workflows that call an older version of a callee
//! ```
//!
//! The database is named by `--dsn` or `JC_DSN` (a libpq connection string). Exit status: 0
//! when everything compiled (and was written; warnings are printed but do not stop it), 1 when
//! a file has errors, 2 on a usage, file or database error.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use jcc::db::{self, WriteOptions};
use jcc::SourceFile;

const USAGE: &str = "usage: jcc [--dsn DSN] [--dry-run] [--force] [--replace] [--tags a:b] \
[--format text|json] [--warn-no-role] FILE...\n       jcc --emit FILE...\n       jcc [--dsn DSN] --stale\n\n\
The database is --dsn or the JC_DSN environment variable (a libpq connection string).\n\
  --dry-run   check everything against the database, write nothing\n\
  --force     compile files whose source is unchanged too\n\
  --replace   fix the newest version in place (inputs and outputs must stay the same)\n\
  --tags a:b  tag the new versions (create_job with tag 'a' picks them)\n\
  --format    how to print diagnostics: text (default) or json\n\
  --warn-no-role  warn about actions without role: (only their owner and workers serve them)\n\
  --emit      print the compiled models as JSON; no database is used\n\
  --stale     list workflows whose tasks call an older version of an action or workflow";

#[derive(Debug, Default)]
struct Args {
    dsn: Option<String>,
    json: bool,
    emit: bool,
    stale: bool,
    warn_no_role: bool,
    opts: WriteOptions,
    files: Vec<String>,
}

fn parse_args() -> anyhow::Result<Option<Args>> {
    let mut a = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> anyhow::Result<String> {
            match inline.clone().or_else(|| it.next()) {
                Some(v) => Ok(v),
                None => bail!("{name} needs a value\n{USAGE}"),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            "--version" => {
                println!("jcc {}", env!("CARGO_PKG_VERSION"));
                return Ok(None);
            }
            "--dsn" => a.dsn = Some(value("--dsn")?),
            "--tags" => {
                a.opts.tags = value("--tags")?
                    .split(':')
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--format" => match value("--format")?.as_str() {
                "json" => a.json = true,
                "text" => a.json = false,
                other => bail!("unknown format {other}: use text or json"),
            },
            "--dry-run" | "-n" => a.opts.dry_run = true,
            "--force" | "-f" => a.opts.force = true,
            "--replace" => a.opts.replace = true,
            "--emit" => a.emit = true,
            "--stale" => a.stale = true,
            "--warn-no-role" => a.warn_no_role = true,
            f if f.starts_with('-') && f.len() > 1 => bail!("unknown option {f}\n{USAGE}"),
            _ => a.files.push(arg),
        }
    }
    if a.dsn.is_none() {
        a.dsn = std::env::var("JC_DSN").ok().filter(|s| !s.is_empty());
    }
    Ok(Some(a))
}

fn print_diagnostics(out: &jcc::Output, sources: &[SourceFile], json: bool) {
    if json {
        let all: Vec<serde_json::Value> = out.diagnostics.iter().map(|d| d.to_json()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&all).unwrap_or_else(|_| "[]".into())
        );
    } else if !out.diagnostics.is_empty() {
        eprintln!("{}", jcc::render(&out.diagnostics, sources));
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        let errors = out
            .diagnostics
            .iter()
            .filter(|d| d.severity == jcl_syntax::Severity::Error)
            .count();
        let warnings = out.diagnostics.len() - errors;
        if errors > 0 {
            eprintln!(
                "jcc: {errors} error{} found, nothing written",
                plural(errors)
            );
        } else {
            eprintln!("jcc: {warnings} warning{}", plural(warnings));
        }
    }
}

async fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.stale {
        let dsn = a
            .dsn
            .as_deref()
            .context("--stale needs a database: give --dsn or set JC_DSN")?;
        let client = db::connect(dsn).await?;
        let rows = db::stale(&client).await?;
        for r in &rows {
            println!("{r}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if a.files.is_empty() {
        bail!("no files to compile\n{USAGE}");
    }
    let sources = a
        .files
        .iter()
        .map(|f| SourceFile::read(f))
        .collect::<Result<Vec<_>, _>>()?;
    let (parsed, syntax) = jcc::parse(sources.clone());
    let (mut out, reports) = match (&a.dsn, a.emit) {
        (Some(dsn), false) => {
            let mut client = db::connect(dsn)
                .await
                .with_context(|| "cannot connect to the database".to_string())?;
            db::compile_and_write(&mut client, &parsed, &a.opts).await?
        }
        (None, false) if !a.opts.dry_run => {
            bail!(
                "no database: give --dsn or set JC_DSN (or use --dry-run or --emit to check only)"
            )
        }
        _ => (
            jcc::check_and_lower(&parsed, &jcc::Catalog::offline()),
            vec![],
        ),
    };
    let mut all = syntax;
    all.append(&mut out.diagnostics);
    if a.warn_no_role {
        all.extend(jcc::role_warnings(&parsed));
    }
    out.diagnostics = all;
    print_diagnostics(&out, &sources, a.json);
    if out.has_errors() {
        return Ok(ExitCode::from(1));
    }
    if a.emit {
        let models: Vec<&jcl::Model> = out.units.iter().map(|u| &u.model).collect();
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(ExitCode::SUCCESS);
    }
    if a.dsn.is_none() {
        for u in &out.units {
            eprintln!(
                "{}: {} {}: ok (not written: no database)",
                u.file,
                u.model.kind.as_str(),
                u.model.name
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        if a.opts.dry_run {
            eprintln!("{r} (dry run: rolled back)");
        } else {
            eprintln!("{r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jcc: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("jcc: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jcc: {e:#}");
            ExitCode::from(2)
        }
    }
}
