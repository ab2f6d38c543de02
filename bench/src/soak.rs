//! `soak`: the chaos load without faults for `--minutes`, with archival on and short
//! (finished jobs archived after 5 s, archived jobs deleted 30 s later, the maestro's
//! maintenance every 5 s), sampled every 10 s: resident memory of the maestro and of each
//! gateway, rows of `jobs`, `job_task_log` and `jobs_archive`, their dead tuples, and jobs/s
//! (answers the clients got).
//!
//! Bounded means: after the warm-up (the first minute, while the archive fills to its
//! retention), the mean of the last third of the samples of every series is at most 1.25
//! times the mean of the first third plus a slack (8 MB of memory, 2,000 rows), which a
//! steady state passes and a leak or an unarchived table does not. Dead tuples rise and fall
//! with autovacuum's rounds (a minute apart), so their peaks are compared instead, with a
//! slack of 20,000.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::engine::{self, Engine, Shape};
use crate::sql;
use crate::summary::round_to;

/// How often the soak samples.
pub const SAMPLE: Duration = Duration::from_secs(10);

/// Samples in this first stretch are not judged.
const WARMUP: Duration = Duration::from_secs(60);

/// The factor and slacks of the criterion.
const GROWTH: f64 = 1.25;
const RSS_SLACK_KB: f64 = 8192.0;
const ROWS_SLACK: f64 = 2000.0;
const DEAD_SLACK: f64 = 20_000.0;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub seconds: u64,
    pub workers: usize,
    pub clients: usize,
    pub inflight: usize,
    pub slots: u32,
    pub jcapi: PathBuf,
    pub maestro: PathBuf,
}

/// The series of a sample, in order: the slack, and whether the thirds' peaks (not means)
/// are compared.
const SERIES: [(&str, f64, bool); 7] = [
    ("rss_maestro_kb", RSS_SLACK_KB, false),
    ("rss_jcapi0_kb", RSS_SLACK_KB, false),
    ("rss_jcapi1_kb", RSS_SLACK_KB, false),
    ("jobs_rows", ROWS_SLACK, false),
    ("job_task_log_rows", ROWS_SLACK, false),
    ("jobs_archive_rows", ROWS_SLACK, false),
    ("dead_tuples", DEAD_SLACK, true),
];

/// Runs the soak; its figures (and whether it passed) as JSON.
pub async fn run(plan: &Plan) -> anyhow::Result<(Value, bool)> {
    let shape = Shape {
        jcapi: plan.jcapi.clone(),
        maestro: plan.maestro.clone(),
        standby: false,
        workers: plan.workers,
        clients: plan.clients,
        slots: plan.slots,
        inflight: plan.inflight,
        task_ms: 20,
        flaky: 0.1,
        maestro_env: vec![("JC_MAINTENANCE_INTERVAL".into(), "5s".into())],
        settings: vec![
            ("archive_finished_after".into(), json!("5 seconds")),
            ("archive_error_after".into(), json!("5 seconds")),
            ("archive_retention".into(), json!("30 seconds")),
        ],
    };
    let mut engine = Engine::start(shape).await?;
    let started = Instant::now();
    let mut samples: Vec<Value> = vec![];
    let mut answered_before = 0usize;
    let mut at_before = started;
    while started.elapsed() < Duration::from_secs(plan.seconds) {
        tokio::time::sleep(SAMPLE).await;
        let c = engine.connect().await?;
        let (jobs, log, archive, dead) = sql::table_sample(&c.client).await?;
        let (maestro, gateways) = engine.rss_kb();
        let answered: usize = engine::read_clients(&engine)
            .answers
            .values()
            .map(Vec::len)
            .sum();
        let now = Instant::now();
        let rate = (answered - answered_before.min(answered)) as f64
            / now.duration_since(at_before).as_secs_f64();
        (answered_before, at_before) = (answered, now);
        let sample = json!({
            "t_s": round_to(started.elapsed().as_secs_f64(), 1),
            "rss_maestro_kb": maestro,
            "rss_jcapi0_kb": gateways.first().copied().flatten(),
            "rss_jcapi1_kb": gateways.get(1).copied().flatten(),
            "jobs_rows": jobs,
            "job_task_log_rows": log,
            "jobs_archive_rows": archive,
            "dead_tuples": dead,
            "jobs_per_s": round_to(rate, 1),
        });
        eprintln!("soak: {sample}");
        samples.push(sample);
    }
    engine.drain_clients(Duration::from_secs(60)).await?;
    engine.stop().await?;
    let (verdicts, passed) = judge(&samples)?;
    print(&samples, &verdicts, passed);
    Ok((
        json!({
            "seconds": plan.seconds,
            "workers": plan.workers,
            "clients": plan.clients,
            "inflight_per_client": plan.inflight,
            "settings": "archive_finished_after 5 s, archive_retention 30 s, maintenance every 5 s",
            "criterion": format!(
                "after {} s of warm-up, mean of the last third <= {GROWTH} x mean of the first \
                 third + slack ({RSS_SLACK_KB} kB of memory, {ROWS_SLACK} rows); dead tuples: \
                 the thirds' peaks, slack {DEAD_SLACK}",
                WARMUP.as_secs()
            ),
            "passed": passed,
            "verdicts": verdicts,
            "samples": samples,
        }),
        passed,
    ))
}

