//! The public SQL API: bad input gets a clear error code and changes nothing; defaults, tags,
//! disabled workflows, inspection (get_workflow_info, find_jobs, check_if_lock_exists).
#![allow(clippy::unwrap_used)]

use engine_tests::{code_of, count, db, examples, flow, load, log_states, setup, state, work_one};
use jcl::build::{bin, lit, path, set, var};
use jcl::{BinOp, Ns, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// The tables bad input must leave alone.
const TABLES: &[&str] = &[
    "actions",
    "action_inputs",
    "action_outputs",
    "action_version_tags",
    "tasks",
    "next_tasks",
    "workflow_locks",
    "locktypes",
    "jobs",
    "jobs_archive",
    "job_task_log",
    "workers",
    "worker_actions",
    "event_subscriptions",
    "job_events",
    "queued_events",
    "locks",
];

/// Row count and a digest of the contents of every table in [`TABLES`].
async fn snapshot(c: &Client) -> Vec<(String, i64, String)> {
    let mut out = vec![];
    for t in TABLES {
        let row = c
            .query_one(
                &format!(
                    "select count(*), md5(coalesce(string_agg(x::text, '|' order by x::text), '')) \
                     from jobcenter.{t} x"
                ),
                &[],
            )
            .await
            .unwrap();
        out.push(((*t).to_owned(), row.get(0), row.get(1)));
    }
    out
}

/// sum: no worker needed; total = x + step, step defaults to 5.
fn sum() -> jcl::Model {
    let f = flow::Flow::workflow("sum")
        .input("x", "number")
        .input_default("step", "number", json!(5))
        .output("total", "number");
    f.end(vec![set(
        path(Ns::O, &["total"]),
        bin(BinOp::Add, var(Ns::A, &["x"]), var(Ns::A, &["step"])),
    )])
}

async fn standard(c: &Client) {
    load(c, &[examples::add(), examples::calltest(), sum()]).await;
}

#[tokio::test]
async fn create_job_of_an_unknown_workflow_is_jc001_and_changes_nothing() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let before = snapshot(&c).await;
    let r = db::create_job(&c, "nosuch", &json!({}), Default::default()).await;
    let e = r.expect_err("unknown workflow");
    assert_eq!(e.code(), Some(db::ErrorCode::UnknownWorkflow));
    assert!(e.to_string().contains("nosuch"), "{e}");
    // an action is not a workflow either
    assert_eq!(
        code_of(db::create_job(&c, "add", &json!({}), Default::default()).await),
        db::ErrorCode::UnknownWorkflow
    );
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn create_job_with_bad_arguments_is_jc002_naming_the_problem() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let before = snapshot(&c).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "object"),
        (json!("input"), "object"),
        (json!({"input": "one"}), "input input is not of type number"),
        (json!({"input": null}), "input input is not of type number"),
        (json!({}), "required input input is missing"),
        (json!({"input": 1, "extra": 2}), "unknown input extra"),
    ];
    for (args, what) in cases {
        let e = db::create_job(&c, "calltest", &args, Default::default())
            .await
            .expect_err("bad arguments");
        assert_eq!(e.code(), Some(db::ErrorCode::BadArguments), "{args}: {e}");
        assert!(e.to_string().contains(what), "{args}: {e}");
    }
    // an environment that is not an object
    let e = db::create_job(
        &c,
        "calltest",
        &json!({"input": 1}),
        db::CreateJob {
            env: Some(&json!([1])),
            ..Default::default()
        },
    )
    .await
    .expect_err("bad env");
    assert_eq!(e.code(), Some(db::ErrorCode::BadArguments));
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(count(&c, "jobs").await, 0);
}

