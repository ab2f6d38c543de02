//! Locks: manual lock/unlock with hand-over to a waiter, wait = no and wait = interval,
//! inheritance by children, deadlock detection, release at the end of a job (also in error),
//! automatic locks taken at start, and unlocking a lock not held.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::expr::{a, ip, vp};
use engine_tests::flow::Flow;
use engine_tests::{
    count, create, db, examples, load, log_states, only_child, output, setup, state, timeout_of,
    work_job, Listener,
};
use jcl::build::{lit, path, set, var};
use jcl::{Expr, Model, Ns, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::Client;

fn call_add(f: &mut Flow) -> u32 {
    f.call(
        "add",
        vec![set(ip(&["counter"]), lit(1)), set(ip(&["step"]), lit(1))],
        vec![],
    )
}

/// `lock zone <value>` (with `i.wait` when given).
fn lock(f: &mut Flow, value: Expr, wait: Option<Expr>) -> u32 {
    let mut imap = vec![set(ip(&["type"]), lit("zone")), set(ip(&["value"]), value)];
    if let Some(w) = wait {
        imap.push(set(ip(&["wait"]), w));
    }
    f.system(SystemAction::Lock, imap)
}

fn unlock(f: &mut Flow, value: Expr) -> u32 {
    f.system(
        SystemAction::Unlock,
        vec![set(ip(&["type"]), lit("zone")), set(ip(&["value"]), value)],
    )
}

/// A workflow declaring the manual lock type `zone`.
fn manual(name: &str, inherit: bool) -> Flow {
    Flow::workflow(name)
        .input("zone", "number")
        .output("done", "boolean")
        .lock_decl("zone", None, true, inherit)
}

fn done() -> Vec<jcl::Stmt> {
    vec![set(path(Ns::O, &["done"]), lit(true))]
}

/// lock zone a.zone; call add; unlock zone a.zone
fn zonelock() -> Model {
    let mut f = manual("zonelock", false);
    lock(&mut f, a(&["zone"]), None);
    call_add(&mut f);
    unlock(&mut f, a(&["zone"]));
    f.end(done())
}

/// lock zone a.zone; call add (and end without unlocking)
fn zonelock_keep() -> Model {
    let mut f = manual("zonelock_keep", false);
    lock(&mut f, a(&["zone"]), None);
    call_add(&mut f);
    f.end(done())
}

async fn finish_add(c: &Client, job: i64) {
    work_job(c, "add", job, |_| json!({"counter": 2})).await;
}

/// The job holding lock (zone, value), if any.
async fn holder(c: &Client, value: &str) -> Option<i64> {
    c.query_opt(
        "select job_id from jobcenter.locks where locktype = 'zone' and lockvalue = $1",
        &[&value],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
}

async fn task_state(c: &Client, job: i64) -> Value {
    c.query_one(
        "select task_state from jobcenter.jobs where job_id = $1",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_waiter_takes_the_lock_when_the_holder_unlocks() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), zonelock()]).await;
    let ja = create(&c, "zonelock", json!({"zone": 1})).await;
    assert_eq!(state(&c, ja).await, "ready");
    assert!(db::check_if_lock_exists(&c, "zone", "1").await.unwrap());
    assert!(!db::check_if_lock_exists(&c, "zone", "2").await.unwrap());
    assert_eq!(holder(&c, "1").await, Some(ja));

    let jb = create(&c, "zonelock", json!({"zone": 1})).await;
    assert_eq!(state(&c, jb).await, "lockwait");
    let ts = task_state(&c, jb).await;
    assert_eq!(ts["lockwait"], json!({"type": "zone", "value": "1"}));
    assert_eq!(ts["holder"], ja);
    // Nothing of B's is offered to workers while it waits.
    db::announce(&c, "w", "add", None, None).await.unwrap();
    assert!(db::get_task(&c, "w", "add", Some(jb))
        .await
        .unwrap()
        .is_none());

    finish_add(&c, ja).await;
    assert_eq!(state(&c, ja).await, "finished");
    assert_eq!(state(&c, jb).await, "ready");
    assert_eq!(holder(&c, "1").await, Some(jb));
    finish_add(&c, jb).await;
    assert_eq!(output(&c, jb).await, json!({"done": true}));
    assert!(!db::check_if_lock_exists(&c, "zone", "1").await.unwrap());
    let states = [
        "start:done",
        "lock:done",
        "add:done",
        "unlock:done",
        "end:finished",
    ];
    assert_eq!(log_states(&c, ja).await, states);
    assert_eq!(log_states(&c, jb).await, states);
}

