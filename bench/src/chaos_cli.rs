//! The command lines of `bench chaos` and `bench soak`, and running them: the figures go
//! under the mode's key of their own JSON file, with the machine's facts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde_json::{json, Map};

use crate::chaos::{self, Fault};
use crate::{gateway, machine, soak};

/// A parsed `chaos` or `soak` command line.
#[derive(Debug, Clone)]
pub struct Args {
    pub soak: bool,
    pub faults: Vec<Fault>,
    pub rounds: usize,
    pub seconds: u64,
    pub workers: usize,
    pub clients: usize,
    pub inflight: usize,
    pub slots: u32,
    pub hold: Duration,
    pub storm: Duration,
    pub drain: Duration,
    pub jcapi: Option<PathBuf>,
    pub maestro: Option<PathBuf>,
    pub out: PathBuf,
}

/// The usage text of `chaos` (or `soak`).
pub fn usage(soak: bool) -> String {
    if soak {
        return "\
bench soak: a steady load with archival on, sampled every 10 s

usage: bench soak [--minutes N] [options]

The chaos load (bench chaos --help) without faults, on one PostgreSQL cluster, with finished
jobs archived after 5 s and archived jobs deleted 30 s later (jobcenter.settings), the
maestro's maintenance every 5 s. Every 10 s: resident memory of the maestro and both jcapi
(/proc), rows of jobs, job_task_log and jobs_archive, their dead tuples, jobs/s. Fails (exit
status 1) when a series grows: after the first minute, the mean of the last third of the
samples above 1.25 x the first third's + 8 MB (memory) or 2,000 rows (dead
tuples: the thirds' peaks, + 20,000).

Options:
  --minutes N      how long (default 30); --seconds S for short runs (at least 100)
  --workers W --clients C --inflight L --slots S --jcapi PATH --maestro PATH
                   as for chaos
  --out PATH       (default bench/soak.json), key `soak`
"
        .to_owned();
    }
    "\
bench chaos: a mixed load through the whole engine while faults are injected

usage: bench chaos [options]

Starts a primary and a streaming standby (pg_basebackup -R, synchronous) on 127.0.0.1, the
maestro, two jcapi and worker and client processes (jc-client, bench chaos-agent), all on one
multi-host connection string (host=a,b target_session_attrs=read-write). Clients create jobs
of chaos.one, chaos.child, chaos.sleep, chaos.event, chaos.lock and chaos.retry in turn (at
most --inflight unanswered each) and wait for each one's job_done; workers perform chaos.add
and chaos.flaky (30% soft errors, retried). Every round injects each fault in turn, waits
until the engine recovers, pauses 3 s. Then the clients stop, and the checks run: every job
a client was told was created ended once with input + 3, no worker task's outputs applied
twice, no live job without a timer or a waker, no locks, subscriptions or queued events of
ended jobs.

Faults: maestro, jcapi, worker, client (kill -9 and start again), crash (pg_ctl stop -m
immediate, start), failover (primary killed, standby promoted, a new standby built), xmin
(a transaction held open), terminate (pg_terminate_backend storm).

Options:
  --faults LIST    faults to inject, in order (default: all)
  --rounds R       rounds of faults (default 3)
  --seconds S      the load runs at least this long (default 300)
  --workers W      worker processes (default 3), --slots S tasks at once each (default 4)
  --clients C      client processes (default 3), --inflight L jobs each (default 8)
  --hold-seconds H    how long xmin holds its transaction (default 60)
  --storm-seconds T   how long the terminate storm lasts (default 10)
  --drain-seconds D   how long the clients may take to get their answers (default 120)
  --jcapi PATH, --maestro PATH   the binaries (default: next to this program)
  --out PATH       (default bench/chaos.json), key `chaos`
"
    .to_owned()
}

