//! The bench command: throughput and latency of the engine with N SQL workers and M clients
//! on a private PostgreSQL cluster; prints a table and writes the figures as JSON.

mod conn;
mod round;
mod stats;
mod workload;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::json;

use crate::conn::Conn;
use crate::round::{Outcome, Plan};

const USAGE: &str = "\
bench: throughput and latency of the jobcenter engine

Starts a private PostgreSQL cluster, and for each worker count N runs a round on a fresh
database: N SQL workers (each its own connection, waking on LISTEN action:<id>:ready) perform
action `add` while M client connections create jobs of workflow `calltest` (which calls `add`
once). Prints a table and writes the figures as JSON.

usage: bench [options]
  --workers LIST   worker counts, one round each (default 1,4,16)
  --jobs K         jobs per round (default 2000)
  --clients M      client connections creating jobs (default 4)
  --inflight L     at most L unfinished jobs at a time, all clients together
                   (default: no limit; clients create jobs as fast as they can)
  --timeout S      seconds a round may take before the bench fails (default 120)
  --out PATH       where to write the JSON (default bench/results.json)
  --fast           fsync, synchronous_commit and full_page_writes off (default: on)
  --stats          print the statements that took the most time in each round
                   (pg_stat_statements; it slows the server down a little)
  --help           this text
";

#[derive(Debug)]
struct Args {
    workers: Vec<usize>,
    jobs: usize,
    clients: usize,
    inflight: Option<usize>,
    timeout: Duration,
    out: PathBuf,
    fast: bool,
    stats: bool,
}

/// Parses the command line; `Ok(None)` for `--help`.
fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut parsed = Args {
        workers: vec![1, 4, 16],
        jobs: 2000,
        clients: 4,
        inflight: None,
        timeout: Duration::from_secs(120),
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results.json")),
        fast: false,
        stats: false,
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_owned(), Some(value.into())),
            _ => (arg, None),
        };
        let mut value = || -> anyhow::Result<String> {
            inline
                .clone()
                .or_else(|| args.next())
                .with_context(|| format!("{flag} needs a value"))
        };
        let count = |v: String, what: &str| -> anyhow::Result<usize> {
            match v.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{what} must be a positive whole number, not {v:?}"),
            }
        };
        match flag.as_str() {
            "--workers" => {
                parsed.workers = value()?
                    .split(',')
                    .map(|n| count(n.to_owned(), "--workers"))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--jobs" => parsed.jobs = count(value()?, "--jobs")?,
            "--clients" => parsed.clients = count(value()?, "--clients")?,
            "--inflight" => parsed.inflight = Some(count(value()?, "--inflight")?),
            "--timeout" => {
                parsed.timeout = Duration::from_secs(count(value()?, "--timeout")? as u64);
            }
            "--out" => parsed.out = PathBuf::from(value()?),
            "--fast" | "--stats" | "--help" | "-h" if inline.is_some() => {
                bail!("{flag} takes no value")
            }
            "--fast" => parsed.fast = true,
            "--stats" => parsed.stats = true,
            "--help" | "-h" => return Ok(None),
            other => bail!("unknown argument {other:?}; see bench --help"),
        }
    }
    Ok(Some(parsed))
}

