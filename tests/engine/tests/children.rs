//! Child jobs: call of a workflow (childwait, zombie, reaping), child errors, split with
//! wait_for_children and reap_child, map over a list, detachflow, aborting children of a
//! failed parent, max_depth and interface dispatch.
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{a, cat, e, ip, o, op, push, v, vp};
use engine_tests::flow::Flow;
use engine_tests::{
    children, create, db, examples, load, log_states, output, setup, state, work_job, work_one,
    Listener,
};
use jcl::build::{bin, idx, lit, path, set};
use jcl::{BinOp, Expr, Model, Ns, SystemAction};
use serde_json::{json, Value};

/// `child_add(x) → y`: y = x + 10, computed by the `add` worker.
fn child_add() -> Model {
    let mut f = Flow::workflow("child_add")
        .input("x", "number")
        .output("y", "number");
    f.call(
        "add",
        vec![
            set(ip(&["counter"]), a(&["x"])),
            set(ip(&["step"]), lit(10)),
        ],
        vec![set(vp(&["c"]), o(&["counter"]))],
    );
    f.end(vec![set(op(&["y"]), v(&["c"]))])
}

/// `child_fail(x)`: raises 'child failed: x'.
fn child_fail() -> Model {
    let mut f = Flow::workflow("child_fail")
        .input("x", "string")
        .output("y", "number");
    f.system(
        SystemAction::RaiseError,
        vec![set(ip(&["msg"]), cat(lit("child failed: "), a(&["x"])))],
    );
    f.end(vec![set(op(&["y"]), lit(1))])
}

// call ------------------------------------------------------------------------------------------

/// `callparent(x) → result`: calls child_add(x) and returns its y.
fn callparent() -> Model {
    let mut f = Flow::workflow("callparent")
        .input("x", "number")
        .output("result", "number");
    f.call(
        "child_add",
        vec![set(ip(&["x"]), a(&["x"]))],
        vec![set(vp(&["y"]), o(&["y"]))],
    );
    f.end(vec![set(op(&["result"]), v(&["y"]))])
}

