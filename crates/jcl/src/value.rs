//! Perl-like conversions between JSON values: truthiness, string and number forms.
//!
//! JCL expressions were Perl in the original JobCenter, so values convert the way Perl scalars
//! do: any value has a string form and a truthiness, and strings numify by their leading
//! number. Arithmetic keeps integers exact while they fit in an `i64` and falls back to `f64`,
//! as Perl does with its IV and NV slots.

use std::cmp::Ordering;

use serde_json::{Number, Value};

use crate::eval::EvalError;

/// Whether a value counts as true: `false`, `null`, any zero number, `""` and `"0"` are false;
/// everything else is true, including `"0.0"`, `"00"`, `[]` and `{}`.
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !(s.is_empty() || s == "0"),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The string form of a value: `null` is `""`, booleans are `"1"` and `"0"`, strings are
/// themselves, arrays and objects are their compact JSON text, and numbers are printed by
/// [`format_number`].
pub fn to_string(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bool(true) => "1".to_owned(),
        Value::Bool(false) => "0".to_owned(),
        Value::Number(n) => format_number(n),
        Value::String(s) => s.clone(),
        // Serialising a `Value` cannot fail: its map keys are always strings.
        Value::Array(_) | Value::Object(_) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// Prints a JSON number as Perl prints one: integers exactly, other numbers with 15
/// significant digits like C's `%.15g` (`0.1 + 0.2` is `0.3`, `10/3` is `3.33333333333333`,
/// `1e15` is `1e+15`, `1e-7` is `1e-07`), so that migrated workflows build the same strings.
pub fn format_number(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        format_f64(n.as_f64().unwrap_or(0.0))
    }
}

/// C's `%.15g`, which Perl uses to print a floating-point number.
fn format_f64(f: f64) -> String {
    const DIGITS: i64 = 15;
    if f == 0.0 {
        // Also for -0.0, which JSON cannot tell apart from 0 anyway.
        return "0".to_owned();
    }
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Inf" } else { "-Inf" }.to_owned();
    }
    // `{:.14e}` rounds to 15 significant digits, e.g. "-1.23450000000000e2".
    let sci = format!("{:.*e}", (DIGITS - 1) as usize, f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let trim = |s: String| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if (-4..DIGITS).contains(&exp) {
        trim(format!("{:.*}", (DIGITS - 1 - exp) as usize, f))
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim(mantissa.to_owned()), exp.abs())
    }
}

/// The number form of a value, as Perl numifies: numbers are themselves, `true` is 1,
/// `false` and `null` are 0, a string is its leading number (after leading ASCII whitespace;
/// a decimal with optional sign, fraction and exponent, or `inf`/`infinity`/`nan` in any
/// case) or 0 when it has none (`"12abc"` → 12, `"abc"` → 0). As in Perl, `"0x1A"` is 0: hex
/// is only for literals in source. Arrays and objects are an error.
///
/// `"inf"`, `"nan"` and a string with a huge exponent numify to an infinity or NaN, which
/// compare as Perl's do; an arithmetic result that is not finite is an error, since JSON
/// cannot hold it.
pub fn to_number(v: &Value) -> Result<f64, EvalError> {
    to_num(v).map(Num::as_f64)
}

/// 2^63, exactly representable: the floats that fit an `i64` are those in `[-2^63, 2^63)`.
const I64_LIMIT: f64 = 9_223_372_036_854_775_808.0;

/// Below this magnitude an integral float prints the same as an integer (`%.15g`), so it is
/// stored as one (`0.5 * 4` gives `2`, not `2.0`); above it a float stays a float and prints
/// as Perl prints it (`0.5 * 4e15` is `2e+15`).
const INT_PRINT_LIMIT: f64 = 1e15;

/// 2^53: below it an integral float is exact, and Perl's arithmetic takes it as an integer.
const EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Converts an `f64` result into a JSON number: an integer when it is integral and below
/// 10^15 (so `2 + 3` gives `5`, not `5.0`), else a float. NaN and infinities are an error.
pub fn number_value(f: f64) -> Result<Value, EvalError> {
    if !f.is_finite() {
        return Err(EvalError::new(format!(
            "the result is not a finite number ({})",
            format_f64(f)
        )));
    }
    if f.fract() == 0.0 && f.abs() < INT_PRINT_LIMIT {
        return Ok(Value::from(f as i64));
    }
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| EvalError::new(format!("the result is not a finite number ({f})")))
}

