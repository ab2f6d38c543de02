//! The real `maestro` binary on a test database: sleeps, action time-outs with retry, retry
//! back-off, delayed start and schedules fire on time; a kill -9 in the middle of 200 jobs and
//! a PostgreSQL restart lose nothing and fire nothing twice; two maestros share 1,000 timers
//! and a per-second schedule without doubles; silent workers are ended; SIGTERM exits 0; the
//! layered configuration and /metrics.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{
    db, flow, load, log_counts, setup, sleeper, wait_all_ended, wait_job, wait_listening, Maestro,
};
use jcl::build::{path, set, var};
use jcl::{Backoff, Ns, RetryConfig};
use rustix::process::Signal;
use serde_json::{json, Value};

#[tokio::test]
async fn a_sleep_of_one_second_finishes_in_about_one_second() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    let started = Instant::now();
    let job = db::create_job(&c, "sleeper", &json!({"t": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(5)).await,
        json!({"t": 1})
    );
    let took = started.elapsed().as_secs_f64();
    assert!((0.9..2.0).contains(&took), "took {took} s");
    // The sleep step as logged: entered, and completed one second later.
    let slept: f64 = c
        .query_one(
            "select extract(epoch from task_completed - task_entered)::float8 \
             from jobcenter.job_task_log where job_id = $1 and state = 'done' \
             order by job_task_log_id offset 1 limit 1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert!((1.0..1.5).contains(&slept), "slept {slept} s");
    assert_eq!(m.metric("jobcenter_timers_fired_total").await, 1.0);
    let body = m.metrics().await;
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("jobcenter_jobs{state=\"finished\"} 1\n"),
        "{body}"
    );
    assert!(
        body.contains("jobcenter_jobs{state=\"sleeping\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("jobcenter_up 1\n"), "{body}");
    assert!(
        body.contains("jobcenter_maestro_call_seconds_count{call=\"do_timeout\"}"),
        "{body}"
    );
    assert!(body.contains("jobcenter_maestro_wake_lateness_seconds_bucket{le=\"0.1\"}"));
}

#[tokio::test]
async fn a_sleep_beyond_the_timer_horizon_is_not_notified_and_still_fires_on_time() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    c.execute(
        "update jobcenter.settings set value = '\"2 seconds\"' where name = 'timer_horizon'",
        &[],
    )
    .await
    .unwrap();
    // max_sleep is a minute: only the horizon makes the maestro look again within 2 s
    let _m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    // past the rounds of its start (the one after it began to listen among them), asleep
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let job = db::create_job(&c, "sleeper", &json!({"t": 4}), Default::default())
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(10)).await,
        json!({"t": 4})
    );
    let took = started.elapsed().as_secs_f64();
    assert!((3.9..5.5).contains(&took), "took {took} s");
}

/// Action `flaky` (1 s time-out, retried after 0.5 s) and workflow `callflaky` calling it.
fn flaky(retry: RetryConfig, timeout: Option<&str>) -> Vec<jcl::Model> {
    let act = flow::action("flaky")
        .output("ok", "boolean")
        .config(|c| {
            c.timeout = timeout.map(str::to_owned);
            c.retry = Some(retry);
        })
        .model();
    let mut f = flow::Flow::workflow("callflaky").output("ok", "boolean");
    f.call(
        "flaky",
        vec![],
        vec![set(path(Ns::V, &["ok"]), var(Ns::O, &["ok"]))],
    );
    let wf = f.end(vec![set(path(Ns::O, &["ok"]), var(Ns::V, &["ok"]))]);
    vec![act, wf]
}

