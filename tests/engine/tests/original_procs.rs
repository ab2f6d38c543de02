//! The original JobCenter's operator and gateway procedures, with its names, parameters and
//! result shapes: `poll_tasks` (ready work per queue for a set of workers), `disable_action`
//! (refused while live jobs depend on the version), `error_seen` (an error acknowledged) and
//! `get_stale_actions` (workflows calling a version that was compiled again since); and the
//! channel `announce` returns is the one its tasks are notified on, across versions. Each keeps
//! to the caller's jobs, workers and roles.
#![allow(clippy::unwrap_used)]

use engine_tests::{action_id, create, db, df, examples, flow, load, setup, state, Listener};
use jcl::build::{lit, path, set, var};
use jcl::Ns;
use serde_json::{json, Value};
use tokio_postgres::Client;

/// Every row of a query as JSON objects.
async fn rows(c: &Client, sql: &str) -> Vec<Value> {
    c.query(&format!("select to_jsonb(x) from ({sql}) x"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The SQLSTATE and message of a statement that must fail.
async fn refused(c: &Client, sql: &str) -> (String, String) {
    let e = c.batch_execute(sql).await.expect_err(sql);
    let db = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    (db.code().code().to_owned(), db.message().to_owned())
}

/// The JSON value one query returns (null for SQL NULL).
async fn value(c: &Client, sql: &str) -> Value {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<_, Option<Value>>(0)
        .unwrap_or(Value::Null)
}

/// The text one statement returns.
async fn text(c: &Client, sql: &str) -> String {
    c.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

/// A workflow `outer(input) → output` calling the workflow calltest.
fn outer() -> jcl::Model {
    let mut f = flow::Flow::workflow("outer")
        .input("input", "number")
        .output("output", "number");
    f.call(
        "calltest",
        vec![set(path(Ns::I, &["input"]), var(Ns::A, &["input"]))],
        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["output"]))],
    );
    f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))])
}

#[tokio::test]
async fn df_shows_the_originals_signatures_of_the_operator_procedures() {
    let (_tdb, c) = setup().await;
    let expect: &[(&str, &str, &str)] = &[
        (
            "poll_tasks",
            "a_worker_ids bigint[]",
            "TABLE(listenstring text, worker_ids bigint[], count bigint)",
        ),
        (
            "disable_action",
            "an_action_id integer, a_reason text DEFAULT ''::text",
            "text",
        ),
        ("error_seen", "a_job_id bigint, a_who text", "text"),
        (
            "get_stale_actions",
            "",
            "TABLE(top_level_ids integer[], workflow_name text, workflow_id integer, \
             workflow_version integer, name text, action_id integer, version integer, \
             latest_action_id integer, latest_version integer, found integer[], type \
             jobcenter.action_type, tag text)",
        ),
    ];
    for (name, args, result) in expect {
        assert_eq!(
            df(&c, name).await,
            vec![((*args).to_owned(), (*result).to_owned())],
            "jobcenter.{name}"
        );
    }
}

#[tokio::test]
async fn poll_tasks_counts_the_ready_work_of_the_given_workers_per_queue_and_filter() {
    let (_tdb, c) = setup().await;
    let deploy = flow::action("deploy")
        .input("region", "string")
        .output("ok", "boolean")
        .config(|cfg| cfg.filter = Some(vec!["region".into()]))
        .model();
    let mut f = flow::Flow::workflow("deployer")
        .input("region", "string")
        .output("ok", "boolean");
    f.call(
        "deploy",
        vec![set(path(Ns::I, &["region"]), var(Ns::A, &["region"]))],
        vec![set(path(Ns::V, &["ok"]), var(Ns::O, &["ok"]))],
    );
    let deployer = f.end(vec![set(path(Ns::O, &["ok"]), lit(true))]);
    load(
        &c,
        &[examples::add(), examples::calltest(), deploy, deployer],
    )
    .await;
    let add_ready = format!("action:{}:ready", action_id(&c, "add").await);
    let deploy_ready = format!("action:{}:ready", action_id(&c, "deploy").await);
    let w1 = db::announce(&c, "w1", "add", None, None).await.unwrap();
    let eu = db::announce(&c, "eu1", "deploy", None, Some(&json!({"region": "eu"})))
        .await
        .unwrap();
    let eu2 = db::announce(&c, "eu2", "deploy", None, Some(&json!({"region": "eu"})))
        .await
        .unwrap();
    let us = db::announce(&c, "us1", "deploy", None, Some(&json!({"region": "us"})))
        .await
        .unwrap();
    let poll = |ids: Vec<i64>| {
        let ids = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        format!("select * from jobcenter.poll_tasks('{{{ids}}}')")
    };
    // nothing ready: no rows
    assert_eq!(rows(&c, &poll(vec![w1, eu, us])).await, Vec::<Value>::new());

    for i in 0..2 {
        create(&c, "calltest", json!({"input": i})).await;
    }
    for region in ["eu", "eu", "eu", "asia"] {
        create(&c, "deployer", json!({"region": region})).await;
    }
    assert_eq!(
        rows(&c, &poll(vec![w1, eu, eu2, us])).await,
        vec![
            json!({"listenstring": add_ready, "worker_ids": null, "count": 2}),
            json!({"listenstring": deploy_ready, "worker_ids": [eu, eu2], "count": 3}),
        ]
    );
    // only the workers asked about: us1 has no ready task (its filter matches none)
    assert_eq!(rows(&c, &poll(vec![us])).await, Vec::<Value>::new());
    // a task taken is no longer ready
    db::get_task(&c, "eu1", "deploy", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rows(&c, &poll(vec![eu])).await,
        vec![json!({"listenstring": deploy_ready, "worker_ids": [eu], "count": 2})]
    );
    // a stopped worker polls nothing
    assert!(db::disconnect(&c, "w1").await.unwrap());
    assert_eq!(rows(&c, &poll(vec![w1])).await, Vec::<Value>::new());
}

