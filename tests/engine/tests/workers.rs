//! Workers and what can go wrong with them: output checks, task errors, retries and back-off,
//! action time-outs, filters, env inputs, disconnects, roles, procedures, cancel and retry.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::{
    action_id, code_of, count, create, db, examples, flow, load, log_states, make_due, setup,
    state, work_one, Listener,
};
use jcl::build::{bin, copy, lit, path, set, var};
use jcl::{Backoff, BinOp, Ns, RetryConfig};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// Seconds from now until the job's timeout.
async fn secs_to_timeout(c: &Client, job_id: i64) -> f64 {
    c.query_one(
        "select extract(epoch from timeout - clock_timestamp())::float8 from jobcenter.jobs \
         where job_id = $1",
        &[&job_id],
    )
    .await
    .unwrap()
    .get::<_, Option<f64>>(0)
    .expect("a timeout is set")
}

async fn job_col(c: &Client, job_id: i64, col: &str) -> Value {
    c.query_one(
        &format!("select to_jsonb({col}) from jobcenter.jobs where job_id = $1"),
        &[&job_id],
    )
    .await
    .unwrap()
    .get::<_, Option<Value>>(0)
    .unwrap_or(Value::Null)
}

fn retry(tries: u32, interval: &str) -> RetryConfig {
    RetryConfig {
        tries,
        interval: interval.to_owned(),
        backoff: Backoff::default(),
        max_interval: None,
        jitter: false,
    }
}

/// An action `name` (counter, step → counter) and workflow `name_wf` calling it once with
/// counter = a.input, step 3; output = the returned counter. `omap` defaults to v.thing.
fn call_models(name: &str, cfg: impl FnOnce(&mut jcl::Config)) -> Vec<jcl::Model> {
    vec![
        examples::counter_action(name).config(cfg).model(),
        examples::calls(&format!("{name}_wf"), name),
    ]
}

/// A workflow `wf(x: number) → {out.0: out.1}` calling `callee` once with `x`; its output is
/// the callee's output `from`.
fn call_once(wf: &str, callee: &str, out: (&str, &str), from: &str) -> jcl::Model {
    let (name, ty) = out;
    let mut f = flow::Flow::workflow(wf)
        .input("x", "number")
        .output(name, ty);
    f.call(
        callee,
        vec![set(path(Ns::I, &["x"]), var(Ns::A, &["x"]))],
        vec![set(path(Ns::V, &[name]), var(Ns::O, &[from]))],
    );
    f.end(vec![set(path(Ns::O, &[name]), var(Ns::V, &[name]))])
}

#[tokio::test]
async fn worker_outputs_are_type_checked() {
    let (_tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    let bad: Vec<(Value, &str)> = vec![
        (
            json!({"counter": "four"}),
            "output counter is not of type number",
        ),
        (
            json!({"counter": null}),
            "output counter is not of type number",
        ),
        (json!({}), "required output counter is missing"),
        (json!({"count": 4}), "required output counter is missing"),
        (json!([4]), "outputs must be a JSON object"),
        (json!("four"), "outputs must be a JSON object"),
    ];
    for (out, what) in bad {
        let job = create(&c, "add_wf", json!({"input": 1})).await;
        work_one(&c, "w1", "add", |_| out.clone()).await;
        assert_eq!(state(&c, job).await, "error", "{out}");
        let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
        assert_eq!(err["class"], json!("normal"), "{out}");
        let msg = err["msg"].as_str().unwrap();
        assert!(msg.contains("add") && msg.contains(what), "{out}: {msg}");
        assert_eq!(err["workflow"], json!("add_wf"));
        assert_eq!(log_states(&c, job).await, vec!["start:done", "add:error"]);
    }
}

#[tokio::test]
async fn undeclared_output_keys_are_dropped() {
    let (_tdb, c) = setup().await;
    let act = flow::action("add")
        .input("counter", "number")
        .output("counter", "number")
        .output_optional("note", "string")
        .model();
    let mut f = flow::Flow::workflow("all_out").output("vars", "object");
    f.call(
        "add",
        vec![set(path(Ns::I, &["counter"]), lit(1))],
        vec![copy(Ns::O, Ns::V, None)],
    );
    let wf = f.end(vec![set(path(Ns::O, &["vars"]), var(Ns::V, &[]))]);
    load(&c, &[act, wf]).await;
    let job = create(&c, "all_out", json!({})).await;
    work_one(
        &c,
        "w1",
        "add",
        |_| json!({"counter": 4, "junk": 1, "secret": "x"}),
    )
    .await;
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"vars": {"counter": 4}}))
    );
    let logged: Value = c
        .query_one(
            "select outargs from jobcenter.job_task_log where job_id = $1 and state = 'done' \
             and outargs is not null",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(logged, json!({"counter": 4}));
}