/// The name of a value's JSON type, as `typeof` returns it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A number during arithmetic: integers stay exact while they fit an `i64`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// Truncated toward zero, when that fits an `i64`.
    pub(crate) fn trunc_i64(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(f) => {
                let t = f.trunc();
                (-I64_LIMIT..I64_LIMIT).contains(&t).then_some(t as i64)
            }
        }
    }

    /// Truncated toward zero and saturated to the `i64` range; NaN is 0.
    pub(crate) fn saturating_i64(self) -> i64 {
        match self {
            Num::Int(i) => i,
            // `as` saturates and maps NaN to 0.
            Num::Float(f) => f as i64,
        }
    }

    /// The number as Perl's arithmetic takes it: an integral float below 2^53 is an integer,
    /// so that `1e15 + 1` is exact and prints as an integer.
    fn iv_please(self) -> Num {
        match self {
            Num::Float(f) if f.fract() == 0.0 && f.abs() < EXACT_LIMIT => Num::Int(f as i64),
            n => n,
        }
    }

    pub(crate) fn into_value(self) -> Result<Value, EvalError> {
        match self {
            Num::Int(i) => Ok(Value::from(i)),
            Num::Float(f) => number_value(f),
        }
    }
}

fn num_of_number(n: &Number) -> Num {
    match n.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(n.as_f64().unwrap_or(0.0)),
    }
}

/// The number form of a value (see [`to_number`]), keeping integers exact.
pub(crate) fn to_num(v: &Value) -> Result<Num, EvalError> {
    match v {
        Value::Null | Value::Bool(false) => Ok(Num::Int(0)),
        Value::Bool(true) => Ok(Num::Int(1)),
        Value::Number(n) => Ok(num_of_number(n)),
        Value::String(s) => Ok(parse_leading(s).map_or(Num::Int(0), |(n, _)| n)),
        Value::Array(_) | Value::Object(_) => Err(EvalError::new(format!(
            "cannot use an {} as a number",
            type_name(v)
        ))),
    }
}

/// The strict number form used by array indexes and `exists`: a number, a boolean, or a
/// string that is a number and nothing else (surrounding whitespace allowed).
pub(crate) fn strict_num(v: &Value) -> Option<Num> {
    match v {
        Value::Bool(b) => Some(Num::Int(i64::from(*b))),
        Value::Number(n) => Some(num_of_number(n)),
        Value::String(s) => {
            let t = s.trim();
            parse_leading(t).and_then(|(n, used)| (used == t.len()).then_some(n))
        }
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Parses the number at the start of `s` (after leading whitespace). Returns the number and
/// how many bytes it used, or `None` when `s` does not start with a number.
fn parse_leading(s: &str) -> Option<(Num, usize)> {
    let b = s.as_bytes();
    let digits_from = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    // Perl skips only ASCII whitespace: "\u{a0}5" numifies to 0.
    let mut i = s.len()
        - s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b')
            .len();
    let start = i;
    let negative = b.get(i) == Some(&b'-');
    if matches!(b.get(i), Some(b'-' | b'+')) {
        i += 1;
    }
    if let Some((f, used)) = inf_or_nan(s.get(i..).unwrap_or("")) {
        return Some((Num::Float(if negative { -f } else { f }), i + used));
    }
    let int_end = digits_from(i);
    let mut end = int_end;
    let mut is_int = true;
    if b.get(end) == Some(&b'.') {
        let frac_end = digits_from(end + 1);
        if int_end == i && frac_end == end + 1 {
            return None; // A lone ".", with no digit on either side.
        }
        end = frac_end;
        is_int = false;
    } else if int_end == i {
        return None;
    }
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut j = end + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            end = exp_end;
            is_int = false;
        }
    }
    let text = s.get(start..end)?;
    if is_int {
        if let Ok(v) = text.parse::<i64>() {
            return Some((Num::Int(v), end));
        }
    }
    text.parse::<f64>().ok().map(|f| (Num::Float(f), end))
}

/// Perl's `inf`, `infinity` and `nan` (any case) at the start of `s`: the value and the bytes
/// used.
fn inf_or_nan(s: &str) -> Option<(f64, usize)> {
    let starts = |word: &str| {
        s.get(..word.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(word))
    };
    if starts("infinity") {
        Some((f64::INFINITY, 8))
    } else if starts("inf") {
        Some((f64::INFINITY, 3))
    } else if starts("nan") {
        Some((f64::NAN, 3))
    } else {
        None
    }
}

