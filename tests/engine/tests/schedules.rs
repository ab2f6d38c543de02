//! Schedules and delayed start through SQL: cron_next/cron_prev/cron_check (seconds, time
//! zones, classic day numbers), create/drop/enable_schedule and their errors, do_schedules
//! firing each due run once (also against a concurrent caller), the skip and catchup
//! policies, a failing run recorded without stopping the others, and create_job with a start
//! time waiting in 'sleeping' until do_timeout starts it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use engine_tests::{count, db, flow, load, log_states, make_due, setup, state, Listener};
use jcl::build::{path, set, var};
use jcl::Ns;
use serde_json::{json, Value};
use tokio_postgres::Client;

/// `tick(n)` returns `n`; `tock` needs a number `x`.
fn models() -> Vec<jcl::Model> {
    let f = flow::Flow::workflow("tick")
        .input_default("n", "number", json!(0))
        .output("n", "number");
    let tick = f.end(vec![set(path(Ns::O, &["n"]), var(Ns::A, &["n"]))]);
    let f = flow::Flow::workflow("tock")
        .input("x", "number")
        .output("x", "number");
    let tock = f.end(vec![set(path(Ns::O, &["x"]), var(Ns::A, &["x"]))]);
    vec![tick, tock]
}

/// `cron_next`/`cron_prev` from a UTC time given as text, answered as UTC text.
async fn cron(c: &Client, func: &str, expr: &str, at: &str, tz: &str) -> Option<String> {
    c.query_one(
        &format!(
            "select to_char(jobcenter.{func}($1, $2::text::timestamptz, $3) at time zone 'UTC', \
             'YYYY-MM-DD HH24:MI:SS')"
        ),
        &[&expr, &at, &tz],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn cron_next_counts_seconds_and_follows_the_time_zone() {
    let (_db, c) = setup().await;
    let next = |e: &'static str, at: &'static str, tz: &'static str| {
        let c = &c;
        async move { cron(c, "cron_next", e, at, tz).await }
    };
    // Every second: strictly after, sub-second times round up.
    assert_eq!(
        next("* * * * * *", "2024-03-01 12:00:00+00", "UTC").await,
        Some("2024-03-01 12:00:01".into())
    );
    assert_eq!(
        next("* * * * * *", "2024-03-01 12:00:00.4+00", "UTC").await,
        Some("2024-03-01 12:00:01".into())
    );
    assert_eq!(
        next("*/15 * * * * *", "2024-03-01 12:00:31+00", "UTC").await,
        Some("2024-03-01 12:00:45".into())
    );
    // 09:30 on weekdays in Amsterdam: UTC+1 before the DST change of 31 March 2024, UTC+2 after.
    // 2024-03-29 is a Friday, so the next run after it is Monday 1 April.
    assert_eq!(
        next(
            "0 30 9 * * MON-FRI",
            "2024-03-28 12:00:00+00",
            "Europe/Amsterdam"
        )
        .await,
        Some("2024-03-29 08:30:00".into())
    );
    assert_eq!(
        next(
            "0 30 9 * * MON-FRI",
            "2024-03-29 12:00:00+00",
            "Europe/Amsterdam"
        )
        .await,
        Some("2024-04-01 07:30:00".into())
    );
    // Classic day numbers: 1-5 is Monday to Friday, 0 and 7 are Sunday (2024-03-03).
    assert_eq!(
        next(
            "0 30 9 * * 1-5",
            "2024-03-29 12:00:00+00",
            "Europe/Amsterdam"
        )
        .await,
        Some("2024-04-01 07:30:00".into())
    );
    assert_eq!(
        next("0 0 0 * * 0", "2024-03-01 00:00:00+00", "UTC").await,
        Some("2024-03-03 00:00:00".into())
    );
    assert_eq!(
        next("0 0 0 * * 7", "2024-03-01 00:00:00+00", "UTC").await,
        Some("2024-03-03 00:00:00".into())
    );
    assert_eq!(
        next("0 0 0 * * 6-7", "2024-03-01 00:00:00+00", "UTC").await,
        Some("2024-03-02 00:00:00".into())
    );
    // A year field in the past: never again.
    assert_eq!(
        next("0 0 0 1 1 * 2020", "2024-03-01 00:00:00+00", "UTC").await,
        None
    );
    // The latest run strictly before.
    assert_eq!(
        cron(
            &c,
            "cron_prev",
            "0 */5 * * * *",
            "2024-03-01 12:07:00+00",
            "UTC"
        )
        .await,
        Some("2024-03-01 12:05:00".into())
    );
    assert_eq!(
        cron(
            &c,
            "cron_prev",
            "0 */5 * * * *",
            "2024-03-01 12:05:00+00",
            "UTC"
        )
        .await,
        Some("2024-03-01 12:00:00".into())
    );
}

#[tokio::test]
async fn bad_cron_expressions_and_zones_are_explained() {
    let (_db, c) = setup().await;
    let check = |e: &'static str, tz: &'static str| {
        let c = &c;
        async move {
            c.query_one("select jobcenter.cron_check($1, $2)", &[&e, &tz])
                .await
                .unwrap()
                .get::<_, Option<String>>(0)
        }
    };
    assert_eq!(check("0 0 9 * * MON-FRI", "Europe/Amsterdam").await, None);
    assert_eq!(check("@hourly", "UTC").await, None);
    let five = check("*/5 * * * *", "UTC").await.unwrap();
    assert!(five.contains("6 fields"), "{five}");
    let range = check("61 * * * * *", "UTC").await.unwrap();
    assert!(range.contains("61 * * * * *"), "{range}");
    let day = check("0 0 0 * * 8", "UTC").await.unwrap();
    assert!(day.contains("out of range"), "{day}");
    let zone = check("* * * * * *", "Mars/Olympus").await.unwrap();
    assert!(zone.contains("unknown time zone Mars/Olympus"), "{zone}");
    let err = c
        .query_one("select jobcenter.cron_next('nonsense', now(), 'UTC')", &[])
        .await
        .expect_err("bad expression");
    let msg = err.as_db_error().map(|e| e.message().to_owned());
    assert!(msg.as_deref().unwrap_or("").contains("nonsense"), "{err:?}");
}

#[tokio::test]
async fn create_schedule_checks_like_create_job_and_changes_nothing_on_error() {
    let (_db, c) = setup().await;
    load(&c, &models()).await;
    let args = json!({"x": 1});
    let bad_args = json!({"x": "one"});
    let no_args = json!({});
    let cases: Vec<(db::Schedule, db::ErrorCode)> = vec![
        (
            db::Schedule::new("s", "nope", "* * * * * *", &args),
            db::ErrorCode::UnknownWorkflow,
        ),
        (
            db::Schedule::new("s", "tock", "* * * * * *", &bad_args),
            db::ErrorCode::BadArguments,
        ),
        (
            db::Schedule::new("s", "tock", "* * * * *", &args),
            db::ErrorCode::BadArguments,
        ),
        (
            db::Schedule::new("s", "tock", "0 0 0 1 1 * 2020", &args),
            db::ErrorCode::BadArguments,
        ),
        (
            db::Schedule {
                timezone: "Mars/Olympus",
                ..db::Schedule::new("s", "tock", "* * * * * *", &args)
            },
            db::ErrorCode::BadArguments,
        ),
        (
            db::Schedule {
                missed: "always",
                ..db::Schedule::new("s", "tock", "* * * * * *", &args)
            },
            db::ErrorCode::BadArguments,
        ),
        (
            db::Schedule {
                impersonate: Some("alice"),
                ..db::Schedule::new("s", "tock", "* * * * * *", &args)
            },
            db::ErrorCode::NotAuthorized,
        ),
        (
            db::Schedule::new("", "tock", "* * * * * *", &args),
            db::ErrorCode::BadArguments,
        ),
    ];
    for (s, code) in cases {
        let e = db::create_schedule(&c, &s).await.expect_err("refused");
        assert_eq!(e.code(), Some(code), "{s:?}: {e}");
    }
    assert_eq!(count(&c, "schedules").await, 0);

    let first = db::create_schedule(&c, &db::Schedule::new("s", "tock", "0 0 * * * *", &args))
        .await
        .unwrap();
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    assert!(
        first > SystemTime::now() && first <= in_an_hour,
        "{first:?}"
    );
    let e = db::create_schedule(
        &c,
        &db::Schedule::new("s", "tick", "* * * * * *", &json!({})),
    )
    .await
    .expect_err("name taken");
    assert_eq!(e.code(), Some(db::ErrorCode::BadArguments));
    let replaced = db::Schedule {
        replace: true,
        ..db::Schedule::new("s", "tick", "*/2 * * * * *", &no_args)
    };
    db::create_schedule(&c, &replaced).await.unwrap();
    let row = c
        .query_one("select wfname, cron, run_as from jobcenter.schedules", &[])
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2)
        ),
        ("tick".into(), "*/2 * * * * *".into(), "postgres".into())
    );
    assert_eq!(count(&c, "schedules").await, 1);
    assert_eq!(count(&c, "jobs").await, 0);
}