#[tokio::test]
async fn a_task_error_ends_the_job_with_a_normal_error() {
    let (_tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    let job = create(&c, "add_wf", json!({"input": 1})).await;
    work_one(&c, "w1", "add", |_| json!({"error": "boom"})).await;
    assert_eq!(state(&c, job).await, "error");
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("normal"));
    assert_eq!(err["msg"], json!("boom"));
    assert_eq!(err["workflow"], json!("add_wf"));
    assert_eq!(log_states(&c, job).await, vec!["start:done", "add:error"]);

    // an error object keeps its class and extra keys; without retry config a soft error ends
    // the job too
    let job = create(&c, "add_wf", json!({"input": 1})).await;
    work_one(
        &c,
        "w1",
        "add",
        |_| json!({"error": {"class": "soft", "msg": "later", "code": 7}}),
    )
    .await;
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("soft"));
    assert_eq!(err["msg"], json!("later"));
    assert_eq!(err["code"], json!(7));
}

#[tokio::test]
async fn a_soft_error_is_retried_after_interval_times_sqrt_tries() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &call_models("flaky", |cfg| cfg.retry = Some(retry(3, "10 seconds"))),
    )
    .await;
    let ready = format!("action:{}:ready", action_id(&c, "flaky").await);
    let mut l = Listener::new(&tdb, &[&ready, "timer"]).await;
    let job = create(&c, "flaky_wf", json!({"input": 1})).await;
    assert_eq!(l.next().await.unwrap().0, ready);
    let soft = json!({"error": {"class": "soft", "msg": "try again"}});

    // try 1 fails: wait 10 s × sqrt(1)
    work_one(&c, "w1", "flaky", |_| soft.clone()).await;
    assert_eq!(state(&c, job).await, "retrywait");
    let wait = secs_to_timeout(&c, job).await;
    assert!((9.0..=10.1).contains(&wait), "{wait}");
    let ts = job_col(&c, job, "task_state").await;
    assert_eq!(ts["error"]["class"], json!("soft"));
    assert_eq!(ts["error"]["msg"], json!("try again"));
    let (ch, payload) = l.next().await.expect("timer notification");
    assert_eq!(ch, "timer");
    let at: f64 = payload.parse().unwrap();
    let timeout_epoch: f64 = c
        .query_one(
            "select extract(epoch from timeout)::float8 from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert!((at - timeout_epoch).abs() < 0.01, "{at} {timeout_epoch}");

    // not due yet
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    assert_eq!(state(&c, job).await, "retrywait");
    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "ready");
    let (ch, payload) = l.next().await.expect("ready again");
    assert_eq!(ch, ready);
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": job})
    );

    // try 2 fails: wait 10 s × sqrt(2)
    let (_, inargs) = work_one(&c, "w1", "flaky", |_| soft.clone()).await;
    assert_eq!(inargs, json!({"counter": 1, "step": 3}));
    assert_eq!(state(&c, job).await, "retrywait");
    let wait = secs_to_timeout(&c, job).await;
    assert!((13.2..=14.2).contains(&wait), "{wait}");
    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);

    // try 3 succeeds
    work_one(&c, "w1", "flaky", examples::add_answer).await;
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(
        log_states(&c, job).await,
        vec![
            "start:done",
            "flaky:retrywait",
            "flaky:retrywait",
            "flaky:done",
            "end:finished"
        ]
    );
    let tries: Vec<Value> = c
        .query(
            "select task_state -> 'tries' from jobcenter.job_task_log where job_id = $1 \
             and state = 'retrywait' order by job_task_log_id",
            &[&job],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tries, vec![json!(1), json!(2)]);
}

#[tokio::test]
async fn a_soft_error_after_the_last_try_ends_the_job() {
    let (_tdb, c) = setup().await;
    load(
        &c,
        &call_models("flaky", |cfg| cfg.retry = Some(retry(2, "1 minute"))),
    )
    .await;
    let job = create(&c, "flaky_wf", json!({"input": 1})).await;
    let soft = json!({"error": {"class": "soft", "msg": "still broken"}});
    work_one(&c, "w1", "flaky", |_| soft.clone()).await;
    assert_eq!(state(&c, job).await, "retrywait");
    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    work_one(&c, "w1", "flaky", |_| soft.clone()).await;
    assert_eq!(state(&c, job).await, "error");
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("soft"));
    assert_eq!(err["msg"], json!("still broken"));
    assert_eq!(
        log_states(&c, job).await,
        vec!["start:done", "flaky:retrywait", "flaky:error"]
    );
    // a normal error is never retried
    let job = create(&c, "flaky_wf", json!({"input": 1})).await;
    work_one(&c, "w1", "flaky", |_| json!({"error": "hard"})).await;
    assert_eq!(state(&c, job).await, "error");
}

