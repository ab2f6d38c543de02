//! Concurrency limits per action (`concurrency` in an action's config): at most N tasks of
//! the action at work at once, however many connections take them; a take beyond the limit
//! gets fewer or none and the tasks stay ready; a task that ends in any way (done, failed,
//! timed out) frees its slot; a taker refused for a full limit is offered the next task when
//! one ends, or by the maestro's timer (do_timeout) when none does; poll_tasks counts no more
//! than the free slots; a larger limit counts at once.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine_tests::{
    action_id, create_calltests, db, examples, jobs_in, load, make_due, polled, setup, state,
    Listener,
};
use jcl::Model;
use serde_json::{json, Value};

fn add_limited(n: u32) -> Model {
    let mut m = examples::add();
    m.config.concurrency = Some(n);
    m
}

fn out(inargs: &Value) -> Value {
    json!({"counter": inargs["counter"].as_i64().unwrap() + inargs["step"].as_i64().unwrap()})
}

#[tokio::test]
async fn takes_beyond_the_limit_get_fewer_tasks_and_an_end_frees_a_slot() {
    let (_db, c) = setup().await;
    load(&c, &[add_limited(3), examples::calltest()]).await;
    let jobs = create_calltests(&c, 6).await;
    db::announce(&c, "w1", "add", None, None).await.unwrap();
    db::announce(&c, "w2", "add", None, None).await.unwrap();
    let first = db::get_tasks(&c, "w1", "add", 2).await.unwrap();
    assert_eq!(first.len(), 2);
    // one slot left: a batch of five gets one task
    let second = db::get_tasks(&c, "w2", "add", 5).await.unwrap();
    assert_eq!(second.len(), 1);
    assert!(db::get_task(&c, "w2", "add", None).await.unwrap().is_none());
    // the oldest jobs, in order; the others stay ready
    let taken: Vec<i64> = first.iter().chain(&second).map(|t| t.job_id).collect();
    assert_eq!(taken, jobs[..3].to_vec());
    for &j in &jobs[3..] {
        assert_eq!(state(&c, j).await, "ready");
    }
    // a job-specific take of a ready job is refused too while the limit is full
    assert!(db::get_task(&c, "w2", "add", Some(jobs[4]))
        .await
        .unwrap()
        .is_none());

    db::task_done(&c, &first[0].cookie, &out(&first[0].inargs))
        .await
        .unwrap();
    assert_eq!(state(&c, jobs[0]).await, "finished");
    let next = db::get_tasks(&c, "w2", "add", 5).await.unwrap();
    assert_eq!(next.iter().map(|t| t.job_id).collect::<Vec<_>>(), [jobs[3]]);
    assert_eq!(jobs_in(&c, "working").await, 3);
}

#[tokio::test]
async fn a_failed_or_timed_out_task_frees_its_slot() {
    let (_db, c) = setup().await;
    let mut add = add_limited(1);
    add.config.timeout = Some("1 hour".to_owned());
    load(&c, &[add, examples::calltest()]).await;
    let jobs = create_calltests(&c, 3).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert!(db::get_task(&c, "w", "add", None).await.unwrap().is_none());
    // a failed task (no retry: the job ends in error) frees the slot
    db::task_done(&c, &t.cookie, &json!({"error": "broken"}))
        .await
        .unwrap();
    assert_eq!(state(&c, jobs[0]).await, "error");
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert_eq!(t.job_id, jobs[1]);
    assert!(db::get_task(&c, "w", "add", None).await.unwrap().is_none());
    // a task that times out frees it too
    make_due(&c, jobs[1]).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_ne!(state(&c, jobs[1]).await, "working");
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert!(
        [jobs[1], jobs[2]].contains(&t.job_id),
        "a slot for the next task: {}",
        t.job_id
    );
}

