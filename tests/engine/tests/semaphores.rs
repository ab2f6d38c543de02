//! Counted locks (a lock type with `limit N`): 50 jobs through a limit of 3 never show a
//! fourth holder; freed slots go to the waiters in job order; a lock wait with an interval
//! times out; a child takes over its parent's slot of an inherited lock; a descendant waiting
//! for a lock whose every holder is its ancestor is a deadlock, while one holder that can go
//! on keeps it waiting; a freed slot wakes the oldest waiter alone, and a woken waiter that
//! ends before retrying passes the slot on.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine_tests::expr::{a, ip};
use engine_tests::flow::Flow;
use engine_tests::{
    count, create, db, examples, load, make_due, only_child, output, setup, state, work_job,
};
use jcl::build::{lit, path, set};
use jcl::{Expr, Model, Ns, SystemAction};
use serde_json::json;
use tokio_postgres::Client;

/// A workflow declaring the manual lock type `slot` with `limit`.
fn slotted(name: &str, limit: u32) -> Flow {
    Flow::workflow(name)
        .input("v", "string")
        .output("done", "boolean")
        .lock_decl("slot", None, true, false)
        .lock_limit(limit)
}

fn lock(f: &mut Flow, wait: Option<Expr>) {
    let mut imap = vec![
        set(ip(&["type"]), lit("slot")),
        set(ip(&["value"]), a(&["v"])),
    ];
    if let Some(w) = wait {
        imap.push(set(ip(&["wait"]), w));
    }
    f.system(SystemAction::Lock, imap);
}

fn unlock(f: &mut Flow) {
    f.system(
        SystemAction::Unlock,
        vec![
            set(ip(&["type"]), lit("slot")),
            set(ip(&["value"]), a(&["v"])),
        ],
    );
}

fn done() -> Vec<jcl::Stmt> {
    vec![set(path(Ns::O, &["done"]), lit(true))]
}

/// lock slot a.v (waiting as `wait` says); call add; unlock slot a.v
fn guarded(name: &str, limit: u32, wait: Option<Expr>) -> Model {
    let mut f = slotted(name, limit);
    lock(&mut f, wait);
    f.call(
        "add",
        vec![set(ip(&["counter"]), lit(1)), set(ip(&["step"]), lit(1))],
        vec![],
    );
    unlock(&mut f);
    f.end(done())
}

/// The jobs holding a slot of (slot, `value`), in job order.
async fn holders(c: &Client, value: &str) -> Vec<i64> {
    c.query(
        "select job_id from jobcenter.locks where locktype = 'slot' and lockvalue = $1 \
         order by job_id",
        &[&value],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

async fn finish_add(c: &Client, job: i64) {
    work_job(c, "add", job, |_| json!({"counter": 2})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_jobs_through_a_limit_of_three_never_have_a_fourth_holder() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), guarded("sem", 3, None)]).await;
    let mut jobs = vec![];
    for _ in 0..50 {
        jobs.push(create(&c, "sem", json!({"v": "x"})).await);
    }
    assert_eq!(holders(&c, "x").await, jobs[..3].to_vec());
    let waiting: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where state = 'lockwait'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 47);

    // A sampler counts the holders, and the jobs past their lock step (ready or working at
    // add), while four workers run the jobs.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (tdb, stop) = (tdb.clone(), stop.clone());
        tokio::spawn(async move {
            let c = tdb.connect().await.unwrap();
            let mut most = (0i64, 0i64);
            let mut samples = 0;
            while !stop.load(Ordering::SeqCst) {
                let r = c
                    .query_one(
                        "select (select count(*) from jobcenter.locks where locktype = 'slot'), \
                         (select count(*) from jobcenter.jobs where state in ('ready', 'working'))",
                        &[],
                    )
                    .await
                    .unwrap();
                most = (most.0.max(r.get(0)), most.1.max(r.get(1)));
                samples += 1;
            }
            (most, samples)
        })
    };
    let mut workers = vec![];
    for w in 0..4 {
        let (tdb, stop_all) = (tdb.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let c = tdb.connect().await.unwrap();
            let name = format!("w{w}");
            db::announce(&c, &name, "add", None, None).await.unwrap();
            let mut ran = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                assert!(std::time::Instant::now() < deadline, "the jobs did not end");
                match db::get_task(&c, &name, "add", None).await.unwrap() {
                    Some(t) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        if let Err(e) = db::task_done(&c, &t.cookie, &json!({"counter": 2})).await {
                            stop_all.store(true, Ordering::SeqCst);
                            panic!("task_done: {e:?}");
                        }
                        ran += 1;
                    }
                    None => {
                        let live: i64 = c
                            .query_one(
                                "select count(*) from jobcenter.jobs \
                                 where state not in ('finished', 'error')",
                                &[],
                            )
                            .await
                            .unwrap()
                            .get(0);
                        if live == 0 || stop_all.load(Ordering::SeqCst) {
                            return ran;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }));
    }
    let mut ran = 0;
    for w in workers {
        ran += w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let ((most_held, most_running), samples) = sampler.await.unwrap();
    assert_eq!(ran, 50);
    assert!(samples > 10, "only {samples} samples");
    assert_eq!(most_held, 3, "the most holders seen");
    assert!(
        most_running <= 3,
        "{most_running} jobs past the lock at once"
    );
    for j in &jobs {
        assert_eq!(output(&c, *j).await, json!({"done": true}), "job {j}");
    }
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn freed_slots_go_to_the_waiters_in_job_order() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), guarded("sem", 2, None)]).await;
    let mut jobs = vec![];
    for _ in 0..5 {
        jobs.push(create(&c, "sem", json!({"v": "y"})).await);
    }
    let (ja, jb, jc, jd, je) = (jobs[0], jobs[1], jobs[2], jobs[3], jobs[4]);
    assert_eq!(holders(&c, "y").await, vec![ja, jb]);
    for j in [jc, jd, je] {
        assert_eq!(state(&c, j).await, "lockwait");
    }
    // another value of the type has slots of its own
    let other = create(&c, "sem", json!({"v": "z"})).await;
    assert_eq!(state(&c, other).await, "ready");

    finish_add(&c, jb).await;
    assert_eq!(holders(&c, "y").await, vec![ja, jc]);
    assert_eq!(state(&c, jd).await, "lockwait");
    finish_add(&c, ja).await;
    assert_eq!(holders(&c, "y").await, vec![jc, jd]);
    assert_eq!(state(&c, je).await, "lockwait");
    for j in [jc, jd, je] {
        finish_add(&c, j).await;
    }
    for j in jobs {
        assert_eq!(state(&c, j).await, "finished");
    }
}