#[tokio::test]
async fn create_job_fills_in_defaults() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let job = db::create_job(&c, "sum", &json!({"x": 1}), Default::default())
        .await
        .unwrap();
    let args: Value = c
        .query_one(
            "select arguments from jobcenter.jobs where job_id = $1",
            &[&job.job_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(args, json!({"x": 1, "step": 5}));
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"total": 6}))
    );
    // a given value wins over the default
    let job = db::create_job(&c, "sum", &json!({"x": 1, "step": 10}), Default::default())
        .await
        .unwrap();
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"total": 11}))
    );
    assert_eq!(
        log_states(&c, job.job_id).await,
        vec!["start:done", "end:finished"]
    );
}

#[tokio::test]
async fn a_disabled_workflow_is_jc008_and_changes_nothing() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    c.execute(
        "update jobcenter.actions set disabled = true where name = 'sum'",
        &[],
    )
    .await
    .unwrap();
    let before = snapshot(&c).await;
    let e = db::create_job(&c, "sum", &json!({"x": 1}), Default::default())
        .await
        .expect_err("disabled");
    assert_eq!(e.code(), Some(db::ErrorCode::Disabled));
    assert!(e.to_string().contains("sum"), "{e}");
    assert_eq!(snapshot(&c).await, before);
    // other workflows are not affected
    db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
}

fn tagged(version: i64) -> jcl::Model {
    let f = flow::Flow::workflow("tagged").output("version", "number");
    f.end(vec![set(path(Ns::O, &["version"]), lit(version))])
}

#[tokio::test]
async fn tags_select_the_workflow_version() {
    let (_tdb, c) = setup().await;
    db::load_model(&c, &tagged(1), &[]).await.unwrap();
    db::load_model(&c, &tagged(2), &["beta"]).await.unwrap();
    db::load_model(&c, &tagged(3), &[]).await.unwrap();
    db::load_model(&c, &tagged(4), &["gamma"]).await.unwrap();
    let run = |tag: Option<&'static str>| {
        let c = &c;
        async move {
            let job = db::create_job(
                c,
                "tagged",
                &json!({}),
                db::CreateJob {
                    tag,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            db::get_job_status(c, job.job_id).await.unwrap().unwrap()["version"].clone()
        }
    };
    // without a tag: the newest untagged version, not the newer tagged ones
    assert_eq!(run(None).await, json!(3));
    assert_eq!(run(Some("beta")).await, json!(2));
    assert_eq!(run(Some("gamma")).await, json!(4));
    // 'x:beta' tries x (none), then beta
    assert_eq!(run(Some("x:beta")).await, json!(2));
    assert_eq!(run(Some("gamma:beta")).await, json!(4));
    // an unknown tag falls through to the untagged versions
    assert_eq!(run(Some("x")).await, json!(3));

    // get_workflow_info describes the version create_job would run
    let info = db::get_workflow_info(&c, "tagged").await.unwrap();
    assert_eq!(info["version"], json!(3));
    let info: Value = c
        .query_one(
            "select jobcenter.get_workflow_info('tagged', 'x:beta')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(info["version"], json!(2));
}

#[tokio::test]
async fn get_job_status_of_an_unknown_job_is_an_error_object() {
    let (_tdb, c) = setup().await;
    let status = db::get_job_status(&c, 4242).await.unwrap().unwrap();
    assert_eq!(status["error"]["class"], json!("normal"));
    assert!(
        status["error"]["msg"].as_str().unwrap().contains("4242"),
        "{status}"
    );
}

#[tokio::test]
async fn task_done_with_an_unknown_or_used_cookie_is_jc003() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let job = db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    let before = snapshot(&c).await;
    let e = db::task_done(
        &c,
        &uuid::Uuid::new_v4().to_string(),
        &json!({"counter": 1}),
    )
    .await
    .expect_err("unknown cookie");
    assert_eq!(e.code(), Some(db::ErrorCode::UnknownCookie));
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(state(&c, job.job_id).await, "ready");

    let task = db::get_task(&c, "w1", "add", None).await.unwrap().unwrap();
    db::task_done(&c, &task.cookie, &json!({"counter": 4}))
        .await
        .unwrap();
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"output": 4}))
    );
    let before = snapshot(&c).await;
    let e = db::task_done(&c, &task.cookie, &json!({"counter": 99}))
        .await
        .expect_err("used cookie");
    assert_eq!(e.code(), Some(db::ErrorCode::UnknownCookie));
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(state(&c, job.job_id).await, "finished");
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(
        log_states(&c, job.job_id).await,
        vec!["start:done", "add:done", "end:finished"]
    );
}

