//! Control flow in real jobs: assignments, if/elsif/else, while, repeat/until, case, goto,
//! label and return, try/catch, raise_error, assert, max_steps, evaluation errors and the
//! checks of a workflow's outputs.
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{a, cat, ip, op, push, v, vp};
use engine_tests::flow::Flow;
use engine_tests::{create, examples, load, log_states, output, setup, state, work_one, Listener};
use jcl::build::{assign, bin, call, copy, lit, set, var};
use jcl::{AssignOp, BinOp, Func, Model, Ns, Stmt, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// A number as JSON, integral when it is (as a real worker would answer).
fn num(x: f64) -> Value {
    if x.fract() == 0.0 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

fn add_worker(i: &Value) -> Value {
    json!({"counter": num(i["counter"].as_f64().unwrap() + i["step"].as_f64().unwrap())})
}

fn div_worker(i: &Value) -> Value {
    let b = i["b"].as_f64().unwrap();
    if b == 0.0 {
        json!({"error": "cannot divide by zero"})
    } else {
        json!({"q": num(i["a"].as_f64().unwrap() / b)})
    }
}

/// The task id (in the database) of the only task of `wf` calling `callee`.
async fn task_id(c: &Client, wf: &str, callee: &str) -> i32 {
    c.query_one(
        "select t.task_id from jobcenter.tasks t \
         join jobcenter.actions w on w.action_id = t.workflow_id \
         join jobcenter.actions a on a.action_id = t.action_id \
         where w.name = $1 and a.name = $2",
        &[&wf, &callee],
    )
    .await
    .unwrap_or_else(|e| panic!("one task of {wf} calling {callee}: {e}"))
    .get(0)
}

async fn variables(c: &Client, job: i64) -> Value {
    c.query_one(
        "select variables from jobcenter.jobs where job_id = $1",
        &[&job],
    )
    .await
    .unwrap()
    .get(0)
}

// Assignments ---------------------------------------------------------------------------------

fn ops_workflow() -> Model {
    let mut f =
        Flow::workflow("ops")
            .input("x", "number")
            .input_default("name", "string", json!("world"));
    for (name, ty) in [
        ("s", "string"),
        ("list", "array"),
        ("n", "number"),
        ("d", "string"),
        ("z", "string"),
        ("y", "string"),
        ("def", "string"),
        ("cat", "string"),
        ("counter", "number"),
    ] {
        f = f.output(name, ty);
    }
    f.eval(vec![
        set(vp(&["s"]), lit("hello")),
        assign(vp(&["s"]), AssignOp::Concat, lit(" ")),
        assign(vp(&["s"]), AssignOp::Concat, a(&["name"])),
        push(vp(&["list"]), lit(1)),
        push(vp(&["list"]), lit("two")),
        push(vp(&["list"]), v(&["s"])),
        set(vp(&["n"]), a(&["x"])),
        assign(vp(&["n"]), AssignOp::Add, lit(6)),
        assign(vp(&["n"]), AssignOp::Sub, lit(1)),
        assign(vp(&["n"]), AssignOp::Mul, lit(4)),
        assign(vp(&["n"]), AssignOp::Div, lit(8)),
        assign(vp(&["d"]), AssignOp::DefinedOr, lit("first")),
        assign(vp(&["d"]), AssignOp::DefinedOr, lit("second")),
        set(vp(&["z"]), lit(0)),
        assign(vp(&["z"]), AssignOp::Or, lit("was false")),
        set(vp(&["y"]), lit("kept")),
        assign(vp(&["y"]), AssignOp::Or, lit("replaced")),
        set(
            vp(&["def"]),
            bin(BinOp::DefinedOr, v(&["nothing"]), lit("fallback")),
        ),
        set(
            vp(&["cat"]),
            cat(
                cat(cat(lit("n="), v(&["n"])), lit("/")),
                bin(BinOp::Repeat, lit("ab"), lit(2)),
            ),
        ),
        set(vp(&["counter"]), a(&["x"])),
    ]);
    // call add: <counter>, step = 10 into: <counter>
    f.call(
        "add",
        vec![
            copy(Ns::V, Ns::I, Some(&["counter"])),
            set(ip(&["step"]), lit(10)),
        ],
        vec![copy(Ns::O, Ns::V, Some(&["counter"]))],
    );
    // wfomap: <*>
    f.end(vec![copy(Ns::V, Ns::O, None)])
}

#[tokio::test]
async fn every_assignment_operator_works_in_a_job() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), ops_workflow()]).await;

    // `name` is not given: its default is used.
    let job = create(&c, "ops", json!({"x": 4})).await;
    let args: Value = c
        .query_one(
            "select arguments from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(args, json!({"x": 4, "name": "world"}));
    assert_eq!(state(&c, job).await, "ready");
    let (jid, inargs) = work_one(&c, "w", "add", add_worker).await;
    assert_eq!(jid, job);
    // <counter> copied v.counter into the inputs
    assert_eq!(inargs, json!({"counter": 4, "step": 10}));
    assert_eq!(
        output(&c, job).await,
        json!({
            "s": "hello world",
            "list": [1, "two", "hello world"],
            "n": 4.5,
            "d": "first",
            "z": "was false",
            "y": "kept",
            "def": "fallback",
            "cat": "n=4.5/abab",
            "counter": 14,
        })
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "eval:done", "add:done", "end:finished"]
    );

    // A given input overrides the default.
    let job = create(&c, "ops", json!({"x": 0, "name": "there"})).await;
    work_one(&c, "w", "add", add_worker).await;
    let out = output(&c, job).await;
    assert_eq!(out["s"], json!("hello there"));
    assert_eq!(out["n"], json!(2.5));
    assert_eq!(out["counter"], json!(10));
}

