//! Sleep: an interval string or a number of seconds sets the job's timeout and the `timer`
//! notification; do_timeout wakes the job only when the timeout is due; a bad interval is an
//! error.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::flow::Flow;
use engine_tests::{db, load, log_states, make_due, setup, state, timeout_of, Listener};
use jcl::build::{lit, path, set, var};
use jcl::{Model, Ns, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// sleep a.timeout, then end with slept = true.
fn sleeper() -> Model {
    let mut f = Flow::workflow("sleeper")
        .input("timeout", "json")
        .output("slept", "boolean");
    f.system(
        SystemAction::Sleep,
        vec![set(path(Ns::I, &["timeout"]), var(Ns::A, &["timeout"]))],
    );
    f.end(vec![set(path(Ns::O, &["slept"]), lit(true))])
}

async fn create(c: &Client, args: Value) -> i64 {
    engine_tests::create(c, "sleeper", args).await
}

#[tokio::test]
async fn sleep_for_an_interval_wakes_after_it() {
    let (tdb, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let mut l = Listener::new(&tdb, &["timer"]).await;
    let job = create(&c, json!({"timeout": "1 second"})).await;
    assert_eq!(state(&c, job).await, "sleeping");
    let (left, at) = timeout_of(&c, job).await;
    assert!((0.5..=1.5).contains(&left), "timeout in {left} s");
    // The timer notification carries the timeout.
    let (channel, payload) = l.next().await.expect("timer notification");
    assert_eq!(channel, "timer");
    let notified: f64 = payload.parse().unwrap();
    assert!((notified - at).abs() < 0.01, "{notified} vs {at}");
    assert_eq!(log_states(&c, job).await, ["start:done"]);

    // Before the timeout nothing fires.
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    assert_eq!(state(&c, job).await, "sleeping");

    tokio::time::sleep(Duration::from_secs_f64(left + 0.2)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"slept": true}))
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "sleep:done", "end:finished"]
    );
    // Fired once only.
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
}

#[tokio::test]
async fn sleep_for_a_number_of_seconds() {
    let (_db, c) = setup().await;
    load(&c, &[sleeper()]).await;
    let short = create(&c, json!({"timeout": 2})).await;
    let long = create(&c, json!({"timeout": 60})).await;
    assert_eq!(state(&c, short).await, "sleeping");
    let (left, _) = timeout_of(&c, short).await;
    assert!((1.5..=2.5).contains(&left), "timeout in {left} s");
    let (left, _) = timeout_of(&c, long).await;
    assert!((59.5..=60.5).contains(&left), "timeout in {left} s");

    // Only the due sleeper wakes.
    make_due(&c, short).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, short).await, "finished");
    assert_eq!(state(&c, long).await, "sleeping");
}

#[tokio::test]
async fn sleep_with_a_bad_interval_is_an_error() {
    let (_db, c) = setup().await;
    load(&c, &[sleeper()]).await;
    for bad in [json!("soon"), json!([1]), json!(null)] {
        let job = create(&c, json!({"timeout": bad})).await;
        assert_eq!(state(&c, job).await, "error", "{bad}");
        let out = db::get_job_status(&c, job).await.unwrap().unwrap();
        assert_eq!(out["error"]["class"], "normal");
        assert_eq!(
            out["error"]["msg"],
            format!("sleep: {bad} is not an interval").as_str(),
            "{out}"
        );
        assert_eq!(log_states(&c, job).await, ["start:done", "sleep:error"]);
        let timeout: Option<std::time::SystemTime> = c
            .query_one(
                "select timeout from jobcenter.jobs where job_id = $1",
                &[&job],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(timeout, None);
    }
}
