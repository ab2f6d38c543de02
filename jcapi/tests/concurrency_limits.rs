//! A concurrency-limited action through the real `jcapi`: two gateways with workers of four
//! slots each serve one action limited to 2 tasks at work at once; 10 jobs all finish, and the
//! step log never shows a third task at work while two were. The gateways sweep rarely here,
//! so the tasks the limit holds back are offered by the ends of the running ones (and the
//! timer's wake-up, do_timeout, called as the maestro does).
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use testkit::examples::{calls, counter_action};

#[tokio::test]
async fn two_gateways_run_no_more_than_the_limit_at_once_and_every_job_finishes() {
    let env = env().await;
    let capped = counter_action("capped")
        .config(|c| c.concurrency = Some(2))
        .model();
    for m in [capped, calls("cappedtest", "capped")] {
        jc_db::load_model(&env.db, &m, &[]).await.unwrap();
    }
    let slow_sweep = ["--sweep-interval", "60s"];
    let g1 = Gateway::start(&env, &slow_sweep).await;
    let g2 = Gateway::start(&env, &slow_sweep).await;
    let done = Done::default();
    let busy = Duration::from_millis(100);
    let w1 = worker(
        announced(&g1, "tcp", "w1", "capped", 4).await,
        "capped",
        done.clone(),
        busy,
        add,
    );
    let w2 = worker(
        announced(&g2, "ws", "w2", "capped", 4).await,
        "capped",
        done.clone(),
        busy,
        add,
    );
    let timer = timer(&env).await;

    let mut c = login(&g1, "tcp", "alice", ALICE_PW).await;
    let mut jobs = vec![];
    for i in 0..10 {
        jobs.push(c.create_job("cappedtest", json!({"input": i})).await);
    }
    for (i, job) in jobs.iter().enumerate() {
        let i = i64::try_from(i).unwrap();
        assert_eq!(c.job_done(*job).await, json!({"output": i + 3}));
    }
    timer.abort();
    w1.abort();
    w2.abort();
    assert_eq!(done.lock().unwrap().len(), 10);

    let spans: Vec<(f64, f64)> = env
        .db
        .query(
            "select extract(epoch from l.task_started)::float8,
                    extract(epoch from l.task_completed)::float8
             from jobcenter.job_task_log l
             join jobcenter.tasks t using (task_id) join jobcenter.actions a using (action_id)
             where a.name = 'capped' and l.task_started is not null
               and l.task_completed is not null order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(spans.len(), 10, "{spans:?}");
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && b > s).count())
        .max()
        .unwrap();
    assert!(most <= 2, "{most} tasks at work at once: {spans:?}");
    // the limit was reached: the ten tasks of 100 ms took at least five rounds of two
    let first = spans[0].0;
    let last = spans.iter().map(|(_, b)| *b).fold(first, f64::max);
    assert!(last - first >= 0.45, "{spans:?}");
}
