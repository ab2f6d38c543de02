//! Priorities with aging: get_task and get_tasks serve ready tasks by their job's ready_rank
//! (created less priority times `priority_aging`), so higher priorities go first but a job
//! waits at most (p - q) agings behind jobs of priority p created after it; child jobs have
//! their parent's priority or their call's; a priority out of range is refused.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use engine_tests::expr::ip;
use engine_tests::flow::Flow;
use engine_tests::{code_of, db, examples, load, only_child, setup};
use jcl::build::{path, set, var};
use jcl::{Model, Ns};
use tokio_postgres::Client;

async fn create_p(c: &Client, input: i64, priority: Option<i32>) -> i64 {
    c.query_one(
        "select job_id from jobcenter.create_job('calltest', jsonb_build_object('input', $1::bigint), \
         a_priority => $2)",
        &[&input, &priority],
    )
    .await
    .unwrap()
    .get(0)
}

/// The jobs of the tasks get_task hands out, one by one, until there is none.
async fn taken_one_by_one(c: &Client) -> Vec<i64> {
    db::announce(c, "w", "add", None, None).await.unwrap();
    let mut out = vec![];
    while let Some(t) = db::get_task(c, "w", "add", None).await.unwrap() {
        out.push(t.job_id);
    }
    out
}

#[tokio::test]
async fn higher_priorities_are_served_first_by_every_way_of_taking_tasks() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let low1 = create_p(&c, 1, None).await;
    let high = create_p(&c, 2, Some(5)).await;
    let neg = create_p(&c, 3, Some(-5)).await;
    let low2 = create_p(&c, 4, Some(0)).await;
    let higher = create_p(&c, 5, Some(6)).await;
    let want = [higher, high, low1, low2, neg];
    // poll_tasks counts them all
    let worker = db::announce(&c, "p", "add", None, None).await.unwrap();
    let polled: i64 = c
        .query_one(
            "select count from jobcenter.poll_tasks(array[$1::bigint])",
            &[&worker],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(polled, 5);
    // get_tasks, batched: the same order
    db::announce(&c, "b", "add", None, None).await.unwrap();
    let batch: Vec<i64> = db::get_tasks(&c, "b", "add", 3)
        .await
        .unwrap()
        .iter()
        .map(|t| t.job_id)
        .collect();
    assert_eq!(batch, want[..3]);
    assert_eq!(taken_one_by_one(&c).await, want[3..]);
    let prio: Vec<i32> = c
        .query("select priority from jobcenter.jobs order by job_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(prio, [0, 5, -5, 0, 6]);
}

#[tokio::test]
async fn aging_bounds_how_long_a_low_priority_waits() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    c.batch_execute(
        "update jobcenter.settings set value = '\"1 second\"' where name = 'priority_aging'",
    )
    .await
    .unwrap();
    let low = create_p(&c, 1, None).await;
    let early = create_p(&c, 2, Some(1)).await;
    let much_later = create_p(&c, 3, Some(3)).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    // more than one aging after `low`: a priority 1 job created now comes after it, ...
    let late = create_p(&c, 4, Some(1)).await;
    // ... and a priority 3 one still before (3 agings)
    let urgent = create_p(&c, 5, Some(3)).await;
    assert_eq!(
        taken_one_by_one(&c).await,
        [much_later, urgent, early, low, late]
    );
}

/// parent(input): `call calltest` (with `priority` when given), output its output.
fn parent(name: &str, priority: Option<i32>) -> Model {
    let mut f = Flow::workflow(name)
        .input("input", "number")
        .output("output", "number");
    f.call_with(
        "calltest",
        vec![set(ip(&["input"]), var(Ns::A, &["input"]))],
        vec![set(path(Ns::V, &["output"]), var(Ns::O, &["output"]))],
        |t| t.priority = priority,
    );
    f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["output"]))])
}

async fn priority_of(c: &Client, job: i64) -> i32 {
    c.query_one(
        "select priority from jobcenter.jobs where job_id = $1",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn a_child_has_its_calls_priority_or_its_parents() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            examples::add(),
            examples::calltest(),
            parent("inherits", None),
            parent("sets", Some(7)),
        ],
    )
    .await;
    let create = |wf: &'static str, p: i32| {
        let c = &c;
        async move {
            c.query_one(
                "select job_id from jobcenter.create_job($1, '{\"input\": 1}', a_priority => $2)",
                &[&wf, &p],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
        }
    };
    let inherits = create("inherits", 3).await;
    let sets = create("sets", -2).await;
    let plain = create_p(&c, 1, Some(4)).await;
    let child_inh = only_child(&c, inherits).await;
    let child_set = only_child(&c, sets).await;
    assert_eq!(priority_of(&c, child_inh).await, 3);
    assert_eq!(priority_of(&c, child_set).await, 7);
    assert_eq!(taken_one_by_one(&c).await, [child_set, plain, child_inh]);
}

#[tokio::test]
async fn a_priority_out_of_range_is_refused_and_creates_nothing() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    for p in [1001, -1001] {
        let r = c
            .query_one(
                "select job_id from jobcenter.create_job('calltest', '{\"input\": 1}', a_priority => $1)",
                &[&p],
            )
            .await;
        let e = db::Error::from(r.unwrap_err());
        assert_eq!(code_of::<()>(Err(e)), db::ErrorCode::BadArguments);
    }
    assert_eq!(engine_tests::count(&c, "jobs").await, 0);
}