#[tokio::test]
async fn a_waiter_takes_the_lock_when_the_holder_ends() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), zonelock_keep()]).await;
    let ja = create(&c, "zonelock_keep", json!({"zone": 1})).await;
    let jb = create(&c, "zonelock_keep", json!({"zone": 1})).await;
    let jc = create(&c, "zonelock_keep", json!({"zone": 1})).await;
    assert_eq!(state(&c, jb).await, "lockwait");
    assert_eq!(state(&c, jc).await, "lockwait");
    finish_add(&c, ja).await;
    assert_eq!(state(&c, ja).await, "finished");
    // One of the waiters takes it, the other waits on.
    assert_eq!(holder(&c, "1").await, Some(jb));
    assert_eq!(state(&c, jb).await, "ready");
    assert_eq!(state(&c, jc).await, "lockwait");
    finish_add(&c, jb).await;
    assert_eq!(holder(&c, "1").await, Some(jc));
    finish_add(&c, jc).await;
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn wait_no_is_a_catchable_lock_error() {
    let (_db, c) = setup().await;
    // try: lock zone a.zone, wait = 'no' catch: err = e._error
    let mut f = Flow::workflow("trylock")
        .input("zone", "number")
        .output_optional("err", "object")
        .lock_decl("zone", None, true, false);
    let l = lock(&mut f, a(&["zone"]), Some(lit("no")));
    let catch = f.eval(vec![set(vp(&["err"]), var(Ns::E, &["_error"]))]);
    f.on_error(l, l, catch);
    let end = f.push_end(vec![jcl::build::copy(Ns::V, Ns::O, Some(&["err"]))]);
    f.goto(l, end);
    let trylock = f.build();
    // lock zone a.zone, wait = false (uncaught)
    let mut f = manual("nowait", false);
    lock(&mut f, a(&["zone"]), Some(lit(false)));
    let nowait = f.end(done());
    load(&c, &[examples::add(), zonelock(), trylock, nowait]).await;

    // A free lock is simply taken.
    let free = create(&c, "trylock", json!({"zone": 2})).await;
    assert_eq!(output(&c, free).await, json!({}));

    let ja = create(&c, "zonelock", json!({"zone": 1})).await;
    let job = create(&c, "trylock", json!({"zone": 1})).await;
    assert_eq!(state(&c, job).await, "finished");
    let err = &output(&c, job).await["err"];
    assert_eq!(err["class"], "lock");
    assert_eq!(
        err["msg"],
        format!("lock zone 1 is held by job {ja}").as_str()
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "lock:error", "eval:done", "end:finished"]
    );

    let job = create(&c, "nowait", json!({"zone": 1})).await;
    assert_eq!(state(&c, job).await, "error");
    assert_eq!(output(&c, job).await["error"]["class"], "lock");
    // The holder keeps its lock.
    assert_eq!(holder(&c, "1").await, Some(ja));
}

#[tokio::test]
async fn wait_with_an_interval_times_out_with_a_lock_error() {
    let (tdb, c) = setup().await;
    let mut f = manual("waitlock", false);
    lock(&mut f, a(&["zone"]), Some(lit("1 second")));
    let waitlock = f.end(done());
    load(&c, &[examples::add(), zonelock(), waitlock]).await;
    let ja = create(&c, "zonelock", json!({"zone": 1})).await;
    let mut l = Listener::new(&tdb, &["timer"]).await;

    let job = create(&c, "waitlock", json!({"zone": 1})).await;
    assert_eq!(state(&c, job).await, "lockwait");
    let (left, at) = timeout_of(&c, job).await;
    assert!((0.5..=1.5).contains(&left), "timeout in {left} s");
    let (channel, payload) = l.next().await.expect("timer notification");
    assert_eq!(channel, "timer");
    assert!((payload.parse::<f64>().unwrap() - at).abs() < 0.01);

    assert_eq!(db::do_timeout(&c).await.unwrap(), 0);
    assert_eq!(state(&c, job).await, "lockwait");
    tokio::time::sleep(Duration::from_secs_f64(left + 0.2)).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "lock", "no trailing space: {out}");
    assert_eq!(out["error"]["msg"], "timeout waiting for lock zone 1");
    assert_eq!(holder(&c, "1").await, Some(ja));
    // The holder goes on as before.
    finish_add(&c, ja).await;
    assert_eq!(state(&c, ja).await, "finished");
    assert_eq!(count(&c, "locks").await, 0);
}

