//! End to end: the `jcc` binary compiles every file of `workflows/tests/ok` (and every example)
//! into a test database, and each workflow runs with test workers answering its actions
//! (`add`, `square`, `div`, …); the tests assert outputs, errors and the step log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use engine_tests::db;
use serde_json::json;

const OK: &str = "workflows/tests/ok";
const EXAMPLES: &str = "workflows/examples";

#[tokio::test]
async fn call_with_input_and_output_maps_and_temporaries() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, status) = run(&c, "calltest", json!({"input": 1})).await;
    assert_eq!(status, Some(json!({"output": 14, "twice": 28})));
    assert_eq!(
        log_states(&c, id).await,
        vec!["start:done", "add:done", "end:finished"]
    );
    let inargs: serde_json::Value = c
        .query_one(
            "select inargs from jobcenter.job_task_log l join jobcenter.tasks t using (task_id) \
             where l.job_id = $1 and t.action_id > 0",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    // t.base lived for the imap only: the action saw counter and step
    assert_eq!(inargs, json!({"counter": 11, "step": 3}));
}

#[tokio::test]
async fn eval_concatenates_strings_and_uses_input_defaults() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "evaltest", json!({"i1": 1, "i2": 2})).await,
        json!({"out": "1 + 2!", "tag": "none"})
    );
    assert_eq!(
        output(
            &c,
            "evaltest",
            json!({"i1": 6, "i2": 7, "op": "*", "label": "x"})
        )
        .await,
        json!({"out": "6 * 7!", "tag": "x"})
    );
}

#[tokio::test]
async fn if_elsif_else_takes_one_branch() {
    let (_db, c) = compiled(&[OK]).await;
    for (n, size) in [(5, "small"), (50, "medium"), (500, "large")] {
        assert_eq!(
            output(&c, "iftest", json!({"n": n})).await,
            json!({"size": size})
        );
    }
    let (id, _) = run(&c, "iftest", json!({"n": 50})).await;
    assert_eq!(
        log_states(&c, id).await,
        vec![
            "start:done",
            "branch:done",
            "branch:done",
            "eval:done",
            "end:finished"
        ]
    );
}

#[tokio::test]
async fn while_loops_until_the_condition_is_false() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "whiletest", json!({"input": 1})).await,
        json!({"output": 13, "rounds": 3})
    );
    // the condition is false at once: no round
    assert_eq!(
        output(&c, "whiletest", json!({"input": 20})).await,
        json!({"output": 20, "rounds": 0})
    );
}

#[tokio::test]
async fn repeat_runs_its_body_at_least_once() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "repeattest", json!({"start": 2})).await,
        json!({"result": 256, "rounds": 3})
    );
    assert_eq!(
        output(&c, "repeattest", json!({"start": 200})).await,
        json!({"result": 40000, "rounds": 1})
    );
}

#[tokio::test]
async fn goto_label_and_return() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "gototest", json!({"count": 3})).await,
        json!({"steps": [1, 2, 3], "early": true})
    );
    assert_eq!(
        output(&c, "gototest", json!({"count": 1})).await,
        json!({"steps": [1, "done"], "early": false})
    );
}

#[tokio::test]
async fn case_with_several_labels_and_else() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "casetest", json!({"input": "foo"})).await,
        json!({"counter": 11, "thing": "got foo"})
    );
    for input in ["bar", "baz", "42"] {
        assert_eq!(
            output(&c, "casetest", json!({"input": input})).await,
            json!({"counter": -1, "thing": "got bar or baz"})
        );
    }
    assert_eq!(
        output(&c, "casetest", json!({"input": "quux"})).await,
        json!({"counter": -1, "thing": "dunno what i got: quux"})
    );
}

