//! The benchmark's workload: action `add` and workflow `calltest` calling it once.

use anyhow::{bail, Context as _};
use jcl::build::{lit, path, set, var};
use jcl::Ns;
use serde_json::{json, Value};

/// The workflow the clients start.
pub const WORKFLOW: &str = "calltest";

/// The workflow of `bench drain --limit N`: `calltest` inside a counted lock of N holders.
pub const LIMITED: &str = "calltest_limited";

/// The lock type of [`LIMITED`] (one value, `add`).
pub const LIMIT_LOCK: &str = "bench_slots";

/// The action the workers perform.
pub const ACTION: &str = "add";

/// The constant step `calltest` passes to `add`.
pub const STEP: i64 = 3;

/// The models to load, in order: action `add` {counter, step} → {counter}, then workflow
/// `calltest` {input} → {output} that calls `add` once with step 3 (as in the engine test
/// `calltest.rs`).
pub fn models() -> Vec<jcl::Model> {
    vec![add_action(), calltest(WORKFLOW, None)]
}

/// Action `add` {counter, step} → {counter}.
fn add_action() -> jcl::Model {
    testkit::flow::action(ACTION)
        .input("counter", "number")
        .input("step", "number")
        .output("counter", "number")
        .model()
}

/// Workflow `name` {input} → {output}, calling `add` once; with a limit it holds lock
/// [`LIMIT_LOCK`] `'add'` (at most `limit` holders, taken at its start, released at its end)
/// around the call: a concurrency limit of `limit` jobs.
fn calltest(name: &str, limit: Option<u32>) -> jcl::Model {
    let mut f = testkit::flow::Flow::workflow(name)
        .input("input", "number")
        .output("output", "number");
    if let Some(limit) = limit {
        f = f
            .lock_decl(LIMIT_LOCK, Some(lit(ACTION)), false, false)
            .lock_limit(limit);
    }
    f.call(
        ACTION,
        vec![
            set(path(Ns::I, &["counter"]), var(Ns::A, &["input"])),
            set(path(Ns::I, &["step"]), lit(STEP)),
        ],
        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["counter"]))],
    );
    f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))])
}

/// Loads [`models`] through `c`, and with a limit the workflow [`LIMITED`] holding a
/// counted lock of that many holders.
pub async fn load(c: &tokio_postgres::Client, limit: Option<u32>) -> anyhow::Result<()> {
    let mut all = models();
    if limit.is_some() {
        all.push(calltest(LIMITED, limit));
    }
    for model in all {
        jc_db::load_model(c, &model, &[])
            .await
            .with_context(|| format!("could not load model {}", model.name))?;
    }
    Ok(())
}

/// What a worker answers to a task of `add`: `{"counter": counter + step}`.
pub fn add(inargs: &Value) -> anyhow::Result<Value> {
    let number = |key: &str| {
        inargs
            .get(key)
            .and_then(Value::as_i64)
            .with_context(|| format!("task of {ACTION} without an integer {key}: {inargs}"))
    };
    let (counter, step) = (number("counter")?, number("step")?);
    let Some(sum) = counter.checked_add(step) else {
        bail!("{counter} + {step} overflows");
    };
    Ok(json!({ "counter": sum }))
}