// if / elsif / else -----------------------------------------------------------------------------

fn if_workflow() -> Model {
    // if a.n < 0: sign = 'negative' elsif a.n == 0: sign = 'zero' else: sign = 'positive'
    let mut f = Flow::workflow("iftest")
        .input("n", "number")
        .output("sign", "string");
    let b1 = f.branch(bin(BinOp::NumLt, a(&["n"]), lit(0)));
    let b2 = f.branch(bin(BinOp::NumEq, a(&["n"]), lit(0)));
    let els = f.eval(vec![set(vp(&["sign"]), lit("positive"))]);
    let t1 = f.eval(vec![set(vp(&["sign"]), lit("negative"))]);
    let t2 = f.eval(vec![set(vp(&["sign"]), lit("zero"))]);
    let join = f.no_op();
    f.edge(b1, "true", t1);
    f.edge(b2, "true", t2);
    f.goto(els, join);
    f.goto(t1, join);
    f.end(vec![set(op(&["sign"]), v(&["sign"]))])
}

#[tokio::test]
async fn if_elsif_else_takes_one_arm_per_job() {
    let (_db, c) = setup().await;
    load(&c, &[if_workflow()]).await;
    let neg = create(&c, "iftest", json!({"n": -5})).await;
    let zero = create(&c, "iftest", json!({"n": 0})).await;
    let pos = create(&c, "iftest", json!({"n": 7})).await;
    assert_eq!(output(&c, neg).await, json!({"sign": "negative"}));
    assert_eq!(output(&c, zero).await, json!({"sign": "zero"}));
    assert_eq!(output(&c, pos).await, json!({"sign": "positive"}));
    assert_eq!(
        log_states(&c, neg).await,
        [
            "start:done",
            "branch:done",
            "eval:done",
            "no_op:done",
            "end:finished"
        ]
    );
    let both = [
        "start:done",
        "branch:done",
        "branch:done",
        "eval:done",
        "no_op:done",
        "end:finished",
    ];
    assert_eq!(log_states(&c, zero).await, both);
    assert_eq!(log_states(&c, pos).await, both);
}

// while -------------------------------------------------------------------------------------------

fn while_workflow() -> Model {
    // eval thing = a.input; while v.thing < 10: call add(counter = v.thing, step = 3)
    let mut f = Flow::workflow("whiletest")
        .input("input", "number")
        .output("output", "number")
        .output("steps", "number");
    f.eval(vec![
        set(vp(&["thing"]), a(&["input"])),
        set(vp(&["steps"]), lit(0)),
    ]);
    let b = f.branch(bin(BinOp::NumLt, v(&["thing"]), lit(10)));
    let body = f.call(
        "add",
        vec![
            set(ip(&["counter"]), v(&["thing"])),
            set(ip(&["step"]), lit(3)),
        ],
        vec![
            set(vp(&["thing"]), var(Ns::O, &["counter"])),
            assign(vp(&["steps"]), AssignOp::Add, lit(1)),
        ],
    );
    f.goto(body, b);
    let end = f.push_end(vec![
        set(op(&["output"]), v(&["thing"])),
        set(op(&["steps"]), v(&["steps"])),
    ]);
    f.edge(b, "true", body);
    f.goto(b, end);
    f.build()
}