#[tokio::test]
async fn retry_wait_computes_the_documented_back_off() {
    let (_tdb, c) = setup().await;
    let wait = |cfg: Value, tries: i32| {
        let c = &c;
        async move {
            c.query_one(
                "select extract(epoch from jobcenter.retry_wait($1, $2))::float8",
                &[&cfg, &tries],
            )
            .await
            .unwrap()
            .get::<_, f64>(0)
        }
    };
    let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
    let sqrt = json!({"tries": 9, "interval": "10 seconds"});
    for (n, want) in [(1, 10.0), (2, 14.142), (4, 20.0), (9, 30.0)] {
        let got = wait(sqrt.clone(), n).await;
        assert!(close(got, want), "sqrt {n}: {got}");
    }
    let fixed = json!({"tries": 9, "interval": "3 seconds", "backoff": "fixed"});
    for n in [1, 2, 5] {
        assert!(close(wait(fixed.clone(), n).await, 3.0));
    }
    let exp = json!({"tries": 9, "interval": "1 second", "backoff": "exponential",
                     "max_interval": "10 seconds"});
    for (n, want) in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 10.0), (8, 10.0)] {
        let got = wait(exp.clone(), n).await;
        assert!(close(got, want), "exponential {n}: {got}");
    }
    let exp_uncapped = json!({"tries": 9, "interval": "1 second", "backoff": "exponential"});
    assert!(close(wait(exp_uncapped, 6).await, 32.0));
    // the cap applies to sqrt as well
    let capped = json!({"tries": 9, "interval": "10 seconds", "max_interval": "12 seconds"});
    assert!(close(wait(capped, 4).await, 12.0));
    // jitter: within ±25 %, and not always the same
    let jit = json!({"tries": 9, "interval": "8 seconds", "backoff": "fixed", "jitter": true});
    let mut seen = vec![];
    for _ in 0..20 {
        let got = wait(jit.clone(), 1).await;
        assert!((6.0..=10.0).contains(&got), "{got}");
        seen.push(got);
    }
    assert!(seen.iter().any(|s| !close(*s, seen[0])), "{seen:?}");
}

#[tokio::test]
async fn exponential_back_off_sets_the_job_timeouts() {
    let (_tdb, c) = setup().await;
    load(
        &c,
        &call_models("flaky", |cfg| {
            cfg.retry = Some(RetryConfig {
                tries: 5,
                interval: "2 seconds".into(),
                backoff: Backoff::Exponential,
                max_interval: Some("5 seconds".into()),
                jitter: false,
            })
        }),
    )
    .await;
    let job = create(&c, "flaky_wf", json!({"input": 1})).await;
    let soft = json!({"error": {"class": "soft", "msg": "again"}});
    for want in [2.0, 4.0, 5.0, 5.0] {
        work_one(&c, "w1", "flaky", |_| soft.clone()).await;
        assert_eq!(state(&c, job).await, "retrywait");
        let wait = secs_to_timeout(&c, job).await;
        assert!(wait <= want + 0.05 && wait > want - 1.0, "{want}: {wait}");
        make_due(&c, job).await;
        assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
        assert_eq!(state(&c, job).await, "ready");
    }
    // the fifth try is the last
    work_one(&c, "w1", "flaky", |_| soft.clone()).await;
    assert_eq!(state(&c, job).await, "error");
}

#[tokio::test]
async fn an_action_timeout_becomes_a_soft_error_and_is_retried() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &call_models("slow", |cfg| {
            cfg.timeout = Some("1 second".into());
            cfg.retry = Some(retry(2, "1 second"));
        }),
    )
    .await;
    let mut l = Listener::new(&tdb, &["timer"]).await;
    let job = create(&c, "slow_wf", json!({"input": 1})).await;
    db::announce(&c, "w1", "slow", None, None).await.unwrap();
    let t1 = db::get_task(&c, "w1", "slow", None).await.unwrap().unwrap();
    assert_eq!(state(&c, job).await, "working");
    let wait = secs_to_timeout(&c, job).await;
    assert!((0.5..=1.01).contains(&wait), "{wait}");
    let (ch, _) = l.next().await.expect("timer for the task timeout");
    assert_eq!(ch, "timer");

    // nothing is due before the second is up
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    assert_eq!(state(&c, job).await, "working");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "retrywait");
    let ts = job_col(&c, job, "task_state").await;
    assert_eq!(ts["error"]["class"], json!("soft"));
    assert!(ts["error"]["msg"].as_str().unwrap().contains("w1"), "{ts}");
    // the retry wait is real as well
    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "ready");

    let (jid, _) = work_one(&c, "w2", "slow", examples::add_answer).await;
    assert_eq!(jid, job);
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"output": 4}))
    );
    // the first worker wakes up too late
    assert_eq!(
        code_of(db::task_done(&c, &t1.cookie, &json!({"counter": 99})).await),
        db::ErrorCode::UnknownCookie
    );
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(
        log_states(&c, job).await,
        vec!["start:done", "slow:retrywait", "slow:done", "end:finished"]
    );
}

#[tokio::test]
async fn an_action_timeout_without_retry_ends_the_job() {
    let (_tdb, c) = setup().await;
    load(
        &c,
        &call_models("slow", |cfg| cfg.timeout = Some("1 hour".into())),
    )
    .await;
    let job = create(&c, "slow_wf", json!({"input": 1})).await;
    db::announce(&c, "w1", "slow", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "slow", None).await.unwrap().unwrap();
    let wait = secs_to_timeout(&c, job).await;
    assert!((3590.0..=3600.1).contains(&wait), "{wait}");
    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "error");
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("soft"));
    assert!(err["msg"].as_str().unwrap().contains("timeout"), "{err}");
    assert_eq!(
        code_of(db::task_done(&c, &t.cookie, &json!({"counter": 1})).await),
        db::ErrorCode::UnknownCookie
    );
}

