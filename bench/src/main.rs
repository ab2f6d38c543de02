//! The bench command: throughput and latency of the engine on a private PostgreSQL
//! cluster: SQL workers and clients, (`--e2e`) jc-client workers and clients through the
//! real `jcapi` gateway, (`drain`, `create`, `loop`) the drain, create and
//! worker-free loop figures, (`peers`) the same beside graphile-worker, (`chaos`) a mixed load
//! through the whole engine under faults and (`soak`) a long steady load; prints tables and
//! writes the figures as JSON.

mod agents;
mod chaos;
mod chaos_cli;
mod conn;
mod create;
mod drain;
mod e2e;
mod engine;
mod gateway;
mod loops;
mod machine;
mod nodes;
mod peers;
mod round;
mod soak;
mod sql;
mod stats;
mod summary;
mod workload;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Map, Value};

use crate::conn::Conn;
use crate::e2e::{E2eOutcome, Transport};
use crate::round::{Outcome, Plan};
use crate::summary::round_to;

const USAGE: &str = "\
bench: throughput and latency of the jobcenter engine

Every mode starts a private PostgreSQL cluster (the installed extension), runs on fresh
databases in it, prints a table and writes its figures into a JSON file under its own key
(the other modes' figures are kept).

usage: bench [MODE] [options]

Modes:
  (none)   N SQL workers (each its own connection, waking on LISTEN action:<id>:ready)
           perform action `add` while M client connections create jobs of workflow
           `calltest` (which calls `add` once); one round per worker count. Key `results`.
  --e2e    the same workload through the real gateway: for each transport and worker
           count, a fresh database and a `jcapi` of its own on free ports of 127.0.0.1; N
           workers (jc-client connections announcing `add`) and M clients (jc-client
           connections creating jobs and waiting for each one's job_done). Every job's
           output is checked. Key `e2e`.
  drain    --jobs jobs of `calltest` are created first, then W SQL workers drain them with
           get_task then task_done, one task per call, until none is left (as
           graphile-worker's perfTest); jobs/s. Each worker first takes and finishes 2
           more jobs before the clock (its backend's warm-up; not with a limit). One round
           per worker count. Key `drain`.
           With --limit N (add gets config concurrency = N: at most N of its tasks at work)
           or --lock-limit N (the jobs hold a counted lock of N holders from start to end),
           --rounds rounds of the drain without and with the limit run interleaved, a
           commit probe before each run; prints the ratio limited/unlimited.
  create   --clients connections call create_job, one job per transaction, --jobs in all;
           jobs/s. With --prefill P, the same database then gets P finished jobs in
           jobs_archive (and their step log) and the clients run again. Key `create`.
  loop     steps per second of a worker-free loop (a `while` of evals, all plotted inline in
           create_job's transaction), one job per size. A size predicted (from the sizes
           before it) to take longer than --budget-seconds is skipped. Key `loop`.
  peers    ours beside graphile-worker (installed from npm when missing) on the same
           cluster, same job count, interleaved rounds with a commit probe before every
           run: drain (1 graphile process x W concurrency, unbatched and batched), create
           (4 clients, add_job) and --e2e (TCP) against graphile unbatched; prints the
           ratios ours/peer. Key `peers`. Needs node, npm and a jcapi binary.
  chaos    (its own options: bench chaos --help) the whole engine (maestro, two jcapi,
           worker and client processes) on a primary and a streaming standby, a mixed load
           while faults are injected; checks nothing was lost or doubled. bench/chaos.json.
  soak     (bench soak --help) a steady load with archival on for --minutes, sampled
           every 10 s; fails when memory or the job tables grow. bench/soak.json.

Options:
  --workers LIST   worker counts, one round each (default 1,4,16; drain, peers: 10;
                   peers takes one count, the peer's concurrency too)
  --jobs K         jobs per round (default 2000; drain, peers: 20000; create: 10000)
  --clients M      client connections creating jobs (default 4)
  --inflight L     (none, --e2e) at most L unfinished jobs at a time, all clients together
                   (default: no limit; clients create jobs as fast as they can)
  --timeout S      seconds a round may take before the bench fails (default 120;
                   loop: a size has no time limit but the budget)
  --out PATH       where to write the JSON (default bench/results.json)
  --fast           fsync, synchronous_commit and full_page_writes off (default: on)
  --stats          (none, --e2e, drain) print the statements that took the most time in each
                   round (pg_stat_statements; it slows the server down a little)
  --transports L   (--e2e) transports, one set of rounds each (default tcp,ws)
  --slots S        (--e2e) tasks each worker performs at once (default 1)
  --jcapi PATH     (--e2e, peers) the gateway binary (default: `jcapi` next to this
                   program; build it with cargo build --release -p jcapi)
  --batch K        (drain) tasks per worker call (default 1: get_task and task_done; up
                   to 1000: get_tasks and one tasks_done for them)
  --notify-ends    (drain, peers) create the drained jobs notified (job:finished at their
                   end); by default they are quiet (create_job's a_notify => false), as
                   nobody is told of a graphile-worker job's completion either
  --prefill P      (create) archived jobs to add before the second run (default: no second
                   run); 1000000 is the target's table size
  --steps LIST     (loop) sizes in steps (default 1000,10000,100000)
  --budget-seconds B  (loop) skip a size predicted to take longer (default 120)
  --limit N        (drain) a concurrency limit of N tasks on the action (its config
                   `concurrency`), measured beside the drain without it
  --lock-limit N   (drain) the same made with a counted lock of N holders the jobs hold
  --task-timeout S (drain) action add gets config timeout = S seconds: every task taken gets
                   a time-out (none by default)
  --rounds R       (peers, drain --limit) interleaved rounds (default 2)
  --probe-seconds S   (peers) length of each commit probe (default 2)
  --peer-dir PATH  (peers) where graphile-worker is installed (default .jc/peers)
  --help           this text
";

/// What the bench runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Rounds,
    E2e,
    Drain,
    Create,
    Loop,
    Peers,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Rounds => "(none)",
            Mode::E2e => "--e2e",
            Mode::Drain => "drain",
            Mode::Create => "create",
            Mode::Loop => "loop",
            Mode::Peers => "peers",
        }
    }
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    workers: Vec<usize>,
    jobs: usize,
    clients: usize,
    inflight: Option<usize>,
    timeout: Duration,
    out: PathBuf,
    fast: bool,
    stats: bool,
    transports: Vec<Transport>,
    slots: u32,
    jcapi: Option<PathBuf>,
    batch: usize,
    notify_ends: bool,
    limit: Option<workload::Limit>,
    task_timeout: Option<u32>,
    prefill: Option<i64>,
    steps: Vec<u64>,
    budget: Duration,
    rounds: usize,
    probe: Duration,
    peer_dir: PathBuf,
}

/// The modes each mode-specific flag goes with.
fn flag_modes(flag: &str) -> &'static [Mode] {
    match flag {
        "--inflight" => &[Mode::Rounds, Mode::E2e],
        "--stats" => &[Mode::Rounds, Mode::E2e, Mode::Drain],
        "--transports" | "--slots" => &[Mode::E2e],
        "--jcapi" => &[Mode::E2e, Mode::Peers],
        "--batch" | "--limit" | "--lock-limit" | "--task-timeout" => &[Mode::Drain],
        "--notify-ends" => &[Mode::Drain, Mode::Peers],
        "--prefill" => &[Mode::Create],
        "--steps" | "--budget-seconds" => &[Mode::Loop],
        "--rounds" | "--probe-seconds" => &[Mode::Peers, Mode::Drain],
        "--peer-dir" => &[Mode::Peers],
        "--workers" => &[Mode::Rounds, Mode::E2e, Mode::Drain, Mode::Peers],
        "--clients" => &[Mode::Rounds, Mode::E2e, Mode::Create, Mode::Peers],
        "--jobs" => &[
            Mode::Rounds,
            Mode::E2e,
            Mode::Drain,
            Mode::Create,
            Mode::Peers,
        ],
        _ => &[
            Mode::Rounds,
            Mode::E2e,
            Mode::Drain,
            Mode::Create,
            Mode::Loop,
            Mode::Peers,
        ],
    }
}

/// Parses the command line; `Ok(None)` for `--help`.
fn parse_args(args: impl Iterator<Item = String>) -> anyhow::Result<Option<Args>> {
    let mut args = args.peekable();
    let mut mode = match args.peek().map(String::as_str) {
        Some("drain") => Some(Mode::Drain),
        Some("create") => Some(Mode::Create),
        Some("loop") => Some(Mode::Loop),
        Some("peers") => Some(Mode::Peers),
        _ => None,
    };
    if mode.is_some() {
        args.next();
    }
    let mut parsed = Args {
        mode: Mode::Rounds,
        workers: vec![1, 4, 16],
        jobs: 2000,
        clients: 4,
        inflight: None,
        timeout: Duration::from_secs(120),
        out: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results.json")),
        fast: false,
        stats: false,
        transports: vec![Transport::Tcp, Transport::Ws],
        slots: 1,
        jcapi: None,
        batch: 1,
        notify_ends: false,
        limit: None,
        task_timeout: None,
        prefill: None,
        steps: vec![1000, 10_000, 100_000],
        budget: Duration::from_secs(120),
        rounds: 2,
        probe: Duration::from_secs(2),
        peer_dir: peers::default_cache(),
    };
    let (mut workers, mut jobs) = (None, None);
    let mut used = vec![];
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
        let seconds = |v: String, what: &str| -> anyhow::Result<Duration> {
            Ok(Duration::from_secs(count(v, what)? as u64))
        };
        match flag.as_str() {
            "--workers" => {
                workers = Some(
                    value()?
                        .split(',')
                        .map(|n| count(n.to_owned(), "--workers"))
                        .collect::<anyhow::Result<Vec<_>>>()?,
                );
            }
            "--jobs" => jobs = Some(count(value()?, "--jobs")?),
            "--clients" => parsed.clients = count(value()?, "--clients")?,
            "--inflight" => parsed.inflight = Some(count(value()?, "--inflight")?),
            "--timeout" => parsed.timeout = seconds(value()?, "--timeout")?,
            "--out" => parsed.out = PathBuf::from(value()?),
            "--transports" => {
                parsed.transports = value()?
                    .split(',')
                    .map(|t| {
                        Transport::parse(t)
                            .with_context(|| format!("--transports: {t:?} is not tcp or ws"))
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--slots" => {
                parsed.slots =
                    u32::try_from(count(value()?, "--slots")?).context("--slots is too large")?;
            }
            "--jcapi" => parsed.jcapi = Some(PathBuf::from(value()?)),
            "--batch" => parsed.batch = count(value()?, "--batch")?,
            "--limit" | "--lock-limit" => {
                let n = u32::try_from(count(value()?, &flag)?)
                    .with_context(|| format!("{flag} is too large"))?;
                if parsed.limit.is_some() {
                    bail!("--limit and --lock-limit go one at a time");
                }
                parsed.limit = Some(if flag == "--limit" {
                    workload::Limit::Action(n)
                } else {
                    workload::Limit::Lock(n)
                });
            }
            "--task-timeout" => {
                parsed.task_timeout = Some(
                    u32::try_from(count(value()?, "--task-timeout")?)
                        .context("--task-timeout is too large")?,
                );
            }
            "--prefill" => {
                parsed.prefill =
                    Some(i64::try_from(count(value()?, "--prefill")?).context("--prefill")?);
            }
            "--steps" => {
                parsed.steps = value()?
                    .split(',')
                    .map(|n| count(n.to_owned(), "--steps").map(|n| n as u64))
                    .collect::<anyhow::Result<_>>()?;
            }
            "--budget-seconds" => parsed.budget = seconds(value()?, "--budget-seconds")?,
            "--rounds" => parsed.rounds = count(value()?, "--rounds")?,
            "--probe-seconds" => parsed.probe = seconds(value()?, "--probe-seconds")?,
            "--peer-dir" => parsed.peer_dir = PathBuf::from(value()?),
            "--fast" | "--stats" | "--e2e" | "--notify-ends" | "--help" | "-h"
                if inline.is_some() =>
            {
                bail!("{flag} takes no value")
            }
            "--fast" => parsed.fast = true,
            "--stats" => parsed.stats = true,
            "--notify-ends" => parsed.notify_ends = true,
            "--e2e" => match mode {
                None | Some(Mode::E2e) => mode = Some(Mode::E2e),
                Some(other) => bail!(
                    "--e2e is a mode of its own, not an option of {}",
                    other.name()
                ),
            },
            "--help" | "-h" => return Ok(None),
            other => bail!("unknown argument {other:?}; see bench --help"),
        }
        used.push(flag);
    }
    parsed.mode = mode.unwrap_or(Mode::Rounds);
    if let Some(flag) = used.iter().find(|f| !flag_modes(f).contains(&parsed.mode)) {
        let modes: Vec<_> = flag_modes(flag).iter().map(|m| m.name()).collect();
        bail!("{flag} goes with {}", modes.join(" or "));
    }
    let (default_workers, default_jobs) = match parsed.mode {
        Mode::Rounds | Mode::E2e => (vec![1, 4, 16], 2000),
        Mode::Drain | Mode::Peers => (vec![10], 20_000),
        Mode::Create | Mode::Loop => (vec![], 10_000),
    };
    parsed.workers = workers.unwrap_or(default_workers);
    parsed.jobs = jobs.unwrap_or(default_jobs);
    if parsed.mode == Mode::Peers && parsed.workers.len() != 1 {
        bail!("peers takes one worker count (the peer's concurrency too)");
    }
    Ok(Some(parsed))
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1).peekable();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("could not start the tokio runtime")
    };
    match argv.peek().map(String::as_str) {
        Some("chaos-agent") => {
            let spec = argv.nth(1).context("chaos-agent needs a spec")?;
            return runtime()?.block_on(agents::run(&spec));
        }
        Some(mode @ ("chaos" | "soak")) => {
            let soak = mode == "soak";
            argv.next();
            let Some(args) = chaos_cli::parse(argv, soak)? else {
                print!("{}", chaos_cli::usage(soak));
                return Ok(());
            };
            return runtime()?.block_on(chaos_cli::run(args));
        }
        _ => {}
    }
    let Some(args) = parse_args(argv)? else {
        print!("{USAGE}");
        return Ok(());
    };
    runtime()?.block_on(bench(args))
}

async fn bench(args: Args) -> anyhow::Result<()> {
    // Before the cluster starts: a missing gateway binary or peer, or a plan the engine
    // cannot run, are the likeliest mistakes.
    let jcapi = match args.mode {
        Mode::E2e | Mode::Peers => Some(gateway::find(args.jcapi.as_deref())?),
        _ => None,
    };
    let drain_plans: Vec<drain::Plan> = args
        .workers
        .iter()
        .map(|&workers| drain::Plan {
            jobs: args.jobs,
            workers,
            batch: args.batch,
            notify: args.notify_ends,
            limit: None,
            task_timeout: args.task_timeout,
            timeout: args.timeout,
        })
        .collect();
    if args.mode == Mode::Drain {
        drain_plans.iter().try_for_each(drain::check)?;
    }
    let peer = if args.mode == Mode::Peers {
        Some(peers::Peer::install(&args.peer_dir).await?)
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
    let (version, generated_at) = machine::server_facts(&cluster).await?;
    let extension = {
        let db = cluster
            .new_db()
            .await
            .context("could not create a database")?;
        sql::extension_version(&Conn::open(&db.dsn).await?.client).await?
    };
    let machine = machine::json(&version, Some(&extension));

    println!("jobcenter bench, mode {}", args.mode.name());
    println!(
        "  machine:    {} CPUs, load average {} at start; {version}; extension {extension}",
        machine["nproc"], machine["loadavg_1m_at_start"]
    );
    println!(
        "  durability: {}",
        if durable {
            "durable (fsync, synchronous_commit, full_page_writes on)"
        } else {
            "fast (fsync, synchronous_commit, full_page_writes off)"
        }
    );
    println!();
    let mut head = Map::new();
    head.insert("generated_at".to_owned(), json!(generated_at));
    head.insert("durable".to_owned(), json!(durable));
    head.insert("machine".to_owned(), machine);

    let (key, mut body) = match (args.mode, jcapi) {
        (Mode::Rounds, _) => {
            print_load(&args);
            let outcomes = sql_rounds(&cluster, &args).await?;
            print_table(&outcomes);
            // The SQL rounds' figures sit at the top level of the file (their keys predate
            // the other modes).
            head.insert("clients".to_owned(), json!(args.clients));
            head.insert("inflight".to_owned(), json!(args.inflight));
            head.insert(
                "results".to_owned(),
                json!(outcomes.iter().map(result_json).collect::<Vec<_>>()),
            );
            write_merged(&args.out, head)?;
            println!("\nwrote {}", args.out.display());
            return Ok(());
        }
        (Mode::E2e, Some(jcapi)) => {
            print_load(&args);
            println!(
                "  gateway:    {} (default settings), workers with {} slot{} each\n",
                jcapi.display(),
                args.slots,
                if args.slots == 1 { "" } else { "s" }
            );
            let outcomes = e2e_rounds(&cluster, &args, jcapi).await?;
            print_e2e_table(&outcomes);
            let body = json!({
                "clients": args.clients,
                "inflight": args.inflight,
                "slots_per_worker": args.slots,
                "jcapi": "default settings (pool_size 8, offer_timeout 10s, sweep_interval 5s)",
                "results": outcomes.iter().map(e2e_json).collect::<Vec<_>>(),
            });
            ("e2e", body)
        }
        (Mode::Drain, _) => match args.limit {
            None => (
                "drain",
                drain_mode(&cluster, &drain_plans, args.stats).await?,
            ),
            Some(limit) => (
                match limit {
                    workload::Limit::Action(_) => "drain_limited",
                    workload::Limit::Lock(_) => "drain_lock_limited",
                },
                limited_mode(&cluster, &drain_plans, limit, &args).await?,
            ),
        },
        (Mode::Create, _) => ("create", create_mode(&cluster, &args).await?),
        (Mode::Loop, _) => ("loop", loop_mode(&cluster, &args).await?),
        (Mode::Peers, Some(jcapi)) => {
            let peer = peer.context("the peer is not installed")?;
            ("peers", peers_mode(&cluster, &args, &peer, jcapi).await?)
        }
        (Mode::E2e | Mode::Peers, None) => bail!("no gateway binary"),
    };
    if let Value::Object(fields) = &mut body {
        for (k, v) in head {
            fields.insert(k, v);
        }
    }
    let mut update = Map::new();
    update.insert(key.to_owned(), body);
    write_merged(&args.out, update)?;
    println!("\nwrote {} (key {key})", args.out.display());
    Ok(())
}

fn print_load(args: &Args) {
    println!(
        "  load:       {} jobs per round, {} client connections, {}",
        args.jobs,
        args.clients,
        match args.inflight {
            Some(n) => format!("at most {n} unfinished jobs at a time"),
            None => "jobs created as fast as the clients can".to_owned(),
        }
    );
}

/// A fresh database of `cluster`, the statistics reset first with `stats` (so they are its
/// run's alone).
async fn fresh_db(cluster: &testkit::Cluster, stats: bool) -> anyhow::Result<testkit::TestDb> {
    let db = cluster
        .new_db()
        .await
        .context("could not create a database")?;
    if stats {
        stats::reset(cluster).await?;
    }
    Ok(db)
}

/// `drain`: one drain per worker count, each on a fresh database.
async fn drain_mode(
    cluster: &testkit::Cluster,
    plans: &[drain::Plan],
    stats: bool,
) -> anyhow::Result<Value> {
    let mut outcomes = Vec::with_capacity(plans.len());
    for plan in plans {
        let db = fresh_db(cluster, stats).await?;
        eprintln!(
            "drain: {} jobs, {} workers{} …",
            plan.jobs,
            plan.workers,
            plan.task_timeout
                .map_or(String::new(), |t| format!(", action time-out {t} s"))
        );
        outcomes.push(
            drain::run(&db, plan)
                .await
                .with_context(|| format!("the drain with {} workers failed", plan.workers))?,
        );
        if stats {
            println!("{} workers:", plan.workers);
            stats::print_top(cluster, &db.name).await?;
            stats::print_functions(cluster, &db.name).await?;
            println!();
        }
    }
    println!(
        "{:>7} {:>6} {:>8} {:>9} {:>8} {:>12} {:>13} {:>10}",
        "workers",
        "jobs",
        "setup_s",
        "elapsed_s",
        "jobs/s",
        "get_task_ms",
        "task_done_ms",
        "wal_B/job"
    );
    for o in &outcomes {
        println!(
            "{:>7} {:>6} {:>8.2} {:>9.2} {:>8.1} {:>12.3} {:>13.3} {:>10.0}",
            o.workers,
            o.jobs,
            o.setup.as_secs_f64(),
            o.elapsed.as_secs_f64(),
            o.jobs_per_s(),
            o.get_task_ms,
            o.task_done_ms,
            o.wal_per_job
        );
    }
    Ok(json!({
        "workflow": "calltest: one call of action add {counter, step} -> {counter}",
        "results": outcomes.iter().map(drain::Outcome::json).collect::<Vec<_>>(),
    }))
}

/// `drain --limit N`: per worker count, `--rounds` interleaved pairs of drains without and
/// with a concurrency limit of N (each on a fresh database, a commit probe before each run);
/// the ratio of the medians, limited / unlimited.
async fn limited_mode(
    cluster: &testkit::Cluster,
    plans: &[drain::Plan],
    limit: workload::Limit,
    args: &Args,
) -> anyhow::Result<Value> {
    let mut results = vec![];
    println!(
        "{:>7} {:>6} {:>5} {:>6} {:>10} {:>10} {:>8}",
        "workers", "jobs", "round", "limit", "jobs/s", "task_done", "probe"
    );
    for plan in plans {
        let limited = drain::Plan {
            limit: Some(limit),
            ..plan.clone()
        };
        let (mut free, mut capped) = (vec![], vec![]);
        let mut runs = vec![];
        for round in 1..=args.rounds {
            for p in [plan, &limited] {
                let probe = machine::probe(cluster, args.probe).await?;
                let db = fresh_db(cluster, args.stats).await?;
                eprintln!(
                    "drain: {} jobs, {} workers, limit {} …",
                    p.jobs,
                    p.workers,
                    p.limit
                        .map_or("none".to_owned(), |l| format!("{} ({})", l.n(), l.kind()))
                );
                let o = drain::run(&db, p).await.with_context(|| {
                    format!(
                        "the drain with {} workers and limit {:?} failed",
                        p.workers, p.limit
                    )
                })?;
                println!(
                    "{:>7} {:>6} {:>5} {:>6} {:>10.1} {:>10.3} {:>8.0}",
                    o.workers,
                    o.jobs,
                    round,
                    p.limit.map_or("-".to_owned(), |l| l.n().to_string()),
                    o.jobs_per_s(),
                    o.task_done_ms,
                    probe
                );
                if args.stats {
                    stats::print_top(cluster, &db.name).await?;
                    stats::print_functions(cluster, &db.name).await?;
                }
                if p.limit.is_some() {
                    capped.push(o.jobs_per_s());
                } else {
                    free.push(o.jobs_per_s());
                }
                let mut j = o.json();
                j["round"] = json!(round);
                j["probe_commits_per_s"] = json!(round_to(probe, 0));
                runs.push(j);
            }
        }
        let (free, capped) = (
            summary::Spread::of(&free).context("no drain without the limit ran")?,
            summary::Spread::of(&capped).context("no limited drain ran")?,
        );
        let ratio = capped.median / free.median;
        println!(
            "{} workers: {:.1} jobs/s without a limit, {:.1} with a limit of {} ({}): ratio {ratio:.3}",
            plan.workers,
            free.median,
            capped.median,
            limit.n(),
            limit.kind()
        );
        results.push(json!({
            "workers": plan.workers,
            "jobs": plan.jobs,
            "limit": limit.n(),
            "limited_by": limit.kind(),
            "unlimited_jobs_per_s": free.json(1),
            "limited_jobs_per_s": capped.json(1),
            "ratio": round_to(ratio, 3),
            "runs": runs,
        }));
    }
    Ok(json!({
        "workflow": match limit {
            workload::Limit::Action(_) => "calltest; limited: action add with config concurrency = N (at most N of its tasks at work at once)",
            workload::Limit::Lock(_) => "calltest; limited: calltest_limited, the same inside lock bench_slots 'add' with max_holders N (taken at the start, released at the end)",
        },
        "probe": format!("{} s of single-row INSERT + COMMIT by one client, commits/s", args.probe.as_secs()),
        "rounds": args.rounds,
        "results": results,
    }))
}

/// `create`: a round on an empty database, then (with `--prefill`) one after filling it.
async fn create_mode(cluster: &testkit::Cluster, args: &Args) -> anyhow::Result<Value> {
    let db = cluster
        .new_db()
        .await
        .context("could not create a database")?;
    create::load(&db).await?;
    eprintln!("create: {} jobs, {} clients …", args.jobs, args.clients);
    // The disk's commit rate decides this rate: a probe before each run shows how much.
    let span = Duration::from_secs(2);
    let mut probes = vec![machine::probe(cluster, span).await?];
    let mut outcomes = vec![create::run(&db, args.clients, args.jobs, 0).await?];
    let mut prefill = None;
    if let Some(n) = args.prefill {
        eprintln!("create: prefilling {n} archived jobs …");
        let p = create::prefill(&db, n).await?;
        eprintln!(
            "create: prefilled in {:.1} s; {} jobs, {} clients …",
            p.elapsed.as_secs_f64(),
            args.jobs,
            args.clients
        );
        probes.push(machine::probe(cluster, span).await?);
        outcomes.push(create::run(&db, args.clients, args.jobs, args.jobs as i64).await?);
        prefill = Some(p);
    }
    println!(
        "{:>7} {:>6} {:>9} {:>8} {:>9} {:>13} {:>13} {:>8}",
        "clients", "jobs", "elapsed_s", "jobs/s", "jobs_rows", "archive_rows", "log_rows", "probe"
    );
    for (o, probe) in outcomes.iter().zip(&probes) {
        let (jobs, archive, log) = o.rows_before;
        println!(
            "{:>7} {:>6} {:>9.2} {:>8.1} {:>9} {:>13} {:>13} {probe:>8.0}",
            o.clients,
            o.jobs,
            o.elapsed.as_secs_f64(),
            o.jobs_per_s(),
            jobs,
            archive,
            log
        );
    }
    let flat = match outcomes.as_slice() {
        [empty, full] => {
            let r = full.jobs_per_s() / empty.jobs_per_s();
            println!("\nrate on the filled tables / rate on empty ones: {r:.3}");
            Some(summary::round_to(r, 3))
        }
        _ => None,
    };
    Ok(json!({
        "workflow": "calltest",
        "prefill": prefill.as_ref().map(create::Prefill::json),
        "full_over_empty": flat,
        "probe": "2 s of single-row INSERT + COMMIT by one client before each run, commits/s",
        "results": outcomes.iter().zip(&probes).map(|(o, &p)| {
            let mut j = o.json();
            j["probe_commits_per_s_before"] = json!(p);
            j
        }).collect::<Vec<_>>(),
    }))
}

/// `loop`: every size on one fresh database.
async fn loop_mode(cluster: &testkit::Cluster, args: &Args) -> anyhow::Result<Value> {
    let db = cluster
        .new_db()
        .await
        .context("could not create a database")?;
    let sizes = loops::run(&db, &args.steps, args.budget).await?;
    println!("{:>8} {:>10} {:>10}", "steps", "elapsed_s", "steps/s");
    for size in &sizes {
        match size {
            loops::Size::Ran { steps, elapsed } => println!(
                "{steps:>8} {:>10.3} {:>10.0}",
                elapsed.as_secs_f64(),
                summary::rate(*steps as f64, elapsed.as_secs_f64())
            ),
            loops::Size::Skipped { steps, predicted_s } => println!(
                "{steps:>8} skipped: predicted {predicted_s:.0} s > budget {} s",
                args.budget.as_secs()
            ),
        }
    }
    Ok(json!({
        "workflow": "benchloop: i = 0; while v.i < a.n: i += 1 (2 steps per turn)",
        "budget_s": args.budget.as_secs(),
        "results": sizes.iter().zip(&args.steps).map(|(s, &t)| s.json(t)).collect::<Vec<_>>(),
    }))
}

/// `peers`: the interleaved comparison with graphile-worker.
async fn peers_mode(
    cluster: &testkit::Cluster,
    args: &Args,
    peer: &peers::Peer,
    jcapi: PathBuf,
) -> anyhow::Result<Value> {
    let setup = e2e::Setup::new(jcapi).await?;
    let workers = args.workers.first().copied().unwrap_or(10);
    let plan = peers::Plan {
        jobs: args.jobs,
        rounds: args.rounds,
        workers,
        clients: args.clients,
        probe: args.probe,
        notify: args.notify_ends,
        timeout: args.timeout,
    };
    println!(
        "  peer:       graphile-worker {} on node {}; {} jobs per run, {} workers / \
         concurrency, {} clients, {} rounds, {} s commit probe before every run\n",
        peers::GRAPHILE_VERSION,
        peer.node,
        plan.jobs,
        plan.workers,
        plan.clients,
        plan.rounds,
        plan.probe.as_secs()
    );
    let comparisons = peers::run(cluster, peer, &setup, &plan).await?;
    let end_load = machine::loadavg();
    let mut by_name = Map::new();
    for c in &comparisons {
        c.print();
        by_name.insert(c.name.to_owned(), c.json());
    }
    Ok(json!({
        "jobs": plan.jobs,
        "rounds": plan.rounds,
        "workers": plan.workers,
        "clients": plan.clients,
        "probe": format!("{} s of single-row INSERT + COMMIT by one client, commits/s", plan.probe.as_secs()),
        "versions": {
            "graphile_worker": peers::GRAPHILE_VERSION,
            "node": peer.node,
        },
        "loadavg_at_end": end_load,
        "comparisons": by_name,
    }))
}

/// The SQL rounds: one per worker count, each on a fresh database.
async fn sql_rounds(cluster: &testkit::Cluster, args: &Args) -> anyhow::Result<Vec<Outcome>> {
    let mut outcomes = Vec::with_capacity(args.workers.len());
    for &workers in &args.workers {
        let db = fresh_db(cluster, args.stats).await?;
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
            println!(
                "{t}, {workers} workers: group commits of {} jobs: {} create, {} take and {} \
                 result transactions",
                args.jobs, g.create_batches, g.take_batches, g.done_batches
            );
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
                "create_job_batches": o.gateway.create_batches,
                "take_batches": o.gateway.take_batches,
                "task_done_batches": o.gateway.done_batches,
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
        assert_eq!(a.mode, Mode::E2e);
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
            &["drain", "--e2e"],
            &["drain", "--prefill", "10"],
            &["drain", "--batch", "0"],
            &["create", "--workers", "4"],
            &["create", "--prefill", "-1"],
            &["loop", "--jobs", "10"],
            &["loop", "--steps", "1000,x"],
            &["loop", "--budget-seconds", "0"],
            &["peers", "--workers", "4,8"],
            &["peers", "--steps", "10"],
            &["--rounds", "3"],
            &["--batch", "2"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn modes_parse_with_their_own_defaults() -> anyhow::Result<()> {
        let a = parse(&["drain"])?.context("not help")?;
        assert_eq!(
            (a.mode, a.jobs, a.workers.clone(), a.batch),
            (Mode::Drain, 20_000, vec![10], 1)
        );
        let a = parse(&["drain", "--jobs", "500", "--workers=2,10", "--batch", "1"])?
            .context("not help")?;
        assert_eq!((a.jobs, a.workers), (500, vec![2, 10]));
        assert_eq!(a.task_timeout, None);
        let a = parse(&["drain", "--task-timeout", "300"])?.context("not help")?;
        assert_eq!(a.task_timeout, Some(300));
        let refused = parse(&["create", "--task-timeout", "300"])
            .err()
            .context("--task-timeout was taken by create")?;
        assert!(refused.to_string().contains("--task-timeout"), "{refused}");
        let a =
            parse(&["create", "--prefill", "1000000", "--clients", "2"])?.context("not help")?;
        assert_eq!(
            (a.mode, a.jobs, a.prefill, a.clients),
            (Mode::Create, 10_000, Some(1_000_000), 2)
        );
        let a = parse(&["loop"])?.context("not help")?;
        assert_eq!(
            (a.mode, a.steps, a.budget),
            (
                Mode::Loop,
                vec![1000, 10_000, 100_000],
                Duration::from_secs(120)
            )
        );
        let a =
            parse(&["loop", "--steps", "500,2000", "--budget-seconds=30"])?.context("not help")?;
        assert_eq!(
            (a.steps, a.budget),
            (vec![500, 2000], Duration::from_secs(30))
        );
        let a = parse(&[
            "peers",
            "--jobs",
            "5000",
            "--rounds",
            "3",
            "--probe-seconds",
            "1",
        ])?
        .context("not help")?;
        assert_eq!(
            (a.mode, a.jobs, a.rounds, a.probe, a.workers),
            (Mode::Peers, 5000, 3, Duration::from_secs(1), vec![10])
        );
        assert!(a.peer_dir.ends_with(".jc/peers"));
        Ok(())
    }

    #[test]
    fn batches_are_bounded() -> anyhow::Result<()> {
        let a = parse(&["drain", "--batch", "50"])?.context("not help")?;
        let plan = drain::Plan {
            jobs: a.jobs,
            workers: 10,
            batch: a.batch,
            notify: false,
            limit: None,
            task_timeout: None,
            timeout: a.timeout,
        };
        assert!(drain::check(&plan).is_ok());
        let refused = drain::check(&drain::Plan {
            batch: 1001,
            ..plan.clone()
        })
        .err()
        .context("--batch 1001 was accepted")?;
        assert!(refused.to_string().contains("1 to 1000"), "{refused}");
        Ok(())
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
