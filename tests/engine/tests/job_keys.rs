//! Idempotent submission (create_job's a_key): a key names one job per workflow while it lives
//! and for `job_key_retention` after it ended, also once it is archived; racing creates with
//! one key create one job; maintenance prunes expired keys.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::{code_of, count, db, examples, load, setup, work_job};
use serde_json::json;
use tokio_postgres::Client;

async fn create_keyed(
    c: &impl tokio_postgres::GenericClient,
    wf: &str,
    input: i64,
    key: &str,
) -> i64 {
    db::create_job(
        c,
        wf,
        &json!({ "input": input }),
        db::CreateJob {
            key: Some(key),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id
}

async fn setting(c: &Client, name: &str, value: &str) {
    c.execute(
        "update jobcenter.settings set value = to_jsonb($2::text) where name = $1",
        &[&name, &value],
    )
    .await
    .unwrap();
}

/// Finishes job `job` of calltest (its one add task).
async fn finish(c: &Client, job: i64) {
    work_job(c, "add", job, examples::add_answer).await;
    assert_eq!(engine_tests::state(c, job).await, "finished");
}

#[tokio::test]
async fn a_key_names_one_job_per_workflow_while_it_lives() {
    let (_db, c) = setup().await;
    let mut other = examples::calltest();
    other.name = "calltest2".into();
    load(&c, &[examples::add(), examples::calltest(), other]).await;
    let first = create_keyed(&c, "calltest", 1, "order-17").await;
    // the second create, even with other inputs, answers the first job and creates nothing
    assert_eq!(create_keyed(&c, "calltest", 2, "order-17").await, first);
    assert_eq!(count(&c, "jobs").await, 1);
    // the key is per workflow; other keys and no key create jobs
    let other_wf = create_keyed(&c, "calltest2", 1, "order-17").await;
    let other_key = create_keyed(&c, "calltest", 1, "order-18").await;
    let unkeyed = engine_tests::create(&c, "calltest", json!({"input": 1})).await;
    let all = [first, other_wf, other_key, unkeyed];
    assert_eq!(
        all.iter().collect::<std::collections::HashSet<_>>().len(),
        4
    );
    assert_eq!(count(&c, "jobs").await, 4);
    // the original's positional call without a key still works
    let r = c
        .query_one(
            "select job_id from jobcenter.create_job('calltest', '{\"input\": 3}')",
            &[],
        )
        .await
        .unwrap();
    assert!(r.get::<_, i64>(0) > unkeyed);
    // an empty key is refused and creates nothing
    let bad = db::create_job(
        &c,
        "calltest",
        &json!({"input": 1}),
        db::CreateJob {
            key: Some(""),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(code_of(bad), db::ErrorCode::BadArguments);
    assert_eq!(count(&c, "jobs").await, 5);
}

#[tokio::test]
async fn an_ended_job_keeps_its_key_for_the_retention_also_archived() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let first = create_keyed(&c, "calltest", 1, "k").await;
    finish(&c, first).await;
    assert_eq!(create_keyed(&c, "calltest", 1, "k").await, first);

    // archived: the key still answers the job, and now carries its expiry
    setting(&c, "archive_finished_after", "0 seconds").await;
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 1);
    assert_eq!(count(&c, "jobs").await, 0);
    assert_eq!(create_keyed(&c, "calltest", 1, "k").await, first);
    assert_eq!(count(&c, "jobs").await, 0);
    let left: f64 = c
        .query_one(
            "select extract(epoch from expires - now())::float8 from jobcenter.job_keys",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(left > 86_000.0 && left <= 86_400.0, "{left}");
    // the archive deleted too: the key still answers within its retention
    setting(&c, "archive_retention", "0 seconds").await;
    db::do_archival_and_cleanup(&c).await.unwrap();
    assert_eq!(count(&c, "jobs_archive").await, 0);
    assert_eq!(create_keyed(&c, "calltest", 1, "k").await, first);

    // past its expiry the key is pruned, and a create with it makes a new job
    c.batch_execute("update jobcenter.job_keys set expires = now() - interval '1 second'")
        .await
        .unwrap();
    db::do_archival_and_cleanup(&c).await.unwrap();
    assert_eq!(count(&c, "job_keys").await, 0);
    let second = create_keyed(&c, "calltest", 1, "k").await;
    assert_ne!(second, first);

    // an ended, not yet archived job past the retention frees its key too
    setting(&c, "archive_finished_after", "1 day").await;
    finish(&c, second).await;
    setting(&c, "job_key_retention", "0 seconds").await;
    let third = create_keyed(&c, "calltest", 1, "k").await;
    assert_ne!(third, second);
    assert_eq!(count(&c, "job_keys").await, 1);
}

/// Whether the backend of `pid` waits for a lock.
async fn waits_for_lock(c: &Client, pid: i32) -> bool {
    c.query_one(
        "select coalesce(wait_event_type = 'Lock', false) from pg_stat_activity where pid = $1",
        &[&pid],
    )
    .await
    .unwrap()
    .get(0)
}

/// Starts a keyed create of calltest on a new connection (its backend id, and the create),
/// and waits until it blocks on the key `holder` claimed in its open transaction.
async fn racer(
    tdb: &testkit::TestDb,
    watcher: &Client,
) -> tokio::task::JoinHandle<Result<i64, db::Error>> {
    let c2 = tdb.connect().await.unwrap();
    let pid: i32 = c2
        .query_one("select pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let handle = tokio::spawn(async move {
        let job = db::create_job(
            &c2,
            "calltest",
            &json!({"input": 2}),
            db::CreateJob {
                key: Some("race"),
                ..Default::default()
            },
        )
        .await?;
        Ok(job.job_id)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !waits_for_lock(watcher, pid).await {
        assert!(!handle.is_finished(), "the racing create did not wait");
        assert!(
            std::time::Instant::now() < deadline,
            "the racer never waited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle
}

#[tokio::test]
async fn racing_creates_with_one_key_create_one_job() {
    let (tdb, watcher) = setup().await;
    load(&watcher, &[examples::add(), examples::calltest()]).await;

    // The first create's transaction stays open: the racer waits for it, then gets its job.
    let mut c1 = tdb.connect().await.unwrap();
    let t = c1.transaction().await.unwrap();
    let first = create_keyed(&t, "calltest", 1, "race").await;
    let second = racer(&tdb, &watcher).await;
    t.commit().await.unwrap();
    assert_eq!(second.await.unwrap().unwrap(), first);
    assert_eq!(count(&watcher, "jobs").await, 1);

    // When the first create rolls back, the waiting racer creates the job itself.
    watcher
        .batch_execute("delete from jobcenter.job_keys; delete from jobcenter.jobs")
        .await
        .unwrap();
    let t = c1.transaction().await.unwrap();
    let gone = create_keyed(&t, "calltest", 1, "race").await;
    let second = racer(&tdb, &watcher).await;
    t.rollback().await.unwrap();
    let made = second.await.unwrap().unwrap();
    assert_ne!(made, gone);
    let jobs: Vec<i64> = watcher
        .query("select job_id from jobcenter.jobs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(jobs, vec![made]);
    let keyed: i64 = watcher
        .query_one(
            "select job_id from jobcenter.job_keys where key = 'race'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keyed, made);
}
