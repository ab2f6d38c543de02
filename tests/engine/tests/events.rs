//! Events: subscribe with a mask, raise_event (API and workflow), wait_for_event with queued
//! events and time-outs, unsubscribe, and waiting on a name not subscribed (never matches).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::expr::{a, ip, vp};
use engine_tests::flow::Flow;
use engine_tests::{
    count, create, db, examples, load, log_states, output, setup, state, timeout_of, work_one,
    Listener,
};
use jcl::build::{lit, path, set, var};
use jcl::{Expr, Model, Ns, Stmt, SystemAction};
use serde_json::{json, Value};

/// subscribe: name = 'appr', mask = {type: 'approval', id: a.id}
fn subscribe(f: &mut Flow) -> u32 {
    f.system(
        SystemAction::Subscribe,
        vec![
            set(ip(&["name"]), lit("appr")),
            set(ip(&["mask", "type"]), lit("approval")),
            set(ip(&["mask", "id"]), a(&["id"])),
        ],
    )
}

/// wait_for_event: events = ['appr'], timeout = `timeout` into: ev = o.event
fn wait_for_event(f: &mut Flow, events: Value, timeout: Expr) -> u32 {
    f.system_with(SystemAction::WaitForEvent, |t| {
        t.imap = Some(vec![
            set(ip(&["events"]), lit(events)),
            set(ip(&["timeout"]), timeout),
        ]);
        t.omap = Some(vec![set(vp(&["ev"]), var(Ns::O, &["event"]))]);
    })
}

fn wfomap() -> Vec<Stmt> {
    vec![set(path(Ns::O, &["event"]), var(Ns::V, &["ev"]))]
}

/// Subscribes to approvals of `a.id` and waits for one.
fn approval() -> Model {
    let mut f = Flow::workflow("approval")
        .input("id", "number")
        .input_default("timeout", "number", json!(60))
        .output("event", "event");
    subscribe(&mut f);
    wait_for_event(&mut f, json!(["appr"]), a(&["timeout"]));
    f.end(wfomap())
}