/// lock zone a.zone; call `child`(zone); unlock zone a.zone
fn lock_parent(name: &str, inherit: bool) -> Model {
    let mut f = manual(name, inherit);
    lock(&mut f, a(&["zone"]), None);
    f.call("lockchild", vec![set(ip(&["zone"]), a(&["zone"]))], vec![]);
    unlock(&mut f, a(&["zone"]));
    f.end(done())
}

/// lock zone a.zone; call add; unlock zone a.zone
fn lock_child() -> Model {
    let mut f = manual("lockchild", false);
    lock(&mut f, a(&["zone"]), None);
    call_add(&mut f);
    unlock(&mut f, a(&["zone"]));
    f.end(done())
}

#[tokio::test]
async fn a_child_may_take_an_inherited_lock() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            examples::add(),
            lock_child(),
            lock_parent("inhparent", true),
        ],
    )
    .await;
    let parent = create(&c, "inhparent", json!({"zone": 4})).await;
    assert_eq!(state(&c, parent).await, "childwait");
    let child = only_child(&c, parent).await;
    // Not lockwait: the child took the parent's lock over.
    assert_eq!(state(&c, child).await, "ready");
    assert_eq!(holder(&c, "4").await, Some(child));
    // An unrelated job still has to wait.
    load(&c, &[zonelock()]).await;
    let other = create(&c, "zonelock", json!({"zone": 4})).await;
    assert_eq!(state(&c, other).await, "lockwait");

    finish_add(&c, child).await;
    // The child's unlock gave the lock back to the parent; the parent's unlock released it.
    assert_eq!(
        log_states(&c, child).await,
        [
            "start:done",
            "lock:done",
            "add:done",
            "unlock:done",
            "end:zombie"
        ]
    );
    assert_eq!(output(&c, parent).await, json!({"done": true}));
    assert_eq!(holder(&c, "4").await, Some(other));
    assert_eq!(state(&c, other).await, "ready");
}

