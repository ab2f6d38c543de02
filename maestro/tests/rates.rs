//! The real `maestro` wakes the tasks a rate limit held back: a worker that takes tasks only
//! when told (a ready notification, never polling) gets all three tasks of an action limited
//! to one per second, a second apart, because the maestro's timer offers each again as the
//! window moves on.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{db, load, setup, wait_all_ended, wait_listening, Maestro};
use futures_util::StreamExt;
use serde_json::json;
use tokio_postgres::{AsyncMessage, NoTls};

#[tokio::test]
async fn held_back_tasks_are_offered_again_as_the_window_moves_on() {
    let (tdb, c) = setup().await;
    let mut add = testkit::examples::add();
    add.config.rate = Some(jcl::RateConfig {
        limit: 1,
        per: "1 second".into(),
    });
    load(&c, &[add, testkit::examples::calltest()]).await;
    let _m = Maestro::start(&tdb.dsn, &[]);
    wait_listening(&c, 1).await;

    // the worker: a connection LISTENing on the queue, taking what it may at each notification
    let (w, mut conn) = tokio_postgres::connect(&tdb.dsn, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if let AsyncMessage::Notification(n) = msg {
                let _ = tx.send(n.payload().to_owned());
            }
        }
    });
    db::announce(&w, "w", "add", None, None).await.unwrap();
    let queue: i32 = c
        .query_one("select jobcenter.action_queue('add')", &[])
        .await
        .unwrap()
        .get(0);
    w.batch_execute(&format!("LISTEN \"action:{queue}:ready\""))
        .await
        .unwrap();
    let worker = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            for t in db::get_tasks(&w, "w", "add", 10).await.unwrap() {
                db::task_done(&w, &t.cookie, &testkit::examples::add_answer(&t.inargs))
                    .await
                    .unwrap();
            }
        }
    });

    let t0 = Instant::now();
    for i in 0..3 {
        db::create_job(&c, "calltest", &json!({"input": i}), Default::default())
            .await
            .unwrap();
    }
    wait_all_ended(&c, Duration::from_secs(10)).await;
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    let starts: Vec<f64> = c
        .query(
            "select extract(epoch from task_started)::float8 from jobcenter.job_task_log \
             where task_started is not null order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(starts.len(), 3, "{starts:?}");
    for pair in starts.windows(2) {
        assert!(pair[1] - pair[0] >= 1.0, "{starts:?}");
    }
    let states: Vec<String> = c
        .query("select state::text from jobcenter.jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, ["finished"; 3]);
    worker.abort();
}