#[tokio::test]
async fn a_waiting_job_wakes_only_for_an_event_matching_its_mask() {
    let (_db, c) = setup().await;
    load(&c, &[approval()]).await;
    let j42 = create(&c, "approval", json!({"id": 42})).await;
    let also42 = create(&c, "approval", json!({"id": 42})).await;
    let j41 = create(&c, "approval", json!({"id": 41})).await;
    for j in [j42, also42, j41] {
        assert_eq!(state(&c, j).await, "eventwait");
    }
    let mask: Value = c
        .query_one(
            "select mask from jobcenter.event_subscriptions where job_id = $1 and name = 'appr'",
            &[&j42],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(mask, json!({"type": "approval", "id": 42}));

    // id 41 wakes only the job waiting for 41.
    db::raise_event(&c, &json!({"type": "approval", "id": 41, "by": "bob"}))
        .await
        .unwrap();
    assert_eq!(state(&c, j41).await, "finished");
    assert_eq!(state(&c, j42).await, "eventwait");
    assert_eq!(state(&c, also42).await, "eventwait");
    // A partial match is no match.
    db::raise_event(&c, &json!({"type": "approval"}))
        .await
        .unwrap();
    db::raise_event(&c, &json!({"type": "refusal", "id": 42}))
        .await
        .unwrap();
    assert_eq!(state(&c, j42).await, "eventwait");

    // id 42 with extra keys wakes both jobs waiting for 42.
    let data = json!({"type": "approval", "id": 42, "by": "alice", "note": {"ok": true}});
    let event_id = db::raise_event(&c, &data).await.unwrap();
    for j in [j42, also42] {
        assert_eq!(state(&c, j).await, "finished");
        let out = output(&c, j).await;
        assert_eq!(out["event"]["name"], "appr");
        assert_eq!(out["event"]["data"], data);
        assert_eq!(out["event"]["event_id"], event_id);
        assert!(out["event"]["when"].is_string(), "{out}");
        assert_eq!(
            log_states(&c, j).await,
            [
                "start:done",
                "subscribe:done",
                "wait_for_event:done",
                "end:finished"
            ]
        );
    }
    assert_eq!(output(&c, j41).await["event"]["data"]["by"], "bob");
    // Subscriptions end with their jobs; nothing stays queued.
    assert_eq!(count(&c, "event_subscriptions").await, 0);
    assert_eq!(count(&c, "queued_events").await, 0);
}

#[tokio::test]
async fn an_event_raised_before_the_wait_is_queued_and_consumed_at_once() {
    let (_db, c) = setup().await;
    // subscribe; call add; wait_for_event
    let mut f = Flow::workflow("approval_later")
        .input("id", "number")
        .output("event", "event");
    subscribe(&mut f);
    f.call(
        "add",
        vec![set(ip(&["counter"]), lit(1)), set(ip(&["step"]), lit(1))],
        vec![],
    );
    wait_for_event(&mut f, json!(["appr"]), lit(60));
    let wf = f.end(wfomap());
    load(&c, &[examples::add(), wf]).await;

    let job = create(&c, "approval_later", json!({"id": 7})).await;
    assert_eq!(state(&c, job).await, "ready");
    let first = db::raise_event(&c, &json!({"type": "approval", "id": 7, "n": 1}))
        .await
        .unwrap();
    db::raise_event(&c, &json!({"type": "approval", "id": 7, "n": 2}))
        .await
        .unwrap();
    assert_eq!(count(&c, "queued_events").await, 2);
    assert_eq!(state(&c, job).await, "ready");

    work_one(&c, "w", "add", examples::add_answer).await;
    // The oldest queued event is taken without waiting.
    assert_eq!(state(&c, job).await, "finished");
    let out = output(&c, job).await;
    assert_eq!(out["event"]["event_id"], first);
    assert_eq!(out["event"]["data"]["n"], 1);
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "subscribe:done",
            "add:done",
            "wait_for_event:done",
            "end:finished"
        ]
    );
    assert_eq!(count(&c, "queued_events").await, 0);
}

