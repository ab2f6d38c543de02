//! The JCL language core: the compiled form of expressions and assignments ([`ir`]), the
//! workflow model that the compiler emits and the extension loads ([`model`]), a pure,
//! deterministic evaluator over JSON values ([`eval`](mod@eval), with [`value`] and
//! [`functions`]), and constructors for hand-built IR ([`build`]).
//!
//! This crate does no I/O. The compiler (`jcc`) type-checks against it and the PostgreSQL
//! extension evaluates the stored IR with it, so both sides always agree on what a program means.

pub mod build;
pub mod eval;
pub mod functions;
pub mod ir;
pub mod model;
pub mod value;

pub use eval::{eval, run, run_code, Context, EvalError};
pub use ir::{AssignOp, BinOp, Code, Expr, Func, Ns, Path, Seg, Stmt, UnOp, IR_VERSION};
pub use model::{
    ActionKind, Backoff, Callee, Config, Destination, Edge, LockDecl, Model, ModelError, Param,
    RateConfig, RetryConfig, SystemAction, Task, TaskAttributes,
};