#[tokio::test]
async fn a_child_waiting_for_its_parents_lock_is_a_deadlock() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            examples::add(),
            lock_child(),
            lock_parent("noinhparent", false),
        ],
    )
    .await;
    let parent = create(&c, "noinhparent", json!({"zone": 4})).await;
    let child = only_child(&c, parent).await;
    assert_eq!(state(&c, child).await, "error");
    let out = output(&c, child).await;
    assert_eq!(out["error"]["class"], "lock");
    assert_eq!(
        out["error"]["msg"],
        format!("deadlock: waiting for lock zone 4 held by job {parent}").as_str()
    );
    assert_eq!(state(&c, parent).await, "error");
    let out = output(&c, parent).await;
    assert_eq!(out["error"]["class"], "childerror");
    assert_eq!(out["error"]["error"]["class"], "lock");
    // The parent's end released its lock.
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn a_two_job_lock_cycle_is_a_deadlock_for_the_second_waiter() {
    let (_db, c) = setup().await;
    // lock zone a.first; call add; lock zone a.second
    let mut f = Flow::workflow("twolocks")
        .input("first", "string")
        .input("second", "string")
        .output("done", "boolean")
        .lock_decl("zone", None, true, false);
    lock(&mut f, a(&["first"]), None);
    call_add(&mut f);
    lock(&mut f, a(&["second"]), None);
    let wf = f.end(done());
    load(&c, &[examples::add(), wf]).await;

    let ja = create(&c, "twolocks", json!({"first": "x", "second": "y"})).await;
    let jb = create(&c, "twolocks", json!({"first": "y", "second": "x"})).await;
    assert_eq!(holder(&c, "x").await, Some(ja));
    assert_eq!(holder(&c, "y").await, Some(jb));
    finish_add(&c, ja).await;
    // A waits for y, held by B (who does not wait yet): no deadlock.
    assert_eq!(state(&c, ja).await, "lockwait");
    finish_add(&c, jb).await;
    // B would wait for x, held by A, who waits for B.
    assert_eq!(state(&c, jb).await, "error");
    let out = output(&c, jb).await;
    assert_eq!(out["error"]["class"], "lock");
    assert_eq!(
        out["error"]["msg"],
        format!("deadlock: waiting for lock zone x held by job {ja}").as_str()
    );
    // B's end released y: A goes on and finishes.
    assert_eq!(state(&c, ja).await, "finished");
    assert_eq!(
        log_states(&c, ja).await,
        [
            "start:done",
            "lock:done",
            "add:done",
            "lock:done",
            "end:finished"
        ]
    );
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn every_lock_is_released_when_a_job_ends_in_error() {
    let (_db, c) = setup().await;
    // lock zone a.zone; lock zone a.zone + 1; call div (fails)
    let mut f = manual("lockfail", false);
    lock(&mut f, a(&["zone"]), None);
    lock(
        &mut f,
        jcl::build::bin(jcl::BinOp::Add, a(&["zone"]), lit(1)),
        None,
    );
    f.call(
        "div",
        vec![set(ip(&["a"]), lit(1)), set(ip(&["b"]), lit(0))],
        vec![],
    );
    let wf = f.end(done());
    load(&c, &[examples::add(), examples::div(), zonelock(), wf]).await;

    let ja = create(&c, "lockfail", json!({"zone": 1})).await;
    assert_eq!(holder(&c, "1").await, Some(ja));
    assert_eq!(holder(&c, "2").await, Some(ja));
    let w1 = create(&c, "zonelock", json!({"zone": 1})).await;
    let w2 = create(&c, "zonelock", json!({"zone": 2})).await;
    assert_eq!(state(&c, w1).await, "lockwait");
    assert_eq!(state(&c, w2).await, "lockwait");

    work_job(&c, "div", ja, |_| json!({"error": "cannot divide by zero"})).await;
    assert_eq!(state(&c, ja).await, "error");
    assert_eq!(holder(&c, "1").await, Some(w1));
    assert_eq!(holder(&c, "2").await, Some(w2));
    assert_eq!(state(&c, w1).await, "ready");
    assert_eq!(state(&c, w2).await, "ready");
}

#[tokio::test]
async fn automatic_locks_are_taken_at_start_and_released_at_the_end() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("autolock")
        .input("zone", "number")
        .output("done", "boolean")
        .lock_decl("zone", Some(a(&["zone"])), false, false);
    call_add(&mut f);
    let wf = f.end(done());
    load(&c, &[examples::add(), wf]).await;

    let ja = create(&c, "autolock", json!({"zone": 5})).await;
    assert_eq!(state(&c, ja).await, "ready");
    assert!(db::check_if_lock_exists(&c, "zone", "5").await.unwrap());
    let jb = create(&c, "autolock", json!({"zone": 5})).await;
    assert_eq!(state(&c, jb).await, "lockwait");
    // Another value is not blocked.
    let jc = create(&c, "autolock", json!({"zone": 6})).await;
    assert_eq!(state(&c, jc).await, "ready");

    finish_add(&c, ja).await;
    assert_eq!(state(&c, ja).await, "finished");
    assert_eq!(state(&c, jb).await, "ready");
    assert_eq!(holder(&c, "5").await, Some(jb));
    finish_add(&c, jb).await;
    finish_add(&c, jc).await;
    assert_eq!(count(&c, "locks").await, 0);
    for j in [ja, jb, jc] {
        assert_eq!(
            log_states(&c, j).await,
            ["start:done", "add:done", "end:finished"]
        );
    }
}