#[tokio::test]
async fn a_wait_for_a_full_counted_lock_times_out() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            examples::add(),
            guarded("sem", 2, None),
            guarded("impatient", 2, Some(lit("1 hour"))),
        ],
    )
    .await;
    let ja = create(&c, "sem", json!({"v": "t"})).await;
    let jb = create(&c, "sem", json!({"v": "t"})).await;
    let job = create(&c, "impatient", json!({"v": "t"})).await;
    assert_eq!(state(&c, job).await, "lockwait");
    make_due(&c, job).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "lock", "{out}");
    assert_eq!(out["error"]["msg"], "timeout waiting for lock slot t");
    assert_eq!(holders(&c, "t").await, vec![ja, jb]);
    // with a slot free it does not wait at all
    finish_add(&c, ja).await;
    let job = create(&c, "impatient", json!({"v": "t"})).await;
    assert_eq!(state(&c, job).await, "ready");
    assert_eq!(holders(&c, "t").await, vec![jb, job]);
}

/// lock slot a.v; call `callee`(v); unlock slot a.v
fn nesting(name: &str, callee: &str, limit: u32) -> Model {
    let mut f = slotted(name, limit);
    lock(&mut f, None);
    f.call(callee, vec![set(ip(&["v"]), a(&["v"]))], vec![]);
    unlock(&mut f);
    f.end(done())
}

#[tokio::test]
async fn a_counted_lock_held_only_by_ancestors_is_a_deadlock() {
    let (_db, c) = setup().await;
    // outer holds a slot and calls mid, which holds the second and calls inner (add).
    let models = [
        examples::add(),
        guarded("inner", 2, None),
        nesting("mid", "inner", 2),
        nesting("outer", "mid", 2),
    ];
    load(&c, &models).await;
    let outer = create(&c, "outer", json!({"v": "d"})).await;
    let mid = only_child(&c, outer).await;
    let inner = only_child(&c, mid).await;
    let out = output(&c, inner).await;
    assert_eq!(out["error"]["class"], "lock", "{out}");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .starts_with("deadlock: waiting for lock slot d held by job"),
        "{out}"
    );
    assert_eq!(state(&c, outer).await, "error");
    assert_eq!(count(&c, "locks").await, 0);

    // With another holder that can go on, inner waits and then gets that holder's slot.
    let other = create(&c, "inner", json!({"v": "e"})).await;
    let mid = create(&c, "mid", json!({"v": "e"})).await;
    let inner = only_child(&c, mid).await;
    assert_eq!(state(&c, inner).await, "lockwait");
    finish_add(&c, other).await;
    assert_eq!(state(&c, inner).await, "ready");
    finish_add(&c, inner).await;
    assert_eq!(output(&c, mid).await, json!({"done": true}));

    // With a third slot, nothing waits.
    c.batch_execute("update jobcenter.locktypes set max_holders = 3")
        .await
        .unwrap();
    let outer = create(&c, "outer", json!({"v": "f"})).await;
    let inner = only_child(&c, only_child(&c, outer).await).await;
    assert_eq!(state(&c, inner).await, "ready");
    finish_add(&c, inner).await;
    assert_eq!(output(&c, outer).await, json!({"done": true}));
}

