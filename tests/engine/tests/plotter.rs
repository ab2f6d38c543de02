//! The plotter and its model cache: a workflow replaced in place (`replace_action`) runs its new
//! code at once in the backend that replaced it and in a backend that had cached the old one;
//! a worker-free loop runs in memory with one log row per step; errors the plotter leaves to
//! the SQL driver keep their messages and catch rules.
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{a, v, vp};
use engine_tests::flow::Flow;
use engine_tests::{create, load, output, setup};
use jcl::build::{assign, bin, lit, path, set};
use jcl::{AssignOp, BinOp, Model, Ns};
use serde_json::{json, Value};
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
    let id: i32 = c
        .query_one(
            "select action_id from jobcenter.actions where name = $1 order by version desc limit 1",
            &[&model.name],
        )
        .await
        .unwrap()
        .get(0);
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