#[tokio::test]
async fn unlocking_a_lock_not_held_is_an_error() {
    let (_db, c) = setup().await;
    let mut f = manual("badunlock", false);
    unlock(&mut f, a(&["zone"]));
    let badunlock = f.end(done());
    let mut f = Flow::workflow("badtype")
        .output("done", "boolean")
        .lock_decl("zone", None, true, false);
    f.system(
        SystemAction::Lock,
        vec![
            set(ip(&["type"]), lit("nosuchtype")),
            set(ip(&["value"]), lit(1)),
        ],
    );
    let badtype = f.end(done());
    load(&c, &[examples::add(), zonelock(), badunlock, badtype]).await;

    // Nobody holds it.
    let job = create(&c, "badunlock", json!({"zone": 1})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "normal");
    assert_eq!(out["error"]["msg"], "unlock: job does not hold lock zone 1");
    assert_eq!(log_states(&c, job).await, ["start:done", "unlock:error"]);

    // Another job holds it: it keeps it.
    let ja = create(&c, "zonelock", json!({"zone": 1})).await;
    let job = create(&c, "badunlock", json!({"zone": 1})).await;
    assert_eq!(state(&c, job).await, "error");
    assert_eq!(holder(&c, "1").await, Some(ja));

    let job = create(&c, "badtype", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    assert_eq!(
        output(&c, job).await["error"]["msg"],
        "unknown lock type nosuchtype"
    );
}

#[tokio::test]
async fn a_deadlock_is_found_when_the_parent_starts_waiting_for_its_children() {
    let (_db, c) = setup().await;
    // lock zone a.zone; callflow lockchild (not waited for yet); call add; wait_for_children
    let mut f = manual("splitlock", false);
    lock(&mut f, a(&["zone"]), None);
    f.call_with(
        "lockchild",
        vec![set(ip(&["zone"]), a(&["zone"]))],
        vec![],
        |t| t.wait = false,
    );
    call_add(&mut f);
    f.system_with(SystemAction::WaitForChildren, |_| {});
    let wf = f.end(done());
    load(&c, &[examples::add(), lock_child(), wf]).await;

    let parent = create(&c, "splitlock", json!({"zone": 8})).await;
    let child = only_child(&c, parent).await;
    // The parent still runs (it waits for a worker), so the child may wait for the lock.
    assert_eq!(state(&c, parent).await, "ready");
    assert_eq!(state(&c, child).await, "lockwait");
    finish_add(&c, parent).await;
    // The child started waiting while its parent was still running; once the parent waits
    // for it, neither can go on.
    assert_eq!(state(&c, child).await, "error");
    let out = output(&c, child).await;
    assert_eq!(out["error"]["class"], "lock", "{out}");
    assert!(
        out["error"]["msg"].as_str().unwrap().contains("deadlock"),
        "{out}"
    );
    assert_eq!(state(&c, parent).await, "error");
    assert_eq!(output(&c, parent).await["error"]["class"], "childerror");
    assert_eq!(count(&c, "locks").await, 0);
}

#[tokio::test]
async fn siblings_take_an_inherited_lock_in_turn() {
    let (_db, c) = setup().await;
    // lock zone a.zone (inherit); callflow lockchild × 2; wait_for_children; unlock zone a.zone
    let mut f = manual("inhsplit", true);
    lock(&mut f, a(&["zone"]), None);
    for _ in 0..2 {
        f.call_with(
            "lockchild",
            vec![set(ip(&["zone"]), a(&["zone"]))],
            vec![],
            |t| t.wait = false,
        );
    }
    f.system_with(SystemAction::WaitForChildren, |_| {});
    unlock(&mut f, a(&["zone"]));
    let wf = f.end(done());
    load(&c, &[examples::add(), lock_child(), zonelock(), wf]).await;

    let parent = create(&c, "inhsplit", json!({"zone": 3})).await;
    let kids: Vec<i64> = c
        .query(
            "select job_id from jobcenter.jobs where parentjob_id = $1 order by job_id",
            &[&parent],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(state(&c, parent).await, "childwait");
    // The first child inherited the lock; its sibling waits for it.
    assert_eq!(state(&c, kids[0]).await, "ready");
    assert_eq!(state(&c, kids[1]).await, "lockwait");
    assert_eq!(holder(&c, "3").await, Some(kids[0]));
    // A job outside the family waits too.
    let other = create(&c, "zonelock", json!({"zone": 3})).await;
    assert_eq!(state(&c, other).await, "lockwait");

    finish_add(&c, kids[0]).await;
    // The first child's unlock handed the lock on to its sibling.
    assert_eq!(state(&c, kids[1]).await, "ready");
    assert_eq!(holder(&c, "3").await, Some(kids[1]));
    assert_eq!(state(&c, other).await, "lockwait");

    finish_add(&c, kids[1]).await;
    // Back to the parent, which unlocked it at its end: now the outsider has it.
    assert_eq!(output(&c, parent).await, json!({"done": true}));
    assert_eq!(holder(&c, "3").await, Some(other));
    assert_eq!(state(&c, other).await, "ready");
}

/// A child ending hands an inherited lock back to its parent while the parent is being
/// cancelled: the cancel waits for the child's transaction, and the parent's end then
/// releases the lock it got back, so no ended job is left holding it.
#[tokio::test]
async fn a_lock_handed_back_to_a_parent_being_cancelled_is_released() {
    let (tdb, c) = setup().await;
    // child: lock zone a.zone; call add; end holding it (it goes back to the parent)
    let mut f = manual("handchild", false);
    lock(&mut f, a(&["zone"]), None);
    call_add(&mut f);
    let child_wf = f.end(done());
    // parent: lock zone a.zone (inherit); start handchild without waiting; sleep an hour
    let mut f = manual("handparent", true);
    lock(&mut f, a(&["zone"]), None);
    f.call_with(
        "handchild",
        vec![set(ip(&["zone"]), a(&["zone"]))],
        vec![],
        |t| t.wait = false,
    );
    f.system(SystemAction::Sleep, vec![set(ip(&["timeout"]), lit(3600))]);
    let parent_wf = f.end(done());
    load(&c, &[examples::add(), child_wf, parent_wf]).await;
    let parent = create(&c, "handparent", json!({"zone": 5})).await;
    assert_eq!(state(&c, parent).await, "sleeping");
    let child = only_child(&c, parent).await;
    assert_eq!(holder(&c, "5").await, Some(child));
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let task = db::get_task(&c, "w", "add", Some(child))
        .await
        .unwrap()
        .unwrap();

    // The child's task_done, its transaction held open: the lock goes back to the parent.
    let done_tx = tdb.connect().await.unwrap();
    done_tx.batch_execute("begin").await.unwrap();
    db::task_done(&done_tx, &task.cookie, &json!({"counter": 2}))
        .await
        .unwrap();
    // The cancel meanwhile, from a third connection.
    let canceller = tdb.connect().await.unwrap();
    let cancel =
        tokio::spawn(async move { db::cancel_job(&canceller, parent, "stop", false).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !cancel.is_finished(),
        "the cancel waits for the child's transaction"
    );
    done_tx.batch_execute("commit").await.unwrap();
    cancel.await.unwrap().unwrap();
    assert_eq!(state(&c, parent).await, "error");
    assert_eq!(
        holder(&c, "5").await,
        None,
        "the parent's end released the lock it got back"
    );
}

#[tokio::test]
async fn an_inherited_lock_goes_back_to_the_parent_when_the_child_ends() {
    let (_db, c) = setup().await;
    // child: lock zone a.zone (and end holding it)
    let mut f = manual("keepchild", false);
    lock(&mut f, a(&["zone"]), None);
    let child_wf = f.end(done());
    // parent: lock zone a.zone (inherit); call keepchild; call add; unlock zone a.zone
    let mut f = manual("keepparent", true);
    lock(&mut f, a(&["zone"]), None);
    f.call("keepchild", vec![set(ip(&["zone"]), a(&["zone"]))], vec![]);
    call_add(&mut f);
    unlock(&mut f, a(&["zone"]));
    let parent_wf = f.end(done());
    load(&c, &[examples::add(), child_wf, parent_wf]).await;

    let parent = create(&c, "keepparent", json!({"zone": 9})).await;
    assert_eq!(state(&c, parent).await, "ready");
    // The child took the lock, ended, and the lock went back to the parent.
    assert_eq!(holder(&c, "9").await, Some(parent));
    let inherited: Vec<i64> = c
        .query_one(
            "select inherited_from from jobcenter.locks where lockvalue = '9'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(inherited.is_empty(), "{inherited:?}");
    finish_add(&c, parent).await;
    assert_eq!(output(&c, parent).await, json!({"done": true}));
    assert_eq!(count(&c, "locks").await, 0);
}
