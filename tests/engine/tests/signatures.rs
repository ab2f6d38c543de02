//! The public procedures have the original JobCenter's signatures (its `db/procs/*.sql`):
//! names, parameter names, OUT columns and result types, so raw-SQL workers and psql scripts
//! written for it run unchanged; ours extra parameters trail with defaults and what ours
//! returned beyond the original's is offered beside (`raise_event_id`).
#![allow(clippy::unwrap_used)]

use engine_tests::{code_of, db, df, examples, load, setup, state};
use serde_json::{json, Value};
use tokio_postgres::Client;

#[tokio::test]
async fn df_shows_the_originals_signatures() {
    let (_tdb, c) = setup().await;
    let expect: &[(&str, &str, &str)] = &[
        (
            "create_job",
            "wfname text, args jsonb, tag text DEFAULT NULL::text, impersonate text DEFAULT \
             NULL::text, env jsonb DEFAULT NULL::jsonb, a_start_at timestamp with time zone \
             DEFAULT NULL::timestamp with time zone, a_key text DEFAULT NULL::text, a_priority \
             integer DEFAULT NULL::integer, a_notify boolean DEFAULT true, OUT job_id bigint, \
             OUT listenstring text",
            "record",
        ),
        (
            "get_job_status",
            "INOUT a_job_id bigint, OUT o_out_args jsonb",
            "record",
        ),
        (
            "announce",
            "workername text, actionname text, impersonate text DEFAULT NULL::text, filter \
             jsonb DEFAULT NULL::jsonb, OUT worker_id bigint, OUT listenstring text",
            "record",
        ),
        (
            "get_task",
            "a_workername text, a_actionname text, a_job_id bigint DEFAULT NULL::bigint, OUT \
             o_job_id bigint, OUT o_job_cookie text, OUT o_in_args jsonb, OUT o_env jsonb",
            "record",
        ),
        ("task_done", "a_jobcookie text, a_out_args jsonb", "void"),
        ("ping", "a_worker_id bigint", "text"),
        ("disconnect", "a_workername text", "boolean"),
        (
            "withdraw",
            "a_workername text, a_actionname text",
            "boolean",
        ),
        ("raise_event", "a_eventdata jsonb", "boolean"),
        ("raise_event_id", "a_eventdata jsonb", "bigint"),
        (
            "cancel_job",
            "a_job_id bigint, a_reason text DEFAULT ''::text, a_force boolean DEFAULT false",
            "text",
        ),
        (
            "retry_job",
            "a_job_id bigint, a_reason text DEFAULT ''::text",
            "text",
        ),
        (
            "find_jobs",
            "a_filter jsonb, a_state text DEFAULT NULL::text",
            "bigint[]",
        ),
        (
            "check_if_lock_exists",
            "a_locktype text, a_lockvalue text",
            "boolean",
        ),
        (
            "get_workflow_info",
            "a_wfname text, a_tag text DEFAULT NULL::text",
            "jsonb",
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

/// One JSON value from a query.
async fn one(c: &Client, sql: &str) -> Value {
    c.query_one(&format!("select to_jsonb(x) from ({sql}) x"), &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test]
async fn a_raw_sql_worker_written_for_the_original_runs_a_job() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let add_id: i32 = c
        .query_one(
            "select action_id from jobcenter.actions where name = 'add'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let job = one(
        &c,
        "select * from jobcenter.create_job(wfname => 'calltest', args => '{\"input\": 1}')",
    )
    .await;
    let job_id = job["job_id"].as_i64().unwrap();
    assert_eq!(job["listenstring"], json!(format!("job:{job_id}:finished")));
    // running: no values, as the original
    assert_eq!(
        one(
            &c,
            &format!("select * from jobcenter.get_job_status({job_id})")
        )
        .await,
        json!({"a_job_id": null, "o_out_args": null})
    );

    let w = one(&c, "select * from jobcenter.announce('w1', 'add')").await;
    assert!(w["worker_id"].as_i64().unwrap() > 0, "{w}");
    assert_eq!(w["listenstring"], json!(format!("action:{add_id}:ready")));
    let pong = one(
        &c,
        &format!("select jobcenter.ping({}) as p", w["worker_id"]),
    )
    .await;
    assert_eq!(pong, json!({"p": "pong"}));

    // the cookie is text: a text variable goes straight back into task_done
    c.batch_execute(
        "do $$
         declare
             t record;
         begin
             select * into t from jobcenter.get_task('w1', 'add');
             perform jobcenter.task_done(t.o_job_cookie,
                 jsonb_build_object('counter', (t.o_in_args ->> 'counter')::int
                                             + (t.o_in_args ->> 'step')::int));
         end $$",
    )
    .await
    .unwrap();
    assert_eq!(
        one(
            &c,
            &format!("select * from jobcenter.get_job_status({job_id})")
        )
        .await,
        json!({"a_job_id": job_id, "o_out_args": {"output": 4}})
    );
    // no task: one row of nulls, as the original
    assert_eq!(
        one(&c, "select * from jobcenter.get_task('w1', 'add')").await,
        json!({"o_job_id": null, "o_job_cookie": null, "o_in_args": null, "o_env": null})
    );
    assert_eq!(
        one(&c, "select jobcenter.find_jobs('{\"input\": 1}') as ids").await,
        json!({"ids": [job_id]})
    );
    assert_eq!(
        one(&c, "select jobcenter.disconnect('w1') as d").await,
        json!({"d": true})
    );
    assert_eq!(
        one(&c, "select jobcenter.disconnect('w1') as d").await,
        json!({"d": false})
    );
}

#[tokio::test]
async fn task_failed_fails_the_task_with_the_message() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let public: Vec<_> = df(&c, "task_failed")
        .await
        .into_iter()
        .filter(|(args, _)| args == "a_cookie text, a_errmsg text")
        .collect();
    assert_eq!(
        public,
        vec![("a_cookie text, a_errmsg text".to_owned(), "void".to_owned())]
    );
    let job = db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "add", None).await.unwrap().unwrap();
    c.execute(
        "select jobcenter.task_failed($1, 'disk full')",
        &[&t.cookie],
    )
    .await
    .unwrap();
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("normal"), "{err}");
    assert_eq!(err["msg"], json!("disk full"), "{err}");
}