#[tokio::test]
async fn while_loop_calls_add_until_the_condition_fails() {
    let (_db, c) = setup().await;
    load(&c, &[examples::add(), while_workflow()]).await;
    let job = create(&c, "whiletest", json!({"input": 1})).await;
    let mut counters = vec![];
    for _ in 0..3 {
        assert_eq!(state(&c, job).await, "ready");
        let (_, inargs) = work_one(&c, "w", "add", add_worker).await;
        counters.push(inargs["counter"].clone());
    }
    assert_eq!(counters, [json!(1), json!(4), json!(7)]);
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(output(&c, job).await, json!({"output": 10, "steps": 3}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "eval:done",
            "branch:done",
            "add:done",
            "branch:done",
            "add:done",
            "branch:done",
            "add:done",
            "branch:done",
            "end:finished"
        ]
    );

    // A false condition at the start: the body never runs.
    let job = create(&c, "whiletest", json!({"input": 12})).await;
    assert_eq!(output(&c, job).await, json!({"output": 12, "steps": 0}));
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "eval:done", "branch:done", "end:finished"]
    );
}

// repeat / until --------------------------------------------------------------------------------

fn repeat_workflow() -> Model {
    // i = a.start; repeat: i += 1; seen ,= i until v.i >= 3
    let mut f = Flow::workflow("repeattest")
        .input("start", "number")
        .output("seen", "array");
    f.eval(vec![set(vp(&["i"]), a(&["start"]))]);
    let body = f.eval(vec![
        assign(vp(&["i"]), AssignOp::Add, lit(1)),
        push(vp(&["seen"]), v(&["i"])),
    ]);
    let b = f.branch(bin(BinOp::NumGe, v(&["i"]), lit(3)));
    f.goto(b, body);
    let end = f.push_end(vec![set(op(&["seen"]), v(&["seen"]))]);
    f.edge(b, "true", end);
    f.build()
}

#[tokio::test]
async fn repeat_until_runs_the_body_first() {
    let (_db, c) = setup().await;
    load(&c, &[repeat_workflow()]).await;
    let job = create(&c, "repeattest", json!({"start": 0})).await;
    assert_eq!(output(&c, job).await, json!({"seen": [1, 2, 3]}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "eval:done",
            "eval:done",
            "branch:done",
            "eval:done",
            "branch:done",
            "eval:done",
            "branch:done",
            "end:finished"
        ]
    );
    // The condition holds from the start: the body still runs once.
    let job = create(&c, "repeattest", json!({"start": 10})).await;
    assert_eq!(output(&c, job).await, json!({"seen": [11]}));
}

// case --------------------------------------------------------------------------------------------

fn case_workflow() -> Model {
    // case a.input: when foo: … when bar, baz: … else: …
    let mut f = Flow::workflow("casetest")
        .input("input", "string")
        .output("output", "string");
    let sw = f.switch(a(&["input"]));
    let els = f.eval(vec![set(vp(&["out"]), cat(lit("else: "), a(&["input"])))]);
    let foo_arm = f.eval(vec![set(vp(&["out"]), lit("foo arm"))]);
    let barbaz = f.eval(vec![set(
        vp(&["out"]),
        cat(lit("bar or baz: "), a(&["input"])),
    )]);
    let join = f.no_op();
    f.edge(sw, "foo", foo_arm);
    f.edge(sw, "bar", barbaz);
    f.edge(sw, "baz", barbaz);
    f.goto(els, join);
    f.goto(foo_arm, join);
    f.end(vec![set(op(&["output"]), v(&["out"]))])
}

#[tokio::test]
async fn case_with_several_labels_and_else() {
    let (_db, c) = setup().await;
    load(&c, &[case_workflow()]).await;
    for (input, expected) in [
        ("foo", "foo arm"),
        ("bar", "bar or baz: bar"),
        ("baz", "bar or baz: baz"),
        ("other", "else: other"),
        ("", "else: "),
    ] {
        let job = create(&c, "casetest", json!({"input": input})).await;
        assert_eq!(
            output(&c, job).await,
            json!({"output": expected}),
            "case {input:?}"
        );
        assert_eq!(
            log_states(&c, job).await,
            [
                "start:done",
                "switch:done",
                "eval:done",
                "no_op:done",
                "end:finished"
            ]
        );
    }
}

// goto / label / return -------------------------------------------------------------------------