fn main() -> anyhow::Result<()> {
    let Some(args) = parse_args(std::env::args().skip(1))? else {
        print!("{USAGE}");
        return Ok(());
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the tokio runtime")?
        .block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    let durable = !args.fast;
    let cluster = testkit::Cluster::start(testkit::ClusterOptions { durable })
        .await
        .context("could not start a PostgreSQL cluster")?;
    if args.stats {
        stats::enable(&cluster).await?;
    }
    let facts = Conn::open(&cluster.dsn("postgres")).await?;
    let row = facts
        .client
        .query_one(
            "select version(), \
             to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[],
        )
        .await
        .context("could not ask the server for its version")?;
    let (version, generated_at): (String, String) = (row.get(0), row.get(1));
    drop(facts);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Other processes compete for the CPUs; the figures mean little without this.
    let loadavg = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned());

    println!("jobcenter bench");
    println!("  machine:    {nproc} CPUs, load average {loadavg} at start; {version}");
    println!(
        "  durability: {}",
        if durable {
            "durable (fsync, synchronous_commit, full_page_writes on)"
        } else {
            "fast (fsync, synchronous_commit, full_page_writes off)"
        }
    );
    println!(
        "  load:       {} jobs per round, {} client connections, {}",
        args.jobs,
        args.clients,
        match args.inflight {
            Some(n) => format!("at most {n} unfinished jobs at a time"),
            None => "jobs created as fast as the clients can".to_owned(),
        }
    );
    println!();

    let mut outcomes = Vec::with_capacity(args.workers.len());
    for &workers in &args.workers {
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        if args.stats {
            stats::reset(&cluster).await?;
        }
        let plan = Plan {
            workers,
            clients: args.clients,
            jobs: args.jobs,
            inflight: args.inflight,
            timeout: args.timeout,
        };
        eprintln!("round: {workers} workers, {} jobs …", args.jobs);
        let outcome = round::run(&db, &plan)
            .await
            .with_context(|| format!("the round with {workers} workers failed"))?;
        if args.stats {
            println!("{workers} workers:");
            stats::print_top(&cluster, &db.name).await?;
            println!();
        }
        outcomes.push(outcome);
    }

    print_table(&outcomes);
    let report = json!({
        "generated_at": generated_at,
        "durable": durable,
        "machine": { "nproc": nproc, "loadavg_1m_at_start": loadavg, "postgres": version },
        "clients": args.clients,
        "inflight": args.inflight,
        "results": outcomes.iter().map(result_json).collect::<Vec<_>>(),
    });
    if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")
        .with_context(|| format!("could not write {}", args.out.display()))?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Rounds to `places` decimals, for a JSON that reads well.
fn round_to(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn result_json(o: &Outcome) -> serde_json::Value {
    json!({
        "workers": o.workers,
        "jobs": o.jobs,
        "elapsed_s": round_to(o.elapsed.as_secs_f64(), 3),
        "jobs_per_s": round_to(o.jobs_per_s(), 1),
        "steps_per_s": round_to(o.steps_per_s(), 1),
        "steps": o.steps,
        "latency_ms": {
            "median": round_to(ms(o.latency_percentile(50.0)), 2),
            "p99": round_to(ms(o.latency_percentile(99.0)), 2),
            "max": round_to(ms(o.latency_max()), 2),
        },
    })
}

fn print_table(outcomes: &[Outcome]) {
    println!(
        "{:>7} {:>6} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10}",
        "workers", "jobs", "elapsed_s", "jobs/s", "steps/s", "median_ms", "p99_ms", "max_ms"
    );
    for o in outcomes {
        println!(
            "{:>7} {:>6} {:>9.2} {:>8.1} {:>8.1} {:>10.2} {:>10.2} {:>10.2}",
            o.workers,
            o.jobs,
            o.elapsed.as_secs_f64(),
            o.jobs_per_s(),
            o.steps_per_s(),
            ms(o.latency_percentile(50.0)),
            ms(o.latency_percentile(99.0)),
            ms(o.latency_max()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Option<Args>> {
        parse_args(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn defaults_and_flags_parse() -> anyhow::Result<()> {
        let a = parse(&[])?.context("not help")?;
        assert_eq!(a.workers, vec![1, 4, 16]);
        assert_eq!((a.jobs, a.clients, a.fast), (2000, 4, false));
        assert!(a.out.ends_with("bench/results.json"));
        let a = parse(&[
            "--workers",
            "2,8",
            "--jobs=50",
            "--fast",
            "--out",
            "/tmp/x.json",
            "--inflight",
            "32",
        ])?
        .context("not help")?;
        assert_eq!(a.workers, vec![2, 8]);
        assert_eq!((a.jobs, a.fast, a.inflight), (50, true, Some(32)));
        assert_eq!(a.out, PathBuf::from("/tmp/x.json"));
        assert!(parse(&["--help"])?.is_none());
        Ok(())
    }

    #[test]
    fn bad_arguments_are_refused() {
        for bad in [
            &["--jobs", "0"][..],
            &["--jobs"],
            &["--workers", "1,x"],
            &["--nope"],
            &["--fast=1"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let o = Outcome {
            workers: 1,
            jobs: 100,
            elapsed: Duration::from_secs(1),
            steps: 300,
            latencies: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(o.latency_percentile(50.0), Duration::from_millis(50));
        assert_eq!(o.latency_percentile(99.0), Duration::from_millis(99));
        assert_eq!(o.latency_max(), Duration::from_millis(100));
        assert_eq!(o.jobs_per_s(), 100.0);
    }
}
