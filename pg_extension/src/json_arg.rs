//! `jsonb` arguments that cannot panic, and the engine's limits on the values it handles.
//!
//! pgrx's `JsonB` parses its argument with serde_json, whose recursion limit (128 levels)
//! makes a deeper value panic before the function body runs: an uncatchable error with a
//! backtrace. [`Jsonb`] is the same SQL type, parsed only after a depth check, so an
//! oversized value is an ordinary `Err` the function turns into an engine error. The same
//! limits apply to what the evaluator produces ([`check_limits`]), so a workflow building a
//! value too deep or too large gets an error its `try`/`catch` can catch.

use std::io::{self, Write};

use pgrx::callconv::{Arg, ArgAbi};
use pgrx::nullable::Nullable;
use pgrx::pg_sys;
use pgrx::pgrx_sql_entity_graph::metadata::{
    ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin,
};
use pgrx::{FromDatum, JsonB};
use serde_json::Value;

/// The deepest nesting of arrays and objects a value may have.
pub const MAX_DEPTH: usize = 100;

/// The largest value, as JSON text, the evaluator may produce.
pub const MAX_VALUE_BYTES: usize = 64 * 1024 * 1024;

/// A `jsonb` argument: the value, or why the engine cannot take it.
#[derive(Debug)]
pub struct Jsonb(pub Result<Value, String>);

fn too_deep() -> String {
    format!("a value is nested more than {MAX_DEPTH} levels deep")
}

/// The nesting depth of JSON text, counting brackets outside strings.
fn text_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parses JSON text within [`MAX_DEPTH`].
pub fn parse(text: &str) -> Result<Value, String> {
    if text_depth(text) > MAX_DEPTH {
        return Err(too_deep());
    }
    serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
}

/// The nesting depth of a value, without recursion.
fn value_depth(v: &Value) -> usize {
    let mut max = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        max = max.max(d + 1);
        if max > MAX_DEPTH {
            return max;
        }
        stack.extend(children.map(|c| (c, d + 1)));
    }
    max
}

/// Counts bytes written and stops at the limit.
struct Budget(usize);

impl Write for Budget {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 = self.0.saturating_add(buf.len());
        if self.0 > MAX_VALUE_BYTES {
            return Err(io::Error::other("too large"));
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Whether a value the evaluator produced is within the limits; the message says which not.
pub fn check_limits(v: &Value) -> Result<(), String> {
    if value_depth(v) > MAX_DEPTH {
        return Err(too_deep());
    }
    if serde_json::to_writer(Budget(0), v).is_err() {
        return Err(format!("a value is larger than {MAX_VALUE_BYTES} bytes"));
    }
    Ok(())
}

/// [`check_limits`] of an object, without building a value of it.
pub fn check_object_limits(m: &serde_json::Map<String, Value>) -> Result<(), String> {
    if m.values().any(|v| value_depth(v) + 1 > MAX_DEPTH) {
        return Err(too_deep());
    }
    if serde_json::to_writer(Budget(0), m).is_err() {
        return Err(format!("a value is larger than {MAX_VALUE_BYTES} bytes"));
    }
    Ok(())
}

impl FromDatum for Jsonb {
    unsafe fn from_polymorphic_datum(
        datum: pg_sys::Datum,
        is_null: bool,
        _: pg_sys::Oid,
    ) -> Option<Jsonb> {
        if is_null {
            return None;
        }
        // SAFETY: the caller guarantees a non-null jsonb datum; jsonb_out returns a
        // palloc'd C string, freed once parsed.
        unsafe {
            let varlena = datum.cast_mut_ptr::<pg_sys::varlena>();
            let detoasted = pg_sys::pg_detoast_datum_packed(varlena);
            let cstr = pgrx::direct_function_call::<&core::ffi::CStr>(
                pg_sys::jsonb_out,
                &[Some(pg_sys::Datum::from(detoasted))],
            )?;
            let value = match cstr.to_str() {
                Ok(text) => parse(text),
                Err(e) => Err(format!("jsonb text is not UTF-8: {e}")),
            };
            pg_sys::pfree(cstr.as_ptr() as *mut core::ffi::c_void);
            if detoasted != varlena {
                pg_sys::pfree(detoasted.cast());
            }
            Some(Jsonb(value))
        }
    }
}

// SAFETY: unboxed with FromDatum like pgrx's own JsonB.
unsafe impl<'fcx> ArgAbi<'fcx> for Jsonb {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        // SAFETY: the argument is a jsonb datum, as the SQL signature says.
        unsafe { arg.unbox_arg_using_from_datum() }
            .unwrap_or_else(|| panic!("argument {index} must not be null"))
    }

    unsafe fn unbox_nullable_arg(arg: Arg<'_, 'fcx>) -> Nullable<Self> {
        // SAFETY: as above.
        unsafe { arg.unbox_arg_using_from_datum() }.into()
    }
}

// SAFETY: the SQL type is jsonb, as for pgrx's JsonB.
unsafe impl SqlTranslatable for Jsonb {
    const TYPE_IDENT: &'static str = <JsonB as SqlTranslatable>::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = <JsonB as SqlTranslatable>::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> =
        <JsonB as SqlTranslatable>::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = <JsonB as SqlTranslatable>::RETURN_SQL;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(n: usize) -> String {
        format!("{}1{}", "[".repeat(n), "]".repeat(n))
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        assert_eq!(text_depth(r#"{"a":"[[[[","b":[{"c":"\"]"}]}"#), 3);
        assert!(parse(&nested(MAX_DEPTH)).is_ok());
        let e = parse(&nested(MAX_DEPTH + 1)).expect_err("too deep");
        assert!(e.contains("nested more than 100 levels"), "{e}");
        // far beyond serde_json's own limit: an error, not a panic
        assert!(parse(&nested(5000)).is_err());
    }

    #[test]
    fn limits_of_produced_values() {
        let mut v = Value::from(1);
        for _ in 0..MAX_DEPTH {
            v = Value::Array(vec![v]);
        }
        assert!(check_limits(&v).is_ok());
        let deeper = Value::Array(vec![v]);
        assert!(check_limits(&deeper).is_err());
        let big = Value::String("x".repeat(MAX_VALUE_BYTES));
        assert!(check_limits(&big).unwrap_err().contains("larger than"));
    }
}