fn goto_workflow() -> Model {
    // trail ,= 'a'; goto skip; trail ,= 'never'; label skip; trail ,= 'b';
    // if a.early: return; trail ,= 'c'
    let mut f = Flow::workflow("gototest")
        .input("early", "boolean")
        .output("trail", "array");
    f.eval(vec![push(vp(&["trail"]), lit("a"))]);
    let goto_skip = f.no_op();
    f.eval(vec![push(vp(&["trail"]), lit("never"))]);
    let label_skip = f.no_op();
    f.goto(goto_skip, label_skip);
    f.eval(vec![push(vp(&["trail"]), lit("b"))]);
    let b = f.branch(a(&["early"]));
    f.eval(vec![push(vp(&["trail"]), lit("c"))]);
    let end = f.push_end(vec![set(op(&["trail"]), v(&["trail"]))]);
    let ret = f.no_op();
    f.goto(ret, end);
    f.edge(b, "true", ret);
    f.build()
}

#[tokio::test]
async fn goto_label_and_return_jump() {
    let (_db, c) = setup().await;
    load(&c, &[goto_workflow()]).await;
    let job = create(&c, "gototest", json!({"early": false})).await;
    assert_eq!(output(&c, job).await, json!({"trail": ["a", "b", "c"]}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "eval:done",
            "no_op:done",
            "no_op:done",
            "eval:done",
            "branch:done",
            "eval:done",
            "end:finished"
        ]
    );
    let job = create(&c, "gototest", json!({"early": true})).await;
    assert_eq!(output(&c, job).await, json!({"trail": ["a", "b"]}));
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "eval:done",
            "no_op:done",
            "no_op:done",
            "eval:done",
            "branch:done",
            "no_op:done",
            "end:finished"
        ]
    );
}

// try / catch -------------------------------------------------------------------------------------

fn try_workflow() -> Model {
    // try: call div(a, b) into q catch: caught = e._error; msg = 'caught: ' . e._error.msg
    let mut f = Flow::workflow("trytest")
        .input("a", "number")
        .input("b", "number")
        .output_optional("q", "number")
        .output_optional("caught", "object")
        .output_optional("msg", "string");
    let d = f.call(
        "div",
        vec![set(ip(&["a"]), a(&["a"])), set(ip(&["b"]), a(&["b"]))],
        vec![set(vp(&["q"]), var(Ns::O, &["q"]))],
    );
    let catch = f.eval(vec![
        set(vp(&["caught"]), var(Ns::E, &["_error"])),
        set(
            vp(&["msg"]),
            cat(lit("caught: "), var(Ns::E, &["_error", "msg"])),
        ),
    ]);
    let end = f.push_end(vec![copy(Ns::V, Ns::O, Some(&["q", "caught", "msg"]))]);
    f.goto(d, end);
    f.on_error(d, d, catch);
    f.build()
}

#[tokio::test]
async fn try_catch_sees_the_error_of_a_failed_task() {
    let (_db, c) = setup().await;
    load(&c, &[examples::div(), try_workflow()]).await;
    let div_task = task_id(&c, "trytest", "div").await;

    let job = create(&c, "trytest", json!({"a": 6, "b": 0})).await;
    work_one(&c, "w", "div", div_worker).await;
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(
        output(&c, job).await,
        json!({
            "caught": {"class": "normal", "msg": "cannot divide by zero",
                       "workflow": "trytest", "task_id": div_task},
            "msg": "caught: cannot divide by zero",
        })
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "div:error", "eval:done", "end:finished"]
    );

    // Without an error the catch block is skipped.
    let job = create(&c, "trytest", json!({"a": 6, "b": 2})).await;
    work_one(&c, "w", "div", div_worker).await;
    assert_eq!(output(&c, job).await, json!({"q": 3}));
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "div:done", "end:finished"]
    );
}

// raise_error -------------------------------------------------------------------------------------

fn raise_workflow(name: &str, caught: bool) -> Model {
    let mut f = Flow::workflow(name)
        .input("x", "string")
        .output_optional("got", "string")
        .output_optional("class", "string");
    let r = f.system(
        SystemAction::RaiseError,
        vec![set(ip(&["msg"]), cat(lit("bad input: "), a(&["x"])))],
    );
    let handler = f.eval(vec![
        set(vp(&["got"]), var(Ns::E, &["_error", "msg"])),
        set(vp(&["class"]), var(Ns::E, &["_error", "class"])),
    ]);
    if caught {
        f.on_error(r, r, handler);
    }
    f.end(vec![copy(Ns::V, Ns::O, Some(&["got", "class"]))])
}

