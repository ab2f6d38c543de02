//! A rate-limited action through the real `jcapi`: two gateways serve one action limited to
//! 3 tasks per second; 9 jobs all finish, and no second of the step log holds more than 3
//! task starts. The gateways sweep rarely here, so the tasks a full window holds back are
//! offered again by the timer's wake-up (do_timeout, called as the maestro does).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn two_gateways_start_no_more_than_the_rate_and_every_job_finishes() {
    let env = env().await;
    load_rated(&env, 3).await;
    let slow_sweep = ["--sweep-interval", "60s"];
    let g1 = Gateway::start(&env, &slow_sweep).await;
    let g2 = Gateway::start(&env, &slow_sweep).await;
    let done = Done::default();
    let w1 = worker(
        announced(&g1, "tcp", "w1", "rated", 4).await,
        "rated",
        done.clone(),
        Duration::ZERO,
        add,
    );
    let w2 = worker(
        announced(&g2, "ws", "w2", "rated", 4).await,
        "rated",
        done.clone(),
        Duration::ZERO,
        add,
    );
    let timer = timer(&env).await;

    let mut c = login(&g1, "tcp", "alice", ALICE_PW).await;
    let mut jobs = vec![];
    for i in 0..9 {
        jobs.push(c.create_job("ratedtest", json!({"input": i})).await);
    }
    for (i, job) in jobs.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert_eq!(c.job_done(*job).await, json!({"output": i + 3}));
    }
    timer.abort();
    w1.abort();
    w2.abort();
    assert_eq!(done.lock().unwrap().len(), 9);

    let starts: Vec<f64> = env
        .db
        .query(
            "select extract(epoch from l.task_started)::float8 from jobcenter.job_task_log l \
             join jobcenter.tasks t using (task_id) join jobcenter.actions a using (action_id) \
             where a.name = 'rated' and l.task_started is not null order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(starts.len(), 9, "{starts:?}");
    for (i, s) in starts.iter().enumerate() {
        let within = starts[i..].iter().filter(|t| **t < s + 1.0).count();
        assert!(
            within <= 3,
            "{within} starts in the second after {s}: {starts:?}"
        );
    }
    // three windows: the last three started at least two seconds after the first
    assert!(starts[8] - starts[0] >= 2.0, "{starts:?}");
}