/// Compares two numbers like Perl's `<=>`: exact for two integers, `None` when one is NaN.
pub(crate) fn num_partial_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    }
}

/// Compares two numbers; exact for two integers.
pub(crate) fn num_cmp(a: Num, b: Num) -> Ordering {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => x.cmp(&y),
        _ => a.as_f64().total_cmp(&b.as_f64()),
    }
}

/// A binary arithmetic operation, shared by the operators and the assignment operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
}

fn division_by_zero() -> EvalError {
    EvalError::new("division by zero")
}

/// Applies an arithmetic operation. Integer operands give an exact integer result when it fits
/// an `i64`; otherwise the result is computed in `f64`.
pub(crate) fn arith(op: Arith, a: Num, b: Num) -> Result<Value, EvalError> {
    let (a, b) = (a.iv_please(), b.iv_please());
    let ints = match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some((x, y)),
        _ => None,
    };
    let (x, y) = (a.as_f64(), b.as_f64());
    let exact = match (op, ints) {
        (Arith::Add, Some((p, q))) => p.checked_add(q),
        (Arith::Sub, Some((p, q))) => p.checked_sub(q),
        (Arith::Mul, Some((p, q))) => p.checked_mul(q),
        (Arith::Div, Some((p, q))) if q != 0 && p.checked_rem(q) == Some(0) => p.checked_div(q),
        // Perl computes a power exactly only while it stays below 2^53.
        (Arith::Pow, Some((p, q))) => u32::try_from(q)
            .ok()
            .and_then(|q| p.checked_pow(q))
            .filter(|r| (*r as f64).abs() < EXACT_LIMIT),
        _ => None,
    };
    if let Some(v) = exact {
        return Ok(Value::from(v));
    }
    match op {
        Arith::Add => number_value(x + y),
        Arith::Sub => number_value(x - y),
        Arith::Mul => number_value(x * y),
        Arith::Div if y == 0.0 => Err(division_by_zero()),
        Arith::Div => number_value(x / y),
        Arith::Mod => perl_mod(a, b),
        Arith::Pow => number_value(x.powf(y)),
    }
}

/// 2^64, from which Perl's `%` stops truncating its operands.
const UV_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// Perl's `%`: both operands are truncated to integers and the result has the sign of the
/// right operand (`-7 % 3` is 2, `7 % -3` is -2).
fn perl_mod(a: Num, b: Num) -> Result<Value, EvalError> {
    if let (Some(x), Some(y)) = (a.trunc_i64(), b.trunc_i64()) {
        if y == 0 {
            return Err(division_by_zero());
        }
        // wrapping_rem only wraps for i64::MIN % -1, whose remainder is 0 anyway.
        let r = x.wrapping_rem(y);
        let r = if r != 0 && (r < 0) != (y < 0) {
            r + y
        } else {
            r
        };
        return Ok(Value::from(r));
    }
    // As Perl: with an operand of 2^64 or more the remainder is taken of the floats as they
    // are (`2.5 % 1e300` is 2.5), else of their integer parts.
    let (x, y) = (a.as_f64(), b.as_f64());
    let (x, y) = if x.abs() >= UV_LIMIT || y.abs() >= UV_LIMIT {
        (x, y)
    } else {
        (x.trunc(), y.trunc())
    };
    if y == 0.0 {
        return Err(division_by_zero());
    }
    let r = x % y;
    number_value(if r != 0.0 && (r < 0.0) != (y < 0.0) {
        r + y
    } else {
        r
    })
}

/// Numeric negation, exact for integers other than `i64::MIN`. Unlike the binary operators it
/// keeps a float a float, as Perl's does (`-(1e15)` prints as `-1e+15`).
pub(crate) fn negate(a: Num) -> Result<Value, EvalError> {
    match a {
        Num::Int(i) => match i.checked_neg() {
            Some(n) => Ok(Value::from(n)),
            None => number_value(-(i as f64)),
        },
        Num::Float(f) => number_value(-f),
    }
}

