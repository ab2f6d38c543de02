//! The small example models that many tests load, built once with [`crate::flow`].
//!
//! - [`add`]: the action `add {counter, step} → {counter}`; [`add_answer`] is a worker's answer
//!   to it (counter + step).
//! - [`calltest`]: the workflow `calltest(input) → output` calling `add` once with
//!   `counter = a.input, step = 3`; [`calls`] builds the same workflow under another name
//!   calling another action of that shape ([`counter_action`]).
//! - [`div`]: the action `div {a, b} → {q}`.
//! - [`approval`]: the workflow `approval(id) → event` that subscribes to
//!   `{type: 'approval', id: a.id}` under the name `appr` and waits up to 60 s for it.
//!
//! ```
//! let models = [testkit::examples::add(), testkit::examples::calltest()];
//! assert_eq!(models[1].name, "calltest");
//! let out = testkit::examples::add_answer(&serde_json::json!({"counter": 1, "step": 3}));
//! assert_eq!(out, serde_json::json!({"counter": 4}));
//! ```

use jcl::build::{lit, path, set, var};
use jcl::{Model, Ns, SystemAction};
use serde_json::{json, Value};

use crate::flow::{action, Flow};

/// An action `name {counter: number, step: number} → {counter: number}`, still open for
/// `.config(..)` or `.role(..)`; `.model()` finishes it.
pub fn counter_action(name: &str) -> Flow {
    action(name)
        .input("counter", "number")
        .input("step", "number")
        .output("counter", "number")
}

/// The action `add {counter, step} → {counter}`.
pub fn add() -> Model {
    counter_action("add").model()
}

/// A worker's answer to an `add` task: `{counter: counter + step}`.
///
/// # Panics
/// When `counter` or `step` is not an integer (a test handed the worker wrong inputs).
pub fn add_answer(inargs: &Value) -> Value {
    let int = |key: &str| {
        inargs[key]
            .as_i64()
            .unwrap_or_else(|| panic!("add: {key} is not an integer in {inargs}"))
    };
    json!({"counter": int("counter") + int("step")})
}

/// The action `div {a, b} → {q}`.
pub fn div() -> Model {
    action("div")
        .input("a", "number")
        .input("b", "number")
        .output("q", "number")
        .model()
}

/// A workflow `wf(input: number) → output: number` calling the action `act` (of the shape of
/// [`counter_action`]) once with `counter = a.input, step = 3`; the output is the counter it
/// returns.
pub fn calls(wf: &str, act: &str) -> Model {
    let mut f = Flow::workflow(wf)
        .input("input", "number")
        .output("output", "number");
    f.call(
        act,
        vec![
            set(path(Ns::I, &["counter"]), var(Ns::A, &["input"])),
            set(path(Ns::I, &["step"]), lit(3)),
        ],
        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["counter"]))],
    );
    f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))])
}

/// The workflow `calltest(input) → output`: one call of [`add`] with `step = 3`.
pub fn calltest() -> Model {
    calls("calltest", "add")
}

/// The workflow `approval(id) → event`: subscribes under the name `appr` to events with the
/// mask `{type: 'approval', id: a.id}`, waits for one up to 60 s and outputs it.
pub fn approval() -> Model {
    let mut f = Flow::workflow("approval")
        .input("id", "number")
        .output("event", "event");
    f.system(
        SystemAction::Subscribe,
        vec![
            set(path(Ns::I, &["name"]), lit("appr")),
            set(path(Ns::I, &["mask", "type"]), lit("approval")),
            set(path(Ns::I, &["mask", "id"]), var(Ns::A, &["id"])),
        ],
    );
    f.system_with(SystemAction::WaitForEvent, |t| {
        t.imap = Some(vec![
            set(path(Ns::I, &["events"]), lit(json!(["appr"]))),
            set(path(Ns::I, &["timeout"]), lit(60)),
        ]);
        t.omap = Some(vec![set(path(Ns::V, &["ev"]), var(Ns::O, &["event"]))]);
    });
    f.end(vec![set(path(Ns::O, &["event"]), var(Ns::V, &["ev"]))])
}
