//! Rate limits per action (`rate` in an action's config): at most `limit` tasks of the
//! action start in any window of `per`, however many connections take them; the tasks the
//! limit holds back stay ready and start in later windows, offered again by the maestro's
//! timer (do_timeout) when the window has room; poll_tasks offers no more than the room;
//! actions without a limit are untouched; a limit changed in place applies at once.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::{
    action_id, count, create_calltests, db, examples, jobs_in, load, polled, setup, state, Listener,
};
use jcl::{Model, RateConfig};
use serde_json::json;
use tokio_postgres::Client;

fn add_rated(limit: u32, per: &str) -> Model {
    let mut m = examples::add();
    m.config.rate = Some(RateConfig {
        limit,
        per: per.to_owned(),
    });
    m
}

/// Moves the window of the `add` queue back by `by`, as if that much time had passed.
async fn age_window(c: &Client, by: &str) {
    c.execute(
        "update jobcenter.action_rates set
             starts = array(select s - $1::text::interval from unnest(starts) s),
             wake = wake - $1::text::interval",
        &[&by],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_burst_starts_the_limit_per_window_across_two_connections_and_loses_nothing() {
    let (tdb, c) = setup().await;
    let c2 = tdb.connect().await.unwrap();
    load(&c, &[add_rated(3, "1 hour"), examples::calltest()]).await;
    let queue = action_id(&c, "add").await;
    let jobs = create_calltests(&c, 8).await;
    let w1 = db::announce(&c, "w1", "add", None, None).await.unwrap();
    db::announce(&c2, "w2", "add", None, None).await.unwrap();
    assert_eq!(
        polled(&c, w1).await,
        3,
        "poll offers the window's room only"
    );

    // first window: two via one gateway, then get_tasks(5) of the other gets the one left
    let mut taken = db::get_tasks(&c, "w1", "add", 2).await.unwrap();
    assert_eq!(taken.len(), 2);
    let more = db::get_tasks(&c2, "w2", "add", 5).await.unwrap();
    assert_eq!(more.len(), 1, "get_tasks takes no more than the room left");
    taken.extend(more);
    assert!(db::get_task(&c, "w1", "add", None).await.unwrap().is_none());
    assert!(db::get_task(&c2, "w2", "add", Some(jobs[7]))
        .await
        .unwrap()
        .is_none());
    assert_eq!(jobs_in(&c, "ready").await, 5, "the rest stay ready");
    assert_eq!(polled(&c, w1).await, 0, "a full window is not offered");
    // the maestro is told when the window has room again
    let next: f64 = c
        .query_one("select jobcenter.next_timeout()", &[])
        .await
        .unwrap()
        .get(0);
    assert!((3500.0..=3600.0).contains(&next), "next_timeout {next}");

    // the window rolls over: the timer offers the first three waiting tasks again
    let mut l = Listener::new(&tdb, &[&format!("action:{queue}:ready")]).await;
    age_window(&c, "1 hour").await;
    c.execute("select jobcenter.do_timeout()", &[])
        .await
        .unwrap();
    let offered = l.drain(Duration::from_millis(500)).await;
    assert_eq!(offered.len(), 3, "{offered:?}");
    let got: Vec<serde_json::Value> = offered
        .iter()
        .map(|(_, p)| serde_json::from_str(p).unwrap())
        .collect();
    let want: Vec<serde_json::Value> = jobs[3..6].iter().map(|j| json!({"job_id": j})).collect();
    assert_eq!(got, want);
    assert_eq!(polled(&c, w1).await, 3);
    taken.extend(db::get_tasks(&c2, "w2", "add", 10).await.unwrap());
    assert_eq!(taken.len(), 6);
    age_window(&c, "1 hour").await;
    taken.extend(db::get_tasks(&c, "w1", "add", 10).await.unwrap());
    assert_eq!(taken.len(), 8);
    assert_eq!(jobs_in(&c, "ready").await, 0);

    // every task was taken once, and every job finishes
    let mut ids: Vec<i64> = taken.iter().map(|t| t.job_id).collect();
    ids.sort_unstable();
    assert_eq!(ids, jobs);
    for t in &taken {
        db::task_done(&c, &t.cookie, &examples::add_answer(&t.inargs))
            .await
            .unwrap();
    }
    for j in &jobs {
        assert_eq!(state(&c, *j).await, "finished");
    }
}

#[tokio::test]
async fn takers_of_a_rated_action_wait_for_each_other_and_never_exceed_the_limit() {
    let (tdb, c) = setup().await;
    let c2 = tdb.connect().await.unwrap();
    load(&c, &[add_rated(3, "1 hour"), examples::calltest()]).await;
    create_calltests(&c, 6).await;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    db::announce(&c2, "w2", "add", None, None).await.unwrap();
    c.batch_execute("begin").await.unwrap();
    assert_eq!(db::get_tasks(&c, "w1", "add", 2).await.unwrap().len(), 2);
    // the other connection's take waits for the first transaction's count
    let other = tokio::spawn(async move {
        let n = db::get_tasks(&c2, "w2", "add", 5).await.unwrap().len();
        (n, c2)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!other.is_finished(), "the second taker did not wait");
    c.batch_execute("commit").await.unwrap();
    let (n, _c2) = other.await.unwrap();
    assert_eq!(n, 1);
    assert_eq!(jobs_in(&c, "ready").await, 3);
}

#[tokio::test]
async fn an_action_without_a_limit_takes_everything_and_keeps_no_window() {
    let (_tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    create_calltests(&c, 8).await;
    let w = db::announce(&c, "w", "add", None, None).await.unwrap();
    assert_eq!(polled(&c, w).await, 8);
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 8);
    assert_eq!(count(&c, "action_rates").await, 0);
    let next: Option<f64> = c
        .query_one("select jobcenter.next_timeout()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(next.is_none(), "no wake-up without a limit: {next:?}");
}

#[tokio::test]
async fn a_timed_window_starts_no_more_than_the_limit_in_any_second() {
    let (_tdb, c) = setup().await;
    load(&c, &[add_rated(2, "1 second"), examples::calltest()]).await;
    let jobs = create_calltests(&c, 6).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let t0 = std::time::Instant::now();
    let mut n = 0;
    while n < jobs.len() {
        assert!(t0.elapsed() < Duration::from_secs(10), "took {n} in 10 s");
        for t in db::get_tasks(&c, "w", "add", 10).await.unwrap() {
            db::task_done(&c, &t.cookie, &examples::add_answer(&t.inargs))
                .await
                .unwrap();
            n += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 6 tasks at 2 a second: the third pair starts two seconds after the first
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    let most: i64 = c
        .query_one(
            "select max((select count(*) from jobcenter.job_task_log b
                         where b.task_started >= a.task_started
                           and b.task_started < a.task_started + interval '1 second'))
             from jobcenter.job_task_log a where a.task_started is not null",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(most, 2, "starts in one second");
    for j in &jobs {
        assert_eq!(state(&c, *j).await, "finished");
    }
}

#[tokio::test]
async fn a_limit_replaced_in_place_applies_to_the_next_take() {
    let (_tdb, c) = setup().await;
    load(&c, &[add_rated(1, "1 hour"), examples::calltest()]).await;
    create_calltests(&c, 5).await;
    let w = db::announce(&c, "w", "add", None, None).await.unwrap();
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 1);
    assert_eq!(polled(&c, w).await, 0);
    let id = action_id(&c, "add").await;
    let model = serde_json::to_value(add_rated(3, "1 hour")).unwrap();
    c.execute("select jobcenter.replace_action($1, $2)", &[&id, &model])
        .await
        .unwrap();
    assert_eq!(polled(&c, w).await, 2);
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 2);
    // and without a limit, no limit
    let model = serde_json::to_value(examples::add()).unwrap();
    c.execute("select jobcenter.replace_action($1, $2)", &[&id, &model])
        .await
        .unwrap();
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn the_timer_keeps_offering_held_back_tasks_as_each_start_leaves_the_window() {
    let (tdb, c) = setup().await;
    load(&c, &[add_rated(2, "1 hour"), examples::calltest()]).await;
    let queue = action_id(&c, "add").await;
    create_calltests(&c, 4).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 2);
    // the two starts 61 and 59 minutes ago: one has left the window, the wake-up is due
    c.execute(
        "update jobcenter.action_rates set wake = now() - interval '1 minute',
             starts = array[now() - interval '61 minutes', now() - interval '59 minutes']",
        &[],
    )
    .await
    .unwrap();
    let mut l = Listener::new(&tdb, &[&format!("action:{queue}:ready")]).await;
    c.execute("select jobcenter.do_timeout()", &[])
        .await
        .unwrap();
    assert_eq!(l.drain(Duration::from_millis(300)).await.len(), 1);
    // nobody took it: the next wake-up is when the other start leaves, a minute on
    let wake: f64 = c
        .query_one(
            "select extract(epoch from wake - now())::float8 from jobcenter.action_rates",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!((50.0..=70.0).contains(&wake), "wake in {wake} s");
    age_window(&c, "2 minutes").await;
    c.execute("select jobcenter.do_timeout()", &[])
        .await
        .unwrap();
    assert_eq!(
        l.drain(Duration::from_millis(300)).await.len(),
        2,
        "both ready tasks"
    );
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 2);
    assert_eq!(jobs_in(&c, "ready").await, 0);
}