#[tokio::test]
async fn call_waits_for_the_child_and_reaps_it() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), child_add(), callparent()]).await;
    let mut l = Listener::new(&tdb, &["job:finished"]).await;

    let parent = create(&c, "callparent", json!({"x": 5})).await;
    assert_eq!(state(&c, parent).await, "childwait");
    let kids = children(&c, parent).await;
    assert_eq!(kids.len(), 1);
    let child = kids[0];
    assert_eq!(state(&c, child).await, "ready");
    let (depth, args): (i32, Value) = {
        let r = c
            .query_one(
                "select current_depth, arguments from jobcenter.jobs where job_id = $1",
                &[&child],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(depth, 2);
    assert_eq!(args, json!({"x": 5}));
    assert_eq!(db::get_job_status(&c, parent).await.unwrap(), None);

    let (jid, inargs) = work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(jid, child);
    assert_eq!(inargs, json!({"counter": 5, "step": 10}));
    // The child's end woke the parent, which reaped it.
    assert_eq!(state(&c, parent).await, "finished");
    assert_eq!(output(&c, parent).await, json!({"result": 15}));
    assert_eq!(state(&c, child).await, "finished");
    assert_eq!(
        log_states(&c, child).await,
        ["start:done", "add:done", "end:zombie"]
    );
    assert_eq!(
        log_states(&c, parent).await,
        ["start:done", "child_add:done", "end:finished"]
    );
    assert_eq!(
        l.next().await,
        Some(("job:finished".into(), child.to_string()))
    );
    assert_eq!(
        l.next().await,
        Some(("job:finished".into(), parent.to_string()))
    );
}

/// A quiet job (`create_job(..., a_notify => false)`) and its child end unannounced, through
/// the plotter (the child's task_done) and the parent's reaping alike; a job created
/// normally afterwards is announced on the same listener.
#[tokio::test]
async fn a_quiet_job_and_its_children_end_unannounced() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), child_add(), callparent()]).await;
    let mut l = Listener::new(&tdb, &["job:finished"]).await;

    let quiet = db::CreateJob {
        quiet: true,
        ..Default::default()
    };
    let parent = db::create_job(&c, "callparent", &json!({"x": 5}), quiet)
        .await
        .unwrap()
        .job_id;
    let child = children(&c, parent).await[0];
    let flags: Value = c
        .query_one(
            "select job_state from jobcenter.jobs where job_id = $1",
            &[&child],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(flags["quiet"], json!(true), "the child inherits quietness");
    work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(state(&c, parent).await, "finished");
    assert_eq!(output(&c, parent).await, json!({"result": 15}));
    assert_eq!(
        db::get_job_status(&c, parent).await.unwrap(),
        Some(json!({"result": 15}))
    );

    let loud = db::create_job(&c, "child_add", &json!({"x": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(state(&c, loud).await, "finished");
    // the first notification the listener sees is the normal job's
    assert_eq!(
        l.next().await,
        Some(("job:finished".into(), loud.to_string()))
    );
}

// Child errors ----------------------------------------------------------------------------------

fn error_parent(name: &str, caught: bool) -> Model {
    let mut f = Flow::workflow(name)
        .input("x", "string")
        .output_optional("class", "string")
        .output_optional("inner", "object")
        .output_optional("child", "number");
    let call = f.call(
        "child_fail",
        vec![set(ip(&["x"]), a(&["x"]))],
        vec![set(vp(&["y"]), o(&["y"]))],
    );
    let catch = f.eval(vec![
        set(vp(&["class"]), e(&["_error", "class"])),
        set(vp(&["inner"]), e(&["_error", "error"])),
        set(vp(&["child"]), e(&["_error", "child_job_id"])),
    ]);
    if caught {
        f.on_error(call, call, catch);
    }
    f.end(vec![jcl::build::copy(
        Ns::V,
        Ns::O,
        Some(&["class", "inner", "child"]),
    )])
}

#[tokio::test]
async fn a_child_error_is_a_childerror_in_the_parent() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            child_fail(),
            error_parent("catchchild", true),
            error_parent("failchild", false),
        ],
    )
    .await;

    let parent = create(&c, "catchchild", json!({"x": "boom"})).await;
    assert_eq!(state(&c, parent).await, "finished");
    let child = children(&c, parent).await[0];
    assert_eq!(state(&c, child).await, "error");
    let out = output(&c, parent).await;
    assert_eq!(out["class"], "childerror");
    assert_eq!(out["child"], child);
    assert_eq!(out["inner"]["class"], "normal");
    assert_eq!(out["inner"]["msg"], "child failed: boom");
    assert_eq!(out["inner"]["workflow"], "child_fail");
    assert_eq!(
        log_states(&c, parent).await,
        [
            "start:done",
            "child_fail:error",
            "eval:done",
            "end:finished"
        ]
    );
    assert_eq!(
        log_states(&c, child).await,
        ["start:done", "raise_error:error"]
    );

    // Uncaught, the parent ends in error too.
    let parent = create(&c, "failchild", json!({"x": "bang"})).await;
    assert_eq!(state(&c, parent).await, "error");
    let out = output(&c, parent).await;
    assert_eq!(out["error"]["class"], "childerror");
    assert_eq!(out["error"]["workflow"], "failchild");
    assert_eq!(out["error"]["error"]["msg"], "child failed: bang");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("child failed: bang"),
        "{out}"
    );
}

// split -------------------------------------------------------------------------------------------

#[tokio::test]
async fn split_reaps_in_start_order_whatever_the_finishing_order() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("splittest").output("order", "array");
    let mut spawns = vec![];
    for x in [1, 2, 3] {
        spawns.push(
            f.call_with("child_add", vec![set(ip(&["x"]), lit(x))], vec![], |t| {
                t.wait = false
            }),
        );
    }
    f.system_with(SystemAction::WaitForChildren, |_| {});
    for s in spawns {
        f.system_with(SystemAction::ReapChild, |t| {
            t.spawn_task = Some(s);
            t.omap = Some(vec![push(vp(&["order"]), o(&["y"]))]);
        });
    }
    let wf = f.end(vec![set(op(&["order"]), v(&["order"]))]);
    load(&c, &[examples::add(), child_add(), wf]).await;

    let parent = create(&c, "splittest", json!({})).await;
    assert_eq!(state(&c, parent).await, "childwait");
    let kids = children(&c, parent).await;
    assert_eq!(kids.len(), 3);
    for k in &kids {
        assert_eq!(state(&c, *k).await, "ready");
    }
    // Finish them in reverse order.
    for (n, k) in kids.iter().rev().enumerate() {
        let inargs = work_job(&c, "add", *k, examples::add_answer).await;
        assert_eq!(inargs["counter"], json!(3 - n));
        if n < 2 {
            assert_eq!(state(&c, *k).await, "zombie");
            assert_eq!(state(&c, parent).await, "childwait");
        }
    }
    assert_eq!(state(&c, parent).await, "finished");
    assert_eq!(output(&c, parent).await, json!({"order": [11, 12, 13]}));
    for k in &kids {
        assert_eq!(state(&c, *k).await, "finished");
        assert_eq!(
            log_states(&c, *k).await,
            ["start:done", "add:done", "end:zombie"]
        );
    }
    assert_eq!(
        log_states(&c, parent).await,
        [
            "start:done",
            "child_add:done",
            "child_add:done",
            "child_add:done",
            "wait_for_children:done",
            "reap_child:done",
            "reap_child:done",
            "reap_child:done",
            "end:finished"
        ]
    );
}

