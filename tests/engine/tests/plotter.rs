//! The plotter and its model cache: a workflow replaced in place (`replace_action`) runs its new
//! code at once in the backend that replaced it and in a backend that had cached the old one;
//! a worker-free loop runs in memory with one log row per step; errors the plotter leaves to
//! the SQL driver keep their messages and catch rules.
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{a, v, vp};
use engine_tests::flow::Flow;
use engine_tests::{action_id, create, examples, load, output, setup, state};
use jcl::build::{assign, bin, lit, path, set};
use jcl::{AssignOp, BinOp, Model, Ns};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_postgres::Client;

/// `twice(x) → y`: one eval `v.y = x * k`, then the end.
fn times(k: i64) -> Model {
    let mut f = Flow::workflow("twice")
        .input("x", "number")
        .output("y", "number");
    f.eval(vec![set(vp(&["y"]), bin(BinOp::Mul, a(&["x"]), lit(k)))]);
    f.end(vec![set(path(Ns::O, &["y"]), v(&["y"]))])
}

async fn replace(c: &Client, model: &Model) {
    let id = action_id(c, &model.name).await;
    c.query_one(
        "select jobcenter.replace_action($1, $2)",
        &[&id, &serde_json::to_value(model).unwrap()],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_replaced_workflow_runs_its_new_code_in_every_backend() {
    let (db, c) = setup().await;
    let other = db.connect().await.unwrap();
    load(&c, &[times(2)]).await;
    // both backends cache version 1's code
    let j = create(&c, "twice", json!({"x": 5})).await;
    assert_eq!(output(&c, j).await, json!({"y": 10}));
    let j = create(&other, "twice", json!({"x": 5})).await;
    assert_eq!(output(&other, j).await, json!({"y": 10}));

    replace(&c, &times(3)).await;
    let j = create(&c, "twice", json!({"x": 5})).await;
    assert_eq!(
        output(&c, j).await,
        json!({"y": 15}),
        "the replacing backend"
    );
    let j = create(&other, "twice", json!({"x": 5})).await;
    assert_eq!(output(&other, j).await, json!({"y": 15}), "another backend");

    // in one transaction: the replace, then a job of it
    c.batch_execute("begin").await.unwrap();
    replace(&c, &times(4)).await;
    let j = create(&c, "twice", json!({"x": 5})).await;
    assert_eq!(output(&c, j).await, json!({"y": 20}));
    c.batch_execute("rollback").await.unwrap();
    // rolled back: version 3's code again
    let j = create(&c, "twice", json!({"x": 5})).await;
    assert_eq!(output(&c, j).await, json!({"y": 15}));
}

/// `count(n) → i`: `v.i = 0; while v.i < a.n { v.i += 1 }` (a branch and an eval per turn),
/// at most `max_steps` steps.
fn counter(max_steps: u32) -> Model {
    let mut f = Flow::workflow("count")
        .input("n", "number")
        .output("i", "number")
        .config(|c| c.max_steps = Some(max_steps));
    f.eval(vec![set(vp(&["i"]), lit(0))]);
    let test = f.branch(bin(BinOp::NumLt, v(&["i"]), a(&["n"])));
    let body = f.eval(vec![assign(vp(&["i"]), AssignOp::Add, lit(1))]);
    f.goto(body, test);
    let end = f.push_end(vec![set(path(Ns::O, &["i"]), v(&["i"]))]);
    f.goto(test, end);
    f.edge(test, "true", body);
    f.build()
}

#[tokio::test]
async fn a_worker_free_loop_logs_every_step_in_order() {
    let (_db, c) = setup().await;
    load(&c, &[counter(100_000)]).await;
    let j = create(&c, "count", json!({"n": 50})).await;
    assert_eq!(output(&c, j).await, json!({"i": 50}));
    let rows = c
        .query(
            "select state::text, variables from jobcenter.job_task_log where job_id = $1 \
             order by job_task_log_id",
            &[&j],
        )
        .await
        .unwrap();
    // start, the first eval, 51 conditions and 50 evals, then the end
    assert_eq!(rows.len(), 1 + 1 + 51 + 50 + 1, "one log row per step");
    let counts: Vec<i64> = rows
        .iter()
        .filter_map(|r| r.get::<_, Option<Value>>(1))
        .filter_map(|v| v["i"].as_i64())
        .collect();
    assert_eq!(
        counts,
        (0..=50).collect::<Vec<_>>(),
        "each change logged once, in order"
    );
    let last: String = rows.last().unwrap().get(0);
    assert_eq!(last, "finished");
}

#[tokio::test]
async fn errors_left_to_the_sql_driver_keep_their_messages() {
    let (_db, c) = setup().await;
    // the step limit: reached in memory, raised by the driver
    load(&c, &[counter(20)]).await;
    let j = create(&c, "count", json!({"n": 50})).await;
    let out = output(&c, j).await;
    assert_eq!(out["error"]["class"], json!("fatal"), "{out}");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("max_steps (20) exceeded"),
        "{out}"
    );
    // a type error in an eval: the driver's message
    let mut f = Flow::workflow("bad")
        .input("x", "json")
        .output("y", "number");
    f.eval(vec![set(vp(&["y"]), bin(BinOp::Div, a(&["x"]), lit(0)))]);
    load(&c, &[f.end(vec![set(path(Ns::O, &["y"]), v(&["y"]))])]).await;
    let j = create(&c, "bad", json!({"x": 1})).await;
    let out = output(&c, j).await;
    assert_eq!(out["error"]["class"], json!("normal"), "{out}");
    assert_eq!(out["error"]["workflow"], json!("bad"), "{out}");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("division by zero"),
        "{out}"
    );
    // bad workflow outputs at the end
    let mut f = Flow::workflow("badout")
        .input("x", "json")
        .output("y", "number");
    f.eval(vec![set(vp(&["y"]), a(&["x"]))]);
    load(&c, &[f.end(vec![set(path(Ns::O, &["y"]), v(&["y"]))])]).await;
    let j = create(&c, "badout", json!({"x": "text"})).await;
    let out = output(&c, j).await;
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .starts_with("workflow output: output y is not of type number"),
        "{out}"
    );
}