#[tokio::test]
async fn a_refused_taker_is_offered_the_next_task_when_one_ends_or_by_the_timer() {
    let (tdb, c) = setup().await;
    load(&c, &[add_limited(1), examples::calltest()]).await;
    let queue = action_id(&c, "add").await;
    let channel = format!("action:{queue}:ready");
    let jobs = create_calltests(&c, 3).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    let mut l = Listener::new(&tdb, &[&channel, "timer"]).await;
    // refused: the limit is full; the maestro's timer is told of a wake-up a second on
    assert!(db::get_task(&c, "w", "add", None).await.unwrap().is_none());
    let (ch, _) = l.next().await.expect("the timer is told");
    assert_eq!(ch, "timer");
    // the end of the task at work offers the next ready one
    db::task_done(&c, &t.cookie, &out(&t.inargs)).await.unwrap();
    let (ch, payload) = l.next().await.expect("the next task is offered");
    assert_eq!(ch, channel);
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload["job_id"], json!(jobs[1]));

    // refused again: the end of the task offers the next ready one once, and the timer's
    // wake-up set by the refusal offers what is still ready then (the backstop for an end
    // that raced with the refusal)
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert!(db::get_task(&c, "w", "add", None).await.unwrap().is_none());
    l.drain(Duration::from_millis(200)).await;
    db::task_done(&c, &t.cookie, &out(&t.inargs)).await.unwrap();
    let offered = l.drain(Duration::from_millis(300)).await;
    assert_eq!(offered.len(), 1, "{offered:?}");
    c.execute("update jobcenter.action_rates set wake = now()", &[])
        .await
        .unwrap();
    db::do_timeout(&c).await.unwrap();
    let offered = l.drain(Duration::from_millis(300)).await;
    assert!(
        offered
            .iter()
            .any(|(ch, p)| ch == &channel && p.contains(&jobs[2].to_string())),
        "the timer offers the last ready task: {offered:?}"
    );
    let wake: Option<String> = c
        .query_one(
            "select wake::text from jobcenter.action_rates where queue = $1",
            &[&queue],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wake, None, "the wake-up is done with");
}

#[tokio::test]
async fn poll_tasks_counts_the_free_slots_and_a_larger_limit_counts_at_once() {
    let (_db, c) = setup().await;
    load(&c, &[add_limited(2), examples::calltest()]).await;
    create_calltests(&c, 5).await;
    let w = db::announce(&c, "w", "add", None, None).await.unwrap();
    assert_eq!(polled(&c, w).await, 2);
    let t = db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert_eq!(polled(&c, w).await, 1);
    db::get_task(&c, "w", "add", None).await.unwrap().unwrap();
    assert_eq!(polled(&c, w).await, 0, "a full limit offers nothing");
    // a new version with a larger limit: its room counts at once, the tasks at work keep
    // their slots
    load(&c, &[add_limited(4)]).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    assert_eq!(polled(&c, w).await, 2);
    assert_eq!(db::get_tasks(&c, "w", "add", 10).await.unwrap().len(), 2);
    assert_eq!(jobs_in(&c, "working").await, 4);
    db::task_done(&c, &t.cookie, &out(&t.inargs)).await.unwrap();
    assert_eq!(polled(&c, w).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_jobs_through_a_limit_of_three_never_have_a_fourth_task_at_work() {
    let (tdb, c) = setup().await;
    load(&c, &[add_limited(3), examples::calltest()]).await;
    create_calltests(&c, 40).await;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (tdb, stop) = (tdb.clone(), stop.clone());
        tokio::spawn(async move {
            let c = tdb.connect().await.unwrap();
            let mut most = 0;
            while !stop.load(Ordering::SeqCst) {
                most = most.max(jobs_in(&c, "working").await);
            }
            most
        })
    };
    let mut workers = vec![];
    for w in 0..6 {
        let tdb = tdb.clone();
        workers.push(tokio::spawn(async move {
            let c = tdb.connect().await.unwrap();
            let name = format!("w{w}");
            db::announce(&c, &name, "add", None, None).await.unwrap();
            let mut done = 0;
            let mut idle = 0;
            while idle < 50 {
                let tasks = db::get_tasks(&c, &name, "add", 2).await.unwrap();
                if tasks.is_empty() {
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
                idle = 0;
                tokio::time::sleep(Duration::from_millis(2)).await;
                for t in tasks {
                    db::task_done(&c, &t.cookie, &out(&t.inargs)).await.unwrap();
                    done += 1;
                }
            }
            done
        }));
    }
    let mut done = 0;
    for w in workers {
        done += w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let most = sampler.await.unwrap();
    assert_eq!(done, 40);
    assert!(most <= 3, "{most} tasks of add at work at once");
    assert!(
        most >= 2,
        "the limit was never reached ({most}): the test shows nothing"
    );
    assert_eq!(jobs_in(&c, "finished").await, 40);
}