/// JSON equality where numbers compare by value (`1 == 1.0`). Iterative, so deep values cannot
/// exhaust the stack.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    let mut pending = vec![(a, b)];
    while let Some((x, y)) = pending.pop() {
        match (x, y) {
            (Value::Number(p), Value::Number(q)) => {
                if num_cmp(num_of_number(p), num_of_number(q)) != Ordering::Equal {
                    return false;
                }
            }
            (Value::Array(p), Value::Array(q)) => {
                if p.len() != q.len() {
                    return false;
                }
                pending.extend(p.iter().zip(q));
            }
            (Value::Object(p), Value::Object(q)) => {
                if p.len() != q.len() {
                    return false;
                }
                for (k, v) in p {
                    match q.get(k) {
                        Some(w) => pending.push((v, w)),
                        None => return false,
                    }
                }
            }
            _ => {
                if x != y {
                    return false;
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn truthiness_table() {
        let falsy = [
            json!(false),
            json!(null),
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!(""),
            json!("0"),
        ];
        for v in falsy {
            assert!(!truthy(&v), "{v} should be false");
        }
        let truthy_values = [
            json!(true),
            json!(1),
            json!(-1),
            json!(0.5),
            json!("0.0"),
            json!("00"),
            json!(" 0"),
            json!("a"),
            json!("false"),
            json!([]),
            json!({}),
            json!([0]),
        ];
        for v in truthy_values {
            assert!(truthy(&v), "{v} should be true");
        }
    }

    #[test]
    fn string_forms() {
        let cases = [
            (json!(null), ""),
            (json!(true), "1"),
            (json!(false), "0"),
            (json!(5), "5"),
            (json!(-17), "-17"),
            (json!(u64::MAX), "18446744073709551615"),
            (json!(5.0), "5"),
            (json!(0.1), "0.1"),
            // Perl's `%.15g`.
            (json!(0.1 + 0.2), "0.3"),
            (json!(10.0 / 3.0), "3.33333333333333"),
            (json!(2.0_f64.sqrt()), "1.4142135623731"),
            (json!(1.0 / 7.0), "0.142857142857143"),
            (json!(-2.5), "-2.5"),
            (json!(1234.5678), "1234.5678"),
            (json!(1e14), "100000000000000"),
            (json!(1e15), "1e+15"),
            (json!(123_456_789_012_345.6), "123456789012346"),
            (json!(1e20), "1e+20"),
            (json!(1.5e300), "1.5e+300"),
            (json!(0.0001), "0.0001"),
            (json!(0.00001), "1e-05"),
            (json!(1.5e-7), "1.5e-07"),
            (json!(-1e-7), "-1e-07"),
            (json!(9.999_999_999_999_999), "10"),
            (json!(0.0), "0"),
            (json!("text"), "text"),
            (json!([1, "a", null]), r#"[1,"a",null]"#),
            (json!({"b": 1, "a": [true]}), r#"{"a":[true],"b":1}"#),
        ];
        for (v, want) in cases {
            assert_eq!(to_string(&v), want, "string form of {v}");
        }
        assert_eq!(format_f64(f64::INFINITY), "Inf");
        assert_eq!(format_f64(f64::NAN), "NaN");
    }

    #[test]
    fn number_forms() {
        let cases = [
            (json!(null), 0.0),
            (json!(true), 1.0),
            (json!(false), 0.0),
            (json!(42), 42.0),
            (json!(-1.5), -1.5),
            (json!("12abc"), 12.0),
            (json!("abc"), 0.0),
            (json!(""), 0.0),
            (json!("  -3.5e2xyz"), -350.0),
            (json!("+7"), 7.0),
            (json!(".5"), 0.5),
            (json!("5."), 5.0),
            (json!("1e"), 1.0),
            (json!("1e+"), 1.0),
            (json!("2E3"), 2000.0),
            // Perl numifies no hex: "0x1F" is 0 followed by text.
            (json!("0x1F"), 0.0),
            (json!("-0x10"), 0.0),
            (json!("0xg"), 0.0),
            // Only ASCII whitespace is skipped.
            (json!("\u{a0}5"), 0.0),
            (json!("\u{b}5"), 5.0),
            (json!("1_000"), 1.0),
            (json!(" +.5e1x"), 5.0),
            (json!("0x"), 0.0),
            (json!("."), 0.0),
            (json!("-"), 0.0),
            (json!("\t\n 8 "), 8.0),
            (json!("0.0"), 0.0),
        ];
        for (v, want) in cases {
            assert_eq!(to_number(&v), Ok(want), "number form of {v}");
        }
        assert!(to_number(&json!("1e999")).is_ok_and(f64::is_infinite));
        for inf in ["inf", "Inf", "INFINITY", "infx", " +inf"] {
            assert_eq!(to_number(&json!(inf)), Ok(f64::INFINITY), "{inf}");
        }
        assert_eq!(to_number(&json!("-Infinity")), Ok(f64::NEG_INFINITY));
        assert!(to_number(&json!("nan")).is_ok_and(f64::is_nan));
        assert!(to_number(&json!("NaNa")).is_ok_and(f64::is_nan));
        assert_eq!(to_number(&json!("in")), Ok(0.0));
        assert_eq!(
            to_number(&json!([1])),
            Err(EvalError::new("cannot use an array as a number"))
        );
        assert_eq!(
            to_number(&json!({})),
            Err(EvalError::new("cannot use an object as a number"))
        );
    }

    #[test]
    fn integers_stay_exact() {
        assert_eq!(
            to_num(&json!("9007199254740993")),
            Ok(Num::Int(9_007_199_254_740_993))
        );
        assert_eq!(
            to_num(&json!("9223372036854775807")),
            Ok(Num::Int(i64::MAX))
        );
        assert_eq!(
            to_num(&json!("18446744073709551615")),
            Ok(Num::Float(18_446_744_073_709_551_615.0))
        );
        assert_eq!(to_num(&json!("99999999999999999999")), Ok(Num::Float(1e20)));
    }

    #[test]
    fn strict_numbers() {
        assert_eq!(strict_num(&json!(" 12 ")), Some(Num::Int(12)));
        assert_eq!(strict_num(&json!("1.5")), Some(Num::Float(1.5)));
        assert_eq!(strict_num(&json!("0x10")), None);
        assert_eq!(strict_num(&json!(true)), Some(Num::Int(1)));
        assert_eq!(strict_num(&json!("12abc")), None);
        assert_eq!(strict_num(&json!("")), None);
        assert_eq!(strict_num(&json!(null)), None);
        assert_eq!(strict_num(&json!([])), None);
    }

    #[test]
    fn number_values() {
        assert_eq!(number_value(5.0), Ok(json!(5)));
        assert!(number_value(5.0).is_ok_and(|v| v.is_i64()));
        assert_eq!(number_value(-0.0), Ok(json!(0)));
        assert_eq!(number_value(2.5), Ok(json!(2.5)));
        // From 10^15 an integral float stays a float, which prints as Perl prints it.
        assert_eq!(
            number_value(999_999_999_999_999.0),
            Ok(json!(999_999_999_999_999_i64))
        );
        assert!(number_value(1e15).is_ok_and(|v| v.is_f64()));
        assert!(number_value(-I64_LIMIT).is_ok_and(|v| v.is_f64()));
        assert!(number_value(f64::NAN).is_err());
        assert!(number_value(f64::INFINITY).is_err());
        assert!(number_value(f64::NEG_INFINITY).is_err());
    }

    #[test]
    fn arithmetic() {
        use Num::{Float, Int};
        assert_eq!(arith(Arith::Add, Int(2), Int(3)), Ok(json!(5)));
        assert_eq!(
            arith(Arith::Add, Int(i64::MAX), Int(1)),
            Ok(json!(9.223_372_036_854_776e18))
        );
        assert_eq!(arith(Arith::Sub, Int(2), Float(0.5)), Ok(json!(1.5)));
        assert_eq!(arith(Arith::Mul, Int(4), Float(0.5)), Ok(json!(2)));
        assert_eq!(arith(Arith::Div, Int(6), Int(3)), Ok(json!(2)));
        assert_eq!(arith(Arith::Div, Int(7), Int(2)), Ok(json!(3.5)));
        assert_eq!(
            arith(Arith::Div, Int(i64::MIN), Int(-1)),
            Ok(json!(9.223_372_036_854_776e18))
        );
        assert_eq!(arith(Arith::Div, Int(1), Int(0)), Err(division_by_zero()));
        assert_eq!(
            arith(Arith::Div, Int(1), Float(0.0)),
            Err(division_by_zero())
        );
        assert_eq!(arith(Arith::Pow, Int(2), Int(10)), Ok(json!(1024)));
        // Perl: a power is exact only below 2^53, and an integral float below 2^53 counts as
        // an integer (`1e15 + 1` is exact, `0.5 * 4e15` is a float).
        assert_eq!(
            arith(Arith::Pow, Int(10), Int(15)),
            Ok(json!(1_000_000_000_000_000_i64))
        );
        assert_eq!(arith(Arith::Pow, Int(3), Int(39)), Ok(json!(3f64.powi(39))));
        assert_eq!(arith(Arith::Pow, Int(2), Int(53)), Ok(json!(2f64.powi(53))));
        assert_eq!(
            arith(Arith::Add, Float(1e15), Int(1)),
            Ok(json!(1_000_000_000_000_001_i64))
        );
        assert_eq!(arith(Arith::Mul, Float(0.5), Float(4e15)), Ok(json!(2e15)));
        assert_eq!(arith(Arith::Pow, Int(2), Int(-1)), Ok(json!(0.5)));
        assert_eq!(arith(Arith::Pow, Float(4.0), Float(0.5)), Ok(json!(2)));
        assert!(arith(Arith::Pow, Int(0), Int(-1)).is_err());
        assert!(arith(Arith::Pow, Int(-8), Float(1.0 / 3.0)).is_err());
        assert!(arith(Arith::Mul, Float(1e300), Float(1e300)).is_err());
    }

    #[test]
    fn perl_modulus() {
        use Num::{Float, Int};
        let cases = [
            (Int(7), Int(3), json!(1)),
            (Int(-7), Int(3), json!(2)),
            (Int(7), Int(-3), json!(-2)),
            (Int(-7), Int(-3), json!(-1)),
            (Int(6), Int(3), json!(0)),
            (Float(7.9), Int(3), json!(1)),
            (Float(-7.9), Float(3.2), json!(2)),
            (Int(i64::MIN), Int(-1), json!(0)),
        ];
        for (a, b, want) in cases {
            assert_eq!(arith(Arith::Mod, a, b), Ok(want), "{a:?} % {b:?}");
        }
        // Beyond the i64 range the remainder is computed in f64.
        assert_eq!(
            arith(Arith::Mod, Float(1e20), Int(7)),
            number_value(1e20 % 7.0)
        );
        assert_eq!(
            arith(Arith::Mod, Float(-1e20), Int(7)),
            number_value(7.0 + (-1e20 % 7.0))
        );
        assert_eq!(arith(Arith::Mod, Float(2.5), Float(1e300)), Ok(json!(2.5)));
        assert_eq!(
            arith(Arith::Mod, Float(-2.5), Float(1e300)),
            Ok(json!(1e300))
        );
        assert_eq!(
            arith(Arith::Mod, Float(3.7), Float(-1e20)),
            Ok(json!(-1e20))
        );
        assert_eq!(
            arith(Arith::Mod, Float(1.5e20), Float(1e20)),
            Ok(json!(5e19))
        );
        assert_eq!(arith(Arith::Mod, Int(1), Int(0)), Err(division_by_zero()));
        assert_eq!(
            arith(Arith::Mod, Int(1), Float(0.5)),
            Err(division_by_zero())
        );
        // Perl: 1e20 % 0.5 is 0, since 1e20 is not truncated.
        assert_eq!(arith(Arith::Mod, Float(1e20), Float(0.5)), Ok(json!(0)));
    }

    #[test]
    fn negation() {
        assert_eq!(negate(Num::Int(5)), Ok(json!(-5)));
        assert_eq!(
            negate(Num::Int(i64::MIN)),
            Ok(json!(9.223_372_036_854_776e18))
        );
        assert_eq!(negate(Num::Float(-2.5)), Ok(json!(2.5)));
    }

    #[test]
    fn comparisons_and_equality() {
        assert_eq!(
            num_cmp(Num::Int(i64::MAX), Num::Int(i64::MAX - 1)),
            Ordering::Greater
        );
        assert_eq!(num_cmp(Num::Int(1), Num::Float(1.0)), Ordering::Equal);
        assert!(json_eq(&json!([1, {"a": 2.0}]), &json!([1.0, {"a": 2}])));
        assert!(!json_eq(&json!([1, 2]), &json!([1])));
        assert!(!json_eq(&json!({"a": 1}), &json!({"b": 1})));
        assert!(!json_eq(&json!("1"), &json!(1)));
        assert!(json_eq(&json!(null), &json!(null)));
    }

    #[test]
    fn type_names() {
        let cases = [
            (json!(null), "null"),
            (json!(true), "boolean"),
            (json!(1), "number"),
            (json!("s"), "string"),
            (json!([]), "array"),
            (json!({}), "object"),
        ];
        for (v, want) in cases {
            assert_eq!(type_name(&v), want);
        }
    }
}