#[tokio::test]
async fn filters_choose_the_workers_a_task_goes_to() {
    let (tdb, c) = setup().await;
    let deploy = flow::action("deploy")
        .input("region", "string")
        .input("app", "string")
        .output("ok", "boolean")
        .config(|cfg| cfg.filter = Some(vec!["region".into()]))
        .model();
    let mut f = flow::Flow::workflow("deployer")
        .input("region", "string")
        .output("ok", "boolean");
    f.call(
        "deploy",
        vec![
            set(path(Ns::I, &["region"]), var(Ns::A, &["region"])),
            set(path(Ns::I, &["app"]), lit("web")),
        ],
        vec![set(path(Ns::V, &["ok"]), var(Ns::O, &["ok"]))],
    );
    let wf = f.end(vec![set(path(Ns::O, &["ok"]), var(Ns::V, &["ok"]))]);
    load(&c, &[deploy, wf]).await;
    let ready = format!("action:{}:ready", action_id(&c, "deploy").await);
    db::announce(&c, "A", "deploy", None, Some(&json!({"region": "eu"})))
        .await
        .unwrap();
    db::announce(&c, "B", "deploy", None, Some(&json!({"region": "us"})))
        .await
        .unwrap();
    db::announce(&c, "C", "deploy", None, None).await.unwrap();
    let mut l = Listener::new(&tdb, &[&ready]).await;

    let eu = create(&c, "deployer", json!({"region": "eu"})).await;
    let (ch, payload) = l.next().await.unwrap();
    assert_eq!(ch, ready);
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": eu, "workers": ["A", "C"]})
    );
    // B does not see the eu task, not even when asking for it by id
    assert_eq!(db::get_task(&c, "B", "deploy", None).await.unwrap(), None);
    assert_eq!(
        db::get_task(&c, "B", "deploy", Some(eu)).await.unwrap(),
        None
    );
    assert_eq!(state(&c, eu).await, "ready");

    let us = create(&c, "deployer", json!({"region": "us"})).await;
    let (_, payload) = l.next().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": us, "workers": ["B", "C"]})
    );
    // polling: B gets the us task although the eu one is older
    let tb = db::get_task(&c, "B", "deploy", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tb.job_id, us);
    let ta = db::get_task(&c, "A", "deploy", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ta.job_id, eu);
    assert_eq!(ta.inargs, json!({"region": "eu", "app": "web"}));
    db::task_done(&c, &ta.cookie, &json!({"ok": true}))
        .await
        .unwrap();
    db::task_done(&c, &tb.cookie, &json!({"ok": false}))
        .await
        .unwrap();
    assert_eq!(
        db::get_job_status(&c, eu).await.unwrap(),
        Some(json!({"ok": true}))
    );
    assert_eq!(
        db::get_job_status(&c, us).await.unwrap(),
        Some(json!({"ok": false}))
    );
    // a region nobody filters on: only the unfiltered worker is told
    let asia = create(&c, "deployer", json!({"region": "asia"})).await;
    let (_, payload) = l.next().await.unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": asia, "workers": ["C"]})
    );
    assert_eq!(db::get_task(&c, "A", "deploy", None).await.unwrap(), None);
    assert_eq!(
        db::get_task(&c, "C", "deploy", None)
            .await
            .unwrap()
            .unwrap()
            .job_id,
        asia
    );
}

#[tokio::test]
async fn env_inputs_come_from_the_job_environment() {
    let (_tdb, c) = setup().await;
    let act = flow::action("envy")
        .input("x", "number")
        .env_input("token", "string")
        .output("seen", "string")
        .model();
    let wf = call_once("envy_wf", "envy", ("seen", "string"), "seen");
    load(&c, &[act, wf]).await;
    let env = json!({"token": "s3cret", "other": 1});
    let job = db::create_job(
        &c,
        "envy_wf",
        &json!({"x": 1}),
        db::CreateJob {
            env: Some(&env),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    db::announce(&c, "w1", "envy", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "envy", None).await.unwrap().unwrap();
    assert_eq!(t.job_id, job);
    assert_eq!(t.inargs, json!({"x": 1}));
    assert_eq!(t.env, Some(json!({"token": "s3cret"})));
    db::task_done(
        &c,
        &t.cookie,
        &json!({"seen": t.env.unwrap()["token"].clone()}),
    )
    .await
    .unwrap();
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"seen": "s3cret"}))
    );
    // without the value in the environment the env input is just absent
    let job = create(&c, "envy_wf", json!({"x": 2})).await;
    let t = db::get_task(&c, "w1", "envy", Some(job))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.env, Some(json!({})));
}