#[tokio::test]
async fn announce_returns_the_channel_its_tasks_are_notified_on_after_a_recompile() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &[examples::add(), examples::calltest(), examples::add()],
    )
    .await;
    let (first, newest): (i32, i32) = {
        let r = c
            .query_one(
                "select min(action_id), max(action_id) from jobcenter.actions where name = 'add'",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_ne!(first, newest);
    let listen = text(
        &c,
        "select listenstring from jobcenter.announce('w1', 'add')",
    )
    .await;
    assert_eq!(listen, format!("action:{first}:ready"));
    let mut l = Listener::new(&tdb, &[&listen]).await;
    // calltest calls the first version; its task is told on the channel announce gave
    let job = create(&c, "calltest", json!({"input": 1})).await;
    let (ch, payload) = l.next().await.unwrap();
    assert_eq!(ch, listen);
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": job})
    );
}

#[tokio::test]
async fn disable_action_is_refused_while_live_jobs_depend_on_it() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest(), outer()]).await;
    let add = action_id(&c, "add").await;
    let job = create(&c, "outer", json!({"input": 1})).await;
    // outer's child calltest waits for add: the action, calltest and outer all have a live job
    for id in [
        add,
        action_id(&c, "calltest").await,
        action_id(&c, "outer").await,
    ] {
        assert_eq!(
            refused(
                &c,
                &format!("select jobcenter.disable_action({id}, 'broken')")
            )
            .await,
            ("JC007".to_owned(), format!("not disabled: {id}"))
        );
    }
    let disabled: i64 = c
        .query_one("select count(*) from jobcenter.actions where disabled", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(disabled, 0, "a refusal changes nothing");

    engine_tests::work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(
        text(
            &c,
            &format!("select jobcenter.disable_action({add}, 'broken worker')")
        )
        .await,
        format!("disabled: {add}")
    );
    let row = value(
        &c,
        &format!(
            "select jsonb_build_object('disabled', disabled, 'reason', config -> 'disabled_reason') \
             from jobcenter.actions where action_id = {add}"
        ),
    )
    .await;
    assert_eq!(row, json!({"disabled": true, "reason": "broken worker"}));
    // enabling again drops the reason
    c.batch_execute("select jobcenter.set_disabled('add', false)")
        .await
        .unwrap();
    let reason = format!(
        "select config -> 'disabled_reason' from jobcenter.actions where action_id = {add}"
    );
    assert_eq!(value(&c, &reason).await, Value::Null);

    assert_eq!(
        refused(&c, "select jobcenter.disable_action(999999)").await,
        ("JC001".to_owned(), "not found: 999999".to_owned())
    );
    assert_eq!(
        refused(&c, "select jobcenter.disable_action(-1)").await.0,
        "JC002"
    );
}