/// Each series' first- and last-third means and whether it stayed bounded.
fn judge(samples: &[Value]) -> anyhow::Result<(Value, bool)> {
    let judged: Vec<&Value> = samples
        .iter()
        .filter(|s| s["t_s"].as_f64().unwrap_or_default() > WARMUP.as_secs_f64())
        .collect();
    if judged.len() < 3 {
        bail!(
            "{} samples after the warm-up: run at least {} s longer",
            judged.len(),
            (3 - judged.len() as u64) * SAMPLE.as_secs()
        );
    }
    let third = judged.len() / 3;
    let summary = |part: &[&Value], key: &str, peak: bool| -> Option<f64> {
        let v: Vec<f64> = part.iter().filter_map(|s| s[key].as_f64()).collect();
        if peak {
            v.into_iter().reduce(f64::max)
        } else {
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        }
    };
    let mut verdicts = serde_json::Map::new();
    let mut passed = true;
    for (key, slack, peak) in SERIES {
        let first = summary(&judged[..third], key, peak).context("a series without values")?;
        let last = summary(&judged[judged.len() - third..], key, peak)
            .context("a series without values")?;
        let bounded = last <= first * GROWTH + slack;
        passed &= bounded;
        verdicts.insert(
            key.to_owned(),
            json!({
                "first_third": round_to(first, 0),
                "last_third": round_to(last, 0),
                "of": if peak { "peak" } else { "mean" },
                "bounded": bounded,
            }),
        );
    }
    Ok((Value::Object(verdicts), passed))
}

fn print(samples: &[Value], verdicts: &Value, passed: bool) {
    println!(
        "{:>6} {:>10} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7} {:>7}",
        "t_s",
        "maestro_kB",
        "jcapi0_kB",
        "jcapi1_kB",
        "jobs",
        "task_log",
        "archive",
        "dead",
        "jobs/s"
    );
    for s in samples {
        println!(
            "{:>6} {:>10} {:>10} {:>10} {:>7} {:>9} {:>9} {:>7} {:>7}",
            s["t_s"],
            s["rss_maestro_kb"],
            s["rss_jcapi0_kb"],
            s["rss_jcapi1_kb"],
            s["jobs_rows"],
            s["job_task_log_rows"],
            s["jobs_archive_rows"],
            s["dead_tuples"],
            s["jobs_per_s"]
        );
    }
    println!();
    for (key, v) in verdicts.as_object().into_iter().flatten() {
        println!(
            "{key:>18}: first third {}, last third {}: {}",
            v["first_third"],
            v["last_third"],
            if v["bounded"] == json!(true) {
                "bounded"
            } else {
                "GROWS"
            }
        );
    }
    println!("\nsoak {}", if passed { "passed" } else { "FAILED" });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: u64, rows: i64) -> Value {
        json!({
            "t_s": t, "rss_maestro_kb": rss, "rss_jcapi0_kb": rss, "rss_jcapi1_kb": rss,
            "jobs_rows": rows, "job_task_log_rows": rows, "jobs_archive_rows": rows,
            "dead_tuples": 0,
        })
    }

    #[test]
    fn steady_series_pass_and_growing_ones_fail() -> anyhow::Result<()> {
        let steady: Vec<Value> = (1..=15u32)
            .map(|i| sample(f64::from(i) * 10.0, 30_000 + u64::from(i % 2) * 500, 4000))
            .collect();
        assert!(judge(&steady)?.1, "steady");
        let leaking: Vec<Value> = (1..=15u32)
            .map(|i| sample(f64::from(i) * 10.0, 30_000 + u64::from(i) * 5000, 4000))
            .collect();
        let (verdicts, passed) = judge(&leaking)?;
        assert!(!passed);
        assert_eq!(verdicts["rss_maestro_kb"]["bounded"], json!(false));
        assert_eq!(verdicts["jobs_rows"]["bounded"], json!(true));
        let piling: Vec<Value> = (1..=15u32)
            .map(|i| sample(f64::from(i) * 10.0, 30_000, i64::from(i) * 3000))
            .collect();
        assert!(!judge(&piling)?.1, "rows piling up");
        assert!(
            judge(&steady[..7]).is_err(),
            "too few samples after the warm-up"
        );
        Ok(())
    }
}
