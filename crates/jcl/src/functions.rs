//! The built-in functions of the expression language.
//!
//! [`call`] takes already evaluated arguments (an undefined argument is null) and checks the
//! argument count against [`Func::arity`]. String functions work on the string form of their
//! arguments and count characters, not bytes; functions over collections want an array or an
//! object and say so when given something else.
//!
//! Choices a user notices: null is an empty collection for `list`, `length`, `merge`,
//! `contains` and `exists` and an error elsewhere; `substr` and `slice` clamp to the input
//! and never fail; `split` of `""` is `[]`; `unique` compares nested arrays and objects by
//! their JSON text. The original's functions behave as its Perl did: `concat` joins string
//! forms, `tonumber` is `0 + x`, `md5_*` and `*_base64` work on characters below U+0100 as
//! bytes, `decode_base64` is lenient, `encode_json` prints numbers as Perl does (see
//! `docs/jcl.md`, "Values and expressions: differences from the original").

use std::collections::HashSet;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::eval::{EvalError, MAX_STRING_BYTES};
use crate::ir::Func;
use crate::value::{
    arith, format_number, json_eq, num_cmp, number_value, strict_num, to_num, to_string, type_name,
    Arith, Num,
};

static NULL: Value = Value::Null;

/// Calls a built-in function. Returns `None` (undefined) only for `ifdef` of null.
pub fn call(func: Func, args: &[Value]) -> Result<Option<Value>, EvalError> {
    call_texts(func, args, &[])
}