#[tokio::test]
async fn error_seen_marks_an_ended_error_until_the_job_is_retried() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let job = create(&c, "calltest", json!({"input": 1})).await;
    assert_eq!(
        refused(&c, &format!("select jobcenter.error_seen({job}, 'ops')")).await,
        (
            "JC007".to_owned(),
            format!("job {job} is not in an error state")
        )
    );
    db::cancel_job(&c, job, "not needed", false).await.unwrap();
    assert_eq!(state(&c, job).await, "error");
    assert_eq!(
        refused(&c, &format!("select jobcenter.error_seen({job}, '')"))
            .await
            .0,
        "JC002"
    );
    let msg = text(&c, &format!("select jobcenter.error_seen({job}, 'ops')")).await;
    assert!(
        msg.starts_with(&format!("set error_seen for job {job} to {{")),
        "{msg}"
    );
    let seen_sql =
        format!("select job_state -> 'error_seen' from jobcenter.jobs where job_id = {job}");
    let seen = value(&c, &seen_sql).await;
    assert_eq!(seen["who"], json!("ops"));
    assert!(seen["when"].is_string(), "{seen}");

    // the job runs again: its next error is unseen
    db::retry_job(&c, job, "").await.unwrap();
    assert_eq!(value(&c, &seen_sql).await, Value::Null);
    assert_eq!(
        refused(&c, "select jobcenter.error_seen(999999, 'ops')").await,
        ("JC005".to_owned(), "job 999999 not found".to_owned())
    );
}

#[tokio::test]
async fn get_stale_actions_finds_calls_of_versions_compiled_again() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest(), outer()]).await;
    let stale = "select * from jobcenter.get_stale_actions()";
    assert_eq!(rows(&c, stale).await, Vec::<Value>::new());

    let add1 = action_id(&c, "add").await;
    let calltest1 = action_id(&c, "calltest").await;
    let outer1 = action_id(&c, "outer").await;
    load(&c, &[examples::add()]).await;
    let add2 = action_id(&c, "add").await;
    assert_eq!(
        rows(&c, stale).await,
        vec![json!({
            "top_level_ids": [outer1], "workflow_name": "calltest", "workflow_id": calltest1,
            "workflow_version": 1, "name": "add", "action_id": add1, "version": 1,
            "latest_action_id": add2, "latest_version": 2,
            "found": [add1, calltest1, outer1], "type": "action", "tag": null
        })]
    );

    // calltest compiled again calls the new add; outer now calls an old calltest
    load(&c, &[examples::calltest()]).await;
    let calltest2 = action_id(&c, "calltest").await;
    assert_eq!(
        rows(&c, stale).await,
        vec![json!({
            "top_level_ids": [outer1], "workflow_name": "outer", "workflow_id": outer1,
            "workflow_version": 1, "name": "calltest", "action_id": calltest1, "version": 1,
            "latest_action_id": calltest2, "latest_version": 2,
            "found": [calltest1, outer1], "type": "workflow", "tag": null
        })]
    );
    // a disabled caller is not reported
    c.batch_execute("select jobcenter.set_disabled('outer', true)")
        .await
        .unwrap();
    assert_eq!(rows(&c, stale).await, Vec::<Value>::new());
}

#[tokio::test]
async fn the_operator_procedures_keep_to_their_callers_jobs_workers_and_roles() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    c.batch_execute(
        "create role orig_alice nologin; create role orig_bob nologin; \
         grant jobcenter_client, jobcenter_worker to orig_alice, orig_bob; \
         insert into jobcenter.jc_roles values ('orig_alice'), ('orig_bob'); \
         insert into jobcenter.jc_role_members values ('orig_alice', 'workers'), \
             ('orig_bob', 'workers')",
    )
    .await
    .unwrap();
    let as_role = |role: &'static str| {
        let tdb = &tdb;
        async move {
            let c = tdb.connect().await.unwrap();
            c.batch_execute(&format!("set role {role}")).await.unwrap();
            c
        }
    };
    let alice = as_role("orig_alice").await;
    let bob = as_role("orig_bob").await;
    let job = create(&alice, "calltest", json!({"input": 1})).await;
    let worker = db::announce(&alice, "alices", "add", None, None)
        .await
        .unwrap();
    // bob's poll of alice's worker finds nothing; hers finds the task
    let poll = format!("select * from jobcenter.poll_tasks('{{{worker}}}')");
    assert_eq!(rows(&bob, &poll).await, Vec::<Value>::new());
    assert_eq!(rows(&alice, &poll).await.len(), 1);

    db::cancel_job(&alice, job, "", false).await.unwrap();
    // another user's job is no job
    assert_eq!(
        refused(&bob, &format!("select jobcenter.error_seen({job}, 'bob')")).await,
        ("JC005".to_owned(), format!("job {job} not found"))
    );
    assert!(text(
        &alice,
        &format!("select jobcenter.error_seen({job}, 'alice')")
    )
    .await
    .starts_with("set error_seen"));
    // disabling is the administrator's, listing stale calls the compiler's
    for sql in [
        format!(
            "select jobcenter.disable_action({})",
            action_id(&c, "add").await
        ),
        "select * from jobcenter.get_stale_actions()".to_owned(),
    ] {
        assert_eq!(refused(&alice, &sql).await.0, "42501", "{sql}");
    }
}
