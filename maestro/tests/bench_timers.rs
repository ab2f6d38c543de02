//! A measurement, not a test (ignored by default): timer lateness of 1,000 sleeps due in the
//! same second, with one maestro and with two, and the CPU use of an idle maestro. Prints the
//! figures and writes them to `maestro/bench-results.json`. Run it with
//! `cargo test --release -p maestro --test bench_timers -- --ignored --nocapture`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{load, sleeper, wait_all_ended, wait_listening, Maestro};
use serde_json::{json, Value};

const TIMERS: i64 = 1000;

/// Lateness of TIMERS sleeps due at the same time, fired by `maestros` maestros: the time the
/// sleep step was logged as done minus the due time, in milliseconds.
async fn lateness(cluster: &testkit::Cluster, maestros: usize) -> (Value, Vec<Maestro>) {
    let tdb = cluster.new_db().await.unwrap();
    let c = tdb.connect().await.unwrap();
    load(&c, &[sleeper()]).await;
    let running: Vec<Maestro> = (0..maestros)
        .map(|_| Maestro::start(&tdb.dsn, &[]))
        .collect();
    wait_listening(&c, maestros as i64).await;
    c.batch_execute(&format!(
        "select jobcenter.create_job('sleeper', '{{\"t\": 60}}') from generate_series(1, {TIMERS})"
    ))
    .await
    .unwrap();
    // Once they all sleep, move their timeouts to the same time, 1 to 2 s ahead.
    c.batch_execute(
        "create table due as \
             select date_trunc('second', clock_timestamp()) + interval '2 seconds' as at; \
         update jobcenter.jobs set timeout = (select at from due); \
         select pg_notify('timer', extract(epoch from at)::text) from due;",
    )
    .await
    .unwrap();
    let ahead: f64 = c
        .query_one(
            "select extract(epoch from at - clock_timestamp())::float8 from due",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ahead > 0.5, "the due time is only {ahead} s ahead");
    wait_all_ended(&c, Duration::from_secs(60)).await;
    let row = c
        .query_one(
            "with late as ( \
                 select extract(epoch from l.task_completed - d.at) * 1000 as ms \
                 from jobcenter.job_task_log l join jobcenter.tasks t using (task_id), due d \
                 where t.action_id = -16 and l.state = 'done') \
             select count(*), percentile_cont(0.5) within group (order by ms), \
                 percentile_cont(0.99) within group (order by ms), min(ms)::float8, max(ms)::float8 \
             from late",
            &[],
        )
        .await
        .unwrap();
    let fired: i64 = row.get(0);
    assert_eq!(fired, TIMERS);
    let figures = json!({
        "timers": fired,
        "maestros": maestros,
        "lateness_ms": {
            "median": round(row.get(1)),
            "p99": round(row.get(2)),
            "min": round(row.get(3)),
            "max": round(row.get(4)),
        },
    });
    (figures, running)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
#[ignore = "a measurement: run it by hand with --ignored --nocapture"]
async fn timer_lateness_and_idle_cpu() {
    let cluster = testkit::Cluster::start(testkit::ClusterOptions { durable: true })
        .await
        .unwrap();
    let (one, mut running) = lateness(&cluster, 1).await;
    println!("1 maestro:  {one}");

    // The maestro that just fired the timers, now idle: no timer is set.
    let idle = running.remove(0);
    let pid = idle.child.id();
    let seconds = 10.0;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let used = (cpu_ticks(pid) - before) as f64 / clock_ticks_per_second();
    let idle_cpu = json!({
        "seconds": seconds,
        "cpu_seconds": used,
        "cpu_percent": round(used / seconds * 100.0 * 100.0) / 100.0,
    });
    println!("idle maestro: {idle_cpu}");
    drop(idle);

    let (two, _running) = lateness(&cluster, 2).await;
    println!("2 maestros: {two}");

    let results = json!({
        "what": "1,000 sleeps due in the same second: lateness = when the sleep step was \
                 logged done minus the due time; idle = utime+stime of a maestro with no \
                 timer set",
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "postgresql": "private cluster, fsync on (testkit durable), same 2-core machine",
        "one_maestro": one,
        "two_maestros": two,
        "idle": idle_cpu,
        "loadavg_after": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/bench-results.json");
    std::fs::write(path, serde_json::to_string_pretty(&results).unwrap() + "\n").unwrap();
    println!("written to {path}");
}