#[tokio::test]
async fn try_catch_sees_the_error_in_e_error() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "trytest", json!({"a": 6, "b": 3})).await,
        json!({"result": "quotient 2", "class": "none"})
    );
    // the action's error
    assert_eq!(
        output(&c, "trytest", json!({"a": 6, "b": 0})).await,
        json!({"result": "caught: division by zero", "class": "normal"})
    );
    // raise_error inside the try block
    let (id, status) = run(&c, "trytest", json!({"a": 3, "b": 3})).await;
    assert_eq!(
        status,
        Some(json!({"result": "caught: one is boring", "class": "normal"}))
    );
    let states = log_states(&c, id).await;
    assert!(
        states.contains(&"raise_error:error".to_owned()),
        "{states:?}"
    );
}

#[tokio::test]
async fn raise_error_and_assert_uncaught_end_the_job_in_error() {
    let (_db, c) = compiled(&[OK]).await;
    let e = error(&c, "raisetest", json!({"what": "fail"})).await;
    assert_eq!(e["class"], "normal");
    assert_eq!(e["msg"], "failing because fail");
    assert_eq!(e["workflow"], "raisetest");
    assert_eq!(e["line"], 9, "the error names the source line: {e}");
    let e = error(&c, "raisetest", json!({"what": "bad"})).await;
    assert_eq!(e["msg"], "assertion: bad is bad");
    assert_eq!(e["line"], 10);
    assert_eq!(
        output(&c, "raisetest", json!({"what": "fine"})).await,
        json!({})
    );
}

#[tokio::test]
async fn sleep_waits_for_its_interval() {
    let (_db, c) = compiled(&[OK]).await;
    // made due by hand
    let (id, status) = run(&c, "sleeptest", json!({"nap": "1 hour"})).await;
    assert_eq!(status, None);
    assert_eq!(state(&c, id).await, "sleeping");
    fire_timeout(&c, id).await;
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"slept": true}))
    );
    // a real nap (the default, one second, is too short to see it is not due yet on a busy
    // machine)
    let (id, _) = run(&c, "sleeptest", json!({"nap": "2 seconds"})).await;
    assert_eq!(state(&c, id).await, "sleeping");
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0, "not due yet");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, id).await, "finished");
}

#[tokio::test]
async fn subscribe_raise_event_wait_for_event_unsubscribe() {
    let (_db, c) = compiled(&[OK]).await;
    let out = output(&c, "eventtest", json!({"in": "foo"})).await;
    assert_eq!(out["out"], "got my1stevent");
    assert_eq!(out["event"]["name"], "my1stevent");
    assert_eq!(
        out["event"]["data"],
        json!({"foo": "bar", "blah": "blargh"})
    );
    assert_eq!(count(&c, "event_subscriptions").await, 0);
}

#[tokio::test]
async fn wait_for_event_gets_an_outside_event_or_times_out() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, _) = run(&c, "waittest", json!({"key": "k1"})).await;
    assert_eq!(state(&c, id).await, "eventwait");
    db::raise_event(&c, &json!({"key": "other", "answer": "no"}))
        .await
        .unwrap();
    assert_eq!(state(&c, id).await, "eventwait", "the mask does not match");
    db::raise_event(&c, &json!({"key": "k1", "answer": "yes"}))
        .await
        .unwrap();
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"got": "approval:yes"}))
    );
    // a time-out made due by hand
    let (id, _) = run(&c, "waittest", json!({"key": "k2"})).await;
    fire_timeout(&c, id).await;
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"got": "timeout"}))
    );
    // a real two-second time-out
    let (id, _) = run(&c, "waittest", json!({"key": "k3", "timeout": 2})).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"got": "timeout"}))
    );
}

#[tokio::test]
async fn a_workflow_call_is_a_child_job() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, status) = run(&c, "childjobtest", json!({"input": 1})).await;
    // calltest(2): add(21, 3) = 24, twice 48
    assert_eq!(status, Some(json!({"output": 72})));
    let children: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where parentjob_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(children, 1);
    assert_eq!(
        log_states(&c, id).await,
        vec!["start:done", "calltest:done", "end:finished"]
    );
}