#[tokio::test]
async fn worker_calls_with_bad_input_are_refused_and_change_nothing() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let filtered = flow::action("deploy")
        .input("region", "string")
        .config(|cfg| cfg.filter = Some(vec!["region".into()]))
        .model();
    load(&c, &[filtered]).await;
    db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    let before = snapshot(&c).await;

    // get_task by a worker that never announced
    assert_eq!(
        code_of(db::get_task(&c, "ghost", "add", None).await),
        db::ErrorCode::UnknownWorker
    );
    // announce of an unknown action
    assert_eq!(
        code_of(db::announce(&c, "w1", "nosuch", None, None).await),
        db::ErrorCode::UnknownWorkflow
    );
    // a filter key the action does not declare
    let e = db::announce(&c, "w1", "deploy", None, Some(&json!({"colour": "red"})))
        .await
        .expect_err("bad filter key");
    assert_eq!(e.code(), Some(db::ErrorCode::BadArguments));
    assert!(e.to_string().contains("colour"), "{e}");
    // a filter on an action that declares none
    assert_eq!(
        code_of(db::announce(&c, "w1", "add", None, Some(&json!({"counter": 1}))).await),
        db::ErrorCode::BadArguments
    );
    // a filter that is not an object
    assert_eq!(
        code_of(db::announce(&c, "w1", "deploy", None, Some(&json!(["region"]))).await),
        db::ErrorCode::BadArguments
    );
    // ping and disconnect of an unknown worker answer as the original: null and false
    assert!(!db::ping(&c, 987_654).await.unwrap());
    assert!(!db::disconnect(&c, "ghost").await.unwrap());
    assert_eq!(snapshot(&c).await, before);

    // a worker that announced another action still cannot take this one
    let wid = db::announce(&c, "w2", "deploy", None, None).await.unwrap();
    assert_eq!(
        code_of(db::get_task(&c, "w2", "add", None).await),
        db::ErrorCode::UnknownWorker
    );
    assert!(db::ping(&c, wid).await.unwrap());
    // once stopped, its id is no longer live
    assert!(db::disconnect(&c, "w2").await.unwrap());
    assert!(!db::ping(&c, wid).await.unwrap());
}

#[tokio::test]
async fn cancel_and_retry_in_the_wrong_state_are_refused() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let running = db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    let done = db::create_job(&c, "sum", &json!({"x": 1}), Default::default())
        .await
        .unwrap();
    let before = snapshot(&c).await;
    assert_eq!(
        code_of(db::cancel_job(&c, 987_654, "why", false).await),
        db::ErrorCode::UnknownJob
    );
    assert_eq!(
        code_of(db::cancel_job(&c, done.job_id, "why", false).await),
        db::ErrorCode::WrongState
    );
    assert_eq!(
        code_of(db::retry_job(&c, running.job_id, "why").await),
        db::ErrorCode::WrongState
    );
    assert_eq!(
        code_of(db::retry_job(&c, done.job_id, "why").await),
        db::ErrorCode::WrongState
    );
    assert_eq!(
        code_of(db::retry_job(&c, 987_654, "why").await),
        db::ErrorCode::UnknownJob
    );
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(state(&c, running.job_id).await, "ready");
    assert_eq!(state(&c, done.job_id).await, "finished");
}