/// Polls get_task until a task of `flaky` is there; returns it.
async fn take(c: &tokio_postgres::Client, within: Duration) -> db::Task {
    let deadline = Instant::now() + within;
    loop {
        if let Some(t) = db::get_task(c, "w1", "flaky", None).await.unwrap() {
            return t;
        }
        assert!(Instant::now() < deadline, "no task within {within:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_worker_that_never_answers_gets_a_soft_error_at_the_time_out_and_the_retry_succeeds() {
    let (tdb, c) = setup().await;
    let retry = RetryConfig {
        tries: 2,
        interval: "0.5 seconds".into(),
        backoff: Backoff::Fixed,
        max_interval: None,
        jitter: false,
    };
    load(&c, &flaky(retry, Some("1 second"))).await;
    let _m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    let job = db::create_job(&c, "callflaky", &json!({}), Default::default())
        .await
        .unwrap()
        .job_id;
    db::announce(&c, "w1", "flaky", None, None).await.unwrap();
    let first = take(&c, Duration::from_secs(1)).await;
    let taken = Instant::now();
    // The worker never answers; 1 s later the time-out is a soft error, 0.5 s later a retry.
    let second = take(&c, Duration::from_secs(4)).await;
    let waited = taken.elapsed().as_secs_f64();
    assert!((1.4..2.5).contains(&waited), "retried after {waited} s");
    let late = db::task_done(&c, &first.cookie, &json!({"ok": false}))
        .await
        .expect_err("the first try timed out");
    assert_eq!(late.code(), Some(db::ErrorCode::UnknownCookie));
    db::task_done(&c, &second.cookie, &json!({"ok": true}))
        .await
        .unwrap();
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(1)).await,
        json!({"ok": true})
    );
    let log = c
        .query(
            "select state::text, task_state from jobcenter.job_task_log where job_id = $1 \
             order by job_task_log_id",
            &[&job],
        )
        .await
        .unwrap();
    let states: Vec<String> = log.iter().map(|r| r.get(0)).collect();
    assert_eq!(states, ["done", "retrywait", "done", "finished"]);
    let error: Value = log[1].get(1);
    assert_eq!(error["error"]["class"], json!("soft"), "{error}");
    assert!(
        error["error"]["msg"].as_str().unwrap().contains("timeout"),
        "{error}"
    );
}

#[tokio::test]
async fn retries_back_off_as_configured() {
    let (tdb, c) = setup().await;
    let retry = RetryConfig {
        tries: 4,
        interval: "0.2 seconds".into(),
        backoff: Backoff::Exponential,
        max_interval: None,
        jitter: false,
    };
    load(&c, &flaky(retry, None)).await;
    let _m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    let job = db::create_job(&c, "callflaky", &json!({}), Default::default())
        .await
        .unwrap()
        .job_id;
    db::announce(&c, "w1", "flaky", None, None).await.unwrap();
    let mut gaps = vec![];
    let mut task = take(&c, Duration::from_secs(1)).await;
    for _ in 0..3 {
        db::task_done(
            &c,
            &task.cookie,
            &json!({"error": {"class": "soft", "msg": "busy"}}),
        )
        .await
        .unwrap();
        let failed = Instant::now();
        task = take(&c, Duration::from_secs(3)).await;
        gaps.push(failed.elapsed().as_secs_f64());
    }
    db::task_done(&c, &task.cookie, &json!({"ok": true}))
        .await
        .unwrap();
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(1)).await,
        json!({"ok": true})
    );
    // 0.2 s, 0.4 s, 0.8 s: each retry on time, within 0.15 s.
    for (gap, want) in gaps.iter().zip([0.2, 0.4, 0.8]) {
        assert!(*gap >= want - 0.01 && *gap < want + 0.15, "{gaps:?}");
    }
    let waits: Vec<String> = c
        .query(
            "select task_state ->> 'wait' from jobcenter.job_task_log \
             where job_id = $1 and state = 'retrywait' order by job_task_log_id",
            &[&job],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(waits, ["00:00:00.2", "00:00:00.4", "00:00:00.8"]);
}

#[tokio::test]
async fn a_job_with_a_start_time_starts_then() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let _m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    let started = Instant::now();
    let job = db::create_job(
        &c,
        "sleeper",
        &json!({"t": 0}),
        db::CreateJob {
            start_at: Some(SystemTime::now() + Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    assert_eq!(common::db::get_job_status(&c, job).await.unwrap(), None);
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(5)).await,
        json!({"t": 0})
    );
    let took = started.elapsed().as_secs_f64();
    assert!((0.9..2.0).contains(&took), "took {took} s");
}

