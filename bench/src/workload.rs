//! The benchmark's workload: action `add` and workflow `calltest` calling it once.

use anyhow::{bail, Context as _};
use jcl::build::{lit, path, set, var};
use jcl::Ns;
use serde_json::{json, Value};

/// The workflow the clients start.
pub const WORKFLOW: &str = "calltest";

/// The action the workers perform.
pub const ACTION: &str = "add";

/// The constant step `calltest` passes to `add`.
pub const STEP: i64 = 3;

/// The models to load, in order: action `add` {counter, step} → {counter}, then workflow
/// `calltest` {input} → {output} that calls `add` once with step 3 (as in the engine test
/// `calltest.rs`).
pub fn models() -> Vec<jcl::Model> {
    let add = testkit::flow::action(ACTION)
        .input("counter", "number")
        .input("step", "number")
        .output("counter", "number")
        .model();
    let mut f = testkit::flow::Flow::workflow(WORKFLOW)
        .input("input", "number")
        .output("output", "number");
    f.call(
        ACTION,
        vec![
            set(path(Ns::I, &["counter"]), var(Ns::A, &["input"])),
            set(path(Ns::I, &["step"]), lit(STEP)),
        ],
        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["counter"]))],
    );
    let wf = f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))]);
    vec![add, wf]
}

/// Loads [`models`] through `c`.
pub async fn load(c: &tokio_postgres::Client) -> anyhow::Result<()> {
    for model in models() {
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
