//! A gateway that dies (kill -9) with workers holding tasks: the real `jcapi` and `maestro`
//! binaries. The maestro withdraws the dead gateway's workers within seconds (its lock is
//! gone), far sooner than the worker check's `worker_timeout`; a worker that reconnects
//! within `worker_grace` still delivers the result of the task it held, and the tasks of one
//! that never comes back follow `dead_worker_policy` once the grace is over. A live gateway
//! keeps its workers when its lock goes for a while: its lock connection cut again and again,
//! PostgreSQL crashed and started again.
//!
//! The maestro binary is the one built next to jcapi's (`cargo build -p maestro`; the
//! workspace's test command builds it).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// The maestro, running on `env`'s database; killed when dropped.
fn maestro(env: &Env) -> tokio::process::Child {
    let bin = Path::new(env!("CARGO_BIN_EXE_jcapi")).with_file_name("maestro");
    assert!(
        bin.exists(),
        "build the maestro first: cargo build -p maestro"
    );
    tokio::process::Command::new(bin)
        .env("JC_DSN", &env.tdb.dsn)
        .env("JC_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// Takes the task offered on `w` and keeps it: (job id, cookie, inargs).
async fn take(w: &mut Rpc, action: &str) -> (i64, Value, Value) {
    let offer = w.notification("task_ready", WAIT).await.expect("an offer");
    let task = w
        .call(
            "get_task",
            json!({"actionname": action, "job_id": offer["job_id"]}),
        )
        .await;
    (task[0].as_i64().unwrap(), task[1].clone(), task[2].clone())
}

/// The worker's live row: (stopped, orphaned, announcements).
async fn worker_row(db: &tokio_postgres::Client, name: &str) -> (bool, bool, i64) {
    let r = db
        .query_one(
            "select w.stopped is not null, w.orphaned, \
                    (select count(*) from jobcenter.worker_actions a where a.worker_id = w.worker_id) \
             from jobcenter.workers w where w.name = $1 order by w.worker_id limit 1",
            &[&name],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn job_row(db: &tokio_postgres::Client, job: i64) -> (String, Option<Value>) {
    let r = db
        .query_one(
            "select state::text, out_args from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1))
}

#[tokio::test]
async fn a_dead_gateways_workers_are_withdrawn_and_keep_their_tasks_for_the_grace() {
    let env = env().await;
    env.db
        .batch_execute(
            "update jobcenter.settings set value = '\"6 seconds\"' where name = 'worker_grace'",
        )
        .await
        .unwrap();
    let _maestro = maestro(&env);
    let mut g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut back = announced(&g, "tcp", "back", "fragile", 1).await;
    let mut lost = announced(&g, "tcp", "lost", "fragile", 1).await;
    let one = c.create_job("fragiletest", json!({"input": 1})).await;
    let two = c.create_job("fragiletest", json!({"input": 2})).await;
    let (job_back, cookie, inargs) = take(&mut back, "fragile").await;
    let (job_lost, _, _) = take(&mut lost, "fragile").await;
    let mut jobs = [job_back, job_lost];
    jobs.sort_unstable();
    assert_eq!(jobs, [one, two]);

    g.child.start_kill().unwrap();
    g.child.wait().await.unwrap();
    let killed = Instant::now();
    // Withdrawn within seconds (gateway_timeout is 5 s, the check runs every second), not
    // after worker_timeout (3 minutes); the tasks are still theirs.
    assert!(
        eventually(Duration::from_secs(20), || async {
            worker_row(&env.db, "back").await.0 && worker_row(&env.db, "lost").await.0
        })
        .await,
        "the dead gateway's workers are withdrawn"
    );
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(12), "withdrawn after {took:?}");
    assert_eq!(worker_row(&env.db, "back").await, (true, true, 0));
    assert_eq!(job_row(&env.db, job_back).await.0, "working");
    assert_eq!(job_row(&env.db, job_lost).await.0, "working");

    // One worker reconnects (to the gateway started again) and delivers its result.
    let g2 = Gateway::start(&env, &[]).await;
    let again = announced(&g2, "tcp", "back", "fragile", 1).await;
    again.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": add(&inargs)}),
    );
    assert!(
        eventually(WAIT, || async {
            job_row(&env.db, job_back).await.0 == "finished"
        })
        .await,
        "the resent result finishes the job"
    );
    assert_eq!(
        job_row(&env.db, job_back).await.1,
        Some(json!({"output": 4}))
    );

    // The other never comes back: after the grace its task fails (dead_worker_policy error).
    assert!(
        eventually(Duration::from_secs(20), || async {
            job_row(&env.db, job_lost).await.0 == "error"
        })
        .await,
        "the lost worker's task follows dead_worker_policy"
    );
    assert!(
        killed.elapsed() >= Duration::from_secs(6),
        "not before the grace"
    );
    let out = job_row(&env.db, job_lost).await.1.unwrap();
    assert_eq!(out["error"]["class"], "normal", "{out}");
    assert_eq!(
        out["error"]["msg"], "worker lost disconnected with its gateway",
        "{out}"
    );
    assert_eq!(job_row(&env.db, job_back).await.0, "finished");
}

#[tokio::test]
async fn a_live_gateway_keeps_its_workers_across_a_lost_lock_connection() {
    let env = env().await;
    let _maestro = maestro(&env);
    let g = Gateway::start(&env, &[]).await;
    let _w = announced(&g, "tcp", "steady", "add", 1).await;
    // Its lock connection is cut again and again for longer than gateway_timeout: it takes
    // its lock back each time, so the maestro leaves its worker alone.
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        env.db
            .batch_execute(
                "select pg_terminate_backend(l.pid) from pg_locks l \
                 where l.locktype = 'advisory' and l.classid = jobcenter.gateway_lock_class()::oid",
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(worker_row(&env.db, "steady").await, (false, false, 1));
    still_serving(&g).await;
}

#[tokio::test]
async fn a_live_gateway_keeps_its_workers_across_a_postgresql_crash() {
    // Durable: the crash must not take the commit of the task's taking with it.
    let (cluster, env) = durable_env().await;
    let _maestro = maestro(&env);
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = announced(&g, "tcp", "survivor", "fragile", 1).await;
    let job = c.create_job("fragiletest", json!({"input": 1})).await;
    let (taken, cookie, inargs) = take(&mut w, "fragile").await;
    assert_eq!(taken, job);
    // Down for longer than gateway_timeout: every lock is gone, and comes back only when
    // the gateway has reconnected.
    cluster.crash().await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    cluster.start_again().await.unwrap();
    let db = env.tdb.connect().await.unwrap();
    // The maestro checks several times meanwhile: the gateway is alive, its worker stays.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(worker_row(&db, "survivor").await, (false, false, 1));
    w.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": add(&inargs)}),
    );
    assert!(
        eventually(WAIT, || async { job_row(&db, job).await.0 == "finished" }).await,
        "the worker's result finishes the job: {:?}",
        job_row(&db, job).await
    );
}