#[tokio::test]
async fn raise_error_caught_and_uncaught() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &[
            raise_workflow("raise_caught", true),
            raise_workflow("raise_uncaught", false),
        ],
    )
    .await;

    let job = create(&c, "raise_caught", json!({"x": "42"})).await;
    assert_eq!(
        output(&c, job).await,
        json!({"got": "bad input: 42", "class": "normal"})
    );
    assert_eq!(
        log_states(&c, job).await,
        [
            "start:done",
            "raise_error:error",
            "eval:done",
            "end:finished"
        ]
    );

    let mut l = Listener::new(&tdb, &["job:finished"]).await;
    let job = create(&c, "raise_uncaught", json!({"x": "43"})).await;
    assert_eq!(state(&c, job).await, "error");
    let raise_task = task_id(&c, "raise_uncaught", "raise_error").await;
    assert_eq!(
        output(&c, job).await,
        json!({"error": {"class": "normal", "msg": "bad input: 43",
                         "workflow": "raise_uncaught", "task_id": raise_task}})
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "raise_error:error"]
    );
    assert_eq!(
        l.next().await,
        Some(("job:finished".into(), job.to_string()))
    );
}

// assert ------------------------------------------------------------------------------------------

fn assert_workflow() -> Model {
    // assert a.n > 0: 'n must be positive, got ' . a.n
    let mut f = Flow::workflow("asserttest")
        .input("n", "number")
        .output("ok", "boolean");
    let b = f.branch(bin(BinOp::NumGt, a(&["n"]), lit(0)));
    f.system(
        SystemAction::RaiseError,
        vec![set(
            ip(&["msg"]),
            cat(lit("n must be positive, got "), a(&["n"])),
        )],
    );
    let after = f.eval(vec![set(vp(&["ok"]), lit(true))]);
    f.edge(b, "true", after);
    f.end(vec![set(op(&["ok"]), v(&["ok"]))])
}

#[tokio::test]
async fn assert_raises_when_the_condition_is_false() {
    let (_db, c) = setup().await;
    load(&c, &[assert_workflow()]).await;
    let job = create(&c, "asserttest", json!({"n": 5})).await;
    assert_eq!(output(&c, job).await, json!({"ok": true}));
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "branch:done", "eval:done", "end:finished"]
    );
    let job = create(&c, "asserttest", json!({"n": -1})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "normal");
    assert_eq!(out["error"]["msg"], "n must be positive, got -1");
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "branch:done", "raise_error:error"]
    );
}

// max_steps ---------------------------------------------------------------------------------------

fn endless_workflow(name: &str, max_steps: Option<u32>) -> Model {
    // try: label l; n += 1; goto l catch: caught = true
    let mut f = Flow::workflow(name)
        .config(|c| c.max_steps = max_steps)
        .output_optional("caught", "boolean");
    let label = f.no_op();
    let body = f.eval(vec![assign(vp(&["n"]), AssignOp::Add, lit(1))]);
    f.goto(body, label);
    let catch = f.eval(vec![set(vp(&["caught"]), lit(true))]);
    f.on_error(label, body, catch);
    f.end(vec![copy(Ns::V, Ns::O, Some(&["caught"]))])
}

#[tokio::test]
async fn max_steps_stops_an_endless_loop_even_inside_try() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            endless_workflow("endless10", Some(10)),
            endless_workflow("endless", None),
        ],
    )
    .await;
    let job = create(&c, "endless10", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "fatal", "{out}");
    assert!(
        out["error"]["msg"].as_str().unwrap().contains("max_steps"),
        "{out}"
    );
    assert!(
        out["error"]["msg"].as_str().unwrap().contains("10"),
        "{out}"
    );
    assert_eq!(out["error"]["workflow"], "endless10");
    // The catch block never ran; the loop ran five times (start + 5 × (label, eval)).
    assert_eq!(variables(&c, job).await, json!({"n": 5}));
    let log = log_states(&c, job).await;
    assert_eq!(log.len(), 12, "{log:?}");
    assert_eq!(log.iter().filter(|s| s.ends_with(":done")).count(), 11);
    assert_eq!(log.last().unwrap(), "eval:error");
    let steps: i32 = c
        .query_one(
            "select stepcounter from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(steps, 10);

    // Without config the default is 99.
    let job = create(&c, "endless", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "fatal");
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("max_steps (99)"),
        "{out}"
    );
    assert_eq!(variables(&c, job).await, json!({"n": 49}));
}

