//! The evaluator: runs compiled expressions and statement blocks over JSON namespaces.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Errors are values
//! ([`EvalError`]), never panics.

use serde_json::{Map, Value};

use crate::ir::{Expr, Ns, Stmt};

/// An evaluation error: a message for the user, turned into a catchable `normal` error by the
/// engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EvalError {
    pub message: String,
}

impl EvalError {
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
        }
    }
}

/// The namespaces an expression sees. Each is a JSON object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    pub a: Map<String, Value>,
    pub e: Map<String, Value>,
    pub v: Map<String, Value>,
    pub i: Map<String, Value>,
    pub o: Map<String, Value>,
    pub t: Map<String, Value>,
}

impl Context {
    /// The namespace `ns`.
    pub fn ns(&self, ns: Ns) -> &Map<String, Value> {
        match ns {
            Ns::A => &self.a,
            Ns::E => &self.e,
            Ns::V => &self.v,
            Ns::I => &self.i,
            Ns::O => &self.o,
            Ns::T => &self.t,
        }
    }

    /// The namespace `ns`, mutably.
    pub fn ns_mut(&mut self, ns: Ns) -> &mut Map<String, Value> {
        match ns {
            Ns::A => &mut self.a,
            Ns::E => &mut self.e,
            Ns::V => &mut self.v,
            Ns::I => &mut self.i,
            Ns::O => &mut self.o,
            Ns::T => &mut self.t,
        }
    }
}

/// Evaluates an expression. `Ok(None)` is "undefined" (only `ifdef` of a missing or null value
/// produces it); an assignment of an undefined value leaves its target untouched.
pub fn eval(expr: &Expr, ctx: &Context) -> Result<Option<Value>, EvalError> {
    let _ = (expr, ctx);
    Err(EvalError::new("not yet"))
}

/// Runs a block of statements against `ctx`, in order.
pub fn run(stmts: &[Stmt], ctx: &mut Context) -> Result<(), EvalError> {
    let _ = (stmts, ctx);
    Err(EvalError::new("not yet"))
}
