//! Concurrency: many workers on one action take each task once; two children finishing at the
//! same moment advance their parent exactly once; one cookie used twice at once wins once.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;

use engine_tests::{children, count, db, examples, flow, jobs_in, load, log_states, setup, state};
use jcl::build::{lit, path, set, var};
use jcl::{Ns, SystemAction};
use serde_json::{json, Value};
use tokio::sync::Barrier;
use tokio_postgres::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_workers_take_each_of_200_tasks_exactly_once() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let mut created = vec![];
    for n in 0..200i64 {
        created.push(
            db::create_job(&c, "calltest", &json!({"input": n}), Default::default())
                .await
                .unwrap()
                .job_id,
        );
    }
    let mut handles = vec![];
    for w in 0..8 {
        let tdb = tdb.clone();
        handles.push(tokio::spawn(async move {
            let c = tdb.connect().await.unwrap();
            let name = format!("w{w}");
            db::announce(&c, &name, "add", None, None).await.unwrap();
            let mut taken = vec![];
            while let Some(t) = db::get_task(&c, &name, "add", None).await.unwrap() {
                db::task_done(&c, &t.cookie, &examples::add_answer(&t.inargs))
                    .await
                    .unwrap();
                taken.push(t.job_id);
            }
            taken
        }));
    }
    let mut all = vec![];
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), 200, "tasks taken");
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(unique.len(), 200, "a task was taken twice");
    all.sort_unstable();
    assert_eq!(all, created);
    assert_eq!(jobs_in(&c, "finished").await, 200);
    // each job logged its action step once, with its own result
    let bad: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs j where out_args <> \
             jsonb_build_object('output', (arguments ->> 'input')::int + 3) \
             or (select count(*) from jobcenter.job_task_log l where l.job_id = j.job_id \
                 and l.outargs is not null and l.state = 'done') <> 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
}

/// child(n): calls `work` with n, returns its out.
/// parent: splits into child(1) and child(2), waits, reaps a = first, b = second.
fn split_models() -> Vec<jcl::Model> {
    let work = flow::action("work")
        .input("n", "number")
        .output("out", "number")
        .model();
    let mut f = flow::Flow::workflow("child")
        .input("n", "number")
        .output("out", "number");
    f.call(
        "work",
        vec![set(path(Ns::I, &["n"]), var(Ns::A, &["n"]))],
        vec![set(path(Ns::V, &["out"]), var(Ns::O, &["out"]))],
    );
    let child = f.end(vec![set(path(Ns::O, &["out"]), var(Ns::V, &["out"]))]);

    let mut f = flow::Flow::workflow("parent")
        .output("a", "number")
        .output("b", "number");
    let first = f.call_with(
        "child",
        vec![set(path(Ns::I, &["n"]), lit(1))],
        vec![],
        |a| a.wait = false,
    );
    let second = f.call_with(
        "child",
        vec![set(path(Ns::I, &["n"]), lit(2))],
        vec![],
        |a| a.wait = false,
    );
    f.system_with(SystemAction::WaitForChildren, |_| {});
    f.system_with(SystemAction::ReapChild, |a| {
        a.spawn_task = Some(first);
        a.omap = Some(vec![set(path(Ns::V, &["a"]), var(Ns::O, &["out"]))]);
    });
    f.system_with(SystemAction::ReapChild, |a| {
        a.spawn_task = Some(second);
        a.omap = Some(vec![set(path(Ns::V, &["b"]), var(Ns::O, &["out"]))]);
    });
    let parent = f.end(vec![
        set(path(Ns::O, &["a"]), var(Ns::V, &["a"])),
        set(path(Ns::O, &["b"]), var(Ns::V, &["b"])),
    ]);
    vec![work, child, parent]
}