// Evaluation errors -------------------------------------------------------------------------------

fn evalerr_workflow(name: &str, caught: bool) -> Model {
    let mut f = Flow::workflow(name)
        .input("x", "number")
        .input("y", "number")
        .output_optional("r", "number")
        .output_optional("caught", "object");
    let e = f.system_with(SystemAction::Eval, |t| {
        t.code = Some(vec![set(vp(&["r"]), bin(BinOp::Div, a(&["x"]), a(&["y"])))]);
        t.line = Some(7);
    });
    let catch = f.eval(vec![set(vp(&["caught"]), var(Ns::E, &["_error"]))]);
    if caught {
        f.on_error(e, e, catch);
        let end = f.push_end(vec![copy(Ns::V, Ns::O, Some(&["r", "caught"]))]);
        f.goto(e, end);
        f.build()
    } else {
        f.end(vec![copy(Ns::V, Ns::O, Some(&["r", "caught"]))])
    }
}

#[tokio::test]
async fn an_evaluation_error_is_a_catchable_normal_error() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            evalerr_workflow("evalcaught", true),
            evalerr_workflow("evaluncaught", false),
        ],
    )
    .await;
    // The workflow has two evals: the task with line 7 is the one that fails.
    let failing: i32 = c
        .query_one(
            "select task_id from jobcenter.tasks t join jobcenter.actions w \
             on w.action_id = t.workflow_id where w.name = 'evalcaught' \
             and t.attributes ->> 'line' = '7'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let ok = create(&c, "evalcaught", json!({"x": 6, "y": 3})).await;
    assert_eq!(output(&c, ok).await, json!({"r": 2}));

    let job = create(&c, "evalcaught", json!({"x": 6, "y": 0})).await;
    assert_eq!(
        output(&c, job).await,
        json!({"caught": {"class": "normal", "msg": "division by zero",
                          "workflow": "evalcaught", "task_id": failing, "line": 7}})
    );
    assert_eq!(
        log_states(&c, job).await,
        ["start:done", "eval:error", "eval:done", "end:finished"]
    );

    let job = create(&c, "evaluncaught", json!({"x": 1, "y": 0})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "normal");
    assert_eq!(out["error"]["msg"], "division by zero");
    assert_eq!(out["error"]["workflow"], "evaluncaught");
    assert_eq!(out["error"]["line"], 7);
    assert_eq!(log_states(&c, job).await, ["start:done", "eval:error"]);
}

// Workflow outputs --------------------------------------------------------------------------------

fn outputs_workflow(name: &str, wfomap: Vec<Stmt>) -> Model {
    Flow::workflow(name)
        .output("n", "number")
        .output_optional("note", "string")
        .end(wfomap)
}

#[tokio::test]
async fn workflow_outputs_are_checked() {
    let (_db, c) = setup().await;
    load(
        &c,
        &[
            outputs_workflow("wrongtype", vec![set(op(&["n"]), lit("not a number"))]),
            outputs_workflow("nulltype", vec![set(op(&["n"]), v(&["nothing"]))]),
            outputs_workflow("missing", vec![set(op(&["note"]), lit("no n"))]),
            outputs_workflow(
                "optional",
                vec![
                    set(op(&["n"]), lit(1)),
                    set(op(&["undeclared"]), lit("dropped")),
                ],
            ),
            outputs_workflow(
                "both",
                vec![
                    set(op(&["n"]), lit(2)),
                    set(op(&["note"]), call(Func::Uc, vec![lit("present")])),
                ],
            ),
        ],
    )
    .await;

    let job = create(&c, "wrongtype", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(out["error"]["class"], "normal");
    let msg = out["error"]["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("workflow output: output n is not of type number"),
        "{msg}"
    );
    assert_eq!(log_states(&c, job).await, ["start:done", "end:error"]);

    // JSON null is not a number.
    let job = create(&c, "nulltype", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("output n is not of type number"),
        "{out}"
    );

    let job = create(&c, "missing", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert_eq!(
        out["error"]["msg"],
        "workflow output: required output n is missing"
    );

    // An optional output may be absent; undeclared ones are dropped.
    let job = create(&c, "optional", json!({})).await;
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(output(&c, job).await, json!({"n": 1}));

    let job = create(&c, "both", json!({})).await;
    assert_eq!(output(&c, job).await, json!({"n": 2, "note": "PRESENT"}));
}
