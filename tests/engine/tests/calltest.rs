//! The acceptance path: a workflow calling one action runs with a worker driven by hand.
#![allow(clippy::unwrap_used)]

use engine_tests::{db, flow, load, log_states, setup, work_one, Listener};
use jcl::build::{lit, path, set, var};
use jcl::Ns;
use serde_json::json;

fn calltest() -> Vec<jcl::Model> {
    let add = flow::action("add")
        .input("counter", "number")
        .input("step", "number")
        .output("counter", "number")
        .model();
    let mut f = flow::Flow::workflow("calltest")
        .input("input", "number")
        .output("output", "number");
    f.call(
        "add",
        vec![
            set(path(Ns::I, &["counter"]), var(Ns::A, &["input"])),
            set(path(Ns::I, &["step"]), lit(3)),
        ],
        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["counter"]))],
    );
    let wf = f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))]);
    vec![add, wf]
}

#[tokio::test]
async fn calltest_runs_with_a_worker_and_logs_each_step() {
    let (tdb, c) = setup().await;
    load(&c, &calltest()).await;
    let action_id: i32 = c
        .query_one(
            "select action_id from jobcenter.actions where name = 'add'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let ready = format!("action:{action_id}:ready");
    let mut l = Listener::new(&tdb, &[&ready, "job:finished"]).await;

    let job = db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap();
    assert_eq!(job.listen, format!("job:{}:finished", job.job_id));
    assert_eq!(db::get_job_status(&c, job.job_id).await.unwrap(), None);
    let (channel, payload) = l.next().await.expect("ready notification");
    assert_eq!(channel, ready);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
        json!({"job_id": job.job_id})
    );

    let (jid, inargs) = work_one(
        &c,
        "w1",
        "add",
        |i| json!({"counter": i["counter"].as_i64().unwrap() + i["step"].as_i64().unwrap()}),
    )
    .await;
    assert_eq!(jid, job.job_id);
    assert_eq!(inargs, json!({"counter": 1, "step": 3}));
    assert_eq!(
        db::get_job_status(&c, job.job_id).await.unwrap(),
        Some(json!({"output": 4}))
    );
    assert_eq!(
        l.next().await,
        Some(("job:finished".into(), job.job_id.to_string()))
    );
    assert_eq!(
        log_states(&c, job.job_id).await,
        vec!["start:done", "add:done", "end:finished"]
    );
}
