//! Maintenance: crash recovery, archival with retention, next_timeout and the timer channel
//! (within the timer horizon), and two maestros firing the same due timeouts at once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::{
    action_id, count, create, db, examples, flow, load, log_states, setup, state, work_one,
    Listener,
};
use jcl::build::{lit, path, set, var};
use jcl::{Ns, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// add (action), calltest (calls add once), outer (calls calltest as a child job),
/// sum (no worker needed), napper (sleeps a.secs seconds).
fn models() -> Vec<jcl::Model> {
    let mut f = flow::Flow::workflow("outer")
        .input("input", "number")
        .output("result", "number");
    f.call(
        "calltest",
        vec![set(path(Ns::I, &["input"]), var(Ns::A, &["input"]))],
        vec![set(path(Ns::V, &["result"]), var(Ns::O, &["output"]))],
    );
    let outer = f.end(vec![set(path(Ns::O, &["result"]), var(Ns::V, &["result"]))]);

    let f = flow::Flow::workflow("sum")
        .input("x", "number")
        .output("x", "number");
    let sum = f.end(vec![set(path(Ns::O, &["x"]), var(Ns::A, &["x"]))]);

    let mut f = flow::Flow::workflow("napper").input("secs", "number");
    f.system(
        SystemAction::Sleep,
        vec![set(path(Ns::I, &["timeout"]), var(Ns::A, &["secs"]))],
    );
    let napper = f.end(vec![]);
    vec![examples::add(), examples::calltest(), outer, sum, napper]
}

async fn ids(c: &Client, sql: &str) -> Vec<i64> {
    c.query(sql, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn set_setting(c: &Client, name: &str, value: &str) {
    let n = c
        .execute(
            "update jobcenter.settings set value = to_jsonb($2::text) where name = $1",
            &[&name, &value],
        )
        .await
        .unwrap();
    assert_eq!(n, 1, "setting {name}");
}

#[tokio::test]
async fn crash_recovery_drives_jobs_left_between_steps() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    let add_ready = format!("action:{}:ready", action_id(&c, "add").await);
    // a: the worker's step was written, the next step not yet chosen
    let a = create(&c, "calltest", json!({"input": 1})).await;
    // b: the next task was chosen but not run
    let b = create(&c, "calltest", json!({"input": 2})).await;
    // a child left 'done' while its parent waits for it
    let outer = create(&c, "outer", json!({"input": 5})).await;
    let child = ids(
        &c,
        &format!("select job_id from jobcenter.jobs where parentjob_id = {outer}"),
    )
    .await[0];
    assert_eq!(state(&c, outer).await, "childwait");
    assert_eq!(state(&c, child).await, "ready");
    // the crash: rows as a transaction that died between steps would have committed them
    c.batch_execute(&format!(
        "update jobcenter.jobs set state = 'done', variables = '{{\"thing\": 4}}', \
           task_state = '{{}}' where job_id = {a};
         update jobcenter.jobs set state = 'plotting', task_state = '{{}}' where job_id = {b};
         update jobcenter.jobs set state = 'done', variables = '{{\"thing\": 8}}', \
           task_state = '{{}}' where job_id = {child};"
    ))
    .await
    .unwrap();
    let mut l = Listener::new(&tdb, &["job:finished", &add_ready]).await;

    assert_eq!(db::do_crash_recovery(&c).await.unwrap(), 3);
    assert_eq!(
        db::get_job_status(&c, a).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(log_states(&c, a).await, vec!["start:done", "end:finished"]);
    assert_eq!(state(&c, b).await, "ready");
    assert_eq!(
        db::get_job_status(&c, outer).await.unwrap(),
        Some(json!({"result": 8}))
    );
    assert_eq!(state(&c, child).await, "finished");
    let notes = l.drain(Duration::from_millis(500)).await;
    for j in [a, child, outer] {
        assert!(
            notes.contains(&("job:finished".into(), j.to_string())),
            "{j}: {notes:?}"
        );
    }
    let ready: Vec<Value> = notes
        .iter()
        .filter(|(ch, _)| *ch == add_ready)
        .map(|(_, p)| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(ready, vec![json!({"job_id": b})]);

    // nothing left to recover; the re-readied task works as normal
    assert_eq!(db::do_crash_recovery(&c).await.unwrap(), 0);
    let (jid, _) = work_one(
        &c,
        "w1",
        "add",
        |i| json!({"counter": i["counter"].as_i64().unwrap() + 3}),
    )
    .await;
    assert_eq!(jid, b);
    assert_eq!(
        db::get_job_status(&c, b).await.unwrap(),
        Some(json!({"output": 5}))
    );
}

#[tokio::test]
async fn archival_moves_ended_job_trees_after_their_retention() {
    let (_tdb, c) = setup().await;
    load(&c, &models()).await;
    let keeper = flow::Flow::workflow("keeper")
        .config(|cfg| cfg.archive = Some("1 hour".into()))
        .end(vec![]);
    let mut f = flow::Flow::workflow("detacher");
    f.call_with(
        "calltest",
        vec![set(path(Ns::I, &["input"]), lit(100))],
        vec![],
        |a| {
            a.wait = false;
            a.detach = true;
        },
    );
    let detacher = f.end(vec![]);
    load(&c, &[keeper, detacher]).await;

    let outer = create(&c, "outer", json!({"input": 1})).await;
    let child = ids(
        &c,
        &format!("select job_id from jobcenter.jobs where parentjob_id = {outer}"),
    )
    .await[0];
    work_one(&c, "w1", "add", |_| json!({"counter": 4})).await;
    assert_eq!(state(&c, outer).await, "finished");
    let done = create(&c, "sum", json!({"x": 7})).await;
    let failed = create(&c, "calltest", json!({"input": 1})).await;
    work_one(&c, "w1", "add", |_| json!({"error": "broken"})).await;
    assert_eq!(state(&c, failed).await, "error");
    let running = create(&c, "calltest", json!({"input": 2})).await;
    let kept = create(&c, "keeper", json!({})).await;
    assert_eq!(state(&c, kept).await, "finished");
    // a finished job whose detached child still runs
    let detacher = create(&c, "detacher", json!({})).await;
    assert_eq!(state(&c, detacher).await, "finished");
    let detached = ids(
        &c,
        &format!("select job_id from jobcenter.jobs where parentjob_id = {detacher}"),
    )
    .await[0];
    assert_eq!(state(&c, detached).await, "ready");

    // default retention: a minute for finished jobs
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 0);
    assert_eq!(count(&c, "jobs_archive").await, 0);

    set_setting(&c, "archive_finished_after", "0 seconds").await;
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 3);
    let archived = ids(
        &c,
        "select job_id from jobcenter.jobs_archive order by job_id",
    )
    .await;
    let mut want = vec![outer, child, done];
    want.sort_unstable();
    assert_eq!(archived, want);
    let live = ids(&c, "select job_id from jobcenter.jobs order by job_id").await;
    let mut want_live = vec![failed, running, kept, detacher, detached];
    want_live.sort_unstable();
    assert_eq!(live, want_live);
    // the moved jobs' arguments (find_jobs' index of the live jobs) went with them
    assert_eq!(
        ids(
            &c,
            "select job_id from jobcenter.job_arguments order by job_id"
        )
        .await,
        want_live
    );
    // the archived child still knows its parent
    let parent: Option<i64> = c
        .query_one(
            "select parentjob_id from jobcenter.jobs_archive where job_id = $1",
            &[&child],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(parent, Some(outer));

    // answers come from the archive now
    assert_eq!(
        db::get_job_status(&c, outer).await.unwrap(),
        Some(json!({"result": 4}))
    );
    assert_eq!(
        db::get_job_status(&c, done).await.unwrap(),
        Some(json!({"x": 7}))
    );
    assert_eq!(
        db::find_jobs(&c, &json!({"x": 7}), None).await.unwrap(),
        vec![done]
    );
    assert_eq!(
        db::find_jobs(&c, &json!({"input": 1}), Some("finished"))
            .await
            .unwrap(),
        vec![outer, child]
    );
    // the step log stays
    assert_eq!(
        log_states(&c, outer).await,
        vec!["start:done", "calltest:done", "end:finished"]
    );
    // archived jobs cannot be cancelled or retried
    assert_eq!(
        db::cancel_job(&c, outer, "x", false)
            .await
            .unwrap_err()
            .code(),
        Some(db::ErrorCode::UnknownJob)
    );

    // jobs in error have their own retention
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 0);
    set_setting(&c, "archive_error_after", "0 seconds").await;
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 1);
    let err = db::get_job_status(&c, failed).await.unwrap().unwrap();
    assert_eq!(err["error"]["msg"], json!("broken"));
    assert_eq!(
        db::find_jobs(&c, &json!({}), Some("error")).await.unwrap(),
        vec![failed]
    );
    // the running job, the workflow with its own longer retention, and the tree with a
    // running detached child stay
    let live = ids(&c, "select job_id from jobcenter.jobs order by job_id").await;
    let mut want_live = vec![running, kept, detacher, detached];
    want_live.sort_unstable();
    assert_eq!(live, want_live);
    assert_eq!(state(&c, running).await, "ready");

    // once the detached child has finished, its tree goes too
    let t = db::get_task(&c, "w1", "add", Some(detached))
        .await
        .unwrap()
        .unwrap();
    db::task_done(&c, &t.cookie, &json!({"counter": 103}))
        .await
        .unwrap();
    assert_eq!(state(&c, detached).await, "finished");
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 2);
    let live = ids(&c, "select job_id from jobcenter.jobs order by job_id").await;
    let mut want_live = vec![running, kept];
    want_live.sort_unstable();
    assert_eq!(live, want_live);
    assert_eq!(
        db::get_job_status(&c, detached).await.unwrap(),
        Some(json!({"output": 103}))
    );
}