#[tokio::test]
async fn raise_event_with_non_object_data_is_jc002() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let before = snapshot(&c).await;
    for bad in [json!("boom"), json!([1]), json!(3), json!(null)] {
        assert_eq!(
            code_of(db::raise_event(&c, &bad).await),
            db::ErrorCode::BadArguments,
            "{bad}"
        );
    }
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn load_model_with_an_unknown_callee_or_a_malformed_model_writes_nothing() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let actions = count(&c, "actions").await;
    let before = snapshot(&c).await;

    let mut f = flow::Flow::workflow("broken");
    f.call("nosuch_action", vec![], vec![]);
    let unknown = f.end(vec![]);
    let e = db::load_model(&c, &unknown, &[])
        .await
        .expect_err("unknown callee");
    assert_eq!(e.code(), Some(db::ErrorCode::UnknownWorkflow));
    assert!(e.to_string().contains("nosuch_action"), "{e}");

    // no end task
    let mut f = flow::Flow::workflow("broken");
    f.no_op();
    let no_end = f.build();
    assert_eq!(
        code_of(db::load_model(&c, &no_end, &[]).await),
        db::ErrorCode::InvalidModel
    );
    // a jump to a task that does not exist
    let mut f = flow::Flow::workflow("broken");
    let n = f.no_op();
    f.goto(n, 77);
    let bad_target = f.end(vec![]);
    assert_eq!(
        code_of(db::load_model(&c, &bad_target, &[]).await),
        db::ErrorCode::InvalidModel
    );
    // an input of an unknown type: the error comes after the action row was written
    let bad_type = flow::action("typo").input("x", "nosuchtype").model();
    assert_eq!(
        code_of(db::load_model(&c, &bad_type, &[]).await),
        db::ErrorCode::InvalidModel
    );
    // JSON that is not a model at all
    let e = c
        .query_one(
            "select jobcenter.load_action('{\"kind\":\"workflow\",\"name\":\"x\"}', null)",
            &[],
        )
        .await
        .expect_err("not a model");
    assert_eq!(db::Error::from(e).code(), Some(db::ErrorCode::InvalidModel));
    assert_eq!(count(&c, "actions").await, actions);
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn wrong_sql_argument_types_are_postgres_errors_that_change_nothing() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    let before = snapshot(&c).await;
    let cases = [
        (
            "select jobcenter.create_job('calltest', 'not json')",
            SqlState::INVALID_TEXT_REPRESENTATION,
        ),
        (
            "select jobcenter.task_done(42, '{}')",
            SqlState::UNDEFINED_FUNCTION,
        ),
        (
            "select jobcenter.get_job_status('seven')",
            SqlState::INVALID_TEXT_REPRESENTATION,
        ),
        (
            "select jobcenter.cancel_job(now(), 'x')",
            SqlState::UNDEFINED_FUNCTION,
        ),
        (
            "select jobcenter.raise_event('{\"name\":')",
            SqlState::INVALID_TEXT_REPRESENTATION,
        ),
    ];
    for (sql, code) in cases {
        let e = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(e.code(), Some(&code), "{sql}: {e}");
        assert_eq!(db::Error::from(e).code(), None, "{sql}");
    }
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn get_workflow_info_describes_the_newest_version() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let wf = flow::Flow::workflow("sum")
        .input("x", "number")
        .input_default("step", "number", json!(5))
        .output("total", "number")
        .output_optional("note", "string")
        .role("ops")
        .config(|cfg| cfg.max_steps = Some(20));
    let v2 = db::load_model(
        &c,
        &wf.end(vec![set(path(Ns::O, &["total"]), var(Ns::A, &["x"]))]),
        &[],
    )
    .await
    .unwrap();
    let info = db::get_workflow_info(&c, "sum").await.unwrap();
    assert_eq!(
        info,
        json!({
            "workflow_id": v2,
            "name": "sum",
            "version": 2,
            "role": "ops",
            "config": {"max_steps": 20},
            "disabled": false,
            "inputs": {
                "x": {"type": "number", "optional": false},
                "step": {"type": "number", "optional": true, "default": 5},
            },
            "outputs": {
                "total": {"type": "number", "optional": false},
                "note": {"type": "string", "optional": true},
            },
        })
    );
    assert_eq!(
        code_of(db::get_workflow_info(&c, "nosuch").await),
        db::ErrorCode::UnknownWorkflow
    );
    assert_eq!(
        code_of(db::get_workflow_info(&c, "add").await),
        db::ErrorCode::UnknownWorkflow
    );
}