/// Finishes a task inside an explicit transaction that starts together with the other one's,
/// and holds the transaction open a moment after task_done so the two overlap.
async fn done_in_tx(
    c: &mut Client,
    barrier: &Barrier,
    cookie: &str,
    out: Value,
) -> Result<(), db::Error> {
    let tx = c.transaction().await.unwrap();
    barrier.wait().await;
    db::task_done(&tx, cookie, &out).await?;
    tx.batch_execute("select pg_sleep(0.05)").await.unwrap();
    tx.commit().await.unwrap();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_children_finishing_at_once_advance_the_parent_once() {
    let (tdb, c) = setup().await;
    load(&c, &split_models()).await;
    let mut c1 = tdb.connect().await.unwrap();
    let mut c2 = tdb.connect().await.unwrap();
    db::announce(&c, "w", "work", None, None).await.unwrap();
    for round in 0..20 {
        let parent = db::create_job(&c, "parent", &json!({}), Default::default())
            .await
            .unwrap()
            .job_id;
        assert_eq!(state(&c, parent).await, "childwait", "round {round}");
        let kids = children(&c, parent).await;
        assert_eq!(kids.len(), 2);
        let mut tasks = vec![];
        for k in &kids {
            assert_eq!(state(&c, *k).await, "ready");
            tasks.push(
                db::get_task(&c, "w", "work", Some(*k))
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let barrier = Barrier::new(2);
        // alternate which child's connection goes first
        let (t_a, t_b) = if round % 2 == 0 {
            (&tasks[0], &tasks[1])
        } else {
            (&tasks[1], &tasks[0])
        };
        let out_a = json!({"out": t_a.inargs["n"].as_i64().unwrap() * 10});
        let out_b = json!({"out": t_b.inargs["n"].as_i64().unwrap() * 10});
        let (r1, r2) = tokio::join!(
            done_in_tx(&mut c1, &barrier, &t_a.cookie, out_a),
            done_in_tx(&mut c2, &barrier, &t_b.cookie, out_b),
        );
        r1.unwrap();
        r2.unwrap();

        assert_eq!(state(&c, parent).await, "finished", "round {round}");
        assert_eq!(
            db::get_job_status(&c, parent).await.unwrap(),
            Some(json!({"a": 10, "b": 20})),
            "round {round}"
        );
        assert_eq!(
            log_states(&c, parent).await,
            vec![
                "start:done",
                "child:done",
                "child:done",
                "wait_for_children:done",
                "reap_child:done",
                "reap_child:done",
                "end:finished"
            ],
            "round {round}"
        );
        for k in &kids {
            assert_eq!(state(&c, *k).await, "finished");
            assert_eq!(
                log_states(&c, *k).await,
                vec!["start:done", "work:done", "end:zombie"]
            );
        }
    }
    let live: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where state not in ('finished')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_cookie_used_twice_at_once_wins_exactly_once() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let mut c1 = tdb.connect().await.unwrap();
    let mut c2 = tdb.connect().await.unwrap();
    let c3 = tdb.connect().await.unwrap();
    let c4 = tdb.connect().await.unwrap();
    db::announce(&c, "w", "add", None, None).await.unwrap();
    for round in 0..10 {
        let job = db::create_job(&c, "calltest", &json!({"input": round}), Default::default())
            .await
            .unwrap()
            .job_id;
        let t = db::get_task(&c, "w", "add", Some(job))
            .await
            .unwrap()
            .unwrap();
        let (r1, r2) = if round % 2 == 0 {
            // in explicit, overlapping transactions
            let barrier = Barrier::new(2);
            tokio::join!(
                done_in_tx(&mut c1, &barrier, &t.cookie, json!({"counter": 1})),
                done_in_tx(&mut c2, &barrier, &t.cookie, json!({"counter": 2})),
            )
        } else {
            // autocommit
            let barrier = Arc::new(Barrier::new(2));
            let (b1, b2) = (barrier.clone(), barrier);
            tokio::join!(
                async {
                    b1.wait().await;
                    db::task_done(&c3, &t.cookie, &json!({"counter": 1})).await
                },
                async {
                    b2.wait().await;
                    db::task_done(&c4, &t.cookie, &json!({"counter": 2})).await
                },
            )
        };
        let winner = match (&r1, &r2) {
            (Ok(()), Err(e)) => {
                assert_eq!(e.code(), Some(db::ErrorCode::UnknownCookie), "{e}");
                1
            }
            (Err(e), Ok(())) => {
                assert_eq!(e.code(), Some(db::ErrorCode::UnknownCookie), "{e}");
                2
            }
            _ => panic!("round {round}: exactly one must win: {r1:?} {r2:?}"),
        };
        assert_eq!(
            db::get_job_status(&c, job).await.unwrap(),
            Some(json!({"output": winner})),
            "round {round}"
        );
        assert_eq!(
            log_states(&c, job).await,
            vec!["start:done", "add:done", "end:finished"]
        );
    }
    assert_eq!(count(&c, "jobs").await, 10);
}