/// Makes schedule `name` due: its next run was `ago` seconds ago.
async fn due(c: &Client, name: &str, ago: f64) {
    c.execute(
        "update jobcenter.schedules set next_run = clock_timestamp() - make_interval(secs => $2) \
         where name = $1",
        &[&name, &ago],
    )
    .await
    .unwrap();
}

async fn jobs_of(c: &Client, name: &str) -> Vec<(i64, Value)> {
    c.query(
        "select job_id, environment from jobcenter.jobs where environment ->> 'jcschedule' = $1 \
         order by job_id",
        &[&name],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

#[tokio::test]
async fn a_due_schedule_fires_once_and_moves_on() {
    let (_db, c) = setup().await;
    load(&c, &models()).await;
    let args = json!({"n": 7});
    let s = db::Schedule {
        env: Some(&json!({"who": "cron"})),
        ..db::Schedule::new("every-minute", "tick", "0 * * * * *", &args)
    };
    db::create_schedule(&c, &s).await.unwrap();
    assert_eq!(db::do_schedules(&c).await.unwrap(), 0, "not due yet");
    let wait = db::next_schedule(&c).await.unwrap().unwrap();
    assert!(wait > 0.0 && wait <= 60.0, "{wait}");

    due(&c, "every-minute", 0.5).await;
    assert_eq!(db::next_schedule(&c).await.unwrap(), Some(0.0));
    assert_eq!(db::do_schedules(&c).await.unwrap(), 1);
    assert_eq!(db::do_schedules(&c).await.unwrap(), 0, "fired once");
    let jobs = jobs_of(&c, "every-minute").await;
    assert_eq!(jobs.len(), 1);
    let (job_id, env) = &jobs[0];
    assert_eq!(env["who"], json!("cron"));
    assert!(env["jcscheduled"].is_string(), "{env}");
    assert_eq!(
        db::get_job_status(&c, *job_id).await.unwrap(),
        Some(json!({"n": 7}))
    );
    let row = c
        .query_one(
            "select last_job_id, next_run > clock_timestamp(), \
             next_run <= clock_timestamp() + interval '1 minute', last_error is null \
             from jobcenter.schedules",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(*job_id));
    assert!(row.get::<_, bool>(1) && row.get::<_, bool>(2) && row.get::<_, bool>(3));
}

#[tokio::test]
async fn a_concurrent_caller_skips_a_schedule_being_fired() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    let other = tdb.connect().await.unwrap();
    // Yearly, so that once fired it is not due again however slowly this runs (a schedule
    // every second would be due again a second later).
    db::create_schedule(
        &c,
        &db::Schedule::new("s", "tick", "0 0 0 1 1 *", &json!({})),
    )
    .await
    .unwrap();
    due(&c, "s", 0.2).await;
    c.batch_execute("begin").await.unwrap();
    assert_eq!(db::do_schedules(&c).await.unwrap(), 1);
    // The first caller has not committed: the second skips the locked schedule.
    assert_eq!(db::do_schedules(&other).await.unwrap(), 0);
    c.batch_execute("commit").await.unwrap();
    assert_eq!(
        db::do_schedules(&other).await.unwrap(),
        0,
        "next_run moved on"
    );
    assert_eq!(jobs_of(&c, "s").await.len(), 1);
}

/// Makes schedule `name` due as after an outage: its next run is its latest run by now.
async fn missed(c: &Client, name: &str) {
    c.execute(
        "update jobcenter.schedules \
         set next_run = jobcenter.cron_prev(cron, clock_timestamp(), timezone) where name = $1",
        &[&name],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn missed_runs_are_skipped_or_caught_up_once() {
    let (_db, c) = setup().await;
    load(&c, &models()).await;
    let args = json!({});
    // Yearly on 1 January: its latest run is long past (unless this runs in the first
    // minute of a year).
    let yearly = "0 0 0 1 1 *";
    db::create_schedule(&c, &db::Schedule::new("skipper", "tick", yearly, &args))
        .await
        .unwrap();
    let catchup = db::Schedule {
        missed: "catchup",
        ..db::Schedule::new("catcher", "tick", yearly, &args)
    };
    db::create_schedule(&c, &catchup).await.unwrap();
    // Every 10 s, down for an hour: 360 runs are due, the latest one on time.
    db::create_schedule(
        &c,
        &db::Schedule::new("folder", "tick", "*/10 * * * * *", &args),
    )
    .await
    .unwrap();
    missed(&c, "skipper").await;
    missed(&c, "catcher").await;
    due(&c, "folder", 3600.0).await;
    assert_eq!(db::do_schedules(&c).await.unwrap(), 2);
    assert_eq!(jobs_of(&c, "skipper").await.len(), 0);
    assert_eq!(jobs_of(&c, "catcher").await.len(), 1);
    assert_eq!(
        jobs_of(&c, "folder").await.len(),
        1,
        "due runs fold into one"
    );
    let row = c
        .query_one(
            "select last_skipped = jobcenter.cron_prev(cron, clock_timestamp(), timezone), \
             next_run > clock_timestamp() from jobcenter.schedules where name = 'skipper'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the missed run is recorded");
    assert!(row.get::<_, bool>(1));
    // A run a little late (within schedule_misfire_after) is not missed.
    due(&c, "skipper", 2.0).await;
    assert_eq!(db::do_schedules(&c).await.unwrap(), 1);
    assert_eq!(jobs_of(&c, "skipper").await.len(), 1);
    assert_eq!(db::do_schedules(&c).await.unwrap(), 0);
}

#[tokio::test]
async fn a_failing_run_is_recorded_and_the_others_still_fire() {
    let (_db, c) = setup().await;
    load(&c, &models()).await;
    db::create_schedule(
        &c,
        &db::Schedule::new("bad", "tock", "0 0 0 1 1 *", &json!({"x": 1})),
    )
    .await
    .unwrap();
    db::create_schedule(
        &c,
        &db::Schedule::new("good", "tick", "0 0 0 1 1 *", &json!({})),
    )
    .await
    .unwrap();
    c.batch_execute("update jobcenter.actions set disabled = true where name = 'tock'")
        .await
        .unwrap();
    due(&c, "bad", 0.3).await;
    due(&c, "good", 0.2).await;
    assert_eq!(db::do_schedules(&c).await.unwrap(), 1);
    assert_eq!(jobs_of(&c, "good").await.len(), 1);
    assert_eq!(jobs_of(&c, "bad").await.len(), 0);
    let row = c
        .query_one(
            "select last_error, next_run > clock_timestamp() from jobcenter.schedules \
             where name = 'bad'",
            &[],
        )
        .await
        .unwrap();
    let err: Value = row.get(0);
    assert_eq!(err["sqlstate"], json!("JC008"), "{err}");
    assert!(
        row.get::<_, bool>(1),
        "a failed run does not fire again at once"
    );
}

#[tokio::test]
async fn disabled_schedules_do_not_fire_and_enabling_starts_from_now() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    let mut timer = Listener::new(&tdb, &["timer"]).await;
    let no_args = json!({});
    let s = db::Schedule {
        enabled: false,
        ..db::Schedule::new("s", "tick", "* * * * * *", &no_args)
    };
    db::create_schedule(&c, &s).await.unwrap();
    assert_eq!(db::next_schedule(&c).await.unwrap(), None);
    due(&c, "s", 3600.0).await;
    assert_eq!(db::do_schedules(&c).await.unwrap(), 0);
    let enabled_at: SystemTime = c
        .query_one("select clock_timestamp()", &[])
        .await
        .unwrap()
        .get(0);
    db::enable_schedule(&c, "s", true).await.unwrap();
    let (channel, payload) = timer.next().await.expect("timer notification");
    assert_eq!(channel, "timer");
    let epoch: f64 = payload.parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(epoch > now - 1.0 && epoch <= now + 1.5, "{epoch} vs {now}");
    let wait = db::next_schedule(&c).await.unwrap().unwrap();
    assert!(wait <= 1.0, "{wait}");
    // Within a second of enabling it the schedule fires at most its next run (one, if this
    // runs slowly), never a run of the disabled hour, fired or skipped.
    assert!(db::do_schedules(&c).await.unwrap() <= 1);
    let row = c
        .query_one(
            "select s.last_skipped is null, \
             coalesce(bool_and((j.environment ->> 'jcscheduled')::timestamptz >= $1), true) \
             from jobcenter.schedules s left join jobcenter.jobs j \
               on j.environment ->> 'jcschedule' = s.name \
             where s.name = 's' group by s.last_skipped",
            &[&enabled_at],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the disabled hour is not missed");
    assert!(row.get::<_, bool>(1), "a run of the disabled hour fired");
    db::enable_schedule(&c, "s", false).await.unwrap();
    let e = db::enable_schedule(&c, "nope", true)
        .await
        .expect_err("unknown");
    assert_eq!(e.code(), Some(db::ErrorCode::UnknownWorkflow));
    assert!(db::drop_schedule(&c, "s").await.unwrap());
    assert!(!db::drop_schedule(&c, "s").await.unwrap());
    assert_eq!(count(&c, "schedules").await, 0);
}

#[tokio::test]
async fn a_job_with_a_start_time_sleeps_until_do_timeout_starts_it() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    let mut timer = Listener::new(&tdb, &["timer"]).await;
    // 5 s on: within the timer horizon (10 s), so the maestro is told
    let start = SystemTime::now() + Duration::from_secs(5);
    let job = db::create_job(
        &c,
        "tick",
        &json!({"n": 3}),
        db::CreateJob {
            start_at: Some(start),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    assert_eq!(state(&c, job).await, "sleeping");
    assert!(log_states(&c, job).await.is_empty(), "nothing ran yet");
    let row = c
        .query_one(
            "select task_state, extract(epoch from timeout)::float8 from jobcenter.jobs \
             where job_id = $1",
            &[&job],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Value>(0), json!({"delayed": true}));
    let due = start.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((row.get::<_, f64>(1) - due).abs() < 0.001);
    let (_, payload) = timer.next().await.expect("timer notification");
    assert!(
        (payload.parse::<f64>().unwrap() - due).abs() < 0.001,
        "{payload}"
    );
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0, "not due yet");
    assert_eq!(db::get_job_status(&c, job).await.unwrap(), None);

    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"n": 3}))
    );
    assert_eq!(
        log_states(&c, job).await,
        vec!["start:done", "end:finished"]
    );

    // A start time in the past starts at once.
    let past = db::create_job(
        &c,
        "tick",
        &json!({"n": 4}),
        db::CreateJob {
            start_at: Some(SystemTime::now() - Duration::from_secs(5)),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    assert_eq!(
        db::get_job_status(&c, past).await.unwrap(),
        Some(json!({"n": 4}))
    );
}
