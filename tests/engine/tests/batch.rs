//! The batched worker calls: `get_tasks` takes many ready tasks in one transaction, and
//! `tasks_done` finishes many (together where it can, the others each in a subtransaction of
//! its own), so one bad result (an unknown cookie, bad outputs, a malformed element) fails that
//! task alone, and the ones finished together end as `task_done` would end them.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;

use engine_tests::{
    code_of, create, create_calltests, db, examples, jobs_in, load, output, setup, state,
};
use serde_json::{json, Value};

#[tokio::test]
async fn get_tasks_takes_at_most_the_limit_each_task_once() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let mut jobs = Vec::new();
    for i in 0..7 {
        jobs.push(create(&c, "calltest", json!({"input": i})).await);
    }
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let first = db::get_tasks(&c, "w", "add", 5).await.unwrap();
    assert_eq!(first.len(), 5);
    // oldest first, as get_task takes them
    let ids: Vec<i64> = first.iter().map(|t| t.job_id).collect();
    assert_eq!(ids, jobs[..5]);
    let rest = db::get_tasks(&c, "w", "add", 5).await.unwrap();
    assert_eq!(rest.iter().map(|t| t.job_id).collect::<Vec<_>>(), jobs[5..]);
    assert!(db::get_tasks(&c, "w", "add", 5).await.unwrap().is_empty());
    let cookies: HashSet<&str> = first
        .iter()
        .chain(&rest)
        .map(|t| t.cookie.as_str())
        .collect();
    assert_eq!(cookies.len(), 7, "every task has its own cookie");
    for t in first.iter().chain(&rest) {
        assert_eq!(state(&c, t.job_id).await, "working");
        assert_eq!(t.inargs["step"], json!(3));
    }
}

#[tokio::test]
async fn get_tasks_refuses_bad_limits_and_unknown_workers() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    db::announce(&c, "w", "add", None, None).await.unwrap();
    for bad in [0, -1, 1001] {
        assert_eq!(
            code_of(db::get_tasks(&c, "w", "add", bad).await),
            db::ErrorCode::BadArguments,
            "limit {bad}"
        );
    }
    assert_eq!(
        code_of(db::get_tasks(&c, "nobody", "add", 3).await),
        db::ErrorCode::UnknownWorker
    );
}

#[tokio::test]
async fn tasks_done_fails_a_bad_result_alone() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let mut jobs = Vec::new();
    for i in 0..4 {
        jobs.push(create(&c, "calltest", json!({"input": i * 10})).await);
    }
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let tasks = db::get_tasks(&c, "w", "add", 4).await.unwrap();
    assert_eq!(tasks.len(), 4);
    let good0 = examples::add_answer(&tasks[0].inargs);
    let bad_outputs = json!({"counter": "not a number"});
    let failed = json!({"error": "the disk is full"});
    let good3 = examples::add_answer(&tasks[3].inargs);
    let unknown = "00000000-0000-0000-0000-000000000000";
    let outcomes = db::tasks_done(
        &c,
        &[
            (tasks[0].cookie.as_str(), &good0),
            (unknown, &good0),
            (tasks[1].cookie.as_str(), &bad_outputs),
            (tasks[2].cookie.as_str(), &failed),
            ("not a cookie", &good0),
            (tasks[3].cookie.as_str(), &good3),
            // the same cookie twice: the second finds no task
            (tasks[3].cookie.as_str(), &good3),
        ],
    )
    .await
    .unwrap();
    let codes: Vec<Option<&str>> = outcomes.iter().map(|o| o.code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            None,
            Some("JC003"),
            None,
            None,
            Some("JC003"),
            None,
            Some("JC003")
        ]
    );
    assert_eq!(outcomes[1].cookie.as_deref(), Some(unknown));
    assert!(outcomes[1].message.as_deref().unwrap().contains(unknown));
    assert!(!outcomes[1].retryable());
    // the good ones finished, the bad outputs and the failure ended their jobs in error
    assert_eq!(output(&c, jobs[0]).await, json!({"output": 3}));
    assert_eq!(output(&c, jobs[3]).await, json!({"output": 33}));
    assert_eq!(state(&c, jobs[1]).await, "error");
    assert_eq!(state(&c, jobs[2]).await, "error");
    let err: Value = output(&c, jobs[2]).await;
    assert_eq!(err["error"]["msg"], json!("the disk is full"));
}