#[tokio::test]
async fn next_timeout_reports_the_earliest_timeout_and_timer_is_notified() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    assert_eq!(db::next_timeout(&c).await.unwrap(), None);
    let mut l = Listener::new(&tdb, &["timer"]).await;
    // 8 s: within the timer horizon (10 s), so notified
    let long = create(&c, "napper", json!({"secs": 8})).await;
    assert_eq!(state(&c, long).await, "sleeping");
    let (ch, payload) = l.next().await.expect("timer notification");
    assert_eq!(ch, "timer");
    let now: f64 = c
        .query_one("select extract(epoch from clock_timestamp())::float8", &[])
        .await
        .unwrap()
        .get(0);
    let at: f64 = payload.parse().unwrap();
    assert!((at - now - 8.0).abs() < 1.0, "{at} vs now {now}");
    let next = db::next_timeout(&c).await.unwrap().unwrap();
    assert!((7.0..=8.0).contains(&next), "{next}");

    // an earlier one takes over, and it really fires after its second
    let short = create(&c, "napper", json!({"secs": 1})).await;
    let next = db::next_timeout(&c).await.unwrap().unwrap();
    assert!((0.5..=1.0).contains(&next), "{next}");
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(db::next_timeout(&c).await.unwrap(), Some(0.0));
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, short).await, "finished");
    assert_eq!(state(&c, long).await, "sleeping");
    let next = db::next_timeout(&c).await.unwrap().unwrap();
    assert!((5.0..=7.0).contains(&next), "{next}");
}