// map ---------------------------------------------------------------------------------------------

/// `mapchild(x, last) → y`: calls add(counter = x, step = e._i); y = "_v:_i:counter:last".
fn map_child() -> Model {
    let mut f = Flow::workflow("mapchild")
        .input("x", "number")
        .input("last", "number")
        .output("y", "string");
    f.call(
        "add",
        vec![
            set(ip(&["counter"]), a(&["x"])),
            set(ip(&["step"]), e(&["_i"])),
        ],
        vec![set(vp(&["c"]), o(&["counter"]))],
    );
    let sep = || lit(":");
    f.end(vec![set(
        op(&["y"]),
        cat(
            cat(
                cat(
                    cat(cat(cat(e(&["_v"]), sep()), e(&["_i"])), sep()),
                    v(&["c"]),
                ),
                sep(),
            ),
            a(&["last"]),
        ),
    )])
}

fn map_parent() -> Model {
    // map mapchild using a.list: x = e._v, last = a.list[-1] collect: results ,= o.y
    let mut f = Flow::workflow("mapparent")
        .input("list", "array")
        .output("results", "array");
    f.call_with(
        "mapchild",
        vec![
            set(ip(&["x"]), e(&["_v"])),
            set(
                ip(&["last"]),
                jcl::build::read(idx(path(Ns::A, &["list"]), lit(-1))),
            ),
        ],
        vec![push(vp(&["results"]), o(&["y"]))],
        |t| t.map_using = Some(a(&["list"])),
    );
    f.end(vec![set(
        op(&["results"]),
        bin(BinOp::DefinedOr, v(&["results"]), lit(json!([]))),
    )])
}

#[tokio::test]
async fn map_starts_one_child_per_element_and_collects_in_order() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), map_child(), map_parent()]).await;

    let parent = create(&c, "mapparent", json!({"list": [10, 20, 30]})).await;
    assert_eq!(state(&c, parent).await, "childwait");
    let kids = children(&c, parent).await;
    assert_eq!(kids.len(), 3);
    for (n, k) in kids.iter().enumerate() {
        let r = c
            .query_one(
                "select environment, arguments from jobcenter.jobs where job_id = $1",
                &[k],
            )
            .await
            .unwrap();
        let env: Value = r.get(0);
        let args: Value = r.get(1);
        assert_eq!(env["_v"], json!(10 * (n + 1)));
        assert_eq!(env["_i"], json!(n + 1), "the index is 1-based");
        assert_eq!(args, json!({"x": 10 * (n + 1), "last": 30}));
    }
    let penv: Value = c
        .query_one(
            "select environment from jobcenter.jobs where job_id = $1",
            &[&parent],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        penv.get("_v").is_none() && penv.get("_i").is_none(),
        "{penv}"
    );

    // Finish them in reverse order; the collect omap still runs in start order.
    for k in kids.iter().rev() {
        work_job(&c, "add", *k, examples::add_answer).await;
    }
    assert_eq!(
        output(&c, parent).await,
        json!({"results": ["10:1:11:30", "20:2:22:30", "30:3:33:30"]})
    );
    for k in &kids {
        assert_eq!(state(&c, *k).await, "finished");
    }
    assert_eq!(
        log_states(&c, parent).await,
        ["start:done", "mapchild:done", "end:finished"]
    );
}

#[tokio::test]
async fn map_over_an_empty_list_starts_no_child() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), map_child(), map_parent()]).await;
    let parent = create(&c, "mapparent", json!({"list": []})).await;
    assert_eq!(state(&c, parent).await, "finished");
    assert_eq!(output(&c, parent).await, json!({"results": []}));
    assert!(children(&c, parent).await.is_empty());
    assert_eq!(
        log_states(&c, parent).await,
        ["start:done", "mapchild:done", "end:finished"]
    );
}

// detachflow --------------------------------------------------------------------------------------