#[tokio::test]
async fn a_childs_error_is_caught_in_the_parent() {
    let (_db, c) = compiled(&[OK]).await;
    let out = output(&c, "childerrortest", json!({"why": "because"})).await;
    assert_eq!(out["class"], "childerror");
    let msg = out["caught"].as_str().unwrap();
    assert!(msg.ends_with("failed: child says because"), "{msg}");
}

#[tokio::test]
async fn split_with_three_children_maps_their_outputs_in_order() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, status) = run(&c, "splittest", json!({"input": 1})).await;
    assert_eq!(status, Some(json!({"one": 14, "two": 24, "three": 34})));
    let states = log_states(&c, id).await;
    assert_eq!(
        states,
        vec![
            "start:done",
            "calltest:done",
            "calltest:done",
            "calltest:done",
            "wait_for_children:done",
            "reap_child:done",
            "reap_child:done",
            "reap_child:done",
            "end:finished"
        ]
    );
}

#[tokio::test]
async fn map_collect_with_push_and_a_negative_index() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "mapcollecttest", json!({"input": [10, 20, 30]})).await,
        json!({"outputs": [114, 224, 334], "last": 334, "total": 672})
    );
    assert_eq!(
        output(&c, "splitmaptest", json!({"list": [1, 2]})).await,
        json!({"single": 4, "many": [14, 24]})
    );
}

#[tokio::test]
async fn locks_are_inherited_by_children() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, status) = run(&c, "lockparent", json!({"in": "acme"})).await;
    assert_eq!(
        status,
        Some(json!({"out": "parent got acme and child locked acme"}))
    );
    assert_eq!(
        log_states(&c, id).await,
        vec!["start:done", "eval:done", "lockchild:done", "end:finished"]
    );
    assert_eq!(count(&c, "locks").await, 0, "every lock released");
}

#[tokio::test]
async fn wait_for_lock_with_wait_no_fails_when_the_lock_is_held() {
    let (_db, c) = compiled(&[OK]).await;
    let (holder, _) = run(&c, "lockwaittest", json!({"in": "x", "hold": true})).await;
    assert_eq!(state(&c, holder).await, "sleeping");
    let out = output(&c, "lockwaittest", json!({"in": "x"})).await;
    assert_eq!(
        out,
        json!({"out": format!("lock: lock foo x is held by job {holder}")})
    );
    assert_eq!(
        output(&c, "lockwaittest", json!({"in": "y"})).await,
        json!({"out": "got y and got lock foo and unlocked it"})
    );
    fire_timeout(&c, holder).await;
    assert_eq!(state(&c, holder).await, "finished");
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn detachflow_starts_a_child_nobody_waits_for() {
    let (_db, c) = compiled(&[OK]).await;
    let job = db::create_job(&c, "detachtest", &json!({"input": 5}), Default::default())
        .await
        .unwrap();
    // the parent finished without the child
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"done": true}))
    );
    let child: i64 = c
        .query_one(
            "select job_id from jobcenter.jobs where parentjob_id = $1 and state = 'ready'",
            &[&job.job_id],
        )
        .await
        .unwrap()
        .get(0);
    work(&c).await;
    assert_eq!(
        db::get_job_status(&c, child).await.unwrap(),
        Some(json!({"output": 54, "twice": 108}))
    );
}

#[tokio::test]
async fn an_interface_call_dispatches_to_the_named_workflow() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "dispatchtest", json!({"kind": "square", "size": 3})).await,
        json!({"area": 9})
    );
    assert_eq!(
        output(&c, "dispatchtest", json!({"kind": "circle", "size": 2})).await,
        json!({"area": 12.57})
    );
    let e = error(&c, "dispatchtest", json!({"kind": "triangle", "size": 1})).await;
    assert_eq!(
        e["msg"],
        "shape.triangle is not one of the workflows of interface shape"
    );
}

