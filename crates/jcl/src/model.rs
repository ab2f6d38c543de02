//! The workflow model: what `jcc` emits for one source file and what the extension's
//! `jobcenter.load_action(model jsonb)` writes into the tables.
//!
//! A [`Model`] describes one action, procedure or workflow. Workflows carry their compiled
//! [`Task`]s; tasks refer to each other by a local id that the loader maps to `tasks.task_id`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ir::{Expr, Stmt, IR_VERSION};

/// What kind of callable a model (or a row of `jobcenter.actions`) is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    /// Built into the engine (negative action ids); never emitted by the compiler.
    System,
    /// Performed by an external worker.
    Action,
    /// Performed inline by a PostgreSQL function `NAME(jsonb) returns jsonb`.
    Procedure,
    /// A workflow: calling it starts a child job.
    Workflow,
}

impl ActionKind {
    /// The value stored in `actions.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::System => "system",
            ActionKind::Action => "action",
            ActionKind::Procedure => "procedure",
            ActionKind::Workflow => "workflow",
        }
    }
}

/// Where a declared input is taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// An ordinary argument (the `in:` section).
    #[default]
    Arguments,
    /// Taken from the job environment (the `env:` section of an action).
    Environment,
}

/// A declared input or output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// A type name from `jobcenter.json_schemas`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Inputs with a default are optional; outputs marked `optional` may be absent.
    #[serde(default)]
    pub optional: bool,
    /// A default of JSON `null` is `Some(Value::Null)`, as the loader stores it; no default
    /// is `None` (the field is absent).
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Value>,
    #[serde(default)]
    pub destination: Destination,
}

/// A field that is there is `Some`, even when it is `null` (serde's `Option` reads that as
/// `None`, which would turn a default of null into no default).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// How the wait between retries grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backoff {
    /// `interval × sqrt(tries)`, as the original.
    #[default]
    Sqrt,
    /// The same interval every time.
    Fixed,
    /// `interval × 2^(tries-1)`, capped at `max_interval`.
    Exponential,
}

/// `retry = {…}` of an action's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryConfig {
    /// How many tries in all (the first one included).
    pub tries: u32,
    /// A PostgreSQL interval, e.g. `"5 seconds"`.
    pub interval: String,
    #[serde(default)]
    pub backoff: Backoff,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_interval: Option<String>,
    /// Adds up to ±25 % random jitter to each wait.
    #[serde(default)]
    pub jitter: bool,
}

/// `rate = …` of an action's config: at most `limit` tasks started in any `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateConfig {
    /// How many tasks may start in one window (1 to 10000).
    pub limit: u32,
    /// The window, a PostgreSQL interval, e.g. `"1 second"`.
    pub per: String,
}

/// The `config:` section; which keys apply depends on the kind (the compiler checks that).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Config {
    /// Workflows: the most steps a job may take (default 99).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Workflows: the deepest child nesting (default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Actions: how long a worker may hold a task (a PostgreSQL interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Actions: retry policy for soft errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryConfig>,
    /// Actions: a dead worker's task of this action gets a soft (retryable) error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
    /// Actions: the most tasks started per window, across every worker and gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateConfig>,
    /// Actions: the most tasks at work at once (taken and not yet finished), across every
    /// worker and gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    /// Actions: input names a worker may filter its tasks on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Vec<String>>,
    /// Workflows: how long finished jobs stay in `jobs` before archival (a PostgreSQL interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
}

/// One line of a workflow's `locks:` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockDecl {
    pub locktype: String,
    /// The value to lock at job start; `None` is the `_` placeholder (given by `lock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Expr>,
    /// Taken and released by `lock`/`unlock` statements instead of at job start and end.
    #[serde(default)]
    pub manual: bool,
    /// Child jobs may take a lock of this type that this job holds.
    #[serde(default)]
    pub inherit: bool,
    /// How many jobs may hold one value of this lock type at once (a counted lock); loading
    /// the workflow sets the lock type's limit. `None` leaves it as it is (1 for a new type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// The built-in actions, with their fixed negative ids in `jobcenter.actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemAction {
    Start,
    End,
    NoOp,
    Eval,
    Branch,
    Switch,
    ReapChild,
    Subscribe,
    Unsubscribe,
    WaitForEvent,
    RaiseError,
    RaiseEvent,
    WaitForChildren,
    Lock,
    Unlock,
    Sleep,
}

