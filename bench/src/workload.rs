//! The benchmark's workload: action `add` and workflow `calltest` calling it once.

use anyhow::{bail, Context as _};
use jcl::build::{lit, path, set, var};
use jcl::Ns;
use serde_json::{json, Value};

/// The workflow the clients start.
pub const WORKFLOW: &str = "calltest";

/// The workflow of `bench drain --lock-limit N`: `calltest` inside a counted lock of N
/// holders.
pub const LIMITED: &str = "calltest_limited";

/// A limit on how many jobs run at once (`bench drain --limit` / `--lock-limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `add` has `config: concurrency = N`: at most N of its tasks at work at once.
    Action(u32),
    /// The jobs are of [`LIMITED`], which holds a counted lock of N holders from its start to
    /// its end.
    Lock(u32),
}

impl Limit {
    /// The N of the limit.
    pub fn n(self) -> u32 {
        match self {
            Limit::Action(n) | Limit::Lock(n) => n,
        }
    }

    /// How the limit is made, for the figures.
    pub fn kind(self) -> &'static str {
        match self {
            Limit::Action(_) => "action concurrency",
            Limit::Lock(_) => "counted lock",
        }
    }

    /// The workflow whose jobs are drained.
    pub fn workflow(self) -> &'static str {
        match self {
            Limit::Action(_) => WORKFLOW,
            Limit::Lock(_) => LIMITED,
        }
    }
}

/// The lock type of [`LIMITED`] (one value, `add`).
pub const LIMIT_LOCK: &str = "bench_slots";

/// The action the workers perform.
pub const ACTION: &str = "add";

/// The constant step `calltest` passes to `add`.
pub const STEP: i64 = 3;

/// Action `add` {counter, step} → {counter}, with a concurrency limit and a time-out (its
/// config `timeout`, seconds) when given.
fn add_action(concurrency: Option<u32>, timeout: Option<u32>) -> jcl::Model {
    testkit::flow::action(ACTION)
        .input("counter", "number")
        .input("step", "number")
        .output("counter", "number")
        .config(|c| {
            c.concurrency = concurrency;
            c.timeout = timeout.map(|s| format!("{s} seconds"));
        })
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

/// Loads the models through `c`, in order: action `add` {counter, step} → {counter}, then
/// workflow `calltest` {input} → {output} that calls `add` once with step 3 (as in the engine
/// test `calltest.rs`). With an action limit `add` has `concurrency`, with a lock limit the
/// workflow [`LIMITED`] holding a counted lock of that many holders is loaded too; with
/// `task_timeout` (seconds) `add` has that `timeout`.
pub async fn load(
    c: &tokio_postgres::Client,
    limit: Option<Limit>,
    task_timeout: Option<u32>,
) -> anyhow::Result<()> {
    let concurrency = match limit {
        Some(Limit::Action(n)) => Some(n),
        _ => None,
    };
    let mut all = vec![
        add_action(concurrency, task_timeout),
        calltest(WORKFLOW, None),
    ];
    if let Some(Limit::Lock(n)) = limit {
        all.push(calltest(LIMITED, Some(n)));
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