#[tokio::test]
async fn tasks_done_refuses_what_is_no_batch() {
    let (_db, c) = setup().await;
    for bad in ["{}", "null", "\"x\""] {
        let r = c
            .query(
                "select * from jobcenter.tasks_done($1::text::jsonb)",
                &[&bad.to_owned()],
            )
            .await;
        assert!(r.is_err(), "{bad} was taken");
    }
    let mut big = Vec::new();
    for _ in 0..1001 {
        big.push(json!({"cookie": "x", "outargs": {}}));
    }
    let e = c
        .query(
            "select * from jobcenter.tasks_done($1)",
            &[&Value::Array(big)],
        )
        .await
        .unwrap_err();
    assert_eq!(e.code().unwrap().code(), "JC002");
    // elements that are no object each fail alone
    let rows = c
        .query(
            "select o_code from jobcenter.tasks_done('[1, {\"outargs\": {}}]'::jsonb)",
            &[],
        )
        .await
        .unwrap();
    let codes: Vec<Option<String>> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(codes, [Some("JC002".to_owned()), Some("JC002".to_owned())]);
}

/// The job row and step log of `job` with what differs between any two runs (ids, times, the
/// cookie's worker) left out.
async fn footprint(c: &tokio_postgres::Client, job: i64) -> Value {
    c.query_one(
        "select jsonb_build_object( \
             'job', (select jsonb_build_object('state', state, 'out', out_args, 'task', task_id, \
                         'steps', stepcounter, 'variables', variables, 'task_state', task_state, \
                         'cookie', cookie, 'timeout', timeout, 'worker', worker_id, \
                         'finished', job_finished is not null, \
                         'times_in_order', task_entered <= task_completed \
                             and task_completed <= job_finished) \
                     from jobcenter.jobs where job_id = $1), \
             'log', (select jsonb_agg(jsonb_build_object('task', task_id, 'state', state, \
                         'variables', variables, 'inargs', inargs, 'outargs', outargs, \
                         'task_state', task_state, 'worker', worker_id is not null, \
                         'entered', task_entered is not null, 'completed', task_completed is not null) \
                         order by job_task_log_id) \
                     from jobcenter.job_task_log where job_id = $1))",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

/// `n` jobs of calltest with their tasks taken by worker `w`, the first finished by task_done:
/// the database, a connection, the jobs, the tasks and the answer every task gets.
async fn first_done(
    n: i32,
) -> (
    testkit::TestDb,
    tokio_postgres::Client,
    Vec<i64>,
    Vec<db::Task>,
    Value,
) {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    let mut jobs = Vec::new();
    for _ in 0..n {
        jobs.push(create(&c, "calltest", json!({"input": 5})).await);
    }
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let tasks = db::get_tasks(&c, "w", "add", n).await.unwrap();
    let answer = examples::add_answer(&tasks[0].inargs);
    db::task_done(&c, &tasks[0].cookie, &answer).await.unwrap();
    (tdb, c, jobs, tasks, answer)
}

/// The results tasks_done finishes together (finish_tasks) leave their jobs exactly as
/// task_done one at a time does: the same row and the same step log, for a batch of ends and
/// for a lone one. A cookie may be spelled in capitals and without hyphens; outputs the
/// plotter refuses go task_done's way.
#[tokio::test]
async fn tasks_done_together_leaves_what_task_done_alone_leaves() {
    let (_db, c, jobs, tasks, answer) = first_done(5).await;
    let spelled = tasks[2].cookie.replace('-', "").to_uppercase();
    let outcomes = db::tasks_done(
        &c,
        &[
            (tasks[1].cookie.as_str(), &answer),
            (spelled.as_str(), &answer),
            // bad outputs: task_done's way, which ends the job in error
            (tasks[3].cookie.as_str(), &json!({"counter": "six"})),
        ],
    )
    .await
    .unwrap();
    let codes: Vec<Option<&str>> = outcomes.iter().map(|o| o.code.as_deref()).collect();
    assert_eq!(codes, [None, None, None]);
    assert_eq!(outcomes[1].cookie.as_deref(), Some(spelled.as_str()));
    let alone = footprint(&c, jobs[0]).await;
    assert_eq!(alone["job"]["state"], json!("finished"));
    assert_eq!(alone["job"]["out"], json!({"output": 8}));
    assert_eq!(alone["job"]["times_in_order"], json!(true));
    assert_eq!(footprint(&c, jobs[1]).await, alone);
    assert_eq!(footprint(&c, jobs[2]).await, alone);
    assert_eq!(state(&c, jobs[3]).await, "error");
    // a batch of which finish_tasks ends one job (the other cookie names no task)
    let unknown = "00000000-0000-0000-0000-000000000000";
    let lone = db::tasks_done(
        &c,
        &[(tasks[4].cookie.as_str(), &answer), (unknown, &answer)],
    )
    .await
    .unwrap();
    let codes: Vec<Option<&str>> = lone.iter().map(|o| o.code.as_deref()).collect();
    assert_eq!(codes, [None, Some("JC003")], "{lone:?}");
    assert_eq!(footprint(&c, jobs[4]).await, alone);
}

/// A single result goes to task_done alone: finished as task_done finishes it, and its error
/// (an unknown cookie, bad outputs) is its answer, not a failed call.
#[tokio::test]
async fn tasks_done_of_one_result_is_task_done() {
    let (_db, c, jobs, tasks, answer) = first_done(3).await;
    let one = db::tasks_done(&c, &[(tasks[1].cookie.as_str(), &answer)])
        .await
        .unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].code, None, "{one:?}");
    assert_eq!(footprint(&c, jobs[1]).await, footprint(&c, jobs[0]).await);
    // the same cookie again: its task is done
    let again = db::tasks_done(&c, &[(tasks[1].cookie.as_str(), &answer)])
        .await
        .unwrap();
    assert_eq!(again[0].code.as_deref(), Some("JC003"), "{again:?}");
    assert_eq!(again[0].cookie.as_deref(), Some(tasks[1].cookie.as_str()));
    let bad = db::tasks_done(
        &c,
        &[(tasks[2].cookie.as_str(), &json!({"counter": "six"}))],
    )
    .await
    .unwrap();
    assert_eq!(
        bad[0].code, None,
        "bad outputs end the job in error: {bad:?}"
    );
    assert_eq!(state(&c, jobs[2]).await, "error");
}