impl SystemAction {
    /// Every system action, in id order (-1, -2, …).
    pub const ALL: [SystemAction; 16] = [
        SystemAction::Start,
        SystemAction::End,
        SystemAction::NoOp,
        SystemAction::Eval,
        SystemAction::Branch,
        SystemAction::Switch,
        SystemAction::ReapChild,
        SystemAction::Subscribe,
        SystemAction::Unsubscribe,
        SystemAction::WaitForEvent,
        SystemAction::RaiseError,
        SystemAction::RaiseEvent,
        SystemAction::WaitForChildren,
        SystemAction::Lock,
        SystemAction::Unlock,
        SystemAction::Sleep,
    ];

    /// The action's row id in `jobcenter.actions`.
    pub fn id(self) -> i32 {
        let pos = Self::ALL.iter().position(|a| *a == self).unwrap_or(0);
        -(pos as i32) - 1
    }

    /// The action's name in `jobcenter.actions`.
    pub fn name(self) -> &'static str {
        match self {
            SystemAction::Start => "start",
            SystemAction::End => "end",
            SystemAction::NoOp => "no_op",
            SystemAction::Eval => "eval",
            SystemAction::Branch => "branch",
            SystemAction::Switch => "switch",
            SystemAction::ReapChild => "reap_child",
            SystemAction::Subscribe => "subscribe",
            SystemAction::Unsubscribe => "unsubscribe",
            SystemAction::WaitForEvent => "wait_for_event",
            SystemAction::RaiseError => "raise_error",
            SystemAction::RaiseEvent => "raise_event",
            SystemAction::WaitForChildren => "wait_for_children",
            SystemAction::Lock => "lock",
            SystemAction::Unlock => "unlock",
            SystemAction::Sleep => "sleep",
        }
    }
}

/// What a task calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Callee {
    /// A built-in action.
    System(SystemAction),
    /// An action, procedure or workflow by name; the loader resolves it to the newest version
    /// (of `kind` when given).
    Named {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<ActionKind>,
    },
}

/// A conditional edge: taken when a branch's condition is true (`when = "true"`) or a switch's
/// value equals `when`. Without a matching edge a task continues at `next`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Edge {
    pub when: String,
    pub to: u32,
}

/// The compiled attributes of a task, stored as `tasks.attributes`.
///
/// Inputs of system actions are built by `imap` like any call's: `raise_error` reads `i.msg`,
/// `sleep` reads `i.timeout`, `subscribe` reads `i.name` and `i.mask`, `unsubscribe` reads
/// `i.name`, `raise_event` reads `i.event`, `wait_for_event` reads `i.events` and `i.timeout`,
/// `lock` reads `i.type`, `i.value` and `i.wait`, `unlock` reads `i.type` and `i.value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskAttributes {
    /// The IR version of every expression and statement below.
    pub ir: u32,
    /// Builds the call's inputs (`i.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imap: Option<Vec<Stmt>>,
    /// Maps the call's outputs (`o.`) into variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omap: Option<Vec<Stmt>>,
    /// `eval`: the assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Vec<Stmt>>,
    /// `end`: the workflow output map (`o.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wfomap: Option<Vec<Stmt>>,
    /// `branch`: the condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cond: Option<Expr>,
    /// `switch`: the value whose string form selects the edge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Expr>,
    /// Workflow calls: whether this task waits for its child and applies `omap` itself
    /// (`call`), or starts it and continues (`callflow`/`map` in a `split`, `detachflow`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub wait: bool,
    /// Workflow calls: the child is nobody's (`detachflow`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub detach: bool,
    /// Workflow calls: the child job's priority (`call NAME priority N:`); without it the
    /// child has its parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Workflow calls: `map NAME using LIST`: one child per element of this list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_using: Option<Expr>,
    /// `reap_child`: the local id of the task that started the children to reap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spawn_task: Option<u32>,
    /// `interface` calls: the workflow to call is named by this expression ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<Expr>,
    /// ... and must be one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<String>>,
    /// Source position of the statement, for error messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub col: Option<u32>,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for TaskAttributes {
    fn default() -> Self {
        TaskAttributes {
            ir: IR_VERSION,
            imap: None,
            omap: None,
            code: None,
            wfomap: None,
            cond: None,
            value: None,
            wait: true,
            detach: false,
            priority: None,
            map_using: None,
            spawn_task: None,
            dispatch: None,
            candidates: None,
            line: None,
            col: None,
        }
    }
}