#[tokio::test]
async fn disconnect_fails_a_retryable_task_softly_and_others_hard() {
    let (_tdb, c) = setup().await;
    load(
        &c,
        &call_models("soft_act", |cfg| {
            cfg.retryable = Some(true);
            cfg.retry = Some(retry(2, "1 minute"));
        }),
    )
    .await;
    load(&c, &call_models("hard_act", |_| {})).await;
    let soft = create(&c, "soft_act_wf", json!({"input": 1})).await;
    let hard = create(&c, "hard_act_wf", json!({"input": 1})).await;
    let waiting = create(&c, "hard_act_wf", json!({"input": 5})).await;
    db::announce(&c, "w1", "soft_act", None, None)
        .await
        .unwrap();
    db::announce(&c, "w1", "hard_act", None, None)
        .await
        .unwrap();
    let ts = db::get_task(&c, "w1", "soft_act", None)
        .await
        .unwrap()
        .unwrap();
    let th = db::get_task(&c, "w1", "hard_act", Some(hard))
        .await
        .unwrap()
        .unwrap();
    db::disconnect(&c, "w1").await.unwrap();

    assert_eq!(state(&c, soft).await, "retrywait");
    let task_state = job_col(&c, soft, "task_state").await;
    assert_eq!(task_state["error"]["class"], json!("soft"));
    assert!(task_state["error"]["msg"]
        .as_str()
        .unwrap()
        .contains("disconnected"));
    assert_eq!(state(&c, hard).await, "error");
    let err = db::get_job_status(&c, hard).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("normal"));
    assert!(
        err["msg"].as_str().unwrap().contains("w1 disconnected"),
        "{err}"
    );
    // a task nobody had is untouched
    assert_eq!(state(&c, waiting).await, "ready");
    // the worker is gone: its announcements and cookies with it
    assert_eq!(count(&c, "worker_actions").await, 0);
    assert_eq!(
        code_of(db::get_task(&c, "w1", "hard_act", None).await),
        db::ErrorCode::UnknownWorker
    );
    for cookie in [ts.cookie, th.cookie] {
        assert_eq!(
            code_of(db::task_done(&c, &cookie, &json!({"counter": 1})).await),
            db::ErrorCode::UnknownCookie
        );
    }
    // the retry goes to another worker
    make_due(&c, soft).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    work_one(&c, "w2", "soft_act", examples::add_answer).await;
    assert_eq!(
        db::get_job_status(&c, soft).await.unwrap(),
        Some(json!({"output": 4}))
    );
}

#[tokio::test]
async fn with_the_requeue_policy_a_dead_workers_task_is_ready_again() {
    let (tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    c.execute(
        "update jobcenter.settings set value = '\"requeue\"' where name = 'dead_worker_policy'",
        &[],
    )
    .await
    .unwrap();
    let ready = format!("action:{}:ready", action_id(&c, "add").await);
    let job = create(&c, "add_wf", json!({"input": 1})).await;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "add", None).await.unwrap().unwrap();
    let mut l = Listener::new(&tdb, &[&ready]).await;
    db::disconnect(&c, "w1").await.unwrap();
    assert_eq!(state(&c, job).await, "ready");
    let (ch, payload) = l.next().await.expect("ready again");
    assert_eq!(ch, ready);
    assert_eq!(
        serde_json::from_str::<Value>(&payload).unwrap(),
        json!({"job_id": job})
    );
    assert_eq!(
        code_of(db::task_done(&c, &t.cookie, &json!({"counter": 1})).await),
        db::ErrorCode::UnknownCookie
    );
    let (jid, inargs) = work_one(&c, "w2", "add", examples::add_answer).await;
    assert_eq!(jid, job);
    assert_eq!(inargs, json!({"counter": 1, "step": 3}));
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(
        log_states(&c, job).await,
        vec!["start:done", "add:done", "end:finished"]
    );
}

