//! The acceptance path: a workflow calling one action runs with a worker driven by hand.
#![allow(clippy::unwrap_used)]

use engine_tests::examples::{add, add_answer, calltest};
use engine_tests::{action_id, db, load, log_states, setup, work_one, Listener};
use serde_json::json;

#[tokio::test]
async fn calltest_runs_with_a_worker_and_logs_each_step() {
    let (tdb, c) = setup().await;
    load(&c, &[add(), calltest()]).await;
    let ready = format!("action:{}:ready", action_id(&c, "add").await);
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

    let (jid, inargs) = work_one(&c, "w1", "add", add_answer).await;
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