/// `steps(x) → y`: `n` evals `v.y = x + 1` one after another (y = x + n), then the end.
fn steps(n: usize) -> Model {
    let mut f = Flow::workflow("steps")
        .input("x", "number")
        .output("y", "number");
    f.eval(vec![set(vp(&["y"]), a(&["x"]))]);
    for _ in 1..n {
        f.eval(vec![set(vp(&["y"]), bin(BinOp::Add, v(&["y"]), lit(1)))]);
    }
    f.end(vec![set(
        path(Ns::O, &["y"]),
        bin(BinOp::Add, v(&["y"]), lit(1)),
    )])
}

/// A replacement with fewer tasks deletes no task row: the rows it no longer needs become
/// no-ops to the end, so every job names a row that exists (jobs has no foreign keys to
/// tasks). A replace waits for the transactions creating jobs of the version it replaces,
/// then refuses when one of those jobs is still running.
#[tokio::test]
async fn a_replace_waits_for_creators_and_keeps_every_task_row_a_job_names() {
    let (db, c) = setup().await;
    let other = db.connect().await.unwrap();
    load(&c, &[steps(3), examples::add(), examples::calltest()]).await;
    let ended = create(&c, "steps", json!({"x": 1})).await;
    assert_eq!(output(&c, ended).await, json!({"y": 4}));
    let tasks = "select count(*) from jobcenter.tasks t join jobcenter.actions w \
                 on w.action_id = t.workflow_id where w.name = 'steps'";
    let before: i64 = c.query_one(tasks, &[]).await.unwrap().get(0);

    // a job created with the old code, not yet committed when the replace starts
    other.batch_execute("begin").await.unwrap();
    let racing = create(&other, "steps", json!({"x": 10})).await;
    let replacing = {
        let c = db.connect().await.unwrap();
        tokio::spawn(async move { replace(&c, &steps(1)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !replacing.is_finished(),
        "the replace waits for the creator"
    );
    other.batch_execute("commit").await.unwrap();
    replacing.await.unwrap();

    assert_eq!(output(&c, racing).await, json!({"y": 13}), "the old code");
    let new = create(&c, "steps", json!({"x": 1})).await;
    assert_eq!(output(&c, new).await, json!({"y": 2}), "the new code");
    let after: i64 = c.query_one(tasks, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "no task row deleted");
    let dangling: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs j \
             where not exists (select 1 from jobcenter.tasks t where t.task_id = j.task_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dangling, 0, "jobs naming a task row that is gone");

    // a creator whose job waits for a worker: once it commits, the replace refuses
    other.batch_execute("begin").await.unwrap();
    let running = create(&other, "calltest", json!({"input": 1})).await;
    let replacing = {
        let c = db.connect().await.unwrap();
        tokio::spawn(async move {
            let id = action_id(&c, "calltest").await;
            let model = serde_json::to_value(examples::calltest()).unwrap();
            c.query_one("select jobcenter.replace_action($1, $2)", &[&id, &model])
                .await
                .map(|_| ())
                .map_err(|e| e.code().map(|c| c.code().to_owned()))
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !replacing.is_finished(),
        "the replace waits for the creator"
    );
    other.batch_execute("commit").await.unwrap();
    assert_eq!(replacing.await.unwrap(), Err(Some("JC007".to_owned())));
    assert_eq!(state(&c, running).await, "ready");
}