#[tokio::test]
async fn a_cookie_that_is_no_uuid_holds_no_task() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    db::get_task(&c, "w1", "add", None).await.unwrap().unwrap();
    for cookie in ["not-a-uuid", "", "'; drop table jobcenter.jobs; --"] {
        assert_eq!(
            code_of(db::task_done(&c, cookie, &json!({"counter": 4})).await),
            db::ErrorCode::UnknownCookie,
            "{cookie:?}"
        );
    }
}

#[tokio::test]
async fn cancel_retry_and_raise_event_answer_as_the_original() {
    let (_tdb, c) = setup().await;
    load(
        &c,
        &[examples::add(), examples::calltest(), examples::approval()],
    )
    .await;
    let job = db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    let cancelled = one(
        &c,
        &format!("select jobcenter.cancel_job({job}, 'no longer needed') as r"),
    )
    .await;
    assert_eq!(cancelled, json!({"r": format!("job {job} cancelled")}));
    assert_eq!(state(&c, job).await, "error");
    let retried = one(&c, &format!("select jobcenter.retry_job({job}) as r")).await;
    assert_eq!(retried, json!({"r": "retry initiated"}));
    assert_eq!(state(&c, job).await, "ready");

    let waiter = db::create_job(&c, "approval", &json!({"id": 7}), Default::default())
        .await
        .unwrap()
        .job_id;
    let raised = one(
        &c,
        "select jobcenter.raise_event('{\"type\": \"approval\", \"id\": 7}') as r",
    )
    .await;
    assert_eq!(raised, json!({"r": true}));
    assert_eq!(state(&c, waiter).await, "finished");
    let id = db::raise_event(&c, &json!({"type": "other"}))
        .await
        .unwrap();
    let newest: i64 = c
        .query_one("select max(event_id) from jobcenter.job_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(id, newest);
}