#[tokio::test]
async fn a_detached_child_outlives_its_parent() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("detachparent")
        .input("x", "number")
        .output("done", "boolean");
    f.call_with("child_add", vec![set(ip(&["x"]), a(&["x"]))], vec![], |t| {
        t.detach = true
    });
    f.eval(vec![set(vp(&["done"]), lit(true))]);
    let wf = f.end(vec![set(op(&["done"]), v(&["done"]))]);
    load(&c, &[examples::add(), child_add(), wf]).await;

    let parent = create(&c, "detachparent", json!({"x": 1})).await;
    assert_eq!(state(&c, parent).await, "finished");
    assert_eq!(output(&c, parent).await, json!({"done": true}));
    assert_eq!(
        log_states(&c, parent).await,
        ["start:done", "child_add:done", "eval:done", "end:finished"]
    );
    let child = children(&c, parent).await[0];
    // The parent's end did not abort it.
    assert_eq!(state(&c, child).await, "ready");
    let (jid, _) = work_one(&c, "w", "add", examples::add_answer).await;
    assert_eq!(jid, child);
    // Nobody reaps it: it ends finished, not zombie.
    assert_eq!(state(&c, child).await, "finished");
    assert_eq!(output(&c, child).await, json!({"y": 11}));
    assert_eq!(
        log_states(&c, child).await,
        ["start:done", "add:done", "end:finished"]
    );
}

// A parent in error aborts its children -----------------------------------------------------------

#[tokio::test]
async fn a_parent_ending_in_error_aborts_its_running_child() {
    let (_db, c) = setup().await;
    // callflow child_add (not waited for), then call div, which fails.
    let mut f = Flow::workflow("errparent").output("q", "number");
    f.call_with("child_add", vec![set(ip(&["x"]), lit(1))], vec![], |t| {
        t.wait = false
    });
    f.call(
        "div",
        vec![set(ip(&["a"]), lit(1)), set(ip(&["b"]), lit(0))],
        vec![set(vp(&["q"]), o(&["q"]))],
    );
    let wf = f.end(vec![set(op(&["q"]), v(&["q"]))]);
    load(&c, &[examples::add(), examples::div(), child_add(), wf]).await;

    let parent = create(&c, "errparent", json!({})).await;
    assert_eq!(state(&c, parent).await, "ready");
    let child = children(&c, parent).await[0];
    assert_eq!(state(&c, child).await, "ready");
    // A worker has the child's task when the parent fails.
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let held = db::get_task(&c, "w", "add", Some(child))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(state(&c, child).await, "working");

    work_one(
        &c,
        "w",
        "div",
        |_| json!({"error": "cannot divide by zero"}),
    )
    .await;
    assert_eq!(state(&c, parent).await, "error");
    assert_eq!(state(&c, child).await, "error");
    let out = output(&c, child).await;
    assert_eq!(out["error"]["class"], "abort", "{out}");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains(&parent.to_string()),
        "{out}"
    );
    assert_eq!(log_states(&c, child).await, ["start:done", "add:error"]);
    // The worker's late answer is refused and changes nothing.
    let err = db::task_done(&c, &held.cookie, &json!({"counter": 11}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(db::ErrorCode::UnknownCookie), "{err}");
    assert_eq!(state(&c, child).await, "error");
}

// max_depth ---------------------------------------------------------------------------------------

#[tokio::test]
async fn max_depth_stops_recursion() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("recurse")
        .input("n", "number")
        .output("n", "number")
        .config(|c| c.max_depth = Some(3));
    f.call(
        "recurse",
        vec![set(ip(&["n"]), bin(BinOp::Add, a(&["n"]), lit(1)))],
        vec![set(vp(&["n"]), o(&["n"]))],
    );
    let wf = f.end(vec![set(op(&["n"]), v(&["n"]))]);
    load(&c, &[wf]).await;

    let top = create(&c, "recurse", json!({"n": 1})).await;
    let jobs: Vec<(i64, i32, Value)> = c
        .query(
            "select job_id, current_depth, arguments from jobcenter.jobs order by job_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert_eq!(jobs.iter().map(|j| j.1).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(jobs[2].2, json!({"n": 3}));
    let deepest = jobs[2].0;
    assert_eq!(state(&c, deepest).await, "error");
    let out = output(&c, deepest).await;
    assert_eq!(out["error"]["class"], "fatal");
    assert_eq!(
        out["error"]["msg"],
        "max_depth (3) exceeded calling recurse"
    );
    // Every ancestor ends in error with the error inside.
    assert_eq!(state(&c, top).await, "error");
    let out = output(&c, top).await;
    assert_eq!(out["error"]["class"], "childerror");
    assert_eq!(out["error"]["error"]["class"], "childerror");
    assert_eq!(out["error"]["error"]["error"]["class"], "fatal");
}

// interface dispatch ------------------------------------------------------------------------------

