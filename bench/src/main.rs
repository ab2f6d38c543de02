//! The bench command: throughput and latency of the engine with N SQL workers and M clients
//! on a private PostgreSQL cluster, or (`--e2e`) with jc-client workers and clients through
//! the real `jcapi` gateway over TCP and WebSocket; prints a table and writes the figures as
//! JSON.

mod conn;
mod e2e;
mod gateway;
mod round;
mod stats;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use crate::conn::Conn;
use crate::e2e::{E2eOutcome, Transport};
use crate::round::{Outcome, Plan};

const USAGE: &str = "\
bench: throughput and latency of the jobcenter engine

Starts a private PostgreSQL cluster, and for each worker count N runs a round on a fresh
database: N SQL workers (each its own connection, waking on LISTEN action:<id>:ready) perform
action `add` while M client connections create jobs of workflow `calltest` (which calls `add`
once). Prints a table and writes the figures as JSON.

With --e2e the same workload runs end to end through the real gateway instead: for each
transport and worker count, a fresh database and a `jcapi` of its own on free ports of
127.0.0.1; N workers (jc-client connections announcing `add`) and M clients (jc-client
connections creating jobs and waiting for each one's job_done). Every job's output is
checked. The figures go under the key `e2e` of the JSON file, next to the SQL figures
(each mode keeps the other's).

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
  --e2e            run through the gateway (see above) instead of SQL workers
  --transports L   with --e2e: transports, one set of rounds each (default tcp,ws)
  --slots S        with --e2e: tasks each worker performs at once (default 1)
  --jcapi PATH     with --e2e: the gateway binary (default: `jcapi` next to this program;
                   build it with cargo build --release -p jcapi)
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
    e2e: bool,
    transports: Vec<Transport>,
    slots: u32,
    jcapi: Option<PathBuf>,
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
        e2e: false,
        transports: vec![Transport::Tcp, Transport::Ws],
        slots: 1,
        jcapi: None,
    };
    let mut e2e_only = None;
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
            "--transports" => {
                parsed.transports = value()?
                    .split(',')
                    .map(|t| {
                        Transport::parse(t)
                            .with_context(|| format!("--transports: {t:?} is not tcp or ws"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                e2e_only = Some(flag.clone());
            }
            "--slots" => {
                parsed.slots =
                    u32::try_from(count(value()?, "--slots")?).context("--slots is too large")?;
                e2e_only = Some(flag.clone());
            }
            "--jcapi" => {
                parsed.jcapi = Some(PathBuf::from(value()?));
                e2e_only = Some(flag.clone());
            }
            "--fast" | "--stats" | "--e2e" | "--help" | "-h" if inline.is_some() => {
                bail!("{flag} takes no value")
            }
            "--fast" => parsed.fast = true,
            "--stats" => parsed.stats = true,
            "--e2e" => parsed.e2e = true,
            "--help" | "-h" => return Ok(None),
            other => bail!("unknown argument {other:?}; see bench --help"),
        }
    }
    if let Some(flag) = e2e_only.filter(|_| !parsed.e2e) {
        bail!("{flag} goes with --e2e");
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
    // Before the cluster starts: a missing gateway binary is the likeliest mistake.
    let jcapi = if args.e2e {
        Some(gateway::find(args.jcapi.as_deref())?)
    } else {
        None
    };
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

    println!(
        "jobcenter bench{}",
        if args.e2e {
            ", end to end through jcapi"
        } else {
            ""
        }
    );
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
    if let Some(jcapi) = &jcapi {
        println!(
            "  gateway:    {} (default settings), workers with {} slot{} each",
            jcapi.display(),
            args.slots,
            if args.slots == 1 { "" } else { "s" }
        );
    }
    println!();
    let machine = json!({ "nproc": nproc, "loadavg_1m_at_start": loadavg, "postgres": version });

    let mut update = Map::new();
    if let Some(jcapi) = jcapi {
        let outcomes = e2e_rounds(&cluster, &args, jcapi).await?;
        print_e2e_table(&outcomes);
        update.insert(
            "e2e".to_owned(),
            json!({
                "generated_at": generated_at,
                "durable": durable,
                "machine": machine,
                "clients": args.clients,
                "inflight": args.inflight,
                "slots_per_worker": args.slots,
                "jcapi": "default settings (pool_size 8, offer_timeout 10s, sweep_interval 5s)",
                "results": outcomes.iter().map(e2e_json).collect::<Vec<_>>(),
            }),
        );
    } else {
        let outcomes = sql_rounds(&cluster, &args).await?;
        print_table(&outcomes);
        for (key, value) in [
            ("generated_at", json!(generated_at)),
            ("durable", json!(durable)),
            ("machine", machine),
            ("clients", json!(args.clients)),
            ("inflight", json!(args.inflight)),
            (
                "results",
                json!(outcomes.iter().map(result_json).collect::<Vec<_>>()),
            ),
        ] {
            update.insert(key.to_owned(), value);
        }
    }
    write_merged(&args.out, update)?;
    println!("\nwrote {}", args.out.display());
    Ok(())
}

/// The SQL rounds: one per worker count, each on a fresh database.
async fn sql_rounds(cluster: &testkit::Cluster, args: &Args) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(args.workers.len());
    for &workers in &args.workers {
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        if args.stats {
            stats::reset(cluster).await?;
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
            stats::print_top(cluster, &db.name).await?;
            println!();
        }
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// The end-to-end rounds: per transport, one per worker count, each on a fresh database
/// with a gateway of its own.
async fn e2e_rounds(
    cluster: &testkit::Cluster,
    args: &Args,
    jcapi: PathBuf,
) -> anyhow::Result<Vec<E2eOutcome>> {
    let setup = e2e::Setup::new(jcapi).await?;
    let mut outcomes = Vec::with_capacity(args.transports.len() * args.workers.len());
    for &transport in &args.transports {
        for &workers in &args.workers {
            let db = cluster
                .new_db()
                .await
                .context("could not create a database")?;
            if args.stats {
                stats::reset(cluster).await?;
            }
            let plan = e2e::Plan {
                transport,
                workers,
                slots: args.slots,
                clients: args.clients,
                jobs: args.jobs,
                inflight: args.inflight,
                timeout: args.timeout,
            };
            let t = transport.name();
            eprintln!("round: {t}, {workers} workers, {} jobs …", args.jobs);
            let outcome = e2e::run(&db, &setup, &plan).await.with_context(|| {
                format!(
                    "the {t} round with {workers} workers failed (gateway {})",
                    setup.jcapi().display()
                )
            })?;
            let g = &outcome.gateway;
            if g.db_errors > 0 || g.slow_clients > 0 {
                eprintln!(
                    "warning: the gateway counted {} database errors and {} slow clients",
                    g.db_errors, g.slow_clients
                );
            }
            if args.stats {
                println!("{t}, {workers} workers:");
                stats::print_top(cluster, &db.name).await?;
                println!();
            }
            outcomes.push(outcome);
        }
    }
    Ok(outcomes)
}

/// Writes `update`'s keys into the JSON object in `out`, keeping its other keys (the other
/// mode's figures); a missing file is an empty object.
fn write_merged(out: &Path, update: Map<String, Value>) -> anyhow::Result<()> {
    let mut doc = match std::fs::read_to_string(out) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(doc)) => doc,
            _ => bail!(
                "{} is not a JSON object, so its figures cannot be kept: move it away or \
                 write elsewhere with --out",
                out.display()
            ),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", out.display())),
    };
    doc.extend(update);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    std::fs::write(
        out,
        serde_json::to_string_pretty(&Value::Object(doc))? + "\n",
    )
    .with_context(|| format!("could not write {}", out.display()))
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

fn e2e_json(o: &E2eOutcome) -> Value {
    let mut v = result_json(&o.outcome);
    if let Value::Object(m) = &mut v {
        m.insert("transport".to_owned(), json!(o.transport.name()));
        m.insert("slots_per_worker".to_owned(), json!(o.slots));
        m.insert(
            "gateway".to_owned(),
            json!({
                "tasks_offered": o.gateway.offered,
                "offers_expired": o.gateway.offers_expired,
                "db_errors": o.gateway.db_errors,
                "slow_clients": o.gateway.slow_clients,
            }),
        );
    }
    v
}

fn print_e2e_table(outcomes: &[E2eOutcome]) {
    println!(
        "{:>9} {:>7} {:>6} {:>9} {:>8} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "transport",
        "workers",
        "jobs",
        "elapsed_s",
        "jobs/s",
        "steps/s",
        "median_ms",
        "p99_ms",
        "max_ms",
        "expired"
    );
    for e in outcomes {
        let o = &e.outcome;
        println!(
            "{:>9} {:>7} {:>6} {:>9.2} {:>8.1} {:>8.1} {:>10.2} {:>10.2} {:>10.2} {:>7}",
            e.transport.name(),
            o.workers,
            o.jobs,
            o.elapsed.as_secs_f64(),
            o.jobs_per_s(),
            o.steps_per_s(),
            ms(o.latency_percentile(50.0)),
            ms(o.latency_percentile(99.0)),
            ms(o.latency_max()),
            e.gateway.offers_expired,
        );
    }
    println!("(expired: task offers not taken within the gateway's offer time-out)");
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
    fn e2e_flags_parse() -> anyhow::Result<()> {
        let a = parse(&["--e2e"])?.context("not help")?;
        assert!(a.e2e);
        assert_eq!(a.transports, vec![Transport::Tcp, Transport::Ws]);
        assert_eq!((a.slots, a.jcapi.is_none()), (1, true));
        let a = parse(&[
            "--transports=ws",
            "--slots",
            "2",
            "--jcapi",
            "/x/jcapi",
            "--e2e",
        ])?
        .context("not help")?;
        assert_eq!(a.transports, vec![Transport::Ws]);
        assert_eq!(a.slots, 2);
        assert_eq!(a.jcapi, Some(PathBuf::from("/x/jcapi")));
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
            &["--e2e=yes"],
            &["--e2e", "--transports", "tcp,udp"],
            &["--e2e", "--slots", "0"],
            &["--slots", "2"],
            &["--jcapi", "/x/jcapi"],
            &["--transports", "tcp"],
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

    #[test]
    fn results_of_the_other_mode_are_kept() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let out = dir.path().join("sub/results.json");
        let update = |pairs: &[(&str, Value)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect()
        };
        write_merged(
            &out,
            update(&[("results", json!([1])), ("clients", json!(4))]),
        )?;
        write_merged(&out, update(&[("e2e", json!({"results": [2]}))]))?;
        write_merged(&out, update(&[("results", json!([3]))]))?;
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
        assert_eq!(
            doc,
            json!({"results": [3], "clients": 4, "e2e": {"results": [2]}})
        );
        std::fs::write(&out, "[1, 2]")?;
        assert!(write_merged(&out, update(&[("e2e", json!(1))])).is_err());
        assert_eq!(std::fs::read_to_string(&out)?, "[1, 2]", "left as it was");
        Ok(())
    }
}
