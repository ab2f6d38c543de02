//! Builders of workflow models for tests, so the engine can be tested without the compiler.
//!
//! A [`Flow`] appends tasks in order; each new task becomes the `next` of the task appended
//! before it unless that one's `next` was already set (so straight-line code needs no wiring,
//! and jumps are set explicitly with [`Flow::goto`] and [`Flow::edge`]).
//!
//! ```
//! use jcl::build::{lit, path, set, var};
//! use jcl::Ns;
//! use testkit::flow::{action, Flow};
//!
//! let add = action("add").input("counter", "number").output("counter", "number").model();
//! let mut f = Flow::workflow("calltest").input("input", "number").output("output", "number");
//! f.call("add", vec![set(path(Ns::I, &["counter"]), var(Ns::A, &["input"]))],
//!        vec![set(path(Ns::V, &["thing"]), var(Ns::O, &["counter"]))]);
//! let wf = f.end(vec![set(path(Ns::O, &["output"]), var(Ns::V, &["thing"]))]);
//! assert_eq!(wf.tasks.len(), 3);
//! # let _ = (add, lit(1));
//! ```

use jcl::{
    ActionKind, Callee, Config, Edge, Expr, LockDecl, Model, Param, Stmt, SystemAction, Task,
    TaskAttributes,
};
use serde_json::Value;

/// A model under construction: inputs, outputs, config (for actions and workflows alike).
#[derive(Debug, Clone)]
pub struct Flow {
    model: Model,
    last: Option<u32>,
}

fn param(name: &str, ty: &str) -> Param {
    Param {
        name: name.to_owned(),
        ty: ty.to_owned(),
        optional: false,
        default: None,
        destination: jcl::Destination::Arguments,
    }
}

/// Starts an action model (performed by workers).
pub fn action(name: &str) -> Flow {
    Flow::new(ActionKind::Action, name)
}

/// Starts a procedure model (a PostgreSQL function `name(jsonb) returns jsonb`).
pub fn procedure(name: &str) -> Flow {
    Flow::new(ActionKind::Procedure, name)
}

impl Flow {
    fn new(kind: ActionKind, name: &str) -> Flow {
        Flow {
            model: Model {
                kind,
                name: name.to_owned(),
                inputs: vec![],
                outputs: vec![],
                wfenv: None,
                role: None,
                config: Config::default(),
                locks: vec![],
                tasks: vec![],
                src: Some(format!("-- built by testkit::flow: {name}")),
            },
            last: None,
        }
    }

    /// Starts a workflow; its `start` task (id 0) is already there.
    pub fn workflow(name: &str) -> Flow {
        let mut f = Flow::new(ActionKind::Workflow, name);
        f.push(
            Callee::System(SystemAction::Start),
            TaskAttributes::default(),
        );
        f
    }

    /// A required input.
    pub fn input(mut self, name: &str, ty: &str) -> Flow {
        self.model.inputs.push(param(name, ty));
        self
    }

    /// An optional input with a default.
    pub fn input_default(mut self, name: &str, ty: &str, default: Value) -> Flow {
        let mut p = param(name, ty);
        p.optional = true;
        p.default = Some(default);
        self.model.inputs.push(p);
        self
    }

    /// An input taken from the job environment (actions' `env:`).
    pub fn env_input(mut self, name: &str, ty: &str) -> Flow {
        let mut p = param(name, ty);
        p.optional = true;
        p.destination = jcl::Destination::Environment;
        self.model.inputs.push(p);
        self
    }

    /// A required output.
    pub fn output(mut self, name: &str, ty: &str) -> Flow {
        self.model.outputs.push(param(name, ty));
        self
    }

    /// An output that may be absent.
    pub fn output_optional(mut self, name: &str, ty: &str) -> Flow {
        let mut p = param(name, ty);
        p.optional = true;
        self.model.outputs.push(p);
        self
    }

    /// Changes the config.
    pub fn config(mut self, f: impl FnOnce(&mut Config)) -> Flow {
        f(&mut self.model.config);
        self
    }

    /// Sets the role needed to call it.
    pub fn role(mut self, role: &str) -> Flow {
        self.model.role = Some(role.to_owned());
        self
    }

    /// Sets the workflow environment.
    pub fn wfenv(mut self, env: Value) -> Flow {
        self.model.wfenv = env.as_object().cloned();
        self
    }

    /// Declares a lock (`locks:` section).
    pub fn lock_decl(
        mut self,
        locktype: &str,
        value: Option<Expr>,
        manual: bool,
        inherit: bool,
    ) -> Flow {
        self.model.locks.push(LockDecl {
            locktype: locktype.to_owned(),
            value,
            manual,
            inherit,
            limit: None,
        });
        self
    }

    /// Sets the limit (the most holders of one value) of the last declared lock type.
    pub fn lock_limit(mut self, limit: u32) -> Flow {
        if let Some(l) = self.model.locks.last_mut() {
            l.limit = Some(limit);
        }
        self
    }