fn shape_impl(name: &str, y: Expr) -> Model {
    let mut f = Flow::workflow(name)
        .input("x", "number")
        .output("y", "number");
    f.eval(vec![set(vp(&["y"]), y)]);
    f.end(vec![set(op(&["y"]), v(&["y"]))])
}

#[tokio::test]
async fn interface_calls_the_workflow_named_at_runtime() {
    let (_db, c) = setup().await;
    let iface = Flow::workflow("shape")
        .input("x", "number")
        .output("y", "number")
        .end(vec![]);
    let mut f = Flow::workflow("dispatcher")
        .input("kind", "string")
        .input("x", "number")
        .output("y", "number");
    f.call_with(
        "shape",
        vec![set(ip(&["x"]), a(&["x"]))],
        vec![set(vp(&["y"]), o(&["y"]))],
        |t| {
            t.dispatch = Some(a(&["kind"]));
            t.candidates = Some(vec![
                "square_wf".into(),
                "double_wf".into(),
                "ghost_wf".into(),
            ]);
        },
    );
    let wf = f.end(vec![set(op(&["y"]), v(&["y"]))]);
    let x = || a(&["x"]);
    load(
        &c,
        &[
            iface,
            shape_impl("square_wf", bin(BinOp::Mul, x(), x())),
            shape_impl("double_wf", bin(BinOp::Mul, x(), lit(2))),
            shape_impl("other_wf", bin(BinOp::Add, x(), lit(100))),
            wf,
        ],
    )
    .await;

    for (kind, y) in [("square_wf", 9), ("double_wf", 6)] {
        let job = create(&c, "dispatcher", json!({"kind": kind, "x": 3})).await;
        assert_eq!(output(&c, job).await, json!({"y": y}), "{kind}");
        let child = children(&c, job).await[0];
        let name: String = c
            .query_one(
                "select a.name from jobcenter.jobs j join jobcenter.actions a \
                 on a.action_id = j.workflow_id where j.job_id = $1",
                &[&child],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, kind);
    }

    // A workflow that exists but is not a candidate is refused; no child is started.
    let job = create(&c, "dispatcher", json!({"kind": "other_wf", "x": 3})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "normal");
    assert_eq!(
        out["error"]["msg"],
        "other_wf is not one of the workflows of interface shape"
    );
    assert!(children(&c, job).await.is_empty());

    // A candidate that does not exist.
    let job = create(&c, "dispatcher", json!({"kind": "ghost_wf", "x": 3})).await;
    assert_eq!(state(&c, job).await, "error");
    assert_eq!(
        output(&c, job).await["error"]["msg"],
        "no workflow ghost_wf"
    );
}

#[tokio::test]
async fn a_failing_map_child_aborts_its_siblings() {
    let (_db, c) = setup().await;
    let mut f = Flow::workflow("divchild")
        .input("x", "number")
        .output("q", "number");
    f.call(
        "div",
        vec![set(ip(&["a"]), lit(12)), set(ip(&["b"]), a(&["x"]))],
        vec![set(vp(&["q"]), o(&["q"]))],
    );
    let child = f.end(vec![set(op(&["q"]), v(&["q"]))]);
    let mut f = Flow::workflow("divmap")
        .input("list", "array")
        .output("qs", "array");
    f.call_with(
        "divchild",
        vec![set(ip(&["x"]), e(&["_v"]))],
        vec![push(vp(&["qs"]), o(&["q"]))],
        |t| t.map_using = Some(a(&["list"])),
    );
    let parent_wf = f.end(vec![set(op(&["qs"]), v(&["qs"]))]);
    load(&c, &[examples::div(), child, parent_wf]).await;

    let parent = create(&c, "divmap", json!({"list": [1, 0, 3]})).await;
    let kids = children(&c, parent).await;
    assert_eq!(kids.len(), 3);
    work_job(
        &c,
        "div",
        kids[1],
        |_| json!({"error": "cannot divide by zero"}),
    )
    .await;
    assert_eq!(state(&c, kids[1]).await, "error");
    assert_eq!(state(&c, parent).await, "error");
    let out = output(&c, parent).await;
    assert_eq!(out["error"]["class"], "childerror");
    assert_eq!(out["error"]["child_job_id"], kids[1]);
    assert_eq!(out["error"]["error"]["msg"], "cannot divide by zero");
    for k in [kids[0], kids[2]] {
        assert_eq!(state(&c, k).await, "error");
        assert_eq!(output(&c, k).await["error"]["class"], "abort");
        // Their tasks are no longer offered to workers.
        assert!(db::get_task(&c, "w", "div", Some(k))
            .await
            .unwrap()
            .is_none());
    }
}