#[tokio::test]
async fn wfenv_env_inputs_config_and_procedures() {
    let (_db, c) = compiled(&[OK]).await;
    assert_eq!(
        output(&c, "envtest", json!({"name": "ann"})).await,
        json!({"greeting": "hallo ann", "doubled": 6})
    );
    let cfg: serde_json::Value = c
        .query_one(
            "select config from jobcenter.actions where name = 'envtest'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        cfg,
        json!({"max_steps": 50, "max_depth": 3, "archive": "1 hour"})
    );
    let e = error(&c, "steptest", json!({})).await;
    assert_eq!(e["class"], "fatal");
    assert_eq!(e["msg"], "max_steps (20) exceeded");
}

#[tokio::test]
async fn the_provisioning_example_runs_and_its_dns_failure_is_reported() {
    let (_db, c) = compiled(&[EXAMPLES]).await;
    let (id, status) = run(&c, "order_wordpress", json!({"domain": "example.org"})).await;
    assert_eq!(status, Some(json!({"site_url": "https://example.org/"})));
    let children: Vec<String> = c
        .query(
            "select a.name from jobcenter.jobs j join jobcenter.actions a on a.action_id = j.workflow_id \
             where j.parentjob_id = $1 order by j.job_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(children, vec!["vhost.create", "mysql.create"]);
    let e = error(&c, "order_wordpress", json!({"domain": "bad.example"})).await;
    assert_eq!(e["msg"], "cannot configure bad.example");
    assert_eq!(
        output(&c, "calltest", json!({"input": 1})).await,
        json!({"output": 4})
    );
}

#[tokio::test]
async fn the_etl_example_pages_through_the_source() {
    let (_db, c) = compiled(&[EXAMPLES]).await;
    assert_eq!(
        output(
            &c,
            "etl.nightly",
            json!({"source": "crm", "day": "2026-11-23"})
        )
        .await,
        json!({"loaded": 4, "rejected": 1, "pages": 3})
    );
}

#[tokio::test]
async fn the_approval_example_waits_for_a_decision_or_gives_up() {
    let (_db, c) = compiled(&[EXAMPLES]).await;
    assert_eq!(
        output(
            &c,
            "approval.request",
            json!({"request_id": "r0", "amount": 50})
        )
        .await,
        json!({"approved": true, "by": "auto"})
    );
    let (id, _) = run(
        &c,
        "approval.request",
        json!({"request_id": "r1", "amount": 500}),
    )
    .await;
    assert_eq!(state(&c, id).await, "eventwait");
    db::raise_event(
        &c,
        &json!({"type": "approval", "request_id": "r1", "approved": true, "by": "boss"}),
    )
    .await
    .unwrap();
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"approved": true, "by": "boss"}))
    );
    let (id, _) = run(
        &c,
        "approval.request",
        json!({"request_id": "r2", "amount": 500}),
    )
    .await;
    fire_timeout(&c, id).await;
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"approved": false, "by": "timeout"}))
    );
}

#[tokio::test]
async fn the_fan_out_example_checks_every_host() {
    let (_db, c) = compiled(&[EXAMPLES]).await;
    assert_eq!(
        output(
            &c,
            "fanout.check_hosts",
            json!({"hosts": ["a.example", "down.example", "b.example"]})
        )
        .await,
        json!({
            "statuses": ["a.example:up", "down.example:down", "b.example:up"],
            "down": ["down.example"],
            "total_latency": 5024,
            "checked": 3
        })
    );
}

#[tokio::test]
async fn a_counted_lock_compiles_with_its_limit_and_runs() {
    let (_db, c) = compiled(&[OK]).await;
    let limit: i32 = c
        .query_one(
            "select max_holders from jobcenter.locktypes where locktype = 'slot'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, 3);
    let (_, status) = run(&c, "semaphore", json!({"region": "eu"})).await;
    assert_eq!(status, Some(json!({"done": true})));
}

#[tokio::test]
async fn a_call_priority_gives_the_child_job_its_priority() {
    let (_db, c) = compiled(&[OK]).await;
    let (id, status) = run(&c, "prioritytest", json!({"input": 1})).await;
    assert_eq!(status, Some(json!({"output": 14})));
    let child: i32 = c
        .query_one(
            "select priority from jobcenter.jobs where parentjob_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(child, 5);
}