#[tokio::test]
async fn withdraw_removes_one_announcement() {
    let (_tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    load(&c, &call_models("sub", |_| {})).await;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    db::announce(&c, "w1", "sub", None, None).await.unwrap();
    assert!(db::withdraw(&c, "w1", "add").await.unwrap());
    assert!(!db::withdraw(&c, "w1", "add").await.unwrap());
    assert!(!db::withdraw(&c, "nobody", "add").await.unwrap());
    create(&c, "add_wf", json!({"input": 1})).await;
    let sub = create(&c, "sub_wf", json!({"input": 1})).await;
    assert_eq!(
        code_of(db::get_task(&c, "w1", "add", None).await),
        db::ErrorCode::UnknownWorker
    );
    assert_eq!(
        db::get_task(&c, "w1", "sub", None)
            .await
            .unwrap()
            .unwrap()
            .job_id,
        sub
    );
    // the worker itself is still alive
    let live: i64 = c
        .query_one(
            "select count(*) from jobcenter.workers where name = 'w1' and stopped is null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1);
}

#[tokio::test]
async fn do_worker_check_disconnects_silent_workers() {
    let (_tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    let job = create(&c, "add_wf", json!({"input": 1})).await;
    let old = db::announce(&c, "old", "add", None, None).await.unwrap();
    let fresh = db::announce(&c, "fresh", "add", None, None).await.unwrap();
    db::get_task(&c, "old", "add", None).await.unwrap().unwrap();
    assert_eq!(db::do_worker_check(&c).await.unwrap(), 0);
    c.execute(
        "update jobcenter.workers set last_ping = now() - interval '1 hour' where worker_id = $1",
        &[&old],
    )
    .await
    .unwrap();
    assert_eq!(db::do_worker_check(&c).await.unwrap(), 1);
    assert_eq!(db::do_worker_check(&c).await.unwrap(), 0);
    let stopped: Vec<(i64, bool)> = c
        .query(
            "select worker_id, stopped is not null from jobcenter.workers order by worker_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(stopped, vec![(old, true), (fresh, false)]);
    assert_eq!(state(&c, job).await, "error");
    // a ping keeps a worker alive
    c.execute(
        "update jobcenter.workers set last_ping = now() - interval '1 hour' where worker_id = $1",
        &[&fresh],
    )
    .await
    .unwrap();
    db::ping(&c, fresh).await.unwrap();
    assert_eq!(db::do_worker_check(&c).await.unwrap(), 0);
}

#[tokio::test]
async fn a_workflow_role_is_checked_through_nested_membership() {
    let (_tdb, c) = setup().await;
    let f = flow::Flow::workflow("secret")
        .role("ops")
        .output("who", "string");
    let wf = f.end(vec![set(path(Ns::O, &["who"]), var(Ns::E, &["jcclient"]))]);
    load(&c, &[wf]).await;
    let user: String = c
        .query_one("select current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "postgres");
    let e = db::create_job(&c, "secret", &json!({}), Default::default())
        .await
        .expect_err("not a member");
    assert_eq!(e.code(), Some(db::ErrorCode::NotAuthorized));
    assert!(e.to_string().contains("postgres"), "{e}");
    assert_eq!(count(&c, "jobs").await, 0);

    c.batch_execute(
        "insert into jobcenter.jc_roles values ('postgres'), ('team'), ('ops');
         insert into jobcenter.jc_role_members (rolename, member_of) values ('postgres', 'team');",
    )
    .await
    .unwrap();
    // one level is not enough: team is not ops
    assert_eq!(
        code_of(db::create_job(&c, "secret", &json!({}), Default::default()).await),
        db::ErrorCode::NotAuthorized
    );
    c.batch_execute(
        "insert into jobcenter.jc_role_members (rolename, member_of) values ('team', 'ops')",
    )
    .await
    .unwrap();
    let job = create(&c, "secret", json!({})).await;
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"who": "postgres"}))
    );
}

#[tokio::test]
async fn impersonation_needs_a_grant_and_sets_the_client_identity() {
    let (_tdb, c) = setup().await;
    let f = flow::Flow::workflow("whoami").output("who", "string");
    let wf = f.end(vec![set(path(Ns::O, &["who"]), var(Ns::E, &["jcclient"]))]);
    let f = flow::Flow::workflow("opsonly")
        .role("ops")
        .output("who", "string");
    let ops = f.end(vec![set(path(Ns::O, &["who"]), var(Ns::E, &["jcclient"]))]);
    load(&c, &[wf, ops]).await;
    c.batch_execute("insert into jobcenter.jc_roles values ('alice'), ('ops')")
        .await
        .unwrap();
    let as_alice = db::CreateJob {
        impersonate: Some("alice"),
        ..Default::default()
    };
    let e = db::create_job(&c, "whoami", &json!({}), as_alice.clone())
        .await
        .expect_err("no grant");
    assert_eq!(e.code(), Some(db::ErrorCode::NotAuthorized));
    assert!(e.to_string().contains("alice"), "{e}");
    assert_eq!(count(&c, "jobs").await, 0);

    c.batch_execute(
        "insert into jobcenter.jc_impersonate_roles (rolename, impersonates) \
         values ('postgres', 'alice')",
    )
    .await
    .unwrap();
    let job = db::create_job(&c, "whoami", &json!({}), as_alice.clone())
        .await
        .unwrap()
        .job_id;
    let env = job_col(&c, job, "environment").await;
    assert_eq!(env["jcclient"], json!("alice"));
    assert_eq!(env["jcimpersonate"], json!("alice"));
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"who": "alice"}))
    );
    // the client identity cannot be forged through the environment argument
    let forged = json!({"jcclient": "mallory", "jcimpersonate": "mallory", "x": 1});
    let job = db::create_job(
        &c,
        "whoami",
        &json!({}),
        db::CreateJob {
            env: Some(&forged),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    let env = job_col(&c, job, "environment").await;
    assert_eq!(env["jcclient"], json!("postgres"));
    assert_eq!(env.get("jcimpersonate"), None);
    assert_eq!(env["x"], json!(1));
    // the role check applies to the impersonated identity
    assert_eq!(
        code_of(db::create_job(&c, "opsonly", &json!({}), as_alice.clone()).await),
        db::ErrorCode::NotAuthorized
    );
    c.batch_execute("insert into jobcenter.jc_role_members values ('alice', 'ops')")
        .await
        .unwrap();
    let job = db::create_job(&c, "opsonly", &json!({}), as_alice)
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"who": "alice"}))
    );
    // and not to the session user: postgres itself is not in ops
    assert_eq!(
        code_of(db::create_job(&c, "opsonly", &json!({}), Default::default()).await),
        db::ErrorCode::NotAuthorized
    );
    // announce is checked the same way
    let act = flow::action("opsact").role("ops").model();
    load(&c, &[act]).await;
    assert_eq!(
        code_of(db::announce(&c, "w1", "opsact", None, None).await),
        db::ErrorCode::NotAuthorized
    );
    db::announce(&c, "w1", "opsact", Some("alice"), None)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_procedure_runs_inline_without_a_worker() {
    let (_tdb, c) = setup().await;
    c.batch_execute(
        "create function public.double_it(a jsonb) returns jsonb language sql as \
         $$ select jsonb_build_object('out', (a ->> 'x')::numeric * 2) $$;
         create function public.fail_it(a jsonb) returns jsonb language plpgsql as \
         $$ begin raise exception 'kaputt %', a ->> 'x'; end $$;",
    )
    .await
    .unwrap();
    let double = flow::procedure("public.double_it")
        .input("x", "number")
        .output("out", "number")
        .model();
    let fail = flow::procedure("public.fail_it")
        .input("x", "number")
        .output("out", "number")
        .model();
    let doubler = call_once("doubler", "public.double_it", ("y", "number"), "out");

    // try: call fail_it; catch: v.caught = e._error
    let mut f = flow::Flow::workflow("failer")
        .input("x", "number")
        .output("caught", "object");
    let call = f.call(
        "public.fail_it",
        vec![set(path(Ns::I, &["x"]), var(Ns::A, &["x"]))],
        vec![],
    );
    let skip = f.no_op();
    f.goto(skip, skip + 2);
    let catch = f.eval(vec![set(path(Ns::V, &["caught"]), var(Ns::E, &["_error"]))]);
    f.on_error(call, call, catch);
    let failer = f.end(vec![set(path(Ns::O, &["caught"]), var(Ns::V, &["caught"]))]);

    let mut f = flow::Flow::workflow("failer_uncaught").input("x", "number");
    f.call(
        "public.fail_it",
        vec![set(path(Ns::I, &["x"]), var(Ns::A, &["x"]))],
        vec![],
    );
    let uncaught = f.end(vec![]);
    load(&c, &[double, fail, doubler, failer, uncaught]).await;

    let job = create(&c, "doubler", json!({"x": 21})).await;
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"y": 42}))
    );
    assert_eq!(
        log_states(&c, job).await,
        vec!["start:done", "public.double_it:done", "end:finished"]
    );
    assert_eq!(count(&c, "workers").await, 0);

    let job = create(&c, "failer", json!({"x": 7})).await;
    let out = db::get_job_status(&c, job).await.unwrap().unwrap();
    assert_eq!(out["caught"]["class"], json!("normal"), "{out}");
    let msg = out["caught"]["msg"].as_str().unwrap();
    assert!(
        msg.contains("kaputt 7") && msg.contains("public.fail_it"),
        "{msg}"
    );
    assert_eq!(
        log_states(&c, job).await,
        vec![
            "start:done",
            "public.fail_it:error",
            "eval:done",
            "end:finished"
        ]
    );

    let job = create(&c, "failer_uncaught", json!({"x": 8})).await;
    assert_eq!(state(&c, job).await, "error");
    let err = db::get_job_status(&c, job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("normal"));
    assert!(err["msg"].as_str().unwrap().contains("kaputt 8"), "{err}");
}

