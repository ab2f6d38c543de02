//! Regression tests of the engine's correctness under concurrency: each reproduces a defect of
//! 0.1 deterministically. Races are widened with a procedure step that waits for an advisory
//! lock the test holds (the gate) or with a transaction held open, and the test waits until a
//! connection is blocked (or done) before it goes on, so no outcome depends on timing.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::expr::{ip, v, vp};
use engine_tests::flow::{action, procedure, Flow};
use engine_tests::{
    code_of, count, create, db, examples, load, only_child, output, setup, state, work_job,
};
use jcl::build::{bin, call, lit, path, set, var};
use jcl::{BinOp, Func, Model, Ns, SystemAction};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_postgres::Client;

/// The advisory lock key of the gate.
const GATE: i64 = 4242;

/// Creates the procedure `jc_gate`, which waits until the gate is open.
async fn gate_procedure(c: &Client) {
    c.batch_execute(&format!(
        "create function public.jc_gate(a jsonb) returns jsonb language plpgsql as $$ \
         begin perform pg_advisory_xact_lock({GATE}); return '{{}}'; end $$"
    ))
    .await
    .unwrap();
}

fn gate_model() -> Model {
    procedure("jc_gate").model()
}

async fn close_gate(c: &Client) {
    c.execute("select pg_advisory_lock($1)", &[&GATE])
        .await
        .unwrap();
}

async fn open_gate(c: &Client) {
    c.execute("select pg_advisory_unlock($1)", &[&GATE])
        .await
        .unwrap();
}