/// Rows of `jobs` this backend has fetched through its indexes and not yet reported (so a
/// difference of two readings in one transaction is what happened between them).
async fn fetched(c: &impl tokio_postgres::GenericClient) -> i64 {
    c.query_one(
        "select idx_tup_fetch from pg_stat_xact_user_tables
         where schemaname = 'jobcenter' and relname = 'jobs'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// A result finds its task by its cookie alone, whatever the statistics say: analyzed while
/// no task was at work, the state in the lookup's condition made the generic plan (which
/// PostgreSQL picks for `task_done` from its sixth call in a session on when it looks cheaper,
/// and `tasks_done`'s batch lane always uses) read the tasks at work through `jobs_state`, in
/// the order of their rows, up to the one it looked for: every one of them for the newest.
#[tokio::test]
async fn a_result_reads_its_own_task_not_every_task_at_work() {
    let (_db, mut c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    create_calltests(&c, 303).await;
    c.batch_execute("analyze jobcenter.jobs").await.unwrap();
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let tasks = db::get_tasks(&c, "w", "add", 1000).await.unwrap();
    assert_eq!(tasks.len(), 303);
    c.batch_execute("set plan_cache_mode = force_generic_plan")
        .await
        .unwrap();
    let answers: Vec<Value> = tasks
        .iter()
        .map(|t| examples::add_answer(&t.inargs))
        .collect();
    // the newest tasks first, one by one
    for i in (300..303).rev() {
        let tx = c.transaction().await.unwrap();
        let before = fetched(&tx).await;
        db::task_done(&tx, &tasks[i].cookie, &answers[i])
            .await
            .unwrap();
        let one = fetched(&tx).await - before;
        assert!(one < 20, "task_done of task {i} fetched {one} rows of jobs");
        tx.commit().await.unwrap();
    }
    // then a batch of two (finish_tasks)
    let tx = c.transaction().await.unwrap();
    let before = fetched(&tx).await;
    let outcomes = db::tasks_done(
        &tx,
        &[
            (tasks[299].cookie.as_str(), &answers[299]),
            (tasks[298].cookie.as_str(), &answers[298]),
        ],
    )
    .await
    .unwrap();
    assert!(outcomes.iter().all(|o| o.code.is_none()), "{outcomes:?}");
    let two = fetched(&tx).await - before;
    assert!(two < 20, "tasks_done fetched {two} rows of jobs");
    tx.commit().await.unwrap();
    for t in &tasks[298..] {
        assert_eq!(state(&c, t.job_id).await, "finished");
    }
    assert_eq!(jobs_in(&c, "working").await, 298);
}