    /// The finished model of an action or procedure.
    pub fn model(self) -> Model {
        self.model
    }

    /// Appends a task; it becomes the `next` of the previous one unless that was set.
    pub fn push(&mut self, callee: Callee, attributes: TaskAttributes) -> u32 {
        let id = self.model.tasks.len() as u32;
        if let Some(prev) = self.last {
            if let Some(t) = self.model.tasks.get_mut(prev as usize) {
                if t.next.is_none() && t.callee != Callee::System(SystemAction::End) {
                    t.next = Some(id);
                }
            }
        }
        self.model.tasks.push(Task {
            id,
            callee,
            next: None,
            on_error: None,
            edges: vec![],
            attributes,
        });
        self.last = Some(id);
        id
    }

    /// The id the next appended task will get.
    pub fn next_id(&self) -> u32 {
        self.model.tasks.len() as u32
    }

    /// Sets the default next task of `from`.
    pub fn goto(&mut self, from: u32, to: u32) {
        if let Some(t) = self.model.tasks.get_mut(from as usize) {
            t.next = Some(to);
        }
    }

    /// Adds a conditional edge (`"true"` for a branch, a label for a switch).
    pub fn edge(&mut self, from: u32, when: &str, to: u32) {
        if let Some(t) = self.model.tasks.get_mut(from as usize) {
            t.edges.push(Edge {
                when: when.to_owned(),
                to,
            });
        }
    }

    /// Sends errors of the tasks `from..=to` to `catch` (a try block).
    pub fn on_error(&mut self, from: u32, to: u32, catch: u32) {
        for t in self.model.tasks.iter_mut() {
            if t.id >= from && t.id <= to {
                t.on_error = Some(catch);
            }
        }
    }

    /// Appends a call of an action, procedure or workflow.
    pub fn call(&mut self, name: &str, imap: Vec<Stmt>, omap: Vec<Stmt>) -> u32 {
        self.call_with(name, imap, omap, |_| {})
    }

    /// Appends a call with more attributes (`wait`, `detach`, `map_using`, …).
    pub fn call_with(
        &mut self,
        name: &str,
        imap: Vec<Stmt>,
        omap: Vec<Stmt>,
        f: impl FnOnce(&mut TaskAttributes),
    ) -> u32 {
        let mut a = TaskAttributes {
            imap: Some(imap),
            omap: Some(omap),
            ..TaskAttributes::default()
        };
        f(&mut a);
        self.push(
            Callee::Named {
                name: name.to_owned(),
                kind: None,
            },
            a,
        )
    }

    /// Appends a system action whose inputs the imap builds.
    pub fn system(&mut self, action: SystemAction, imap: Vec<Stmt>) -> u32 {
        let a = TaskAttributes {
            imap: Some(imap),
            ..TaskAttributes::default()
        };
        self.push(Callee::System(action), a)
    }

    /// Appends a system action with the given attributes.
    pub fn system_with(
        &mut self,
        action: SystemAction,
        f: impl FnOnce(&mut TaskAttributes),
    ) -> u32 {
        let mut a = TaskAttributes::default();
        f(&mut a);
        self.push(Callee::System(action), a)
    }

    /// Appends an `eval`.
    pub fn eval(&mut self, code: Vec<Stmt>) -> u32 {
        self.system_with(SystemAction::Eval, |a| a.code = Some(code))
    }

    /// Appends a `branch` on `cond`: the `"true"` edge is set with [`Flow::edge`], false
    /// continues at the next appended task.
    pub fn branch(&mut self, cond: Expr) -> u32 {
        self.system_with(SystemAction::Branch, |a| a.cond = Some(cond))
    }

    /// Appends a `switch` on `value`; add labelled edges with [`Flow::edge`].
    pub fn switch(&mut self, value: Expr) -> u32 {
        self.system_with(SystemAction::Switch, |a| a.value = Some(value))
    }

    /// Appends a `no_op` (a jump target, like the original's labels).
    pub fn no_op(&mut self) -> u32 {
        self.push(
            Callee::System(SystemAction::NoOp),
            TaskAttributes::default(),
        )
    }

    /// Appends the `end` task with the workflow output map and returns the model.
    pub fn end(mut self, wfomap: Vec<Stmt>) -> Model {
        let a = TaskAttributes {
            wfomap: Some(wfomap),
            ..TaskAttributes::default()
        };
        self.push(Callee::System(SystemAction::End), a);
        self.model
    }

    /// Appends the `end` task, keeping the builder (for jumps to the end).
    pub fn push_end(&mut self, wfomap: Vec<Stmt>) -> u32 {
        let a = TaskAttributes {
            wfomap: Some(wfomap),
            ..TaskAttributes::default()
        };
        self.push(Callee::System(SystemAction::End), a)
    }

    /// The model so far (after [`Flow::push_end`]).
    pub fn build(self) -> Model {
        self.model
    }
}