async fn pid(c: &Client) -> i32 {
    c.query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

/// Whether backend `pid` waits for a lock (a row, a transaction or an advisory lock).
async fn blocked(c: &Client, pid: i32) -> bool {
    c.query_opt(
        "select 1 from pg_stat_activity where pid = $1 and wait_event_type = 'Lock'",
        &[&pid],
    )
    .await
    .unwrap()
    .is_some()
}

/// Waits until backend `pid` waits for a lock, or `h` has finished.
async fn blocked_or_done<T>(c: &Client, pid: i32, h: &JoinHandle<T>) {
    for _ in 0..400 {
        if h.is_finished() || blocked(c, pid).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("backend {pid} neither finished nor waited for a lock");
}

/// Waits until backend `pid` (running `h`) waits for a lock.
async fn until_blocked<T: std::fmt::Debug>(
    c: &Client,
    pid: i32,
    h: JoinHandle<T>,
) -> JoinHandle<T> {
    for _ in 0..400 {
        if blocked(c, pid).await {
            return h;
        }
        if h.is_finished() {
            panic!("backend {pid} finished without waiting: {:?}", h.await);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("backend {pid} never waited for a lock");
}

/// A second connection and its backend pid.
async fn other(tdb: &testkit::TestDb) -> (Client, i32) {
    let c = tdb.connect().await.unwrap();
    let p = pid(&c).await;
    (c, p)
}

/// Takes the ready task of action `act` of job `job` as worker `w` (announcing it first).
async fn take(c: &Client, act: &str, job: i64) -> db::Task {
    db::announce(c, "w", act, None, None).await.unwrap();
    db::get_task(c, "w", act, Some(job))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no ready {act} task for job {job}"))
}

/// The action `work`: no inputs, an optional output `out`.
fn work() -> Model {
    action("work").output_optional("out", "json").model()
}

fn call_work(f: &mut Flow) -> u32 {
    f.call("work", vec![], vec![])
}

/// A manual lock `res` of value `value`, waiting as `wait` says (default: for ever).
fn lock(f: &mut Flow, value: &str, wait: Option<Value>) -> u32 {
    let mut imap = vec![
        set(ip(&["type"]), lit("res")),
        set(ip(&["value"]), lit(value)),
    ];
    if let Some(w) = wait {
        imap.push(set(ip(&["wait"]), lit(w)));
    }
    f.system(SystemAction::Lock, imap)
}

fn unlock(f: &mut Flow, value: &str) -> u32 {
    f.system(
        SystemAction::Unlock,
        vec![
            set(ip(&["type"]), lit("res")),
            set(ip(&["value"]), lit(value)),
        ],
    )
}

fn locking(name: &str) -> Flow {
    Flow::workflow(name).lock_decl("res", None, true, false)
}

/// A workflow that calls `child` and waits for it.
fn caller(name: &str, child: &str) -> Model {
    let mut f = Flow::workflow(name);
    f.call(child, vec![], vec![]);
    f.end(vec![])
}

async fn holders(c: &Client) -> i64 {
    count(c, "locks").await
}

/// The error class and message of an ended job.
async fn error_of(c: &Client, job: i64) -> (String, String) {
    let out = output(c, job).await;
    (
        out["error"]["class"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        out["error"]["msg"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Item 1: a parent's end aborts a child holding a lock; the job waiting for that lock must
/// be woken, not left `plotting` with no timeout.
#[tokio::test]
async fn a_parents_abort_wakes_the_waiters_of_the_locks_its_child_held() {
    let (_db, c) = setup().await;
    let mut holder = locking("holder");
    lock(&mut holder, "z", None);
    call_work(&mut holder);
    let holder = holder.end(vec![]);
    let mut waiter = locking("waiter");
    lock(&mut waiter, "z", None);
    let waiter = waiter.end(vec![]);
    load(&c, &[work(), holder, waiter, caller("boss", "holder")]).await;

    let boss = create(&c, "boss", json!({})).await;
    let kid = only_child(&c, boss).await;
    assert_eq!(state(&c, kid).await, "ready");
    let w = create(&c, "waiter", json!({})).await;
    assert_eq!(state(&c, w).await, "lockwait");

    db::cancel_job(&c, boss, "stop", false).await.unwrap();
    assert_eq!(state(&c, kid).await, "error");
    assert_eq!(
        state(&c, w).await,
        "finished",
        "the lock's waiter was not woken"
    );
    assert_eq!(holders(&c).await, 0);
}

/// kid: work, then the gate, then end. pair: two kids in a split, wait for both.
fn pair_models() -> Vec<Model> {
    let mut kid = Flow::workflow("kid");
    call_work(&mut kid);
    kid.call("jc_gate", vec![], vec![]);
    let kid = kid.end(vec![]);
    let mut pair = Flow::workflow("pair");
    pair.call_with("kid", vec![], vec![], |a| a.wait = false);
    pair.call_with("kid", vec![], vec![], |a| a.wait = false);
    pair.system_with(SystemAction::WaitForChildren, |_| {});
    let pair = pair.end(vec![]);
    vec![work(), gate_model(), kid, pair]
}

/// Item 2: one child fails while its sibling ends in another transaction. 0.1 deadlocked
/// (the parent's "reaped" update waited for the sibling, the sibling for the parent).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn siblings_ending_at_once_when_one_fails_do_not_deadlock() {
    let (tdb, c) = setup().await;
    gate_procedure(&c).await;
    load(&c, &pair_models()).await;
    let parent = create(&c, "pair", json!({})).await;
    let kids = engine_tests::children(&c, parent).await;
    assert_eq!(kids.len(), 2);
    let ta = take(&c, "work", kids[0]).await;
    let tb = take(&c, "work", kids[1]).await;

    close_gate(&c).await;
    let (cb, pb) = other(&tdb).await;
    // the sibling ends, stopped at the gate holding its row
    let hb = tokio::spawn(async move { db::task_done(&cb, &tb.cookie, &json!({})).await });
    let hb = until_blocked(&c, pb, hb).await;
    let (ca, pa) = other(&tdb).await;
    let ha =
        tokio::spawn(
            async move { db::task_done(&ca, &ta.cookie, &json!({"error": "boom"})).await },
        );
    blocked_or_done(&c, pa, &ha).await;
    open_gate(&c).await;
    let (ra, rb) = (ha.await.unwrap(), hb.await.unwrap());
    assert!(
        ra.is_ok() && rb.is_ok(),
        "failing child: {ra:?}, ending sibling: {rb:?}"
    );

    assert_eq!(state(&c, parent).await, "error");
    let (class, msg) = error_of(&c, parent).await;
    assert_eq!(class, "childerror", "{msg}");
    for k in &kids {
        assert_eq!(state(&c, *k).await, "error", "child {k}");
    }
    db::do_timeout(&c).await.unwrap();
    assert_eq!(count(&c, "job_aborts").await, 0);
}

/// approval2(id): subscribe, then the action `prep`, then wait for the event.
fn waiter_after_prep() -> Model {
    let mut f = Flow::workflow("approval2")
        .input("id", "number")
        .output("event", "event");
    f.system(
        SystemAction::Subscribe,
        vec![
            set(ip(&["name"]), lit("appr")),
            set(ip(&["mask", "type"]), lit("approval")),
            set(ip(&["mask", "id"]), var(Ns::A, &["id"])),
        ],
    );
    call_work(&mut f);
    f.system_with(SystemAction::WaitForEvent, |t| {
        t.imap = Some(vec![
            set(ip(&["events"]), lit(json!(["appr"]))),
            set(ip(&["timeout"]), lit(60)),
        ]);
        t.omap = Some(vec![set(vp(&["ev"]), var(Ns::O, &["event"]))]);
    });
    f.end(vec![set(path(Ns::O, &["event"]), v(&["ev"]))])
}

/// Item 3: an event raised while the waiter's wait_for_event transaction is still open must
/// wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_raised_while_the_wait_is_uncommitted_is_not_lost() {
    let (tdb, c) = setup().await;
    load(&c, &[work(), waiter_after_prep()]).await;
    let job = create(&c, "approval2", json!({"id": 7})).await;
    let t = take(&c, "work", job).await;

    let mut c1 = tdb.connect().await.unwrap();
    let tx = c1.transaction().await.unwrap();
    db::task_done(&tx, &t.cookie, &json!({})).await.unwrap();
    let (c2, p2) = other(&tdb).await;
    let h = tokio::spawn(async move {
        db::raise_event(&c2, &json!({"type": "approval", "id": 7, "ok": true})).await
    });
    blocked_or_done(&c, p2, &h).await;
    tx.commit().await.unwrap();
    h.await.unwrap().unwrap();

    assert_eq!(
        state(&c, job).await,
        "finished",
        "the event did not wake the job"
    );
    assert_eq!(output(&c, job).await["event"]["data"]["ok"], json!(true));
}

/// `name`: lock `first`; work; lock `second`; end.
fn two_locks(name: &str, first: &str, second: &str) -> Model {
    let mut f = locking(name);
    lock(&mut f, first, None);
    call_work(&mut f);
    lock(&mut f, second, None);
    f.end(vec![])
}

/// Item 4: two jobs taking two locks in opposite orders in overlapping transactions. 0.1 let
/// both wait for ever; the second to wait must get a deadlock error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_cycles_built_by_overlapping_transactions_are_detected() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &[work(), two_locks("ab", "a", "b"), two_locks("ba", "b", "a")],
    )
    .await;
    let x = create(&c, "ab", json!({})).await;
    let y = create(&c, "ba", json!({})).await;
    let tx_ = take(&c, "work", x).await;
    let ty = take(&c, "work", y).await;

    let mut c1 = tdb.connect().await.unwrap();
    let tx = c1.transaction().await.unwrap();
    db::task_done(&tx, &tx_.cookie, &json!({})).await.unwrap();
    let (c2, p2) = other(&tdb).await;
    let h = tokio::spawn(async move { db::task_done(&c2, &ty.cookie, &json!({})).await });
    blocked_or_done(&c, p2, &h).await;
    tx.commit().await.unwrap();
    h.await.unwrap().unwrap();

    assert_eq!(state(&c, y).await, "error", "both jobs wait for ever");
    let (class, msg) = error_of(&c, y).await;
    assert_eq!(class, "lock");
    assert!(msg.contains("deadlock"), "{msg}");
    assert_eq!(state(&c, x).await, "finished");
    assert_eq!(holders(&c).await, 0);
}

/// Item 5: do_timeout drives a due job (stopped at the gate) while a task_done releases a lock
/// whose waiter is due later in the same batch. 0.1 held the whole batch locked and deadlocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn do_timeout_holds_no_batch_while_it_drives() {
    let (tdb, c) = setup().await;
    gate_procedure(&c).await;
    let mut holder = locking("holder5");
    lock(&mut holder, "z", None);
    call_work(&mut holder);
    unlock(&mut holder, "z");
    let holder = holder.end(vec![]);
    let mut waiter = locking("waiter5");
    lock(&mut waiter, "z", Some(json!("1 hour")));
    let waiter = waiter.end(vec![]);
    let mut sleeper = Flow::workflow("sleeper");
    sleeper.system(SystemAction::Sleep, vec![set(ip(&["timeout"]), lit(3600))]);
    sleeper.call("jc_gate", vec![], vec![]);
    let sleeper = sleeper.end(vec![]);
    load(&c, &[work(), gate_model(), holder, waiter, sleeper]).await;

    let h = create(&c, "holder5", json!({})).await;
    let t = take(&c, "work", h).await;
    let w = create(&c, "waiter5", json!({})).await;
    assert_eq!(state(&c, w).await, "lockwait");
    let s = create(&c, "sleeper", json!({})).await;
    assert_eq!(state(&c, s).await, "sleeping");
    // both due, the sleeper first
    c.execute(
        "update jobcenter.jobs set timeout = now() - case when job_id = $1 then interval '1 minute' \
         else interval '30 seconds' end where job_id in ($1, $2)",
        &[&s, &w],
    )
    .await
    .unwrap();

    close_gate(&c).await;
    let (c1, p1) = other(&tdb).await;
    let ht = tokio::spawn(async move { db::do_timeout(&c1).await });
    let ht = until_blocked(&c, p1, ht).await;
    let (c2, p2) = other(&tdb).await;
    let hd = tokio::spawn(async move { db::task_done(&c2, &t.cookie, &json!({})).await });
    blocked_or_done(&c, p2, &hd).await;
    open_gate(&c).await;
    let (rt, rd) = (ht.await.unwrap(), hd.await.unwrap());
    assert!(
        rt.is_ok() && rd.is_ok(),
        "do_timeout: {rt:?}, task_done: {rd:?}"
    );

    for job in [h, w, s] {
        assert_eq!(state(&c, job).await, "finished", "job {job}");
    }
    assert_eq!(holders(&c).await, 0);
}

/// Item 6: a parent is cancelled while its child's row is held by a task_done that makes the
/// child ready again. The child must never be handed to a worker, and must be aborted (its
/// lock released) by the next do_timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_child_skipped_by_its_parents_abort_is_aborted_and_never_handed_out() {
    let (tdb, c) = setup().await;
    let mut kid = locking("kid6");
    lock(&mut kid, "k", None);
    call_work(&mut kid);
    call_work(&mut kid);
    let kid = kid.end(vec![]);
    load(&c, &[work(), kid, caller("boss6", "kid6")]).await;
    let boss = create(&c, "boss6", json!({})).await;
    let child = only_child(&c, boss).await;
    let t = take(&c, "work", child).await;

    let mut c1 = tdb.connect().await.unwrap();
    let tx = c1.transaction().await.unwrap();
    db::task_done(&tx, &t.cookie, &json!({})).await.unwrap();
    let c2 = tdb.connect().await.unwrap();
    db::cancel_job(&c2, boss, "stop", false).await.unwrap();
    tx.commit().await.unwrap();

    assert_eq!(state(&c, boss).await, "error");
    let offered = db::get_task(&c, "w", "work", None).await.unwrap();
    assert!(
        offered.is_none(),
        "the child of a cancelled parent was handed out"
    );
    db::do_timeout(&c).await.unwrap();
    assert_eq!(state(&c, child).await, "error");
    assert_eq!(error_of(&c, child).await.0, "abort");
    assert_eq!(holders(&c).await, 0, "the aborted child kept its lock");
    assert_eq!(count(&c, "job_aborts").await, 0);
}

/// Item 7: cancel during a `call`, retry: the new run's child decides, not the old one's abort.
#[tokio::test]
async fn a_retried_job_ignores_the_children_of_its_previous_run() {
    let (_db, c) = setup().await;
    let mut kid = Flow::workflow("kid7");
    call_work(&mut kid);
    let kid = kid.end(vec![]);
    load(&c, &[work(), kid, caller("boss7", "kid7")]).await;
    let boss = create(&c, "boss7", json!({})).await;
    let old = only_child(&c, boss).await;
    db::cancel_job(&c, boss, "stop", false).await.unwrap();
    assert_eq!(state(&c, old).await, "error");
    db::retry_job(&c, boss, "again").await.unwrap();
    let kids = engine_tests::children(&c, boss).await;
    assert_eq!(kids.len(), 2);
    work_job(&c, "work", kids[1], |_| json!({})).await;
    assert_eq!(
        state(&c, boss).await,
        "finished",
        "{}",
        output(&c, boss).await
    );
}

/// Item 8: tasks made ready for an action's older version are handed to workers of the newest.
#[tokio::test]
async fn ready_tasks_of_an_older_action_version_are_handed_out() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let job = create(&c, "calltest", json!({"input": 1})).await;
    load(&c, &[examples::add()]).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let t = db::get_task(&c, "w", "add", None).await.unwrap();
    let t = t.expect("the task of the older version was not handed out");
    assert_eq!(t.job_id, job);
    db::task_done(&c, &t.cookie, &examples::add_answer(&t.inargs))
        .await
        .unwrap();
    assert_eq!(output(&c, job).await, json!({"output": 4}));
}

/// A task keeps the time-out of the version it was made ready for: the take reads the newest
/// version's once and an older one's only for a task of that version.
#[tokio::test]
async fn a_task_is_timed_out_by_the_version_it_was_made_ready_for() {
    let (_db, c) = setup().await;
    let add = |timeout: &str| {
        let timeout = timeout.to_owned();
        examples::counter_action("add")
            .config(move |cfg| cfg.timeout = Some(timeout))
            .model()
    };
    load(&c, &[add("1 hour"), examples::calltest()]).await;
    let old = create(&c, "calltest", json!({"input": 1})).await;
    // a workflow calls the version it was compiled against: calltest again, for the new one
    load(&c, &[add("2 minutes"), examples::calltest()]).await;
    let new = create(&c, "calltest", json!({"input": 2})).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let mut taken = vec![];
    while let Some(t) = db::get_task(&c, "w", "add", None).await.unwrap() {
        taken.push(t.job_id);
    }
    assert_eq!(taken, vec![old, new]);
    let left = |job: i64| {
        let c = &c;
        async move {
            let row = c
                .query_one(
                    "select extract(epoch from timeout - now())::float8 \
                     from jobcenter.jobs where job_id = $1",
                    &[&job],
                )
                .await
                .unwrap();
            row.get::<_, f64>(0)
        }
    };
    let (old_left, new_left) = (left(old).await, left(new).await);
    assert!(
        (3500.0..=3600.0).contains(&old_left),
        "the older version's task has {old_left} s left, not an hour's"
    );
    assert!(
        (60.0..=120.0).contains(&new_left),
        "the newest version's task has {new_left} s left, not 2 minutes'"
    );
}

/// Item 9: archived jobs and their step log are pruned in bounded batches after the retention.
#[tokio::test]
async fn archived_jobs_and_their_step_log_are_pruned_in_batches() {
    let (_db, c) = setup().await;
    c.batch_execute(
        "update jobcenter.settings set value = '\"1 day\"' where name = 'archive_retention'; \
         update jobcenter.settings set value = '10' where name = 'cleanup_batch'; \
         insert into jobcenter.jobs_archive (job_id, workflow_id, state, archived) \
         select n, 1, 'finished', now() - case when n <= 25 then interval '2 days' else interval '1 hour' end \
         from generate_series(1, 30) n; \
         insert into jobcenter.job_task_log (job_id, workflow_id, task_id, state) \
         select n, 1, 1, 'done' from generate_series(1, 30) n, generate_series(1, 3)",
    )
    .await
    .expect("setup rows (needs the archive_retention and cleanup_batch settings)");
    let mut left = vec![];
    for _ in 0..3 {
        db::do_archival_and_cleanup(&c).await.unwrap();
        left.push(count(&c, "jobs_archive").await);
    }
    assert_eq!(left, vec![20, 10, 5], "archived jobs left after each call");
    assert_eq!(count(&c, "job_task_log").await, 15, "the kept jobs' log");
}

/// Item 9: find_jobs uses indexes, not a scan of jobs and jobs_archive in full.
#[tokio::test]
async fn find_jobs_does_not_scan_the_tables_in_full() {
    let (_db, mut c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let job = create(&c, "calltest", json!({"input": 5000})).await;
    c.batch_execute(
        "with d as (insert into jobcenter.jobs (workflow_id, task_id, state, arguments) \
         select workflow_id, task_id, 'finished', jsonb_build_object('input', n) \
         from jobcenter.jobs, generate_series(1, 3000) n where job_id = (select min(job_id) from jobcenter.jobs) \
         returning job_id, arguments) \
         insert into jobcenter.job_arguments select job_id, arguments from d; \
         insert into jobcenter.jobs_archive (job_id, workflow_id, state, arguments) \
         select 100000 + n, 1, 'finished', jsonb_build_object('input', n) from generate_series(1, 3000) n; \
         analyze jobcenter.jobs; analyze jobcenter.job_arguments; analyze jobcenter.jobs_archive",
    )
    .await
    .unwrap();
    let tx = c.transaction().await.unwrap();
    let found = db::find_jobs(&tx, &json!({"input": 5000}), None)
        .await
        .unwrap();
    assert_eq!(found, vec![job]);
    let scans: Vec<(String, i64)> = tx
        .query(
            "select relname::text, seq_scan from pg_stat_xact_user_tables \
             where schemaname = 'jobcenter' and relname in ('jobs', 'job_arguments', 'jobs_archive') \
             order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        scans,
        vec![
            ("job_arguments".to_owned(), 0),
            ("jobs".to_owned(), 0),
            ("jobs_archive".to_owned(), 0)
        ]
    );
}

/// Item 10: raise_event returns its own event's id, not one a woken job raised.
#[tokio::test]
async fn raise_event_returns_its_own_event_id() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("relay");
    f.system(
        SystemAction::Subscribe,
        vec![
            set(ip(&["name"]), lit("ping")),
            set(ip(&["mask", "type"]), lit("ping")),
        ],
    );
    f.system_with(SystemAction::WaitForEvent, |t| {
        t.imap = Some(vec![set(ip(&["events"]), lit(json!(["ping"])))]);
    });
    f.system(
        SystemAction::RaiseEvent,
        vec![set(ip(&["event", "type"]), lit("pong"))],
    );
    load(&c, &[f.end(vec![])]).await;
    let job = create(&c, "relay", json!({})).await;
    assert_eq!(state(&c, job).await, "eventwait");
    let id = db::raise_event(&c, &json!({"type": "ping"})).await.unwrap();
    assert_eq!(state(&c, job).await, "finished");
    let data: Value = c
        .query_one(
            "select eventdata from jobcenter.job_events where event_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(data, json!({"type": "ping"}));
}

/// A value nested `n` levels deep.
fn nested(n: usize) -> Value {
    (0..n).fold(json!(1), |v, _| json!([v]))
}

/// deep: in a try, `v.x = array(v.x)` 200 times; the catch outputs the error message.
fn deep_loop() -> Model {
    let mut f = Flow::workflow("deep")
        .output("caught", "string")
        .config(|c| c.max_steps = Some(10_000));
    f.eval(vec![set(vp(&["x"]), lit(1)), set(vp(&["n"]), lit(0))]);
    let body = f.eval(vec![
        set(vp(&["x"]), call(Func::Array, vec![v(&["x"])])),
        set(vp(&["n"]), bin(BinOp::Add, v(&["n"]), lit(1))),
    ]);
    let again = f.branch(bin(BinOp::NumLt, v(&["n"]), lit(200)));
    f.edge(again, "true", body);
    let done = f.eval(vec![set(vp(&["caught"]), lit("no error"))]);
    let end_jump = f.no_op();
    let catch = f.eval(vec![set(vp(&["caught"]), var(Ns::E, &["_error", "msg"]))]);
    let end = f.push_end(vec![set(path(Ns::O, &["caught"]), v(&["caught"]))]);
    f.goto(end_jump, end);
    f.on_error(body, done, catch);
    f.build()
}

/// Item 11: depth limits are errors a workflow catches; input the engine cannot take is
/// refused with JC002 or fails the task, never a panic.
#[tokio::test]
async fn values_nested_too_deep_are_errors_not_panics() {
    let (_db, c) = setup().await;
    let act = action("deepact").output("v", "json").model();
    let mut w = Flow::workflow("deepcall");
    w.call("deepact", vec![], vec![]);
    let w = w.end(vec![]);
    load(&c, &[deep_loop(), act, w]).await;

    let job = create(&c, "deep", json!({})).await;
    let caught = output(&c, job).await["caught"].clone();
    assert!(
        caught.as_str().is_some_and(|m| m.contains("nested")),
        "{caught}"
    );

    let env = json!({"deep": nested(300)});
    let r = db::create_job(
        &c,
        "deepcall",
        &json!({}),
        db::CreateJob {
            env: Some(&env),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code_of(r), db::ErrorCode::BadArguments);

    let job = create(&c, "deepcall", json!({})).await;
    let t = take(&c, "deepact", job).await;
    db::task_done(&c, &t.cookie, &json!({"v": nested(300)}))
        .await
        .unwrap();
    assert_eq!(state(&c, job).await, "error");
    assert!(error_of(&c, job).await.1.contains("nested"));
}
