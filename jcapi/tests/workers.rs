//! Workers that go away through the real `jcapi` binary: a worker killed with a task in hand
//! (a retryable action's task is retried and done by another worker; a non-retryable one's
//! job ends in error and its client is told), and a graceful shutdown that disconnects the
//! workers in the engine.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A worker connection takes the task offered for `job` and keeps it.
async fn take_and_hold(w: &mut Rpc, action: &str, job: i64) -> Value {
    let offer = w.notification("task_ready", WAIT).await.expect("an offer");
    assert_eq!(offer, json!({"actionname": action, "job_id": job}));
    let task = w
        .call("get_task", json!({"actionname": action, "job_id": job}))
        .await;
    assert_eq!(task[0], job);
    assert_eq!(task[2], json!({"counter": 1, "step": 3}));
    task
}

async fn log_states(env: &Env, job: i64) -> Vec<String> {
    env.db
        .query(
            "select l.state::text from jobcenter.job_task_log l where l.job_id = $1 \
             order by l.job_task_log_id",
            &[&job],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn worker_stopped(env: &Env, name: &str) -> bool {
    env.db
        .query_opt(
            "select 1 from jobcenter.workers where name = $1 and stopped is not null",
            &[&name],
        )
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_killed_workers_retryable_task_is_done_by_another() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut doomed = announced(&g, "tcp", "doomed", "flaky", 1).await;
    let job = c.create_job("flakytest", json!({"input": 1})).await;
    take_and_hold(&mut doomed, "flaky", job).await;
    assert_eq!(job_state(&env.db, job).await, "working");
    doomed.kill();

    // The gateway disconnects it; the soft error makes the job wait for its retry.
    assert!(eventually(WAIT, || worker_stopped(&env, "doomed")).await);
    assert!(
        eventually(WAIT, || async {
            job_state(&env.db, job).await == "retrywait"
        })
        .await
    );
    let err: Value = env
        .db
        .query_one(
            "select task_state -> 'error' from jobcenter.job_task_log \
             where job_id = $1 and state = 'retrywait'",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(err["class"], "soft");
    assert!(err["msg"].as_str().unwrap().contains("doomed"), "{err}");

    // Another worker gets the retry once it is due (the maestro's do_timeout).
    let done = Done::default();
    let w = announced(&g, "ws", "heir", "flaky", 1).await;
    let heir = worker(w, "flaky", done.clone(), Duration::ZERO, add);
    assert!(
        eventually(WAIT, || async {
            env.db
                .query_one("select jobcenter.do_timeout()", &[])
                .await
                .unwrap();
            job_state(&env.db, job).await != "retrywait"
        })
        .await
    );
    assert_eq!(c.job_done(job).await, json!({"output": 4}));
    assert_eq!(done.lock().unwrap().get(&job), Some(&1));
    let states = log_states(&env, job).await;
    assert_eq!(
        states.iter().filter(|s| *s == "retrywait").count(),
        1,
        "{states:?}"
    );
    assert_eq!(states.last().map(String::as_str), Some("finished"));
    heir.abort();
}

#[tokio::test]
async fn a_killed_workers_non_retryable_task_fails_its_job() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "ws", "alice", ALICE_PW).await;
    let mut doomed = announced(&g, "ws", "doomed", "fragile", 1).await;
    let job = c.create_job("fragiletest", json!({"input": 1})).await;
    take_and_hold(&mut doomed, "fragile", job).await;
    doomed.kill();
    let out = c.job_done(job).await;
    assert_eq!(out["error"]["class"], "normal", "{out}");
    assert_eq!(out["error"]["msg"], "worker doomed disconnected", "{out}");
    assert_eq!(job_state(&env.db, job).await, "error");
    assert!(worker_stopped(&env, "doomed").await);
}

#[tokio::test]
async fn shutdown_disconnects_workers_and_closes_connections() {
    let env = env().await;
    let mut g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = announced(&g, "tcp", "busy", "flaky", 1).await;
    let job = c.create_job("flakytest", json!({"input": 1})).await;
    take_and_hold(&mut w, "flaky", job).await;
    let status = g.stop().await;
    assert!(status.success(), "{status:?}\n{}", g.log());
    assert!(c.closed(WAIT).await);
    assert!(w.closed(WAIT).await);
    assert!(worker_stopped(&env, "busy").await);
    assert_eq!(job_state(&env.db, job).await, "retrywait");
}