async fn timer_horizon(c: &Client) -> Option<f64> {
    c.query_one("select jobcenter.timer_horizon()", &[])
        .await
        .unwrap()
        .get(0)
}

async fn set_horizon(c: &Client, value: &str) {
    c.execute(
        "update jobcenter.settings set value = $1::text::jsonb where name = 'timer_horizon'",
        &[&value],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_timeout_beyond_the_timer_horizon_is_not_notified() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    assert_eq!(timer_horizon(&c).await, Some(10.0), "10 seconds by default");
    let mut l = Listener::new(&tdb, &["timer"]).await;
    // five minutes on: beyond the horizon, no notification (and no wait for the
    // notification lock), but next_timeout reports it to the maestro's next look
    let far = create(&c, "napper", json!({"secs": 300})).await;
    assert_eq!(state(&c, far).await, "sleeping");
    assert_eq!(l.drain(Duration::from_millis(300)).await, vec![]);
    let next = db::next_timeout(&c).await.unwrap().unwrap();
    assert!((299.0..=300.0).contains(&next), "{next}");
    // within the horizon: notified
    create(&c, "napper", json!({"secs": 5})).await;
    let (ch, _) = l.next().await.expect("timer notification");
    assert_eq!(ch, "timer");
    // a wider horizon takes in the five minutes
    set_horizon(&c, "\"10 minutes\"").await;
    assert_eq!(timer_horizon(&c).await, Some(600.0));
    create(&c, "napper", json!({"secs": 300})).await;
    assert_eq!(l.next().await.expect("timer notification").0, "timer");
    // a horizon that is no positive duration is none: every timeout is notified
    for bad in ["\"soon\"", "0", "-5", "null"] {
        set_horizon(&c, bad).await;
        assert_eq!(timer_horizon(&c).await, None, "{bad}");
        create(&c, "napper", json!({"secs": 3600})).await;
        let (ch, _) = l.next().await.expect("timer notification");
        assert_eq!(ch, "timer", "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_concurrent_do_timeouts_fire_each_due_job_once() {
    let (tdb, c) = setup().await;
    load(&c, &models()).await;
    let c1 = tdb.connect().await.unwrap();
    let c2 = tdb.connect().await.unwrap();
    for round in 0..3 {
        let mut jobs = vec![];
        for _ in 0..50 {
            jobs.push(create(&c, "napper", json!({"secs": 3600})).await);
        }
        let due = c
            .execute(
                "update jobcenter.jobs set timeout = now() where state = 'sleeping'",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(due, 50);
        let (n1, n2) = tokio::join!(db::do_timeout(&c1), db::do_timeout(&c2));
        let (n1, n2) = (n1.unwrap(), n2.unwrap());
        assert_eq!(n1 + n2, 50, "round {round}: {n1} + {n2}");
        for j in &jobs {
            assert_eq!(
                log_states(&c, *j).await,
                vec!["start:done", "sleep:done", "end:finished"],
                "round {round} job {j}"
            );
        }
        assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    }
    assert_eq!(db::next_timeout(&c).await.unwrap(), None);
}