#[tokio::test]
async fn cancel_job_aborts_a_waiting_job_and_voids_its_cookie() {
    let (tdb, c) = setup().await;
    load(&c, &call_models("add", |_| {})).await;
    let ready_job = create(&c, "add_wf", json!({"input": 1})).await;
    let working_job = create(&c, "add_wf", json!({"input": 2})).await;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "add", Some(working_job))
        .await
        .unwrap()
        .unwrap();
    let done_ch = format!("job:{ready_job}:finished");
    let mut l = Listener::new(&tdb, &["job:finished", &done_ch]).await;

    db::cancel_job(&c, ready_job, "changed my mind", false)
        .await
        .unwrap();
    assert_eq!(state(&c, ready_job).await, "error");
    let err = db::get_job_status(&c, ready_job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("abort"));
    assert_eq!(err["msg"], json!("changed my mind"));
    assert_eq!(
        log_states(&c, ready_job).await,
        vec!["start:done", "add:error"]
    );
    let notes = l.drain(Duration::from_millis(500)).await;
    assert!(notes.contains(&("job:finished".into(), ready_job.to_string())));
    assert!(notes.contains(&(done_ch.clone(), String::new())));
    // the cancelled task is no longer offered
    assert_eq!(db::get_task(&c, "w1", "add", None).await.unwrap(), None);

    // as the original, a job a worker is running is only cancelled with force
    assert_eq!(
        code_of(db::cancel_job(&c, working_job, "stop", false).await),
        db::ErrorCode::WrongState
    );
    assert_eq!(state(&c, working_job).await, "working");
    db::cancel_job(&c, working_job, "stop", true).await.unwrap();
    assert_eq!(state(&c, working_job).await, "error");
    assert_eq!(
        code_of(db::task_done(&c, &t.cookie, &json!({"counter": 3})).await),
        db::ErrorCode::UnknownCookie
    );
    let err = db::get_job_status(&c, working_job).await.unwrap().unwrap()["error"].clone();
    assert_eq!(err["class"], json!("abort"));
}