async fn max_holders(c: &Client, locktype: &str) -> i32 {
    c.query_one(
        "select max_holders from jobcenter.locktypes where locktype = $1",
        &[&locktype],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn loading_a_limit_sets_the_lock_type_and_a_mutex_stays_one() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), guarded("sem", 4, None)]).await;
    assert_eq!(max_holders(&c, "slot").await, 4);
    // a declaration without a limit leaves the type's limit as it is
    let plain = Flow::workflow("plain")
        .input("v", "string")
        .output("done", "boolean")
        .lock_decl("slot", None, true, false)
        .end(done());
    let mutex = Flow::workflow("mutex")
        .input("v", "string")
        .output("done", "boolean")
        .lock_decl("zone", None, true, false)
        .end(done());
    load(&c, &[plain, mutex]).await;
    assert_eq!(max_holders(&c, "slot").await, 4);
    assert_eq!(max_holders(&c, "zone").await, 1);
}

#[tokio::test]
async fn a_child_takes_over_its_parents_slot_of_an_inherited_counted_lock() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("inhouter")
        .input("v", "string")
        .output("done", "boolean")
        .lock_decl("slot", None, true, true)
        .lock_limit(2);
    lock(&mut f, None);
    f.call("inner", vec![set(ip(&["v"]), a(&["v"]))], vec![]);
    unlock(&mut f);
    let outer = f.end(done());
    load(&c, &[examples::add(), guarded("inner", 2, None), outer]).await;
    let parent = create(&c, "inhouter", json!({"v": "i"})).await;
    let child = only_child(&c, parent).await;
    // the child holds the parent's slot: one holder, the other slot still free
    assert_eq!(holders(&c, "i").await, vec![child]);
    let other = create(&c, "inner", json!({"v": "i"})).await;
    assert_eq!(state(&c, other).await, "ready");
    assert_eq!(holders(&c, "i").await, vec![child, other]);
    // a third job waits; the child's unlock gives the slot back to the parent, whose unlock
    // frees it for the waiter
    let third = create(&c, "inner", json!({"v": "i"})).await;
    assert_eq!(state(&c, third).await, "lockwait");
    finish_add(&c, child).await;
    assert_eq!(output(&c, parent).await, json!({"done": true}));
    assert_eq!(holders(&c, "i").await, vec![other, third]);
}

/// The row version (xmin) of job `job`: it changes whenever the row is written.
async fn row_version(c: &Client, job: i64) -> String {
    c.query_one(
        "select xmin::text from jobcenter.jobs where job_id = $1",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_freed_slot_wakes_the_oldest_waiter_alone() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), guarded("sem", 2, None)]).await;
    let mut jobs = vec![];
    for _ in 0..6 {
        jobs.push(create(&c, "sem", json!({"v": "w"})).await);
    }
    let waiters = jobs[2..].to_vec();
    let before = {
        let mut v = vec![];
        for &j in &waiters {
            v.push(row_version(&c, j).await);
        }
        v
    };
    finish_add(&c, jobs[1]).await;
    assert_eq!(holders(&c, "w").await, vec![jobs[0], waiters[0]]);
    // the other waiters were neither woken nor put back to sleep: their rows are untouched
    for (i, &j) in waiters.iter().enumerate().skip(1) {
        assert_eq!(state(&c, j).await, "lockwait");
        assert_eq!(
            row_version(&c, j).await,
            before[i],
            "waiter {j} was written"
        );
    }
    // the waiters' count shown per holder comes from the jobs that wait
    let waiting: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where state = 'lockwait' \
             and task_state -> 'lockwait' = '{\"type\": \"slot\", \"value\": \"w\"}'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(waiting, 3);
}

#[tokio::test]
async fn a_woken_waiter_that_ends_at_once_passes_its_slot_on() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), guarded("sem", 1, None)]).await;
    let holder = create(&c, "sem", json!({"v": "p"})).await;
    let first = create(&c, "sem", json!({"v": "p"})).await;
    let second = create(&c, "sem", json!({"v": "p"})).await;
    assert_eq!(holders(&c, "p").await, vec![holder]);
    // An abort of the first waiter that could not be carried out at once (its row was held):
    // the next drive of the job carries it out, which is the drive its wake-up starts.
    c.execute(
        "select jobcenter.request_aborts(array[$1::bigint], \
         '{\"error\": {\"class\": \"abort\", \"msg\": \"cancelled\"}}')",
        &[&first],
    )
    .await
    .unwrap();
    finish_add(&c, holder).await;
    assert_eq!(state(&c, first).await, "error");
    assert_eq!(output(&c, first).await["error"]["msg"], "cancelled");
    // the slot the first waiter was woken for went on to the second
    assert_eq!(holders(&c, "p").await, vec![second]);
    assert_eq!(state(&c, second).await, "ready");
    finish_add(&c, second).await;
    assert_eq!(state(&c, second).await, "finished");
    assert_eq!(count(&c, "locks").await, 0);
}
