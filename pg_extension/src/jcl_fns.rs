//! SQL functions that evaluate compiled JCL stored in `tasks.attributes`.
//!
//! They never raise for an evaluation error: they return `{"_error": message}` so that the
//! engine can turn it into a catchable `normal` error of the job instead of aborting the
//! caller's transaction.

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use jcl::{Context, Expr, Stmt, IR_VERSION};

use crate::json_arg::{check_limits, Jsonb};

fn error(msg: impl Into<String>) -> JsonB {
    JsonB(json!({ "_error": msg.into() }))
}

fn ns_object(ctx: &Value, key: &str) -> Map<String, Value> {
    match ctx.get(key) {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    }
}

fn context(ctx: &Value) -> Context {
    Context {
        a: ns_object(ctx, "a"),
        e: ns_object(ctx, "e"),
        v: ns_object(ctx, "v"),
        i: ns_object(ctx, "i"),
        o: ns_object(ctx, "o"),
        t: Map::new(),
    }
}

/// Takes `attributes[key]` after checking the attributes' IR version.
fn attribute<'a>(attributes: &'a Value, key: &str) -> Result<Option<&'a Value>, String> {
    let ir = attributes.get("ir").and_then(Value::as_u64);
    if ir != Some(u64::from(IR_VERSION)) {
        return Err(format!(
            "compiled code has IR version {}, this engine runs version {IR_VERSION}; recompile the workflow",
            ir.map_or_else(|| "none".to_string(), |v| v.to_string())
        ));
    }
    Ok(attributes.get(key))
}

/// Runs the statement block `attributes[key]` in the namespaces of `ctx`
/// (`{"a":…,"e":…,"v":…,"i":…,"o":…}`) and returns the writable namespaces after it:
/// `{"v":…,"i":…,"o":…}`, or `{"_error": message}`.
#[pg_extern(immutable, parallel_safe)]
pub fn jcl_run(attributes: Jsonb, key: &str, ctx: Jsonb) -> JsonB {
    let (attributes, ctx) = match (attributes.0, ctx.0) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => return error(e),
    };
    let code = match attribute(&attributes, key) {
        Ok(Some(c)) => c,
        Ok(None) => return JsonB(ctx),
        Err(e) => return error(e),
    };
    let stmts: Vec<Stmt> = match serde_json::from_value(code.clone()) {
        Ok(s) => s,
        Err(e) => return error(format!("malformed compiled code in {key}: {e}")),
    };
    let mut c = context(&ctx);
    match jcl::run(&stmts, &mut c) {
        Ok(()) => within_limits(json!({ "v": c.v, "i": c.i, "o": c.o })),
        Err(e) => error(e.message),
    }
}

/// Evaluates the expression `attributes[key]`: `{"value": x}`, `{}` when undefined,
/// or `{"_error": message}`.
#[pg_extern(immutable, parallel_safe)]
pub fn jcl_eval(attributes: Jsonb, key: &str, ctx: Jsonb) -> JsonB {
    let (attributes, ctx) = match (attributes.0, ctx.0) {
        (Ok(a), Ok(c)) => (a, c),
        (Err(e), _) | (_, Err(e)) => return error(e),
    };
    let code = match attribute(&attributes, key) {
        Ok(Some(c)) => c,
        Ok(None) => return error(format!("compiled code has no {key}")),
        Err(e) => return error(e),
    };
    let expr: Expr = match serde_json::from_value(code.clone()) {
        Ok(s) => s,
        Err(e) => return error(format!("malformed compiled code in {key}: {e}")),
    };
    match jcl::eval(&expr, &context(&ctx)) {
        Ok(Some(v)) => within_limits(json!({ "value": v })),
        Ok(None) => JsonB(json!({})),
        Err(e) => error(e.message),
    }
}

/// An evaluation result the engine can store, or an error the workflow can catch.
fn within_limits(result: Value) -> JsonB {
    match check_limits(&result) {
        Ok(()) => JsonB(result),
        Err(e) => error(e),
    }
}

/// Perl-like truthiness of a JSON value, as the language defines it.
#[pg_extern(immutable, parallel_safe)]
pub fn jcl_truthy(value: Option<Jsonb>) -> bool {
    value.is_some_and(|v| v.0.is_ok_and(|v| jcl::value::truthy(&v)))
}

/// The string form of a JSON value, as the language defines it (a `case` label compares it).
/// A value beyond the limits (never produced by the evaluator) reads as the empty string.
#[pg_extern(immutable, parallel_safe)]
pub fn jcl_tostring(value: Option<Jsonb>) -> String {
    value
        .and_then(|v| v.0.ok())
        .map_or_else(String::new, |v| jcl::value::to_string(&v))
}

/// `NULL` when the engine can take `value` (within its depth limit), else why not.
#[pg_extern(immutable, parallel_safe)]
pub fn check_json(value: Jsonb) -> Option<String> {
    value.0.err()
}

/// Checks that a workflow model (what `jcc` emits) is well formed; raises when it is not.
#[pg_extern(immutable, parallel_safe)]
pub fn check_model(model: Jsonb) -> bool {
    let model = match model.0 {
        Ok(m) => m,
        Err(e) => error!("malformed workflow model: {e}"),
    };
    let m: jcl::Model = match serde_json::from_value(model) {
        Ok(m) => m,
        Err(e) => error!("malformed workflow model: {e}"),
    };
    if let Err(e) = m.validate() {
        error!("invalid workflow model {}: {e}", m.name);
    }
    true
}