#[tokio::test]
async fn retry_job_runs_a_failed_job_again_keeping_its_variables() {
    let (_tdb, c) = setup().await;
    let act = examples::add();
    let mut f = flow::Flow::workflow("counting")
        .output("runs", "number")
        .output("result", "number");
    f.eval(vec![set(
        path(Ns::V, &["runs"]),
        bin(
            BinOp::Add,
            bin(BinOp::DefinedOr, var(Ns::V, &["runs"]), lit(0)),
            lit(1),
        ),
    )]);
    f.call(
        "add",
        vec![
            set(path(Ns::I, &["counter"]), var(Ns::V, &["runs"])),
            set(path(Ns::I, &["step"]), lit(10)),
        ],
        vec![set(path(Ns::V, &["result"]), var(Ns::O, &["counter"]))],
    );
    let wf = f.end(vec![copy(Ns::V, Ns::O, Some(&["runs", "result"]))]);
    load(&c, &[act, wf]).await;
    let job = create(&c, "counting", json!({})).await;
    work_one(&c, "w1", "add", |_| json!({"error": "first time fails"})).await;
    assert_eq!(state(&c, job).await, "error");

    db::retry_job(&c, job, "try harder").await.unwrap();
    assert_eq!(state(&c, job).await, "ready");
    assert_eq!(db::get_job_status(&c, job).await.unwrap(), None);
    let (_, inargs) = work_one(&c, "w1", "add", examples::add_answer).await;
    assert_eq!(inargs, json!({"counter": 2, "step": 10}));
    assert_eq!(
        db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"runs": 2, "result": 12}))
    );
    let states = log_states(&c, job).await;
    assert_eq!(
        states,
        vec![
            "start:done",
            "eval:done",
            "add:error",
            "add:plotting",
            "start:done",
            "eval:done",
            "add:done",
            "end:finished"
        ]
    );
    let retry_row: Value = c
        .query_one(
            "select task_state from jobcenter.job_task_log where job_id = $1 and state = 'plotting'",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(retry_row, json!({"retry": true, "reason": "try harder"}));
}

/// The rows of `jobs` read so far (sequentially and through its indexes), as the statistics
/// collector has them once this session's counts are flushed.
async fn jobs_rows_read(c: &Client) -> i64 {
    c.batch_execute("select pg_stat_force_next_flush()")
        .await
        .unwrap();
    c.query_one(
        "select pg_stat_clear_snapshot(), \
                (select seq_tup_read from pg_stat_user_tables where relid = 'jobcenter.jobs'::regclass) \
              + (select sum(idx_tup_read)::bigint from pg_stat_user_indexes \
                 where relid = 'jobcenter.jobs'::regclass)",
        &[],
    )
    .await
    .unwrap()
    .get(1)
}

/// A take goes to the head of the ready queue through its index however stale the planner's
/// statistics are. Analyzed while no job was ready, with job_aborts never analyzed, the
/// planner would otherwise think the ready jobs few and make a plan that reads and sorts all
/// of them at every take (a drain of n jobs then costs n² rows).
#[tokio::test]
async fn a_take_reads_few_rows_however_stale_the_statistics() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    c.batch_execute(
        "alter table jobcenter.jobs set (autovacuum_enabled = false); \
         alter table jobcenter.job_aborts set (autovacuum_enabled = false)",
    )
    .await
    .unwrap();
    for i in 0..20 {
        create(&c, "calltest", json!({"input": i})).await;
        work_one(
            &c,
            "w",
            "add",
            |a| json!({"counter": a["counter"].as_i64().unwrap() + 1}),
        )
        .await;
    }
    c.batch_execute(
        "analyze jobcenter.jobs; \
         select count(jobcenter.create_job('calltest', jsonb_build_object('input', g))) \
         from generate_series(1, 2000) g",
    )
    .await
    .unwrap();
    // a new session plans the take now, with those statistics
    let w = tdb.connect().await.unwrap();
    db::announce(&w, "w2", "add", None, None).await.unwrap();
    assert!(db::get_task(&w, "w2", "add", None).await.unwrap().is_some());
    let before = jobs_rows_read(&w).await;
    for _ in 0..10 {
        assert!(db::get_task(&w, "w2", "add", None).await.unwrap().is_some());
    }
    let per_take = (jobs_rows_read(&w).await - before) / 10;
    assert!(
        per_take < 20,
        "a take read {per_take} rows of jobs, with some 2,000 ready"
    );
}