/// One compiled step of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// Local id, unique within the workflow.
    pub id: u32,
    pub callee: Callee,
    /// The default next task; `None` only for `end`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u32>,
    /// Where an error in this task goes (the enclosing `catch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<Edge>,
    #[serde(default)]
    pub attributes: TaskAttributes,
}

/// One compiled source file: an action, a procedure or a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub kind: ActionKind,
    pub name: String,
    #[serde(default)]
    pub inputs: Vec<Param>,
    #[serde(default)]
    pub outputs: Vec<Param>,
    /// Workflows: environment entries merged into every job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wfenv: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub config: Config,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<LockDecl>,
    /// Workflows: the tasks; the first is `start`, exactly one is `end`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<Task>,
    /// The source text the model was compiled from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src: Option<String>,
}

/// Why a model cannot be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("a workflow needs at least a start and an end task")]
    NoTasks,
    #[error("the first task of a workflow must be start")]
    FirstNotStart,
    #[error("a workflow needs exactly one end task, it has {0}")]
    EndCount(usize),
    #[error("task id {0} is used twice")]
    DuplicateTask(u32),
    #[error("task {from} refers to unknown task {to}")]
    UnknownTarget { from: u32, to: u32 },
    #[error("task {0} has no next task")]
    NoNext(u32),
    #[error("{0} has tasks but is not a workflow")]
    TasksOnAction(String),
    #[error("IR version {found} of task {task} is not {expected}")]
    IrVersion {
        task: u32,
        found: u32,
        expected: u32,
    },
    #[error("name must not be empty")]
    EmptyName,
}

impl Model {
    /// Checks the structural invariants the loader relies on.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.name.is_empty() {
            return Err(ModelError::EmptyName);
        }
        if self.kind != ActionKind::Workflow {
            if self.tasks.is_empty() {
                return Ok(());
            }
            return Err(ModelError::TasksOnAction(self.name.clone()));
        }
        let first = self.tasks.first().ok_or(ModelError::NoTasks)?;
        if first.callee != Callee::System(SystemAction::Start) {
            return Err(ModelError::FirstNotStart);
        }
        let ends = self
            .tasks
            .iter()
            .filter(|t| t.callee == Callee::System(SystemAction::End))
            .count();
        if ends != 1 {
            return Err(ModelError::EndCount(ends));
        }
        let mut ids = std::collections::HashSet::new();
        for t in &self.tasks {
            if !ids.insert(t.id) {
                return Err(ModelError::DuplicateTask(t.id));
            }
        }
        for t in &self.tasks {
            if t.attributes.ir != IR_VERSION {
                return Err(ModelError::IrVersion {
                    task: t.id,
                    found: t.attributes.ir,
                    expected: IR_VERSION,
                });
            }
            let is_end = t.callee == Callee::System(SystemAction::End);
            if t.next.is_none() && !is_end {
                return Err(ModelError::NoNext(t.id));
            }
            let targets = t
                .next
                .iter()
                .chain(t.on_error.iter())
                .chain(t.edges.iter().map(|e| &e.to))
                .chain(t.attributes.spawn_task.iter());
            for to in targets {
                if !ids.contains(to) {
                    return Err(ModelError::UnknownTarget {
                        from: t.id,
                        to: *to,
                    });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_of_null_is_not_lost_in_storage() {
        // Found by the check fuzz target (`cursor json null`).
        let param = |default| Param {
            name: "cursor".into(),
            ty: "json".into(),
            optional: true,
            default,
            destination: Destination::Arguments,
        };
        for p in [
            param(Some(Value::Null)),
            param(None),
            param(Some(Value::from(3))),
        ] {
            let stored = serde_json::to_string(&p).expect("serialises");
            let loaded: Param = serde_json::from_str(&stored).expect("loads");
            assert_eq!(loaded, p, "{stored}");
        }
    }
}