#[tokio::test]
async fn kill_9_in_the_middle_of_200_jobs_then_every_job_finishes_exactly_once() {
    let (tdb, c) = setup().await;
    // Two sleeps per job, 0.2 to 1.2 s each.
    let mut f = flow::Flow::workflow("twosleeps")
        .input("t", "number")
        .output("t", "number");
    for _ in 0..2 {
        f.system(
            jcl::SystemAction::Sleep,
            vec![set(path(Ns::I, &["timeout"]), var(Ns::A, &["t"]))],
        );
    }
    load(
        &c,
        &[f.end(vec![set(path(Ns::O, &["t"]), var(Ns::A, &["t"]))])],
    )
    .await;
    let mut m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;
    c.batch_execute(
        "select jobcenter.create_job('twosleeps', jsonb_build_object('t', 0.2 + (i % 11) * 0.1)) \
         from generate_series(1, 200) i",
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    m.kill();
    let done_before: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where state = 'finished'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(done_before < 200, "killed too late: all done");
    let fired: i64 = c
        .query_one(
            "select count(*) from jobcenter.job_task_log l join jobcenter.tasks t using (task_id) \
             where t.action_id = -16",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fired > 0, "killed too early: nothing fired");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _m2 = Maestro::start(&tdb.dsn, &[]);
    wait_all_ended(&c, Duration::from_secs(15)).await;
    let finished = log_counts(&c, "finished").await;
    assert_eq!(finished.len(), 200);
    assert!(finished.iter().all(|(_, n)| *n == 1), "{finished:?}");
    // Every sleep fired once: start, two sleeps, end per job.
    let steps = log_counts(&c, "done").await;
    assert!(steps.iter().all(|(_, n)| *n == 3), "{steps:?}");
}

#[tokio::test]
async fn a_postgresql_restart_is_waited_out_and_later_timers_still_fire() {
    let cluster = testkit::Cluster::start(testkit::ClusterOptions { durable: false })
        .await
        .unwrap();
    let tdb = cluster.new_db().await.unwrap();
    let c = tdb.connect().await.unwrap();
    load(&c, &[sleeper()]).await;
    let mut m = Maestro::start(&tdb.dsn, &["--reconnect-max", "500ms"]);
    wait_listening(&c, 1).await;
    // Due after the restart: it must fire although its notification went to the old session.
    let across = db::create_job(&c, "sleeper", &json!({"t": 2}), Default::default())
        .await
        .unwrap()
        .job_id;
    drop(c);
    cluster.restart().await.unwrap();
    let c = tdb.connect().await.unwrap();
    assert_eq!(
        wait_job(&c, across, Duration::from_secs(6)).await,
        json!({"t": 2})
    );
    wait_listening(&c, 1).await;
    let started = Instant::now();
    let later = db::create_job(&c, "sleeper", &json!({"t": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        wait_job(&c, later, Duration::from_secs(5)).await,
        json!({"t": 1})
    );
    let took = started.elapsed().as_secs_f64();
    assert!((0.9..2.0).contains(&took), "took {took} s");
    assert!(m.running());
    assert!(m.metric("jobcenter_maestro_listen_connects_total").await >= 2.0);
    assert_eq!(m.metric("jobcenter_timers_fired_total").await, 2.0);
}

#[tokio::test]
async fn two_maestros_fire_each_of_1000_timers_once() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let a = Maestro::start(&tdb.dsn, &[]);
    let b = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 2).await;
    // 1,000 jobs sleeping until the same second.
    c.batch_execute(
        "select jobcenter.create_job('sleeper', '{\"t\": 60}') from generate_series(1, 1000); \
         update jobcenter.jobs set timeout = date_trunc('second', now()) + interval '2 seconds'; \
         select pg_notify('timer', extract(epoch from date_trunc('second', now()) + interval '2 seconds')::text);",
    )
    .await
    .unwrap();
    wait_all_ended(&c, Duration::from_secs(20)).await;
    let slept = log_counts(&c, "done").await;
    assert_eq!(slept.len(), 1000);
    // start:done and sleep:done, once each.
    assert!(slept.iter().all(|(_, n)| *n == 2), "{slept:?}");
    let finished = log_counts(&c, "finished").await;
    assert!(finished.iter().all(|(_, n)| *n == 1), "{finished:?}");
    let fired_a = a.metric("jobcenter_timers_fired_total").await;
    let fired_b = b.metric("jobcenter_timers_fired_total").await;
    assert_eq!(fired_a + fired_b, 1000.0, "{fired_a} + {fired_b}");
}

#[tokio::test]
async fn a_schedule_every_second_fires_once_per_second_across_two_maestros() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let _a = Maestro::start(&tdb.dsn, &[]);
    let _b = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 2).await;
    let args = json!({"t": 0});
    let started = Instant::now();
    db::create_schedule(
        &c,
        &db::Schedule::new("tick", "sleeper", "* * * * * *", &args),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    db::enable_schedule(&c, "tick", false).await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let runs: Vec<f64> = c
        .query(
            "select extract(epoch from (environment ->> 'jcscheduled')::timestamptz)::float8 \
             from jobcenter.jobs where environment ->> 'jcschedule' = 'tick' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        (runs.len() as f64 - elapsed).abs() <= 1.0,
        "{} runs in {elapsed} s",
        runs.len()
    );
    // One run per second: consecutive, whole seconds, none twice.
    for pair in runs.windows(2) {
        assert_eq!(pair[1] - pair[0], 1.0, "{runs:?}");
    }
    // Each was created on time.
    let late: f64 = c
        .query_one(
            "select max(extract(epoch from job_created - (environment ->> 'jcscheduled')::timestamptz))::float8 \
             from jobcenter.jobs",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(late < 0.5, "a run was {late} s late");
}

#[tokio::test]
async fn a_silent_worker_is_disconnected_and_its_task_requeued() {
    let (tdb, c) = setup().await;
    let retry = RetryConfig {
        tries: 1,
        interval: "1 second".into(),
        backoff: Backoff::Fixed,
        max_interval: None,
        jitter: false,
    };
    load(&c, &flaky(retry, None)).await;
    let _m = Maestro::start(
        &tdb.dsn,
        &[
            "--maintenance-interval",
            "200ms",
            "--worker-timeout",
            "1 second",
            "--dead-worker-policy",
            "requeue",
        ],
    );
    wait_listening(&c, 1).await;
    let job = db::create_job(&c, "callflaky", &json!({}), Default::default())
        .await
        .unwrap()
        .job_id;
    db::announce(&c, "w1", "flaky", None, None).await.unwrap();
    let task = take(&c, Duration::from_secs(1)).await;
    assert_eq!(task.job_id, job);
    // w1 never pings again: after 1 s it is dead, and its task is ready for another worker.
    let deadline = Instant::now() + Duration::from_secs(5);
    while engine_state(&c, job).await != "ready" {
        assert!(
            Instant::now() < deadline,
            "not requeued: {}",
            engine_state(&c, job).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let silent = Instant::now().duration_since(deadline - Duration::from_secs(5));
    assert!(silent < Duration::from_secs(3), "requeued after {silent:?}");
    let stopped: bool = c
        .query_one(
            "select stopped is not null from jobcenter.workers where name = 'w1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stopped);
    let setting: Value = c
        .query_one(
            "select value from jobcenter.settings where name = 'dead_worker_policy'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(setting, json!("requeue"));
}

async fn engine_state(c: &tokio_postgres::Client, job: i64) -> String {
    c.query_one(
        "select state::text from jobcenter.jobs where job_id = $1",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn sigterm_and_sigint_stop_it_with_exit_code_0() {
    let (tdb, c) = setup().await;
    for sig in [Signal::TERM, Signal::INT] {
        let m = Maestro::start(&tdb.dsn, &[]);
        wait_listening(&c, 1).await;
        let status = m.signal(sig).await;
        assert_eq!(status.code(), Some(0), "{sig:?}");
        // Its sessions are gone.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: i64 = c
                .query_one(
                    "select count(*) from pg_stat_activity where datname = current_database() \
                     and application_name = 'maestro'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            if left == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "{left} sessions left");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[test]
fn the_configuration_is_layered_and_dumped() {
    let dir = std::env::temp_dir().join(format!("maestro-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("maestro.toml");
    std::fs::write(
        &file,
        "dsn = \"host=filehost password=hunter2\"\npool_size = 7\nmaintenance_interval = \"2m\"\n\
         log_format = \"json\"\n",
    )
    .unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"));
        cmd.args(args).env_remove("JC_DSN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let file_arg = file.to_str().unwrap();
    // File, then JC_ environment, then flags.
    let out = run(
        &["--config", file_arg, "--pool-size", "9", "--dump-config"],
        &[("JC_POOL_SIZE", "8"), ("JC_MAINTENANCE_INTERVAL", "30s")],
    );
    assert!(out.status.success(), "{out:?}");
    let dump = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        dump,
        "dsn = \"host=filehost password=***\"\npool_size = 9\nmaintenance_interval = \"30s\"\n\
         max_sleep = \"1m\"\nreconnect_max = \"5s\"\nlog_format = \"json\"\nlog_level = \"info\"\n"
    );
    // The dump reads back as a configuration file.
    std::fs::write(&file, &dump).unwrap();
    let again = run(&["--config", file_arg, "--dump-config"], &[]);
    assert_eq!(String::from_utf8(again.stdout).unwrap(), dump);

    let no_dsn = run(&["--dump-config"], &[]);
    assert!(!no_dsn.status.success());
    assert!(String::from_utf8_lossy(&no_dsn.stderr).contains("give --dsn or JC_DSN"));
    let bad = run(&["--dsn", "host=x", "--maintenance-interval", "often"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("maintenance_interval"));
    let bad_policy = run(
        &["--dump-config"],
        &[("JC_DSN", "host=x"), ("JC_DEAD_WORKER_POLICY", "ignore")],
    );
    assert!(String::from_utf8_lossy(&bad_policy.stderr).contains("dead_worker_policy"));
    std::fs::write(&file, "dsn = \"host=x\"\nunknown_key = 1\n").unwrap();
    let unknown = run(&["--config", file_arg, "--dump-config"], &[]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown_key"));
    std::fs::remove_dir_all(&dir).unwrap();
}