#[tokio::test]
async fn wait_for_event_times_out() {
    let (tdb, c) = setup().await;
    load(&c, &[approval()]).await;
    let mut l = Listener::new(&tdb, &["timer"]).await;
    let job = create(&c, "approval", json!({"id": 1, "timeout": 1})).await;
    assert_eq!(state(&c, job).await, "eventwait");
    let (left, at) = timeout_of(&c, job).await;
    assert!((0.5..=1.5).contains(&left), "timeout in {left} s");
    let (channel, payload) = l.next().await.expect("timer notification");
    assert_eq!(channel, "timer");
    let notified: f64 = payload.parse().unwrap();
    assert!((notified - at).abs() < 0.01, "{notified} vs {at}");

    // Not due yet: nothing fires.
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    assert_eq!(state(&c, job).await, "eventwait");

    tokio::time::sleep(Duration::from_secs_f64(left + 0.2)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(output(&c, job).await, json!({"event": {"name": "timeout"}}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "subscribe:done",
            "wait_for_event:done",
            "end:finished"
        ]
    );
    // A late event finds no subscription.
    db::raise_event(&c, &json!({"type": "approval", "id": 1}))
        .await
        .unwrap();
    assert_eq!(count(&c, "queued_events").await, 0);
}

#[tokio::test]
async fn unsubscribe_stops_the_queueing_of_events() {
    let (_db, c) = setup().await;
    // subscribe; call add; unsubscribe; call add
    let mut f = Flow::workflow("unsub")
        .input("id", "number")
        .output("done", "boolean");
    subscribe(&mut f);
    let add = |f: &mut Flow| {
        f.call(
            "add",
            vec![set(ip(&["counter"]), lit(1)), set(ip(&["step"]), lit(1))],
            vec![],
        )
    };
    add(&mut f);
    f.system(
        SystemAction::Unsubscribe,
        vec![set(ip(&["name"]), lit("appr"))],
    );
    add(&mut f);
    let wf = f.end(vec![set(path(Ns::O, &["done"]), lit(true))]);
    load(&c, &[examples::add(), wf]).await;

    let job = create(&c, "unsub", json!({"id": 3})).await;
    assert_eq!(count(&c, "event_subscriptions").await, 1);
    db::raise_event(&c, &json!({"type": "approval", "id": 3}))
        .await
        .unwrap();
    assert_eq!(count(&c, "queued_events").await, 1);

    work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(state(&c, job).await, "ready");
    // The subscription and what was queued for it are gone.
    assert_eq!(count(&c, "event_subscriptions").await, 0);
    assert_eq!(count(&c, "queued_events").await, 0);
    db::raise_event(&c, &json!({"type": "approval", "id": 3}))
        .await
        .unwrap();
    assert_eq!(count(&c, "queued_events").await, 0);

    work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(output(&c, job).await, json!({"done": true}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "subscribe:done",
            "add:done",
            "unsubscribe:done",
            "add:done",
            "end:finished"
        ]
    );
}

#[tokio::test]
async fn raise_event_in_a_workflow_wakes_another_job() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("notifier")
        .input("id", "number")
        .output("sent", "boolean");
    f.system(
        SystemAction::RaiseEvent,
        vec![
            set(ip(&["event", "type"]), lit("approval")),
            set(ip(&["event", "id"]), a(&["id"])),
            set(ip(&["event", "from"]), lit("workflow")),
        ],
    );
    let notifier = f.end(vec![set(path(Ns::O, &["sent"]), lit(true))]);
    load(&c, &[approval(), notifier]).await;

    let waiter = create(&c, "approval", json!({"id": 9})).await;
    assert_eq!(state(&c, waiter).await, "eventwait");
    let sender = create(&c, "notifier", json!({"id": 9})).await;
    assert_eq!(output(&c, sender).await, json!({"sent": true}));
    assert_eq!(
        log_states(&c, sender).await,
        ["start:done", "raise_event:done", "end:finished"]
    );
    assert_eq!(state(&c, waiter).await, "finished");
    let out = output(&c, waiter).await;
    assert_eq!(
        out["event"]["data"],
        json!({"type": "approval", "id": 9, "from": "workflow"})
    );
    assert_eq!(out["event"]["name"], "appr");
}

#[tokio::test]
async fn a_name_not_subscribed_never_matches_as_in_the_original() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("nosub")
        .input("id", "number")
        .output("event", "event");
    subscribe(&mut f);
    wait_for_event(&mut f, json!(["appr", "other"]), lit(60));
    let wf = f.end(wfomap());
    load(&c, &[wf]).await;
    let job = create(&c, "nosub", json!({"id": 1})).await;
    // The wait is accepted: `other` simply never matches, `appr` still does.
    assert_eq!(state(&c, job).await, "eventwait");
    db::raise_event(&c, &json!({"type": "approval", "id": 1}))
        .await
        .unwrap();
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(output(&c, job).await["event"]["name"], "appr");
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "subscribe:done",
            "wait_for_event:done",
            "end:finished"
        ]
    );
    assert_eq!(count(&c, "event_subscriptions").await, 0);
}

#[tokio::test]
async fn raise_event_refuses_data_that_is_not_an_object() {
    let (_db, c) = setup().await;
    load(&c, &[approval()]).await;
    let job = create(&c, "approval", json!({"id": 1})).await;
    let before = count(&c, "job_events").await;
    for bad in [json!([1, 2]), json!("approval"), json!(null)] {
        let err = db::raise_event(&c, &bad).await.unwrap_err();
        assert_eq!(
            err.code(),
            Some(db::ErrorCode::BadArguments),
            "{bad}: {err}"
        );
    }
    assert_eq!(count(&c, "job_events").await, before);
    assert_eq!(count(&c, "queued_events").await, 0);
    assert_eq!(state(&c, job).await, "eventwait");
}