/// Parses the options after the mode; `Ok(None)` for `--help`.
pub fn parse(args: impl Iterator<Item = String>, soak: bool) -> anyhow::Result<Option<Args>> {
    let mut parsed = Args {
        soak,
        faults: Fault::ALL.to_vec(),
        rounds: 3,
        seconds: if soak { 30 * 60 } else { 300 },
        workers: 3,
        clients: 3,
        inflight: 8,
        slots: 4,
        hold: Duration::from_secs(60),
        storm: Duration::from_secs(10),
        drain: Duration::from_secs(120),
        jcapi: None,
        maestro: None,
        out: PathBuf::from(if soak {
            concat!(env!("CARGO_MANIFEST_DIR"), "/soak.json")
        } else {
            concat!(env!("CARGO_MANIFEST_DIR"), "/chaos.json")
        }),
    };
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg, None),
        };
        if flag == "--help" || flag == "-h" {
            return Ok(None);
        }
        let value = inline
            .or_else(|| args.next())
            .with_context(|| format!("{flag} needs a value"))?;
        let count = |what: &str| -> anyhow::Result<u64> {
            match value.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => bail!("{what} must be a positive whole number, not {value:?}"),
            }
        };
        let chaos_only = [
            "--faults",
            "--rounds",
            "--hold-seconds",
            "--storm-seconds",
            "--drain-seconds",
        ];
        if soak && chaos_only.contains(&flag.as_str()) {
            bail!("{flag} goes with chaos, not soak");
        }
        if !soak && flag == "--minutes" {
            bail!("--minutes goes with soak; chaos takes --seconds");
        }
        match flag.as_str() {
            "--faults" => {
                parsed.faults = value
                    .split(',')
                    .map(|f| {
                        Fault::parse(f).with_context(|| {
                            let all: Vec<_> = Fault::ALL.iter().map(|f| f.name()).collect();
                            format!("--faults: no fault {f:?} (faults: {})", all.join(", "))
                        })
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            "--rounds" => parsed.rounds = count("--rounds")? as usize,
            "--seconds" => parsed.seconds = count("--seconds")?,
            "--minutes" => parsed.seconds = count("--minutes")? * 60,
            "--workers" => parsed.workers = count("--workers")? as usize,
            "--clients" => parsed.clients = count("--clients")? as usize,
            "--inflight" => parsed.inflight = count("--inflight")? as usize,
            "--slots" => parsed.slots = u32::try_from(count("--slots")?).context("--slots")?,
            "--hold-seconds" => parsed.hold = Duration::from_secs(count("--hold-seconds")?),
            "--storm-seconds" => parsed.storm = Duration::from_secs(count("--storm-seconds")?),
            "--drain-seconds" => parsed.drain = Duration::from_secs(count("--drain-seconds")?),
            "--jcapi" => parsed.jcapi = Some(PathBuf::from(value)),
            "--maestro" => parsed.maestro = Some(PathBuf::from(value)),
            "--out" => parsed.out = PathBuf::from(value),
            other => bail!(
                "unknown argument {other:?}; see bench {} --help",
                if soak { "soak" } else { "chaos" }
            ),
        }
    }
    if parsed.faults.is_empty() {
        bail!("--faults: name at least one fault");
    }
    Ok(Some(parsed))
}

/// Runs the mode and writes its figures; a failed soak is an error after the figures are
/// written.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let jcapi = gateway::find(args.jcapi.as_deref())?;
    let maestro = gateway::find_binary("maestro", args.maestro.as_deref())?;
    println!(
        "jobcenter bench, mode {}\n  machine:    {} CPUs, load average {} at start\n",
        if args.soak { "soak" } else { "chaos" },
        machine::nproc(),
        machine::loadavg().map_or_else(|| "unknown".to_owned(), |l| l[0].to_string())
    );
    let (key, mut body, passed) = if args.soak {
        let plan = soak::Plan {
            seconds: args.seconds,
            workers: args.workers,
            clients: args.clients,
            inflight: args.inflight,
            slots: args.slots,
            jcapi,
            maestro,
        };
        let (body, passed) = soak::run(&plan).await?;
        ("soak", body, passed)
    } else {
        let plan = chaos::Plan {
            faults: args.faults.clone(),
            rounds: args.rounds,
            seconds: args.seconds,
            workers: args.workers,
            clients: args.clients,
            inflight: args.inflight,
            slots: args.slots,
            hold: args.hold,
            storm: args.storm,
            drain: args.drain,
            jcapi,
            maestro,
        };
        ("chaos", chaos::run(&plan).await?, true)
    };
    body["machine"] = json!({
        "nproc": machine::nproc(),
        "loadavg_at_end": machine::loadavg(),
    });
    let mut update = Map::new();
    update.insert(key.to_owned(), body);
    crate::write_merged(&args.out, update)?;
    println!("\nwrote {} (key {key})", args.out.display());
    if !passed {
        bail!("the soak failed: a series grew (see the verdicts above)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(soak: bool, a: &[&str]) -> anyhow::Result<Option<Args>> {
        parse(a.iter().map(|s| (*s).to_owned()), soak)
    }

    #[test]
    fn chaos_and_soak_options_parse() -> anyhow::Result<()> {
        let a = parse_v(false, &[])?.context("not help")?;
        assert_eq!((a.faults.len(), a.rounds, a.seconds), (8, 3, 300));
        assert!(a.out.ends_with("bench/chaos.json"));
        let a = parse_v(
            false,
            &["--faults", "maestro,crash", "--rounds=1", "--seconds", "60"],
        )?
        .context("not help")?;
        assert_eq!(a.faults, vec![Fault::Maestro, Fault::Crash]);
        assert_eq!((a.rounds, a.seconds), (1, 60));
        let a = parse_v(true, &["--minutes", "2"])?.context("not help")?;
        assert_eq!(a.seconds, 120);
        assert!(a.out.ends_with("bench/soak.json"));
        assert!(parse_v(true, &["--help"])?.is_none());
        Ok(())
    }

    #[test]
    fn bad_options_are_refused() {
        for (soak, bad) in [
            (false, &["--faults", "maestro,meteor"][..]),
            (false, &["--rounds", "0"]),
            (false, &["--minutes", "3"]),
            (true, &["--faults", "crash"]),
            (false, &["--seconds"]),
            (false, &["--nope", "1"]),
        ] {
            assert!(parse_v(soak, bad).is_err(), "{bad:?} was accepted");
        }
    }
}