#[tokio::test]
async fn find_jobs_filters_on_arguments_and_honours_the_state() {
    let (_tdb, c) = setup().await;
    standard(&c).await;
    let new = |wf: &'static str, args: Value| {
        let c = &c;
        async move {
            db::create_job(c, wf, &args, Default::default())
                .await
                .unwrap()
                .job_id
        }
    };
    let s1 = new("sum", json!({"x": 1})).await;
    let s2 = new("sum", json!({"x": 2})).await;
    let r1 = new("calltest", json!({"input": 1})).await;
    let r2 = new("calltest", json!({"input": 2})).await;
    // the oldest ready task (r1's) fails, so r1 ends in error
    work_one(&c, "w1", "add", |_| json!({"error": "no"})).await;
    assert_eq!(state(&c, r1).await, "error");
    assert_eq!(state(&c, r2).await, "ready");

    let find = |filter: Value, st: Option<&'static str>| {
        let c = &c;
        async move { db::find_jobs(c, &filter, st).await.unwrap() }
    };
    assert_eq!(find(json!({}), None).await, vec![s1, s2, r1, r2]);
    assert_eq!(find(json!({"x": 1}), None).await, vec![s1]);
    assert_eq!(find(json!({"x": 3}), None).await, Vec::<i64>::new());
    assert_eq!(find(json!({}), Some("finished")).await, vec![s1, s2]);
    assert_eq!(find(json!({}), Some("ready")).await, vec![r2]);
    assert_eq!(find(json!({}), Some("error")).await, vec![r1]);
    assert_eq!(find(json!({"input": 2}), Some("ready")).await, vec![r2]);
    assert_eq!(
        find(json!({"input": 2}), Some("finished")).await,
        Vec::<i64>::new()
    );
    assert_eq!(find(json!({}), Some("sleeping")).await, Vec::<i64>::new());
}

#[tokio::test]
async fn check_if_lock_exists_sees_a_held_lock_until_the_job_ends() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add()]).await;
    let mut f = flow::Flow::workflow("locker")
        .input("name", "string")
        .lock_decl("thing", None, true, false);
    f.system(
        SystemAction::Lock,
        vec![
            set(path(Ns::I, &["type"]), lit("thing")),
            set(path(Ns::I, &["value"]), var(Ns::A, &["name"])),
        ],
    );
    f.call(
        "add",
        vec![
            set(path(Ns::I, &["counter"]), lit(1)),
            set(path(Ns::I, &["step"]), lit(1)),
        ],
        vec![],
    );
    load(&c, &[f.end(vec![])]).await;
    assert!(!db::check_if_lock_exists(&c, "thing", "a").await.unwrap());
    let job = db::create_job(&c, "locker", &json!({"name": "a"}), Default::default())
        .await
        .unwrap();
    assert_eq!(state(&c, job.job_id).await, "ready");
    assert!(db::check_if_lock_exists(&c, "thing", "a").await.unwrap());
    assert!(!db::check_if_lock_exists(&c, "thing", "b").await.unwrap());
    assert!(!db::check_if_lock_exists(&c, "other", "a").await.unwrap());
    work_one(&c, "w1", "add", |_| json!({"counter": 2})).await;
    assert_eq!(state(&c, job.job_id).await, "finished");
    assert!(!db::check_if_lock_exists(&c, "thing", "a").await.unwrap());
}