/// [`call`], where `no[i]` marks an argument that is Perl's computed false: it is `false`,
/// but its string form is `""`.
pub(crate) fn call_texts(
    func: Func,
    args: &[Value],
    no: &[bool],
) -> Result<Option<Value>, EvalError> {
    check_arity(func, args.len())?;
    let arg = |i: usize| args.get(i).unwrap_or(&NULL);
    let err = |msg: String| EvalError::new(format!("{}: {msg}", func.name()));
    let text = |i: usize| {
        if no.get(i).copied().unwrap_or(false) {
            String::new()
        } else {
            to_string(arg(i))
        }
    };
    let bytes = |i: usize| latin1_bytes(&text(i)).map_err(err);
    let array = |i: usize| match arg(i) {
        Value::Array(a) => Ok(a),
        other => Err(err(format!("expected an array, got {}", a_type(other)))),
    };
    let object = |i: usize| match arg(i) {
        Value::Object(m) => Ok(m),
        other => Err(err(format!("expected an object, got {}", a_type(other)))),
    };
    let v = match func {
        // The original's concat is Perl's `.` between its arguments.
        Func::Concat => Value::String((0..args.len()).map(text).collect()),
        Func::Defined => Value::Bool(!arg(0).is_null()),
        Func::Ifdef => match arg(0) {
            Value::Null => return Ok(None),
            v => v.clone(),
        },
        Func::Tostring => Value::String(text(0)),
        // The original's tonumber is Perl's `0 + x`.
        Func::Tonumber => arith(
            Arith::Add,
            Num::Int(0),
            to_num(arg(0)).map_err(|e| err(e.message))?,
        )?,
        Func::Array => Value::Array(args.to_vec()),
        Func::Object => {
            if !args.len().is_multiple_of(2) {
                return Err(err(format!(
                    "expected key, value pairs, got {} arguments",
                    args.len()
                )));
            }
            let mut m = Map::new();
            for pair in args.chunks_exact(2) {
                if let [k, v] = pair {
                    m.insert(to_string(k), v.clone());
                }
            }
            Value::Object(m)
        }
        Func::EncodeJson => {
            let mut out = String::new();
            encode_json(arg(0), &mut out);
            Value::String(out)
        }
        Func::DecodeJson => decode_json(&text(0)).map_err(err)?,
        Func::EncodeBase64 => Value::String(STANDARD.encode(bytes(0)?)),
        Func::DecodeBase64 => Value::String(decode_base64(&text(0))),
        Func::Md5Hex => {
            let digest = Md5::digest(bytes(0)?);
            Value::String(digest.iter().map(|b| format!("{b:02x}")).collect())
        }
        Func::Md5Base64 => Value::String(STANDARD_NO_PAD.encode(Md5::digest(bytes(0)?))),
        Func::List => match arg(0) {
            Value::Array(_) => arg(0).clone(),
            Value::Null => Value::Array(Vec::new()),
            v => Value::Array(vec![v.clone()]),
        },
        Func::Keys => {
            let mut keys: Vec<&String> = object(0)?.keys().collect();
            // serde_json keeps keys sorted unless a crate enables `preserve_order`; be sure.
            keys.sort();
            Value::Array(keys.into_iter().map(|k| Value::String(k.clone())).collect())
        }
        Func::Values => {
            let mut entries: Vec<(&String, &Value)> = object(0)?.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Array(entries.into_iter().map(|(_, v)| v.clone()).collect())
        }
        Func::Length => {
            let n = match arg(0) {
                Value::Null => 0,
                Value::String(s) => s.chars().count(),
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::Bool(_) | Value::Number(_) => text(0).chars().count(),
            };
            Value::from(n)
        }
        Func::Lc => Value::String(text(0).to_lowercase()),
        Func::Uc => Value::String(text(0).to_uppercase()),
        Func::Trim => Value::String(text(0).trim().to_owned()),
        Func::Substr => {
            let s = text(0);
            let (start, end) = window(s.chars().count(), int_arg(arg(1))?, opt_int(args.get(2))?);
            Value::String(
                s.chars()
                    .skip(start)
                    .take(end.saturating_sub(start))
                    .collect(),
            )
        }
        Func::Index => {
            let (s, sub) = (text(0), text(1));
            let pos = s
                .find(&sub)
                .and_then(|b| s.get(..b))
                .map_or(-1, |before| before.chars().count() as i64);
            Value::from(pos)
        }
        Func::Join => {
            let sep = text(0);
            let parts: Vec<String> = array(1)?.iter().map(to_string).collect();
            Value::String(parts.join(&sep))
        }
        Func::Split => {
            let (sep, s) = (text(0), text(1));
            let parts: Vec<Value> = if s.is_empty() {
                Vec::new()
            } else if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|p| Value::String(p.to_owned()))
                    .collect()
            };
            Value::Array(parts)
        }
        Func::Replace => {
            let (s, from, to) = (text(0), text(1), text(2));
            let hits = if from.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(from.as_str()).count()
            };
            let too_long = hits
                .checked_mul(to.len())
                .and_then(|n| n.checked_add(s.len()))
                .is_none_or(|n| n > MAX_STRING_BYTES);
            if too_long {
                return Err(err(format!(
                    "the result would be longer than {MAX_STRING_BYTES} bytes"
                )));
            }
            Value::String(s.replace(from.as_str(), &to))
        }
        Func::StartsWith => Value::Bool(text(0).starts_with(text(1).as_str())),
        Func::EndsWith => Value::Bool(text(0).ends_with(text(1).as_str())),
        Func::Contains => Value::Bool(match arg(0) {
            Value::Null => false,
            Value::Array(a) => a.iter().any(|e| json_eq(e, arg(1))),
            Value::Object(m) => m.contains_key(&text(1)),
            Value::String(s) => s.contains(text(1).as_str()),
            other => {
                return Err(err(format!(
                    "expected an array, object or string, got {}",
                    a_type(other)
                )))
            }
        }),
        Func::Exists => Value::Bool(match arg(0) {
            Value::Null => false,
            Value::Object(m) => m.contains_key(&text(1)),
            Value::Array(a) => strict_num(arg(1))
                .map(Num::saturating_i64)
                .is_some_and(|p| in_range(p, a.len())),
            other => {
                return Err(err(format!(
                    "expected an object or array, got {}",
                    a_type(other)
                )))
            }
        }),
        Func::Abs => match to_num(arg(0))? {
            Num::Int(i) => match i.checked_abs() {
                Some(a) => Value::from(a),
                None => number_value((i as f64).abs())?,
            },
            Num::Float(f) => number_value(f.abs())?,
        },
        Func::Int => float_fn(arg(0), f64::trunc)?,
        Func::Floor => float_fn(arg(0), f64::floor)?,
        Func::Ceil => float_fn(arg(0), f64::ceil)?,
        Func::Round => {
            let digits = opt_int(args.get(1))?.unwrap_or(0);
            match to_num(arg(0))? {
                Num::Int(i) if digits >= 0 => Value::from(i),
                n => number_value(round(n.as_f64(), digits))?,
            }
        }
        Func::Min | Func::Max => {
            let items = match args {
                [Value::Array(a)] => a.as_slice(),
                _ => args,
            };
            let want = if func == Func::Min {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            };
            let mut best: Option<Num> = None;
            for item in items {
                let n = to_num(item).map_err(|e| err(e.message))?;
                if best.is_none_or(|b| num_cmp(n, b) == want) {
                    best = Some(n);
                }
            }
            match best {
                Some(n) => n.into_value()?,
                None => Value::Null,
            }
        }
        Func::Sum => {
            let mut total = Value::from(0);
            for item in array(0)? {
                let n = to_num(item).map_err(|e| err(e.message))?;
                total = arith(Arith::Add, to_num(&total)?, n)?;
            }
            total
        }
        Func::Sort => {
            let mut items = array(0)?.clone();
            if items.iter().all(Value::is_number) {
                // Numbers never fail to convert; the fallback only keeps this panic-free.
                items.sort_by(|a, b| {
                    num_cmp(
                        to_num(a).unwrap_or(Num::Int(0)),
                        to_num(b).unwrap_or(Num::Int(0)),
                    )
                });
            } else {
                items.sort_by_cached_key(to_string);
            }
            Value::Array(items)
        }
        Func::Reverse => match arg(0) {
            Value::Array(a) => Value::Array(a.iter().rev().cloned().collect()),
            Value::String(s) => Value::String(s.chars().rev().collect()),
            other => {
                return Err(err(format!(
                    "expected an array or string, got {}",
                    a_type(other)
                )))
            }
        },
        Func::Unique => {
            let mut seen = HashSet::new();
            let items = array(0)?
                .iter()
                .filter(|v| seen.insert(unique_key(v)))
                .cloned()
                .collect();
            Value::Array(items)
        }
        Func::Slice => {
            let a = array(0)?;
            let (start, end) = window(a.len(), int_arg(arg(1))?, opt_int(args.get(2))?);
            Value::Array(a.get(start..end).unwrap_or_default().to_vec())
        }
        Func::Merge => {
            let mut m = Map::new();
            for (i, a) in args.iter().enumerate() {
                match a {
                    Value::Null => {}
                    Value::Object(o) => m.extend(o.iter().map(|(k, v)| (k.clone(), v.clone()))),
                    other => {
                        return Err(err(format!(
                            "argument {} is {}, not an object",
                            i + 1,
                            a_type(other)
                        )))
                    }
                }
            }
            Value::Object(m)
        }
        Func::Typeof => Value::String(type_name(arg(0)).to_owned()),
    };
    Ok(Some(v))
}

/// The bytes of a string as Perl's byte functions (Digest::MD5, MIME::Base64) take them:
/// one per character, which must be below 256 ("Wide character" otherwise, as in Perl).
fn latin1_bytes(s: &str) -> Result<Vec<u8>, String> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| {
            "Wide character: only characters below U+0100 are bytes (encode the text first)"
                .to_owned()
        })
}

/// MIME::Base64's decoder: characters outside the alphabet are skipped, decoding stops at the
/// first `=`, and an incomplete last group gives the bytes it holds. Each byte becomes the
/// character of that code (Perl's byte string).
fn decode_base64(s: &str) -> String {
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(char::from(((acc >> bits) & 0xff) as u8));
        }
    }
    out
}

/// JSON text with the original's layout (JSON::PP, canonical): sorted keys, no spaces, and
/// numbers printed as Perl prints them.
fn encode_json(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode_json(e, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            let mut entries: Vec<_> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            for (i, (k, e)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                encode_json(e, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Parses JSON text. A number too large for a double is, as in Perl, an infinity; JSON cannot
/// hold one, so it becomes the string Perl prints for it (`"Inf"`, `"-Inf"`).
fn decode_json(text: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(v) => Ok(v),
        Err(e) if e.to_string().starts_with("number out of range") => {
            serde_json::from_str(&infinities_quoted(text)).map_err(|e| format!("invalid JSON: {e}"))
        }
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

/// `text` with each number outside strings that overflows a double replaced by `"Inf"` or
/// `"-Inf"`.
fn infinities_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut in_string = false;
    while let Some(c) = rest.chars().next() {
        if in_string {
            let len = if c == '\\' {
                rest.chars().take(2).map(char::len_utf8).sum()
            } else {
                c.len_utf8()
            };
            in_string = c != '"';
            out.push_str(rest.get(..len).unwrap_or(rest));
            rest = rest.get(len..).unwrap_or("");
        } else if c == '-' || c.is_ascii_digit() {
            let len = rest
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(rest.len());
            let (number, tail) = rest.split_at(len);
            match number.parse::<f64>() {
                Ok(f) if f.is_infinite() => {
                    out.push_str(if f > 0.0 { "\"Inf\"" } else { "\"-Inf\"" });
                }
                _ => out.push_str(number),
            }
            rest = tail;
        } else {
            in_string = c == '"';
            out.push(c);
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
    }
    out
}

fn check_arity(func: Func, n: usize) -> Result<(), EvalError> {
    let (min, max) = func.arity();
    if n >= min && max.is_none_or(|max| n <= max) {
        return Ok(());
    }
    let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
    let expected = match max {
        Some(max) if max == min => format!("{min} {}", plural(min)),
        Some(max) => format!("{min} to {max} arguments"),
        None => format!("at least {min} {}", plural(min)),
    };
    Err(EvalError::new(format!(
        "{}() takes {expected}, got {n}",
        func.name()
    )))
}

/// "an array", "a string", … for messages.
fn a_type(v: &Value) -> String {
    let t = type_name(v);
    let article = if matches!(t, "array" | "object") {
        "an"
    } else {
        "a"
    };
    format!("{article} {t}")
}

/// An integer argument: the number form, truncated toward zero and saturated.
fn int_arg(v: &Value) -> Result<i64, EvalError> {
    to_num(v).map(Num::saturating_i64)
}

fn opt_int(v: Option<&Value>) -> Result<Option<i64>, EvalError> {
    v.map(int_arg).transpose()
}

fn in_range(p: i64, len: usize) -> bool {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    if p < 0 {
        p >= -len
    } else {
        p < len
    }
}

/// Perl's `substr` window over `len` items: a negative start counts from the end, a negative
/// count leaves that many off the end, and what falls outside is cut off (never an error).
/// Returns `start <= end`, both within `0..=len`.
fn window(len: usize, start: i64, count: Option<i64>) -> (usize, usize) {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 {
        start.saturating_add(len_i)
    } else {
        start
    };
    let end = match count {
        None => len_i,
        Some(c) if c < 0 => len_i.saturating_add(c),
        Some(c) => start.saturating_add(c),
    };
    let clamp = |x: i64| usize::try_from(x.clamp(0, len_i)).unwrap_or(0);
    let (start, end) = (clamp(start), clamp(end));
    (start, end.max(start))
}

fn float_fn(v: &Value, f: fn(f64) -> f64) -> Result<Value, EvalError> {
    match to_num(v)? {
        Num::Int(i) => Ok(Value::from(i)),
        Num::Float(x) => number_value(f(x)),
    }
}

/// Rounds half away from zero to `digits` decimals (negative: to tens, hundreds, …).
fn round(x: f64, digits: i64) -> f64 {
    let d = i32::try_from(digits.clamp(-400, 400)).unwrap_or(0);
    if d >= 0 {
        let scale = 10f64.powi(d);
        let y = x * scale;
        // Past f64 precision there is nothing left to round.
        if y.is_finite() {
            y.round() / scale
        } else {
            x
        }
    } else {
        let scale = 10f64.powi(-d);
        if scale.is_finite() {
            (x / scale).round() * scale
        } else {
            0.0
        }
    }
}

/// What `unique` compares: scalars by value (numbers numerically, `1` = `1.0`), arrays and
/// objects by their JSON text. The type is part of the key, so `1` and `"1"` differ.
fn unique_key(v: &Value) -> String {
    match v {
        Value::Number(_) => format!("n{}", to_string(v)),
        Value::String(s) => format!("s{s}"),
        _ => format!("j{}", to_string(v)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ok(func: Func, args: Value) -> Value {
        let args = args.as_array().cloned().unwrap_or_default();
        match call(func, &args) {
            Ok(Some(v)) => v,
            other => panic!("{}({args:?}) gave {other:?}", func.name()),
        }
    }

    fn fails(func: Func, args: Value) -> String {
        let args = args.as_array().cloned().unwrap_or_default();
        match call(func, &args) {
            Err(e) => e.message,
            other => panic!("{}({args:?}) should fail, gave {other:?}", func.name()),
        }
    }

    /// A valid argument list for every function.
    fn sample_args(func: Func) -> Value {
        match func {
            Func::Concat => json!(["a", 1]),
            Func::Defined | Func::Ifdef | Func::Tostring | Func::List | Func::Typeof => json!([1]),
            Func::Tonumber | Func::Abs | Func::Int | Func::Floor | Func::Ceil => json!(["1.5"]),
            Func::Round => json!([1.25, 1]),
            Func::Array | Func::Min | Func::Max | Func::Merge => json!([]),
            Func::Object => json!(["k", "v"]),
            Func::EncodeJson => json!([{"a": [1]}]),
            Func::DecodeJson => json!([r#"{"a":[1]}"#]),
            Func::EncodeBase64 | Func::Md5Hex | Func::Md5Base64 => json!(["text"]),
            Func::DecodeBase64 => json!(["dGV4dA=="]),
            Func::Keys | Func::Values => json!([{"b": 1, "a": 2}]),
            Func::Length | Func::Lc | Func::Uc | Func::Trim | Func::Reverse => json!(["Text"]),
            Func::Substr => json!(["text", 1, 2]),
            Func::Index | Func::StartsWith | Func::EndsWith => json!(["text", "x"]),
            Func::Join => json!([",", [1, 2]]),
            Func::Split => json!([",", "a,b"]),
            Func::Replace => json!(["text", "t", "T"]),
            Func::Contains | Func::Exists => json!([{"k": 1}, "k"]),
            Func::Sum | Func::Sort | Func::Unique => json!([[3, 1, 3]]),
            Func::Slice => json!([[1, 2, 3], 1]),
        }
    }

    #[test]
    fn every_function_is_implemented() {
        for func in Func::ALL {
            let args = sample_args(func);
            let args = args.as_array().cloned().unwrap_or_default();
            let (min, max) = func.arity();
            assert!(
                args.len() >= min && max.is_none_or(|m| args.len() <= m),
                "{func:?}"
            );
            assert!(
                call(func, &args).is_ok_and(|v| v.is_some()),
                "{}({args:?})",
                func.name()
            );
        }
    }

    #[test]
    fn wrong_arity_names_the_function() {
        assert_eq!(
            fails(Func::Length, json!([])),
            "length() takes 1 argument, got 0"
        );
        assert_eq!(
            fails(Func::Keys, json!([{}, {}])),
            "keys() takes 1 argument, got 2"
        );
        assert_eq!(
            fails(Func::Substr, json!(["s"])),
            "substr() takes 2 to 3 arguments, got 1"
        );
        assert_eq!(
            fails(Func::Replace, json!(["a", "b"])),
            "replace() takes 3 arguments, got 2"
        );
        assert_eq!(
            fails(Func::Round, json!([1, 2, 3])),
            "round() takes 1 to 2 arguments, got 3"
        );
        for func in Func::ALL {
            let (min, max) = func.arity();
            if let Some(max) = max {
                let too_many = vec![Value::Null; max + 1];
                let msg = call(func, &too_many).map_err(|e| e.message);
                assert!(
                    msg.as_ref()
                        .is_err_and(|m| m.starts_with(&format!("{}() takes", func.name()))),
                    "{msg:?}"
                );
            }
            if min > 0 {
                assert!(call(func, &vec![Value::Null; min - 1]).is_err(), "{func:?}");
            }
        }
    }

    #[test]
    fn concat() {
        assert_eq!(
            ok(Func::Concat, json!(["a", 1, null, true, 0.5])),
            json!("a110.5")
        );
        // The original's concat is Perl's `.`: arrays give their string form.
        assert_eq!(
            ok(Func::Concat, json!([[1], [], [2, [3]]])),
            json!("[1][][2,[3]]")
        );
        assert_eq!(ok(Func::Concat, json!([[1], "x"])), json!("[1]x"));
        assert_eq!(ok(Func::Concat, json!([])), json!(""));
    }

    #[test]
    fn defined_and_ifdef() {
        assert_eq!(ok(Func::Defined, json!([null])), json!(false));
        assert_eq!(ok(Func::Defined, json!([0])), json!(true));
        assert_eq!(ok(Func::Defined, json!([""])), json!(true));
        assert_eq!(call(Func::Ifdef, &[json!(null)]), Ok(None));
        assert_eq!(ok(Func::Ifdef, json!([false])), json!(false));
        assert_eq!(ok(Func::Ifdef, json!([[1]])), json!([1]));
    }

    #[test]
    fn tostring() {
        assert_eq!(ok(Func::Tostring, json!([null])), json!(""));
        assert_eq!(ok(Func::Tostring, json!([false])), json!("0"));
        assert_eq!(ok(Func::Tostring, json!([2.5])), json!("2.5"));
        assert_eq!(
            ok(Func::Tostring, json!([{"b": 2, "a": 1}])),
            json!(r#"{"a":1,"b":2}"#)
        );
    }

    #[test]
    fn tonumber_is_perls_numification() {
        assert_eq!(ok(Func::Tonumber, json!([" 42 "])), json!(42));
        assert_eq!(ok(Func::Tonumber, json!(["-1.5e1"])), json!(-15));
        assert_eq!(ok(Func::Tonumber, json!(["0x1A"])), json!(0));
        assert_eq!(ok(Func::Tonumber, json!(["12abc"])), json!(12));
        assert_eq!(ok(Func::Tonumber, json!(["abc"])), json!(0));
        assert_eq!(ok(Func::Tonumber, json!([""])), json!(0));
        assert_eq!(ok(Func::Tonumber, json!([null])), json!(0));
        assert_eq!(ok(Func::Tonumber, json!([7.5])), json!(7.5));
        assert_eq!(ok(Func::Tonumber, json!([true])), json!(1));
        assert_eq!(
            fails(Func::Tonumber, json!([[1]])),
            "tonumber: cannot use an array as a number"
        );
        assert!(call(Func::Tonumber, &[json!("1e999")]).is_err());
    }

    #[test]
    fn array_and_object() {
        assert_eq!(ok(Func::Array, json!([])), json!([]));
        assert_eq!(
            ok(Func::Array, json!([1, null, "a"])),
            json!([1, null, "a"])
        );
        assert_eq!(ok(Func::Object, json!([])), json!({}));
        assert_eq!(
            ok(Func::Object, json!(["a", 1, 2, [2], null, "n", "a", 3])),
            json!({"a": 3, "2": [2], "": "n"})
        );
        assert_eq!(
            fails(Func::Object, json!(["a", 1, "b"])),
            "object: expected key, value pairs, got 3 arguments"
        );
    }

    #[test]
    fn json_functions() {
        assert_eq!(
            ok(Func::EncodeJson, json!([{"b": [1, 2.5], "a": "x"}])),
            json!(r#"{"a":"x","b":[1,2.5]}"#)
        );
        assert_eq!(ok(Func::EncodeJson, json!(["q\""])), json!(r#""q\"""#));
        assert_eq!(ok(Func::EncodeJson, json!([null])), json!("null"));
        assert_eq!(
            ok(Func::DecodeJson, json!([r#" {"a": [1, true]} "#])),
            json!({"a": [1, true]})
        );
        assert_eq!(ok(Func::DecodeJson, json!([5])), json!(5));
        let msg = fails(Func::DecodeJson, json!(["{bad"]));
        assert!(
            msg.starts_with("decode_json: invalid JSON: key must be a string"),
            "{msg}"
        );
        // Numbers print as Perl's JSON::PP prints them.
        assert_eq!(
            ok(Func::EncodeJson, json!([[0.1 + 0.2, 1e15, 3, {"k": 1e-7}]])),
            json!(r#"[0.3,1e+15,3,{"k":1e-07}]"#)
        );
        // Too large for a double: Perl's infinity, as the string Perl prints for it.
        assert_eq!(
            ok(Func::DecodeJson, json!([r#"[1e400, -1E+999, "1e400", 2]"#])),
            json!(["Inf", "-Inf", "1e400", 2])
        );
        assert!(fails(Func::DecodeJson, json!(["[1e400"])).starts_with("decode_json: invalid JSON"));
        // serde_json's recursion limit keeps hostile input from exhausting the stack.
        let deep = "[".repeat(100_000);
        assert!(call(Func::DecodeJson, &[json!(deep)]).is_err());
    }

    #[test]
    fn base64_works_on_perls_bytes() {
        assert_eq!(ok(Func::EncodeBase64, json!(["hello"])), json!("aGVsbG8="));
        // A character below U+0100 is one byte, as in Perl; a wider one is an error.
        assert_eq!(ok(Func::EncodeBase64, json!(["é"])), json!("6Q=="));
        assert!(
            fails(Func::EncodeBase64, json!(["€"])).starts_with("encode_base64: Wide character")
        );
        assert_eq!(ok(Func::EncodeBase64, json!([""])), json!(""));
        assert_eq!(ok(Func::DecodeBase64, json!(["aGVsbG8="])), json!("hello"));
        assert_eq!(ok(Func::DecodeBase64, json!(["6Q=="])), json!("é"));
        assert_eq!(ok(Func::DecodeBase64, json!(["/w=="])), json!("\u{ff}"));
        // UTF-8 text comes back as its bytes, one character each, as Perl's does.
        assert_eq!(
            ok(Func::DecodeBase64, json!(["w6k="])),
            json!("\u{c3}\u{a9}")
        );
        // Lenient like MIME::Base64: no padding, line breaks, stray characters, stop at `=`.
        assert_eq!(ok(Func::DecodeBase64, json!(["aGVsbG8"])), json!("hello"));
        assert_eq!(
            ok(Func::DecodeBase64, json!(["aGVs\nbG8=\n"])),
            json!("hello")
        );
        assert_eq!(ok(Func::DecodeBase64, json!(["!!aG!Vs"])), json!("hel"));
        assert_eq!(ok(Func::DecodeBase64, json!(["aGVs=bG8="])), json!("hel"));
        assert_eq!(ok(Func::DecodeBase64, json!(["a"])), json!(""));
    }

    #[test]
    fn md5() {
        assert_eq!(
            ok(Func::Md5Hex, json!([""])),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            ok(Func::Md5Hex, json!(["hello"])),
            json!("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(
            ok(Func::Md5Hex, json!([12])),
            ok(Func::Md5Hex, json!(["12"]))
        );
        // Perl's md5_hex of the character é digests the byte 0xE9; a wide character dies.
        assert_eq!(
            ok(Func::Md5Hex, json!(["é"])),
            json!("3406877694691ddd1dfb0aca54681407")
        );
        assert!(fails(Func::Md5Hex, json!(["€"])).starts_with("md5_hex: Wide character"));
        // Perl's Digest::MD5::md5_base64: no padding.
        assert_eq!(
            ok(Func::Md5Base64, json!([""])),
            json!("1B2M2Y8AsgTpgAmY7PhCfg")
        );
        assert_eq!(
            ok(Func::Md5Base64, json!(["hello"])),
            json!("XUFAKrxLKna5cZ2REBfFkg")
        );
    }

    #[test]
    fn list() {
        assert_eq!(ok(Func::List, json!([[1, 2]])), json!([1, 2]));
        assert_eq!(ok(Func::List, json!([null])), json!([]));
        assert_eq!(ok(Func::List, json!(["a"])), json!(["a"]));
        assert_eq!(ok(Func::List, json!([{"a": 1}])), json!([{"a": 1}]));
    }

    #[test]
    fn keys_and_values() {
        assert_eq!(
            ok(Func::Keys, json!([{"b": 1, "a": 2, "c": 0}])),
            json!(["a", "b", "c"])
        );
        assert_eq!(
            ok(Func::Values, json!([{"b": 1, "a": 2, "c": 0}])),
            json!([2, 1, 0])
        );
        assert_eq!(ok(Func::Keys, json!([{}])), json!([]));
        assert_eq!(
            fails(Func::Keys, json!([[1]])),
            "keys: expected an object, got an array"
        );
        assert_eq!(
            fails(Func::Values, json!([null])),
            "values: expected an object, got a null"
        );
    }

    #[test]
    fn length() {
        let cases = [
            (json!("héllo"), 5),
            (json!(""), 0),
            (json!([1, [2, 3]]), 2),
            (json!({"a": 1}), 1),
            (json!(null), 0),
            (json!(12.5), 4),
            (json!(true), 1),
        ];
        for (v, n) in cases {
            assert_eq!(ok(Func::Length, json!([v])), json!(n));
        }
    }

    #[test]
    fn case_and_trim() {
        assert_eq!(ok(Func::Lc, json!(["ÀbC"])), json!("àbc"));
        assert_eq!(ok(Func::Uc, json!(["àbc"])), json!("ÀBC"));
        assert_eq!(ok(Func::Uc, json!([true])), json!("1"));
        assert_eq!(ok(Func::Trim, json!(["\t a b \n"])), json!("a b"));
        assert_eq!(ok(Func::Trim, json!([null])), json!(""));
    }

    #[test]
    fn substr() {
        let cases = [
            (json!(["héllo", 1]), "éllo"),
            (json!(["héllo", 1, 2]), "él"),
            (json!(["héllo", -3]), "llo"),
            (json!(["héllo", -3, 2]), "ll"),
            (json!(["héllo", 1, -1]), "éll"),
            (json!(["héllo", 0, 100]), "héllo"),
            (json!(["héllo", 5]), ""),
            (json!(["héllo", 9]), ""),
            (json!(["héllo", -9]), "héllo"),
            (json!(["héllo", -9, 1]), ""),
            (json!(["héllo", -9, 5]), "h"),
            (json!(["héllo", 3, -4]), ""),
            (json!(["héllo", "1", 1.9]), "é"),
            (json!([12345, 1, 2]), "23"),
            (json!(["abc", i64::MIN, i64::MAX]), "ab"),
            (json!(["abc", i64::MAX, i64::MAX]), ""),
        ];
        for (args, want) in cases {
            assert_eq!(ok(Func::Substr, args.clone()), json!(want), "substr{args}");
        }
    }

    #[test]
    fn index() {
        assert_eq!(ok(Func::Index, json!(["héllo", "llo"])), json!(2));
        assert_eq!(ok(Func::Index, json!(["héllo", "x"])), json!(-1));
        assert_eq!(ok(Func::Index, json!(["héllo", ""])), json!(0));
        assert_eq!(ok(Func::Index, json!([1234, 3])), json!(2));
    }

    #[test]
    fn join_and_split() {
        assert_eq!(
            ok(Func::Join, json!([", ", [1, "a", null, true]])),
            json!("1, a, , 1")
        );
        assert_eq!(ok(Func::Join, json!(["-", []])), json!(""));
        assert_eq!(
            fails(Func::Join, json!([",", "abc"])),
            "join: expected an array, got a string"
        );
        assert_eq!(
            ok(Func::Split, json!([",", "a,b,,c,"])),
            json!(["a", "b", "", "c", ""])
        );
        assert_eq!(ok(Func::Split, json!(["::", "a::b"])), json!(["a", "b"]));
        assert_eq!(ok(Func::Split, json!(["", "hé!"])), json!(["h", "é", "!"]));
        assert_eq!(ok(Func::Split, json!([",", ""])), json!([]));
        assert_eq!(ok(Func::Split, json!([".", "a.b"])), json!(["a", "b"]));
    }

    #[test]
    fn replace() {
        assert_eq!(
            ok(Func::Replace, json!(["a.b.c", ".", "::"])),
            json!("a::b::c")
        );
        assert_eq!(ok(Func::Replace, json!(["aaa", "aa", "b"])), json!("ba"));
        assert_eq!(ok(Func::Replace, json!(["abc", "", "-"])), json!("-a-b-c-"));
        assert_eq!(ok(Func::Replace, json!(["abc", "x", "y"])), json!("abc"));
        let big = "x".repeat(4096);
        let msg = fails(Func::Replace, json!([big, "", big]));
        assert!(
            msg.starts_with("replace: the result would be longer than"),
            "{msg}"
        );
    }

    #[test]
    fn starts_and_ends_with() {
        assert_eq!(ok(Func::StartsWith, json!(["hello", "he"])), json!(true));
        assert_eq!(ok(Func::StartsWith, json!(["hello", "lo"])), json!(false));
        assert_eq!(ok(Func::StartsWith, json!(["hello", ""])), json!(true));
        assert_eq!(ok(Func::EndsWith, json!(["hello", "lo"])), json!(true));
        assert_eq!(ok(Func::EndsWith, json!([12.5, 5])), json!(true));
    }

    #[test]
    fn contains() {
        let cases = [
            (json!([[1, "a", {"k": [2]}], 1.0]), true),
            (json!([[1, "a", {"k": [2]}], "1"]), false),
            (json!([[1, "a", {"k": [2]}], {"k": [2.0]}]), true),
            (json!([[null], null]), true),
            (json!([[], null]), false),
            (json!([{"k": 1}, "k"]), true),
            (json!([{"1": 1}, 1]), true),
            (json!([{"k": 1}, "x"]), false),
            (json!(["hello", "ell"]), true),
            (json!(["hello", "x"]), false),
            (json!([null, "x"]), false),
        ];
        for (args, want) in cases {
            assert_eq!(
                ok(Func::Contains, args.clone()),
                json!(want),
                "contains{args}"
            );
        }
        assert_eq!(
            fails(Func::Contains, json!([5, 5])),
            "contains: expected an array, object or string, got a number"
        );
    }

    #[test]
    fn exists() {
        let cases = [
            (json!([{"k": null}, "k"]), true),
            (json!([{"k": 1}, "x"]), false),
            (json!([[1, 2], 1]), true),
            (json!([[1, 2], 2]), false),
            (json!([[1, 2], -2]), true),
            (json!([[1, 2], -3]), false),
            (json!([[1, 2], "0"]), true),
            (json!([[1, 2], "a"]), false),
            (json!([null, "k"]), false),
        ];
        for (args, want) in cases {
            assert_eq!(ok(Func::Exists, args.clone()), json!(want), "exists{args}");
        }
        assert_eq!(
            fails(Func::Exists, json!(["s", 0])),
            "exists: expected an object or array, got a string"
        );
    }

    #[test]
    fn math() {
        assert_eq!(ok(Func::Abs, json!([-3])), json!(3));
        assert_eq!(ok(Func::Abs, json!(["-2.5"])), json!(2.5));
        assert_eq!(
            ok(Func::Abs, json!([i64::MIN])),
            json!(9.223_372_036_854_776e18)
        );
        assert_eq!(ok(Func::Int, json!([-2.7])), json!(-2));
        assert_eq!(ok(Func::Int, json!(["3.9abc"])), json!(3));
        assert_eq!(ok(Func::Floor, json!([-2.5])), json!(-3));
        assert_eq!(ok(Func::Floor, json!([7])), json!(7));
        assert_eq!(ok(Func::Ceil, json!([2.1])), json!(3));
        assert_eq!(ok(Func::Ceil, json!([-2.1])), json!(-2));
        assert!(ok(Func::Ceil, json!([2.1])).is_i64());
        assert_eq!(
            fails(Func::Abs, json!([[1]])),
            "cannot use an array as a number"
        );
    }

    #[test]
    fn round() {
        let cases = [
            (json!([2.5]), json!(3)),
            (json!([-2.5]), json!(-3)),
            (json!([2.4]), json!(2)),
            (json!([7]), json!(7)),
            (json!([1.2345, 2]), json!(1.23)),
            (json!([-1.235, 1]), json!(-1.2)),
            (json!([1250, -2]), json!(1300)),
            (json!([1249, -2]), json!(1200)),
            (json!([5, -400]), json!(0)),
            (json!([0.1, 400]), json!(0.1)),
            (json!([1e300, 10]), json!(1e300)),
            (json!(["2.5", "0"]), json!(3)),
        ];
        for (args, want) in cases {
            assert_eq!(ok(Func::Round, args.clone()), want, "round{args}");
        }
    }

    #[test]
    fn min_max() {
        assert_eq!(ok(Func::Min, json!([3, "1", 2.5])), json!(1));
        assert_eq!(ok(Func::Max, json!([3, "1", 2.5])), json!(3));
        assert_eq!(ok(Func::Min, json!([[4, -1.5, 2]])), json!(-1.5));
        assert_eq!(ok(Func::Max, json!([[4, -1.5, 2]])), json!(4));
        assert_eq!(ok(Func::Max, json!([[]])), json!(null));
        assert_eq!(ok(Func::Min, json!([])), json!(null));
        assert_eq!(ok(Func::Max, json!([7])), json!(7));
        // Only a single argument is taken as the list of numbers.
        assert_eq!(
            fails(Func::Max, json!([[1], 2])),
            "max: cannot use an array as a number"
        );
        assert_eq!(
            fails(Func::Min, json!([[[1]]])),
            "min: cannot use an array as a number"
        );
    }

    #[test]
    fn sum() {
        assert_eq!(ok(Func::Sum, json!([[1, 2, "3"]])), json!(6));
        assert_eq!(ok(Func::Sum, json!([[0.5, 0.25]])), json!(0.75));
        assert_eq!(ok(Func::Sum, json!([[]])), json!(0));
        assert_eq!(
            fails(Func::Sum, json!([[{}]])),
            "sum: cannot use an object as a number"
        );
        assert_eq!(
            fails(Func::Sum, json!([5])),
            "sum: expected an array, got a number"
        );
    }

    #[test]
    fn sort() {
        assert_eq!(
            ok(Func::Sort, json!([[10, 9, -1, 2.5]])),
            json!([-1, 2.5, 9, 10])
        );
        assert_eq!(
            ok(Func::Sort, json!([["b", "a", 10, 9]])),
            json!([10, 9, "a", "b"])
        );
        assert_eq!(
            ok(Func::Sort, json!([["b", null, true, "B"]])),
            json!([null, true, "B", "b"])
        );
        assert_eq!(ok(Func::Sort, json!([[]])), json!([]));
        assert_eq!(
            fails(Func::Sort, json!([null])),
            "sort: expected an array, got a null"
        );
    }

    #[test]
    fn reverse() {
        assert_eq!(ok(Func::Reverse, json!([[1, [2], 3]])), json!([3, [2], 1]));
        assert_eq!(ok(Func::Reverse, json!(["héllo"])), json!("olléh"));
        assert_eq!(
            fails(Func::Reverse, json!([5])),
            "reverse: expected an array or string, got a number"
        );
    }

    #[test]
    fn unique() {
        assert_eq!(
            ok(
                Func::Unique,
                json!([[3, "a", 3.0, "3", "a", [1], [1], null, null, 1]])
            ),
            json!([3, "a", "3", [1], null, 1])
        );
        assert_eq!(ok(Func::Unique, json!([[]])), json!([]));
    }

    #[test]
    fn slice() {
        let a = json!([1, 2, 3, 4]);
        let cases = [
            (json!([a, 1]), json!([2, 3, 4])),
            (json!([a, 1, 2]), json!([2, 3])),
            (json!([a, -2]), json!([3, 4])),
            (json!([a, 0, -1]), json!([1, 2, 3])),
            (json!([a, 10]), json!([])),
            (json!([a, -10, 2]), json!([])),
            (json!([a, 2, -3]), json!([])),
        ];
        for (args, want) in cases {
            assert_eq!(ok(Func::Slice, args.clone()), want, "slice{args}");
        }
        assert_eq!(
            fails(Func::Slice, json!(["abc", 1])),
            "slice: expected an array, got a string"
        );
    }

    #[test]
    fn merge() {
        assert_eq!(
            ok(
                Func::Merge,
                json!([{"a": 1, "b": 1}, null, {"b": 2, "c": {"d": 1}}, {}])
            ),
            json!({"a": 1, "b": 2, "c": {"d": 1}})
        );
        assert_eq!(ok(Func::Merge, json!([])), json!({}));
        assert_eq!(
            fails(Func::Merge, json!([{}, [1]])),
            "merge: argument 2 is an array, not an object"
        );
    }

    #[test]
    fn typeof_names_every_type() {
        for (v, want) in [
            (json!(null), "null"),
            (json!(false), "boolean"),
            (json!(1.5), "number"),
            (json!(""), "string"),
            (json!([]), "array"),
            (json!({}), "object"),
        ] {
            assert_eq!(ok(Func::Typeof, json!([v])), json!(want));
        }
    }

    #[test]
    fn window_is_clamped() {
        assert_eq!(window(0, 0, None), (0, 0));
        assert_eq!(window(3, -1, Some(5)), (2, 3));
        assert_eq!(window(3, 1, Some(i64::MAX)), (1, 3));
        assert_eq!(window(3, i64::MIN, Some(i64::MIN)), (0, 0));
    }
}
