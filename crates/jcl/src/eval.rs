//! The evaluator: runs compiled expressions and statement blocks over JSON namespaces.
//!
//! Pure and deterministic: no I/O, no clock, no randomness. Errors are values
//! ([`EvalError`]), never panics.
//!
//! Values follow Perl: see [`crate::value`] for truthiness and the string and number forms,
//! and [`crate::functions`] for the built-in functions.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use crate::functions;
use crate::ir::{AssignOp, BinOp, Code, Expr, Func, Ns, Path, Seg, Stmt, UnOp, IR_VERSION};
use crate::value::{
    arith, negate, num_partial_cmp, strict_num, to_num, to_string, truthy, type_name, Arith, Num,
};

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

/// The longest string that `x` (repeat) and `replace` may build, in bytes: 10 MiB. A single
/// expression must not be able to exhaust the memory of the database server.
pub const MAX_STRING_BYTES: usize = 10 * 1024 * 1024;

/// How many elements past its end an array may be extended by one indexed assignment
/// (`v.list[N] = …` fills the gap with nulls).
pub const MAX_ARRAY_GAP: usize = 100_000;

/// How many compiled regexes each thread keeps; the cache is emptied when it is full.
const REGEX_CACHE_SIZE: usize = 256;

/// Evaluates an expression. `Ok(None)` is "undefined" (only `ifdef` of a missing or null value
/// produces it); an assignment of an undefined value leaves its target untouched.
pub fn eval(expr: &Expr, ctx: &Context) -> Result<Option<Value>, EvalError> {
    Ok(scalar(expr, ctx)?.map(|s| s.value))
}

/// A value during evaluation. `no` marks Perl's computed false, what comparisons, `!`, `not`,
/// `xor`, `~` and the predicate functions give when false: it is JSON `false` (and stored as
/// such) but prints as `""`, as Perl's does, wherever a string is taken of it within the
/// expression (`(2 < 1) . ''` is `""`).
#[derive(Debug, Clone)]
struct Scalar {
    value: Value,
    no: bool,
}

impl Scalar {
    fn json(value: Value) -> Scalar {
        Scalar { value, no: false }
    }

    fn boolean(b: bool) -> Scalar {
        Scalar {
            value: Value::Bool(b),
            no: !b,
        }
    }

    /// The string form, Perl's.
    fn text(&self) -> String {
        if self.no {
            String::new()
        } else {
            to_string(&self.value)
        }
    }
}

fn scalar(expr: &Expr, ctx: &Context) -> Result<Option<Scalar>, EvalError> {
    let s = match expr {
        Expr::Lit(v) => Scalar::json(v.clone()),
        Expr::Path(path) => Scalar::json(read_path(path, ctx)?),
        Expr::Unary { op, expr } => {
            let v = operand(expr, ctx)?;
            match op {
                UnOp::Not => Scalar::boolean(!truthy(&v.value)),
                UnOp::Neg => Scalar::json(perl_negate(&v)?),
            }
        }
        Expr::Binary { op, left, right } => {
            let l = operand(left, ctx)?;
            // The logical operators evaluate their right operand only when it decides.
            let decided = match op {
                BinOp::And => !truthy(&l.value),
                BinOp::Or => truthy(&l.value),
                BinOp::DefinedOr => !l.value.is_null(),
                _ => false,
            };
            if decided {
                return Ok(Some(l));
            }
            let r = operand(right, ctx)?;
            binary(*op, l, r)?
        }
        Expr::Call { func, args } => {
            let mut values = Vec::with_capacity(args.len());
            let mut no = Vec::with_capacity(args.len());
            for a in args {
                // `list(x)` among arguments gives its elements, as Perl's list does.
                if let Expr::Call {
                    func: Func::List,
                    args: inner,
                } = a
                {
                    let inner = inner
                        .iter()
                        .map(|e| operand(e, ctx).map(|s| s.value))
                        .collect::<Result<Vec<_>, _>>()?;
                    if let Some(Value::Array(items)) = functions::call(Func::List, &inner)? {
                        no.resize(no.len() + items.len(), false);
                        values.extend(items);
                        continue;
                    }
                }
                let s = operand(a, ctx)?;
                no.push(s.no);
                values.push(s.value);
            }
            let Some(v) = functions::call_texts(*func, &values, &no)? else {
                return Ok(None);
            };
            match (func, v) {
                (
                    Func::Defined
                    | Func::StartsWith
                    | Func::EndsWith
                    | Func::Contains
                    | Func::Exists,
                    Value::Bool(b),
                ) => Scalar::boolean(b),
                (_, v) => Scalar::json(v),
            }
        }
        Expr::Match { expr, regex } => {
            let s = operand(expr, ctx)?.text();
            Scalar::boolean(compiled_regex(regex)?.is_match(&s))
        }
    };
    Ok(Some(s))
}

/// Evaluates an operand: inside operators and function arguments, undefined is null.
fn operand(expr: &Expr, ctx: &Context) -> Result<Scalar, EvalError> {
    Ok(scalar(expr, ctx)?.unwrap_or(Scalar::json(Value::Null)))
}

/// Evaluates an operand to a plain value.
fn value(expr: &Expr, ctx: &Context) -> Result<Value, EvalError> {
    operand(expr, ctx).map(|s| s.value)
}

/// Perl's unary minus: a string that is not a number is negated as a string (`-'foo'` is
/// `"-foo"`, `-'-foo'` is `"+foo"`, `-'+12'` is `"-12"`); everything else numerically.
fn perl_negate(v: &Scalar) -> Result<Value, EvalError> {
    if let (Value::String(s), false) = (&v.value, v.no) {
        let first = s.as_bytes().first().copied();
        let number = strict_num(&v.value).is_some();
        let swapped = |sign: &str| Value::String(format!("{sign}{}", s.get(1..).unwrap_or("")));
        match first {
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => {
                return Ok(Value::String(format!("-{s}")))
            }
            Some(b'+') => return Ok(swapped("-")),
            Some(b'-') if !number => return Ok(swapped("+")),
            _ => {}
        }
    }
    negate(to_num(&v.value)?)
}

/// Applies a binary operator to two evaluated operands.
fn binary(op: BinOp, l: Scalar, r: Scalar) -> Result<Scalar, EvalError> {
    let numeric = |op| arith(op, to_num(&l.value)?, to_num(&r.value)?).map(Scalar::json);
    // Perl's numeric comparisons: with a NaN only `!=` is true.
    let compare = |f: fn(Ordering) -> bool| -> Result<Scalar, EvalError> {
        let ord = num_partial_cmp(to_num(&l.value)?, to_num(&r.value)?);
        Ok(Scalar::boolean(ord.map_or(op == BinOp::NumNe, f)))
    };
    let compare_str = |f: fn(Ordering) -> bool| Ok(Scalar::boolean(f(l.text().cmp(&r.text()))));
    match op {
        BinOp::Pow => numeric(Arith::Pow),
        BinOp::Mul => numeric(Arith::Mul),
        BinOp::Div => numeric(Arith::Div),
        BinOp::Mod => numeric(Arith::Mod),
        BinOp::Add => numeric(Arith::Add),
        BinOp::Sub => numeric(Arith::Sub),
        BinOp::Repeat => repeat(&l.text(), to_num(&r.value)?).map(Scalar::json),
        BinOp::Concat => Ok(Scalar::json(Value::String(l.text() + &r.text()))),
        BinOp::NumLt => compare(Ordering::is_lt),
        BinOp::NumLe => compare(Ordering::is_le),
        BinOp::NumGt => compare(Ordering::is_gt),
        BinOp::NumGe => compare(Ordering::is_ge),
        BinOp::NumEq => compare(Ordering::is_eq),
        BinOp::NumNe => compare(Ordering::is_ne),
        BinOp::StrLt => compare_str(Ordering::is_lt),
        BinOp::StrLe => compare_str(Ordering::is_le),
        BinOp::StrGt => compare_str(Ordering::is_gt),
        BinOp::StrGe => compare_str(Ordering::is_ge),
        BinOp::StrEq => compare_str(Ordering::is_eq),
        BinOp::StrNe => compare_str(Ordering::is_ne),
        BinOp::And => Ok(if truthy(&l.value) { r } else { l }),
        BinOp::Or => Ok(if truthy(&l.value) { l } else { r }),
        BinOp::DefinedOr => Ok(if l.value.is_null() { r } else { l }),
        BinOp::Xor => Ok(Scalar::boolean(truthy(&l.value) != truthy(&r.value))),
    }
}

/// `s x n`: `s` repeated `n` times (truncated; zero or less gives "").
fn repeat(s: &str, n: Num) -> Result<Value, EvalError> {
    let n = usize::try_from(n.saturating_i64()).unwrap_or(0);
    match s.len().checked_mul(n) {
        Some(len) if len <= MAX_STRING_BYTES => Ok(Value::String(s.repeat(n))),
        _ => Err(EvalError::new(format!(
            "the result of x would be longer than {MAX_STRING_BYTES} bytes"
        ))),
    }
}

/// The compiled form of `pattern`, from this thread's cache: the same code runs many times.
fn compiled_regex(pattern: &str) -> Result<Regex, EvalError> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Regex>> = RefCell::new(HashMap::new());
    }
    if let Some(re) = CACHE.with(|c| c.borrow().get(pattern).cloned()) {
        return Ok(re);
    }
    let re = Regex::new(&perl_dollar(pattern))
        .map_err(|e| EvalError::new(format!("invalid regex /{pattern}/: {e}")))?;
    CACHE.with(|c| {
        let mut cache = c.borrow_mut();
        if cache.len() >= REGEX_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(pattern.to_owned(), re.clone());
    });
    Ok(re)
}

/// Gives `$` Perl's meaning outside multi-line mode: the end of the text or just before a
/// final newline (`'abc\n' ~ /c$/` matches). Only matching is asked of a regex, so `$` may
/// consume that newline.
fn perl_dollar(pattern: &str) -> Cow<'_, str> {
    let multi_line = pattern
        .strip_prefix("(?")
        .and_then(|rest| rest.split_once(')'))
        .is_some_and(|(flags, _)| flags.contains('m'));
    if multi_line || !pattern.contains('$') {
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.push(c);
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push(']');
                    chars.next();
                }
            }
            '[' if chars.peek() == Some(&':') => {
                // A POSIX class such as `[:alpha:]` inside a bracket.
                out.push(c);
                for p in chars.by_ref() {
                    out.push(p);
                    if p == ']' {
                        break;
                    }
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '$' if !in_class => out.push_str("(?:\n?\\z)"),
            _ => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A path segment whose index expression has been evaluated.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(Value),
}

impl Step {
    /// The key this step uses on an object: an index's string form.
    fn key(&self) -> Cow<'_, str> {
        match self {
            Step::Key(k) | Step::Index(Value::String(k)) => Cow::Borrowed(k),
            Step::Index(v) => Cow::Owned(to_string(v)),
        }
    }

    /// The array position this step names, before negative positions are resolved: a number
    /// (truncated) or a string holding only a number.
    fn position(&self) -> Option<i64> {
        match self {
            Step::Key(_) => None,
            Step::Index(v) => strict_num(v).map(Num::saturating_i64),
        }
    }
}

fn resolve(segs: &[Seg], ctx: &Context) -> Result<Vec<Step>, EvalError> {
    segs.iter()
        .map(|seg| match seg {
            Seg::Key(k) => Ok(Step::Key(k.clone())),
            Seg::Index(e) => value(e, ctx).map(Step::Index),
        })
        .collect()
}

/// The path as the user would write it, with evaluated indexes, for error messages.
fn describe(ns: Ns, steps: &[Step]) -> String {
    let mut s = ns.letter().to_owned();
    for step in steps {
        match step {
            Step::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Step::Index(v) => {
                s.push('[');
                s.push_str(&serde_json::to_string(v).unwrap_or_default());
                s.push(']');
            }
        }
    }
    s
}

/// Reads a path; anything missing on the way reads as null.
fn read_path(path: &Path, ctx: &Context) -> Result<Value, EvalError> {
    let steps = resolve(&path.segs, ctx)?;
    let map = ctx.ns(path.ns);
    if steps.is_empty() {
        return Ok(Value::Object(map.clone()));
    }
    Ok(lookup(map, &steps).cloned().unwrap_or(Value::Null))
}

/// The value at `steps` (at least one) below a namespace, if there is one.
fn lookup<'a>(map: &'a Map<String, Value>, steps: &[Step]) -> Option<&'a Value> {
    let (first, rest) = steps.split_first()?;
    let mut cur = map.get(first.key().as_ref())?;
    for step in rest {
        cur = match cur {
            Value::Object(m) => m.get(step.key().as_ref())?,
            Value::Array(a) => {
                let p = step.position()?;
                let p = if p < 0 {
                    p.checked_add(i64::try_from(a.len()).ok()?)?
                } else {
                    p
                };
                a.get(usize::try_from(p).ok()?)?
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Runs a block of statements against `ctx`, in order. A failing statement changes nothing;
/// the statements before it keep their effect.
pub fn run(stmts: &[Stmt], ctx: &mut Context) -> Result<(), EvalError> {
    stmts.iter().try_for_each(|stmt| exec(stmt, ctx))
}

/// Runs a compiled block, refusing one compiled for another IR version.
pub fn run_code(code: &Code, ctx: &mut Context) -> Result<(), EvalError> {
    if code.ir != IR_VERSION {
        return Err(EvalError::new(format!(
            "this code was compiled for IR version {}, but the evaluator runs version \
             {IR_VERSION}; recompile the workflow",
            code.ir
        )));
    }
    run(&code.stmts, ctx)
}

fn exec(stmt: &Stmt, ctx: &mut Context) -> Result<(), EvalError> {
    match stmt {
        Stmt::Assign { target, op, value } => assign(target, *op, value, ctx),
        Stmt::Copy { from, to, names } => copy(*from, *to, names.as_deref(), ctx),
    }
}

fn read_only(ns: Ns) -> String {
    format!("the {}. namespace is read-only", ns.letter())
}

fn assign(target: &Path, op: AssignOp, expr: &Expr, ctx: &mut Context) -> Result<(), EvalError> {
    let steps = resolve(&target.segs, ctx)?;
    let place = describe(target.ns, &steps);
    // Checked before the value, so that an undefined value does not hide the mistake.
    if !target.ns.writable() {
        return Err(EvalError::new(format!(
            "cannot assign to {place}: {}",
            read_only(target.ns)
        )));
    }
    let Some(new) = scalar(expr, ctx)? else {
        return Ok(());
    };
    // `.=` appends the string form, Perl's; anything else stores the JSON value.
    let new = if op == AssignOp::Concat && new.no {
        Value::String(String::new())
    } else {
        new.value
    };
    let whole;
    let old = if steps.is_empty() {
        whole = Value::Object(ctx.ns(target.ns).clone());
        Some(&whole)
    } else {
        lookup(ctx.ns(target.ns), &steps)
    };
    let Some(update) = Update::new(op, old, new)? else {
        return Ok(());
    };
    let map = ctx.ns_mut(target.ns);
    let Some((first, rest)) = steps.split_first() else {
        return match update {
            Update::Replace(Value::Object(m)) => {
                *map = m;
                Ok(())
            }
            _ => Err(EvalError::new(format!(
                "cannot assign to {place}: a namespace must stay an object"
            ))),
        };
    };
    write_in_object(map, first, rest, update)
        .map_err(|e| EvalError::new(format!("cannot assign to {place}: {}", e.message)))
}

/// What an assignment does to its target, computed before anything is changed so that a
/// failing assignment changes nothing.
#[derive(Debug)]
enum Update {
    Replace(Value),
    /// `.=`: appended in place, so building a long string in a loop is not quadratic.
    Append(String),
    /// `,=`: pushed in place, for the same reason.
    Push(Value),
}

impl Update {
    /// The update for `target op new` given the target's current value; `None` for no change.
    fn new(op: AssignOp, old: Option<&Value>, new: Value) -> Result<Option<Update>, EvalError> {
        let null = Value::Null;
        let old = old.unwrap_or(&null);
        let numeric = |op| -> Result<Option<Update>, EvalError> {
            Ok(Some(Update::Replace(arith(
                op,
                to_num(old)?,
                to_num(&new)?,
            )?)))
        };
        match op {
            AssignOp::Set => Ok(Some(Update::Replace(new))),
            AssignOp::Concat => Ok(Some(Update::Append(to_string(&new)))),
            AssignOp::Push => Ok(Some(Update::Push(new))),
            AssignOp::Add => numeric(Arith::Add),
            AssignOp::Sub => numeric(Arith::Sub),
            AssignOp::Mul => numeric(Arith::Mul),
            AssignOp::Div => numeric(Arith::Div),
            AssignOp::DefinedOr => Ok(old.is_null().then_some(Update::Replace(new))),
            AssignOp::Or => Ok((!truthy(old)).then_some(Update::Replace(new))),
        }
    }

    fn apply(self, slot: &mut Value) {
        match self {
            Update::Replace(v) => *slot = v,
            Update::Append(s) => match slot {
                Value::String(old) => old.push_str(&s),
                other => *other = Value::String(to_string(other) + &s),
            },
            Update::Push(v) => match slot {
                Value::Array(a) => a.push(v),
                Value::Null => *slot = Value::Array(vec![v]),
                other => {
                    let old = std::mem::take(other);
                    *other = Value::Array(vec![old, v]);
                }
            },
        }
    }
}

/// Applies `update` at `step`/`rest` below the object `map`.
fn write_in_object(
    map: &mut Map<String, Value>,
    step: &Step,
    rest: &[Step],
    update: Update,
) -> Result<(), EvalError> {
    let key = step.key();
    match map.get_mut(key.as_ref()) {
        Some(v) if !v.is_null() => write_below(v, rest, update),
        _ => {
            let v = fresh(rest, update)?;
            map.insert(key.into_owned(), v);
            Ok(())
        }
    }
}

/// Applies `update` at `steps` below `cur`, an existing value that is not null.
fn write_below(cur: &mut Value, steps: &[Step], update: Update) -> Result<(), EvalError> {
    let Some((step, rest)) = steps.split_first() else {
        update.apply(cur);
        return Ok(());
    };
    match cur {
        Value::Object(m) => write_in_object(m, step, rest, update),
        Value::Array(a) => {
            let pos = write_position(step, a.len())?;
            match a.get_mut(pos) {
                Some(v) if !v.is_null() => write_below(v, rest, update),
                Some(v) => {
                    *v = fresh(rest, update)?;
                    Ok(())
                }
                None => {
                    let v = fresh(rest, update)?;
                    a.resize(pos, Value::Null);
                    a.push(v);
                    Ok(())
                }
            }
        }
        other => Err(EvalError::new(format!(
            "cannot index into a {}",
            type_name(other)
        ))),
    }
}

/// The position `step` names in an array of length `len` for a write (possibly past the end).
fn write_position(step: &Step, len: usize) -> Result<usize, EvalError> {
    let p = match step {
        Step::Key(k) => {
            return Err(EvalError::new(format!(
                "cannot use the key '{k}' on an array"
            )));
        }
        Step::Index(v) => step.position().ok_or_else(|| {
            EvalError::new(format!(
                "an array index must be a number, not {}",
                serde_json::to_string(v).unwrap_or_default()
            ))
        })?,
    };
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if p < 0 { p.saturating_add(len_i) } else { p };
    let pos = usize::try_from(resolved)
        .map_err(|_| EvalError::new(format!("the index {p} is before the start of the array")))?;
    if pos > len.saturating_add(MAX_ARRAY_GAP) {
        return Err(EvalError::new(format!(
            "the index {p} is more than {MAX_ARRAY_GAP} past the end of the array"
        )));
    }
    Ok(pos)
}

/// Builds the value for a path that does not exist yet: the updated null at the bottom, in
/// arrays for number indexes and objects otherwise.
fn fresh(steps: &[Step], update: Update) -> Result<Value, EvalError> {
    let mut v = Value::Null;
    update.apply(&mut v);
    for step in steps.iter().rev() {
        v = match step {
            Step::Index(Value::Number(_)) => {
                let pos = write_position(step, 0)?;
                let mut a = vec![Value::Null; pos];
                a.push(v);
                Value::Array(a)
            }
            _ => {
                let mut m = Map::new();
                m.insert(step.key().into_owned(), v);
                Value::Object(m)
            }
        };
    }
    Ok(v)
}

fn copy(from: Ns, to: Ns, names: Option<&[String]>, ctx: &mut Context) -> Result<(), EvalError> {
    if !to.writable() {
        return Err(EvalError::new(format!(
            "cannot copy into {}.: {}",
            to.letter(),
            read_only(to)
        )));
    }
    let src = ctx.ns(from);
    let items: Vec<(String, Value)> = match names {
        Some(names) => names
            .iter()
            .filter_map(|n| src.get(n).map(|v| (n.clone(), v.clone())))
            .collect(),
        None => src.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    ctx.ns_mut(to).extend(items);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::build::{assign, bin, call, copy, idx, key, lit, matches, path, read, set, un, var};
    use crate::ir::Func;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    fn fixture() -> Context {
        Context {
            a: obj(json!({"name": "world", "list": [10, 20, 30], "n": 5})),
            e: obj(json!({"_error": {"msg": "boom"}})),
            v: obj(json!({
                "x": 2,
                "s": "text",
                "nested": {"list": [{"id": 1}, {"id": 2}], "0": "zero", "1.5": "one and a half"},
                "null": null,
                "flag": false,
            })),
            ..Context::default()
        }
    }

    fn ev(e: &Expr) -> Result<Option<Value>, EvalError> {
        eval(e, &fixture())
    }

    fn val(e: &Expr) -> Value {
        match ev(e) {
            Ok(Some(v)) => v,
            other => panic!("{e:?} gave {other:?}"),
        }
    }

    fn err_of(e: &Expr) -> String {
        match ev(e) {
            Err(err) => err.message,
            other => panic!("{e:?} should fail, gave {other:?}"),
        }
    }

    /// Runs `stmts` on the fixture and returns the resulting `v.` namespace as a value.
    fn run_v(stmts: &[Stmt]) -> Result<Value, EvalError> {
        let mut ctx = fixture();
        run(stmts, &mut ctx)?;
        Ok(Value::Object(ctx.v))
    }

    fn v_after(stmts: &[Stmt]) -> Value {
        match run_v(stmts) {
            Ok(v) => v,
            Err(e) => panic!("{stmts:?} failed: {e}"),
        }
    }

    fn run_err(stmts: &[Stmt]) -> String {
        let mut ctx = fixture();
        let before = ctx.clone();
        match run(stmts, &mut ctx) {
            Err(e) => {
                assert_eq!(ctx, before, "a failing statement must change nothing");
                e.message
            }
            Ok(()) => panic!("{stmts:?} should fail"),
        }
    }

    fn undefined() -> Expr {
        call(Func::Ifdef, vec![var(Ns::V, &["missing"])])
    }

    #[test]
    fn literals() {
        for v in [json!(null), json!(1), json!("s"), json!([1, {"a": true}])] {
            assert_eq!(val(&lit(v.clone())), v);
        }
    }

    #[test]
    fn path_keys() {
        assert_eq!(val(&var(Ns::A, &["name"])), json!("world"));
        assert_eq!(val(&var(Ns::E, &["_error", "msg"])), json!("boom"));
        assert_eq!(val(&var(Ns::V, &["missing"])), json!(null));
        assert_eq!(val(&var(Ns::V, &["missing", "deeper"])), json!(null));
        // A key on a non-object reads as null.
        assert_eq!(val(&var(Ns::V, &["s", "len"])), json!(null));
        assert_eq!(val(&var(Ns::A, &["list", "0"])), json!(null));
        assert_eq!(val(&var(Ns::O, &["anything"])), json!(null));
    }

    #[test]
    fn path_whole_namespace() {
        assert_eq!(
            val(&var(Ns::A, &[])),
            json!({"name": "world", "list": [10, 20, 30], "n": 5})
        );
        assert_eq!(val(&var(Ns::T, &[])), json!({}));
    }

    #[test]
    fn path_indexes() {
        let list = || path(Ns::A, &["list"]);
        let at = |i: Value| val(&read(idx(list(), lit(i))));
        assert_eq!(at(json!(0)), json!(10));
        assert_eq!(at(json!(2)), json!(30));
        assert_eq!(at(json!(-1)), json!(30));
        assert_eq!(at(json!(-3)), json!(10));
        assert_eq!(at(json!(3)), json!(null));
        assert_eq!(at(json!(-4)), json!(null));
        assert_eq!(at(json!(1.9)), json!(20));
        assert_eq!(at(json!("1")), json!(20));
        assert_eq!(at(json!(" -1 ")), json!(30));
        assert_eq!(at(json!("one")), json!(null));
        assert_eq!(at(json!(null)), json!(null));
        assert_eq!(at(json!(i64::MIN)), json!(null));
        // An index computed from other paths.
        let computed = idx(list(), bin(BinOp::Sub, var(Ns::V, &["x"]), lit(1)));
        assert_eq!(val(&read(computed)), json!(20));
        // On an object the index's string form is the key.
        let nested = || path(Ns::V, &["nested"]);
        assert_eq!(val(&read(idx(nested(), lit(0)))), json!("zero"));
        assert_eq!(val(&read(idx(nested(), lit(1.5)))), json!("one and a half"));
        assert_eq!(val(&read(idx(nested(), lit("0")))), json!("zero"));
        let deep = key(idx(key(nested(), "list"), lit(-1)), "id");
        assert_eq!(val(&read(deep)), json!(2));
        // An index on a scalar reads as null.
        assert_eq!(val(&read(idx(path(Ns::V, &["s"]), lit(0)))), json!(null));
        // An index on the namespace itself is a key.
        assert_eq!(val(&read(idx(path(Ns::V, &[]), lit("x")))), json!(2));
    }

    #[test]
    fn unary_operators() {
        assert_eq!(val(&un(UnOp::Not, lit(0))), json!(true));
        assert_eq!(val(&un(UnOp::Not, lit("0.0"))), json!(false));
        assert_eq!(val(&un(UnOp::Not, undefined())), json!(true));
        assert_eq!(val(&un(UnOp::Neg, lit(5))), json!(-5));
        assert_eq!(val(&un(UnOp::Neg, lit("2.5x"))), json!(-2.5));
        assert_eq!(val(&un(UnOp::Neg, lit(Value::Null))), json!(0));
        assert_eq!(
            err_of(&un(UnOp::Neg, lit(json!([])))),
            "cannot use an array as a number"
        );
    }

    #[test]
    fn binary_operators() {
        use BinOp::*;
        let cases = [
            (Pow, json!(2), json!(8), json!(256)),
            (Pow, json!(9), json!(0.5), json!(3)),
            (Mul, json!(6), json!("7"), json!(42)),
            (Mul, json!(1.5), json!(2), json!(3)),
            (Div, json!(7), json!(2), json!(3.5)),
            (Div, json!(8), json!(2), json!(4)),
            (Mod, json!(-7), json!(3), json!(2)),
            (Mod, json!(7), json!(-3), json!(-2)),
            (Mod, json!(7.5), json!(2), json!(1)),
            (Repeat, json!("ab"), json!(3), json!("ababab")),
            (Repeat, json!("ab"), json!(0), json!("")),
            (Repeat, json!("ab"), json!(-2), json!("")),
            (Repeat, json!(7), json!("2"), json!("77")),
            (Repeat, json!(""), json!(1e300), json!("")),
            (Add, json!(2), json!(3), json!(5)),
            (Add, json!("1.5"), json!(true), json!(2.5)),
            (Add, json!(null), json!("abc"), json!(0)),
            (Add, json!(0.1), json!(0.2), json!(0.30000000000000004)),
            (Sub, json!(2), json!(5), json!(-3)),
            (Concat, json!("a"), json!(1), json!("a1")),
            (Concat, json!(null), json!(true), json!("1")),
            (
                Concat,
                json!([1]),
                json!({"k": "v"}),
                json!(r#"[1]{"k":"v"}"#),
            ),
            (Concat, json!(0.5), json!(false), json!("0.50")),
            (NumLt, json!(2), json!(10), json!(true)),
            (NumLt, json!("10"), json!("9"), json!(false)),
            (NumLe, json!(2), json!(2.0), json!(true)),
            (NumGt, json!(3), json!(2), json!(true)),
            (NumGe, json!(2), json!(3), json!(false)),
            (NumEq, json!("1.0"), json!(1), json!(true)),
            (NumEq, json!("abc"), json!(0), json!(true)),
            (NumNe, json!(1), json!(2), json!(true)),
            (
                NumEq,
                json!(9_007_199_254_740_993_i64),
                json!(9_007_199_254_740_992_i64),
                json!(false),
            ),
            (StrLt, json!("10"), json!("9"), json!(true)),
            (StrLe, json!("a"), json!("a"), json!(true)),
            (StrGt, json!("b"), json!("a"), json!(true)),
            (StrGe, json!("a"), json!("b"), json!(false)),
            (StrEq, json!("1.0"), json!(1), json!(false)),
            (StrEq, json!(1.0), json!("1"), json!(true)),
            (StrEq, json!(null), json!(""), json!(true)),
            (StrNe, json!("a"), json!("b"), json!(true)),
            (And, json!(0), json!("x"), json!(0)),
            (And, json!(1), json!("x"), json!("x")),
            (And, json!(""), json!("x"), json!("")),
            (Or, json!("0"), json!("x"), json!("x")),
            (Or, json!("y"), json!("x"), json!("y")),
            (Or, json!(null), json!(false), json!(false)),
            (DefinedOr, json!(null), json!("x"), json!("x")),
            (DefinedOr, json!(0), json!("x"), json!(0)),
            (DefinedOr, json!(false), json!("x"), json!(false)),
            (Xor, json!(1), json!(0), json!(true)),
            (Xor, json!(1), json!("a"), json!(false)),
            (Xor, json!(null), json!(""), json!(false)),
        ];
        for (op, l, r, want) in cases {
            let e = bin(op, lit(l.clone()), lit(r.clone()));
            assert_eq!(val(&e), want, "{l} {op:?} {r}");
        }
    }

    #[test]
    fn arithmetic_gives_integers_when_integral() {
        let sum = val(&bin(BinOp::Add, lit(2), lit(3)));
        assert!(sum.is_i64(), "{sum}");
        let half_twice = val(&bin(BinOp::Mul, lit(0.5), lit(4)));
        assert!(half_twice.is_i64(), "{half_twice}");
        assert_eq!(to_string(&val(&bin(BinOp::Div, lit(10), lit(4)))), "2.5");
    }

    #[test]
    fn logical_operators_are_lazy() {
        let boom = || bin(BinOp::Div, lit(1), lit(0));
        assert_eq!(val(&bin(BinOp::And, lit(false), boom())), json!(false));
        assert_eq!(val(&bin(BinOp::Or, lit("yes"), boom())), json!("yes"));
        assert_eq!(val(&bin(BinOp::DefinedOr, lit(0), boom())), json!(0));
        assert_eq!(
            err_of(&bin(BinOp::And, lit(true), boom())),
            "division by zero"
        );
        assert_eq!(
            err_of(&bin(BinOp::Xor, lit(true), boom())),
            "division by zero"
        );
    }

    #[test]
    fn division_by_zero() {
        for op in [BinOp::Div, BinOp::Mod] {
            for zero in [json!(0), json!(0.0), json!("0"), json!(null), json!("abc")] {
                assert_eq!(err_of(&bin(op, lit(1), lit(zero))), "division by zero");
            }
        }
        assert_eq!(
            err_of(&bin(BinOp::Mod, lit(5), lit(0.3))),
            "division by zero"
        );
    }

    #[test]
    fn non_finite_results_are_errors() {
        let e = bin(BinOp::Pow, lit(10), lit(400));
        assert!(err_of(&e).contains("not a finite number"), "{}", err_of(&e));
        assert!(ev(&bin(BinOp::Add, lit("1e999"), lit(1))).is_err());
        assert_eq!(
            val(&bin(BinOp::NumGt, lit("1e999"), lit(1e300))),
            json!(true)
        );
    }

    #[test]
    fn arrays_are_not_numbers() {
        let e = bin(BinOp::Add, lit(json!([1])), lit(1));
        assert_eq!(err_of(&e), "cannot use an array as a number");
        let e = bin(BinOp::NumLt, lit(1), lit(json!({})));
        assert_eq!(err_of(&e), "cannot use an object as a number");
    }

    #[test]
    fn repeat_is_capped() {
        let e = bin(BinOp::Repeat, lit("ab"), lit(MAX_STRING_BYTES));
        assert!(err_of(&e).contains("longer than"), "{}", err_of(&e));
        let e = bin(BinOp::Repeat, lit("a"), lit(1e300));
        assert!(ev(&e).is_err());
        let e = bin(BinOp::Repeat, lit("a"), lit(MAX_STRING_BYTES));
        assert!(val(&e)
            .as_str()
            .is_some_and(|s| s.len() == MAX_STRING_BYTES));
    }

    #[test]
    fn regex_match() {
        assert_eq!(val(&matches(var(Ns::A, &["name"]), "^wor")), json!(true));
        assert_eq!(val(&matches(var(Ns::A, &["name"]), "^or")), json!(false));
        assert_eq!(val(&matches(lit(12.5), r"^\d+\.5$")), json!(true));
        assert_eq!(val(&matches(lit(Value::Null), "^$")), json!(true));
        assert_eq!(val(&matches(undefined(), "^$")), json!(true));
        assert_eq!(val(&matches(lit("ÄB"), "(?i)^äb$")), json!(true));
        // The second time comes from the cache and must agree.
        assert_eq!(val(&matches(var(Ns::A, &["name"]), "^wor")), json!(true));
    }

    #[test]
    fn invalid_regex_is_an_error() {
        let msg = err_of(&matches(lit("x"), "(unclosed"));
        assert!(msg.starts_with("invalid regex /(unclosed/"), "{msg}");
        // Perl-only syntax is not supported by the regex crate: a clear error, not a panic.
        assert!(ev(&matches(lit("x"), r"(?<=a)b")).is_err());
    }

    #[test]
    fn regex_cache_survives_many_patterns() {
        for i in 0..(REGEX_CACHE_SIZE * 2 + 3) {
            let pattern = format!("^{i}$");
            assert_eq!(val(&matches(lit(i), &pattern)), json!(true));
            assert_eq!(val(&matches(lit(i + 1), &pattern)), json!(false));
        }
    }

    #[test]
    fn undefined_only_from_ifdef() {
        assert_eq!(ev(&undefined()), Ok(None));
        assert_eq!(
            ev(&call(Func::Ifdef, vec![var(Ns::V, &["null"])])),
            Ok(None)
        );
        assert_eq!(ev(&call(Func::Ifdef, vec![lit(0)])), Ok(Some(json!(0))));
        // Inside operators and arguments, undefined is null.
        assert_eq!(val(&bin(BinOp::Concat, undefined(), lit("x"))), json!("x"));
        assert_eq!(
            val(&bin(BinOp::DefinedOr, undefined(), lit("d"))),
            json!("d")
        );
        assert_eq!(val(&bin(BinOp::And, lit(1), undefined())), json!(null));
        assert_eq!(val(&call(Func::Defined, vec![undefined()])), json!(false));
        assert_eq!(val(&call(Func::Array, vec![undefined()])), json!([null]));
        assert_eq!(ev(&call(Func::Ifdef, vec![undefined()])), Ok(None));
        // An array index must be a number: null is not taken as 0.
        assert_eq!(
            val(&read(idx(path(Ns::A, &["list"]), undefined()))),
            json!(null)
        );
    }

    #[test]
    fn undefined_leaves_every_target_untouched() {
        let ops = [
            AssignOp::Set,
            AssignOp::Concat,
            AssignOp::Push,
            AssignOp::Add,
            AssignOp::Sub,
            AssignOp::Mul,
            AssignOp::Div,
            AssignOp::DefinedOr,
            AssignOp::Or,
        ];
        let before = Value::Object(fixture().v);
        for op in ops {
            for target in [
                path(Ns::V, &["x"]),
                path(Ns::V, &["new", "deep"]),
                path(Ns::V, &["null"]),
            ] {
                let stmt = assign(target, op, undefined());
                assert_eq!(v_after(std::slice::from_ref(&stmt)), before, "{stmt:?}");
            }
        }
        let mut ctx = fixture();
        let wfomap = [set(path(Ns::O, &["log"]), undefined())];
        assert_eq!(run(&wfomap, &mut ctx), Ok(()));
        assert!(!ctx.o.contains_key("log"));
        // A read-only target is an error even when the value is undefined.
        assert_eq!(
            run_err(&[set(path(Ns::A, &["x"]), undefined())]),
            "cannot assign to a.x: the a. namespace is read-only"
        );
    }

    #[test]
    fn assign_set() {
        let v = v_after(&[
            set(path(Ns::V, &["x"]), lit("new")),
            set(path(Ns::V, &["y"]), lit(json!([1]))),
        ]);
        assert_eq!(v["x"], json!("new"));
        assert_eq!(v["y"], json!([1]));
        // A null assigned is a value, unlike undefined.
        let v = v_after(&[set(path(Ns::V, &["x"]), lit(Value::Null))]);
        assert_eq!(v["x"], json!(null));
        for ns in [Ns::V, Ns::I, Ns::O, Ns::T] {
            let mut ctx = Context::default();
            assert_eq!(run(&[set(path(ns, &["k"]), lit(1))], &mut ctx), Ok(()));
            assert_eq!(ctx.ns(ns).get("k"), Some(&json!(1)));
        }
    }

    #[test]
    fn assign_concat() {
        let v = v_after(&[
            assign(path(Ns::V, &["s"]), AssignOp::Concat, lit("!")),
            assign(path(Ns::V, &["x"]), AssignOp::Concat, lit(0.5)),
            assign(path(Ns::V, &["fresh"]), AssignOp::Concat, lit("a")),
            assign(path(Ns::V, &["null"]), AssignOp::Concat, lit(true)),
            assign(path(Ns::V, &["flag"]), AssignOp::Concat, lit(Value::Null)),
        ]);
        assert_eq!(v["s"], json!("text!"));
        assert_eq!(v["x"], json!("20.5"));
        assert_eq!(v["fresh"], json!("a"));
        assert_eq!(v["null"], json!("1"));
        assert_eq!(v["flag"], json!("0"));
    }

    #[test]
    fn assign_push() {
        let push = |keys: &[&str], e: Expr| assign(path(Ns::V, keys), AssignOp::Push, e);
        let v = v_after(&[
            push(&["fresh"], lit(1)),
            push(&["fresh"], lit(json!([2]))),
            push(&["null"], lit("a")),
            push(&["s"], lit("more")),
            push(&["nested", "list"], lit(json!({"id": 3}))),
        ]);
        assert_eq!(v["fresh"], json!([1, [2]]));
        assert_eq!(v["null"], json!(["a"]));
        assert_eq!(v["s"], json!(["text", "more"]));
        assert_eq!(
            v["nested"]["list"],
            json!([{"id": 1}, {"id": 2}, {"id": 3}])
        );
    }

    #[test]
    fn assign_arithmetic() {
        let op = |o, k: &str, e: Expr| assign(path(Ns::V, &[k]), o, e);
        let v = v_after(&[
            op(AssignOp::Add, "x", lit(3)),
            op(AssignOp::Sub, "a", lit(4)),
            op(AssignOp::Mul, "s", lit(2)),
            op(AssignOp::Div, "null", lit(2)),
            op(AssignOp::Mul, "m", lit(1.5)),
        ]);
        assert_eq!(v["x"], json!(5));
        assert_eq!(v["a"], json!(-4));
        assert_eq!(v["s"], json!(0));
        assert_eq!(v["null"], json!(0));
        assert_eq!(v["m"], json!(0));
        let v = v_after(&[
            op(AssignOp::Div, "x", lit(4)),
            op(AssignOp::Mul, "y", lit(2)),
        ]);
        assert_eq!(v["x"], json!(0.5));
        assert_eq!(v["y"], json!(0));
        let v = v_after(&[
            op(AssignOp::Sub, "x", lit("0.5")),
            op(AssignOp::Mul, "x", lit(2)),
        ]);
        assert!(v["x"].is_i64());
        assert_eq!(v["x"], json!(3));
    }

    #[test]
    fn assign_division_by_zero_changes_nothing() {
        let msg = run_err(&[assign(path(Ns::V, &["x"]), AssignOp::Div, lit(0))]);
        assert_eq!(msg, "division by zero");
        let msg = run_err(&[assign(path(Ns::V, &["x"]), AssignOp::Add, lit(json!([])))]);
        assert_eq!(msg, "cannot use an array as a number");
    }

    #[test]
    fn assign_defined_or() {
        let op = |k: &str| assign(path(Ns::V, &[k]), AssignOp::DefinedOr, lit("d"));
        let v = v_after(&[op("x"), op("null"), op("fresh"), op("flag")]);
        assert_eq!(v["x"], json!(2));
        assert_eq!(v["null"], json!("d"));
        assert_eq!(v["fresh"], json!("d"));
        assert_eq!(v["flag"], json!(false));
        // A target that stays as it is does not create intermediate objects.
        let v = v_after(&[assign(
            path(Ns::V, &["nested", "0"]),
            AssignOp::DefinedOr,
            lit(1),
        )]);
        assert_eq!(v, Value::Object(fixture().v));
    }

    #[test]
    fn assign_or() {
        let op = |k: &str| assign(path(Ns::V, &[k]), AssignOp::Or, lit("d"));
        let v = v_after(&[op("x"), op("null"), op("fresh"), op("flag"), op("s")]);
        assert_eq!(v["x"], json!(2));
        assert_eq!(v["null"], json!("d"));
        assert_eq!(v["fresh"], json!("d"));
        assert_eq!(v["flag"], json!("d"));
        assert_eq!(v["s"], json!("text"));
        let mut ctx = Context::default();
        ctx.v.insert("zero".into(), json!("0"));
        assert_eq!(
            run(
                &[assign(path(Ns::V, &["zero"]), AssignOp::Or, lit(7))],
                &mut ctx
            ),
            Ok(())
        );
        assert_eq!(ctx.v["zero"], json!(7));
    }

    #[test]
    fn write_creates_intermediates() {
        let v = v_after(&[
            set(path(Ns::V, &["a", "b", "c"]), lit(1)),
            set(idx(path(Ns::V, &["arr"]), lit(2)), lit("x")),
            set(key(idx(path(Ns::V, &["objs"]), lit(0)), "id"), lit(7)),
            set(idx(path(Ns::V, &["byname"]), lit("k")), lit(true)),
            set(path(Ns::V, &["null", "inside"]), lit(1)),
        ]);
        assert_eq!(v["a"], json!({"b": {"c": 1}}));
        assert_eq!(v["arr"], json!([null, null, "x"]));
        assert_eq!(v["objs"], json!([{"id": 7}]));
        assert_eq!(v["byname"], json!({"k": true}));
        assert_eq!(v["null"], json!({"inside": 1}));
    }

    #[test]
    fn write_indexes() {
        let list = || path(Ns::V, &["list"]);
        let mut ctx = Context::default();
        ctx.v.insert("list".into(), json!([1, 2, 3]));
        let stmts = [
            set(idx(list(), lit(0)), lit("first")),
            set(idx(list(), lit(-1)), lit("last")),
            set(idx(list(), lit("1")), lit("middle")),
            set(idx(list(), lit(5)), lit("far")),
            assign(idx(list(), lit(-2)), AssignOp::Add, lit(1)),
        ];
        assert_eq!(run(&stmts, &mut ctx), Ok(()));
        assert_eq!(
            ctx.v["list"],
            json!(["first", "middle", "last", null, 1, "far"])
        );
        // Writing into an object with a number index uses its string form.
        let v = v_after(&[set(idx(path(Ns::V, &["nested"]), lit(7)), lit("seven"))]);
        assert_eq!(v["nested"]["7"], json!("seven"));
        // A nested write through a negative index.
        let v = v_after(&[set(
            key(idx(path(Ns::V, &["nested", "list"]), lit(-1)), "id"),
            lit(9),
        )]);
        assert_eq!(v["nested"]["list"], json!([{"id": 1}, {"id": 9}]));
    }

    #[test]
    fn write_errors_change_nothing() {
        let list = || path(Ns::V, &["nested", "list"]);
        let read_only = "namespace is read-only";
        let far = "is more than 100000 past the end of the array";
        let cases = [
            (
                set(idx(path(Ns::A, &[]), lit(0)), lit(1)),
                "a[0]",
                read_only,
            ),
            (set(path(Ns::A, &["name"]), lit(1)), "a.name", read_only),
            (set(path(Ns::E, &["x"]), lit(1)), "e.x", read_only),
            (
                set(path(Ns::V, &["s", "x"]), lit(1)),
                "v.s.x",
                "cannot index into a string",
            ),
            (
                set(path(Ns::V, &["x", "y", "z"]), lit(1)),
                "v.x.y.z",
                "cannot index into a number",
            ),
            (
                set(key(list(), "k"), lit(1)),
                "v.nested.list.k",
                "cannot use the key 'k' on an array",
            ),
            (
                set(idx(list(), lit("k")), lit(1)),
                r#"v.nested.list["k"]"#,
                r#"an array index must be a number, not "k""#,
            ),
            (
                set(idx(list(), lit(-3)), lit(1)),
                "v.nested.list[-3]",
                "the index -3 is before the start of the array",
            ),
            (
                set(idx(path(Ns::V, &["new"]), lit(-1)), lit(1)),
                "v.new[-1]",
                "the index -1 is before the start of the array",
            ),
            (
                set(idx(list(), lit(1_000_000)), lit(1)),
                "v.nested.list[1000000]",
                far,
            ),
            (
                set(idx(path(Ns::V, &["a", "b"]), lit(1_000_000)), lit(1)),
                "v.a.b[1000000]",
                far,
            ),
            (
                set(path(Ns::V, &[]), lit(5)),
                "v",
                "a namespace must stay an object",
            ),
            (
                assign(path(Ns::V, &[]), AssignOp::Push, lit(5)),
                "v",
                "a namespace must stay an object",
            ),
        ];
        for (stmt, place, reason) in cases {
            let msg = run_err(std::slice::from_ref(&stmt));
            let prefix = format!("cannot assign to {place}: ");
            assert!(msg.starts_with(&prefix) && msg.ends_with(reason), "{msg}");
        }
    }

    #[test]
    fn write_into_a_fresh_array() {
        let v = v_after(&[set(key(idx(path(Ns::V, &["new"]), lit(0)), "k"), lit(1))]);
        assert_eq!(v["new"], json!([{"k": 1}]));
        let v = v_after(&[set(idx(path(Ns::V, &["new"]), lit(MAX_ARRAY_GAP)), lit(1))]);
        assert_eq!(v["new"].as_array().map(Vec::len), Some(MAX_ARRAY_GAP + 1));
    }

    #[test]
    fn whole_namespace_assignment() {
        let mut ctx = fixture();
        assert_eq!(
            run(&[set(path(Ns::T, &[]), lit(json!({"k": 1})))], &mut ctx),
            Ok(())
        );
        assert_eq!(Value::Object(ctx.t.clone()), json!({"k": 1}));
        // `//=` on a namespace: it is an object, so defined.
        assert_eq!(
            run(
                &[assign(
                    path(Ns::T, &[]),
                    AssignOp::DefinedOr,
                    lit(json!({}))
                )],
                &mut ctx
            ),
            Ok(())
        );
        assert_eq!(Value::Object(ctx.t), json!({"k": 1}));
    }

    #[test]
    fn run_stops_at_the_first_error() {
        let mut ctx = fixture();
        let stmts = [
            set(path(Ns::V, &["first"]), lit(1)),
            set(path(Ns::V, &["bad"]), bin(BinOp::Div, lit(1), lit(0))),
            set(path(Ns::V, &["third"]), lit(3)),
        ];
        assert_eq!(
            run(&stmts, &mut ctx),
            Err(EvalError::new("division by zero"))
        );
        assert_eq!(ctx.v.get("first"), Some(&json!(1)));
        assert!(!ctx.v.contains_key("bad"));
        assert!(!ctx.v.contains_key("third"));
    }

    #[test]
    fn statements_see_earlier_ones() {
        let v = v_after(&[
            set(path(Ns::V, &["i"]), lit(0)),
            assign(path(Ns::V, &["i"]), AssignOp::Add, lit(1)),
            set(
                idx(path(Ns::V, &["out"]), var(Ns::V, &["i"])),
                var(Ns::V, &["i"]),
            ),
        ]);
        assert_eq!(v["out"], json!([null, 1]));
    }

    #[test]
    fn copy_named() {
        let mut ctx = fixture();
        ctx.o.insert("keep".into(), json!("old"));
        let stmts = [
            copy(Ns::A, Ns::O, Some(&["name", "missing", "n"])),
            copy(Ns::V, Ns::O, Some(&["null"])),
        ];
        assert_eq!(run(&stmts, &mut ctx), Ok(()));
        assert_eq!(
            Value::Object(ctx.o),
            json!({"keep": "old", "name": "world", "n": 5, "null": null})
        );
    }

    #[test]
    fn copy_all() {
        let mut ctx = fixture();
        ctx.i.insert("name".into(), json!("overwritten"));
        ctx.i.insert("other".into(), json!(1));
        assert_eq!(run(&[copy(Ns::A, Ns::I, None)], &mut ctx), Ok(()));
        assert_eq!(
            Value::Object(ctx.i),
            json!({"name": "world", "list": [10, 20, 30], "n": 5, "other": 1})
        );
        // Copying a namespace onto itself changes nothing.
        let before = fixture();
        let mut ctx = fixture();
        assert_eq!(run(&[copy(Ns::V, Ns::V, None)], &mut ctx), Ok(()));
        assert_eq!(ctx, before);
    }

    #[test]
    fn copy_into_read_only_is_rejected() {
        assert_eq!(
            run_err(&[copy(Ns::V, Ns::A, None)]),
            "cannot copy into a.: the a. namespace is read-only"
        );
        assert_eq!(
            run_err(&[copy(Ns::V, Ns::E, Some(&["x"]))]),
            "cannot copy into e.: the e. namespace is read-only"
        );
    }

    #[test]
    fn run_code_checks_the_ir_version() {
        let stmts = vec![set(path(Ns::V, &["x"]), lit(1))];
        let mut ctx = Context::default();
        assert_eq!(run_code(&Code::new(stmts.clone()), &mut ctx), Ok(()));
        assert_eq!(ctx.v.get("x"), Some(&json!(1)));
        let old = Code {
            ir: IR_VERSION + 1,
            stmts,
        };
        let mut ctx = Context::default();
        let msg = run_code(&old, &mut ctx).map_err(|e| e.message);
        assert_eq!(
            msg,
            Err(format!(
                "this code was compiled for IR version {}, but the evaluator runs version \
                 {IR_VERSION}; recompile the workflow",
                IR_VERSION + 1
            ))
        );
        assert!(ctx.v.is_empty());
    }

    #[test]
    fn function_calls_go_through_eval() {
        let e = call(Func::Concat, vec![lit("hello "), var(Ns::A, &["name"])]);
        assert_eq!(val(&e), json!("hello world"));
        let e = call(Func::Length, vec![]);
        assert_eq!(err_of(&e), "length() takes 1 argument, got 0");
        let e = call(Func::Length, vec![bin(BinOp::Div, lit(1), lit(0))]);
        assert_eq!(err_of(&e), "division by zero");
    }

    #[test]
    fn a_computed_false_prints_as_perls() {
        let lt = || bin(BinOp::NumLt, lit(2), lit(1));
        let cat = |e: Expr| bin(BinOp::Concat, e, lit(""));
        // `(2 < 1) . ''` is "", like Perl; `!`, `not`, `xor`, `defined`, `~` likewise.
        for e in [
            lt(),
            un(UnOp::Not, lit(1)),
            bin(BinOp::Xor, lit(1), lit(1)),
            bin(BinOp::StrEq, lit("a"), lit("b")),
            call(Func::Defined, vec![var(Ns::V, &["missing"])]),
            matches(lit("abc"), "x"),
            bin(BinOp::Or, lit(0), lt()),
            bin(BinOp::And, lt(), lit(1)),
        ] {
            assert_eq!(val(&cat(e.clone())), json!(""), "{e:?}");
            // It stays false, numifies to 0, and is stored as JSON false.
            assert_eq!(val(&e), json!(false), "{e:?}");
            assert_eq!(val(&bin(BinOp::Add, e.clone(), lit(0))), json!(0));
            assert_eq!(val(&un(UnOp::Neg, e.clone())), json!(0));
        }
        // Its string form everywhere a string is taken.
        assert_eq!(val(&call(Func::Tostring, vec![lt()])), json!(""));
        assert_eq!(
            val(&call(Func::Concat, vec![lit("a"), lt(), lit("b")])),
            json!("ab")
        );
        assert_eq!(val(&call(Func::Length, vec![lt()])), json!(0));
        assert_eq!(val(&bin(BinOp::StrEq, lt(), lit(""))), json!(true));
        assert_eq!(val(&bin(BinOp::Repeat, lt(), lit(3))), json!(""));
        assert_eq!(val(&matches(lt(), "^$")), json!(true));
        assert_eq!(
            val(&call(Func::Md5Hex, vec![lt()])),
            json!("d41d8cd98f00b204e9800998ecf8427e")
        );
        let v = v_after(&[assign(path(Ns::V, &["s"]), AssignOp::Concat, lt())]);
        assert_eq!(v["s"], json!("text"));
        // A true comparison prints "1"; a JSON false (a literal, a value read) still "0".
        assert_eq!(val(&cat(bin(BinOp::NumLt, lit(1), lit(2)))), json!("1"));
        assert_eq!(val(&cat(lit(false))), json!("0"));
        assert_eq!(val(&cat(var(Ns::V, &["flag"]))), json!("0"));
        // A case compares the string form, so `case 1 > 2` takes `when '':`.
        assert_eq!(val(&lt().into_text()), json!(""));
        assert_eq!(lit(1).into_text(), lit(1));
    }

    #[test]
    fn hex_strings_numify_to_zero() {
        assert_eq!(val(&bin(BinOp::Add, lit("0x1A"), lit(0))), json!(0));
        assert_eq!(val(&call(Func::Tonumber, vec![lit("0x1A")])), json!(0));
    }

    #[test]
    fn perl_numbers_in_expressions() {
        let add = bin(BinOp::Add, lit(0.1), lit(0.2));
        assert_eq!(val(&bin(BinOp::Concat, add.clone(), lit(""))), json!("0.3"));
        assert_eq!(
            val(&bin(BinOp::StrEq, add.clone(), lit("0.3"))),
            json!(true)
        );
        assert_eq!(val(&bin(BinOp::NumEq, add, lit(0.3))), json!(false));
        let third = bin(BinOp::Div, lit(10), lit(3));
        assert_eq!(
            val(&call(Func::Tostring, vec![third])),
            json!("3.33333333333333")
        );
        assert_eq!(val(&call(Func::Tostring, vec![lit(1e15)])), json!("1e+15"));
        // 'inf' and 'nan' numify like Perl's; a NaN compares unequal to everything.
        assert_eq!(val(&bin(BinOp::NumGt, lit("inf"), lit(1e300))), json!(true));
        let nan = || lit("nan");
        assert_eq!(val(&bin(BinOp::NumEq, nan(), nan())), json!(false));
        assert_eq!(val(&bin(BinOp::NumNe, nan(), nan())), json!(true));
        assert_eq!(val(&bin(BinOp::NumLt, nan(), lit(1))), json!(false));
        assert_eq!(val(&bin(BinOp::NumGe, nan(), lit(1))), json!(false));
        assert_eq!(
            err_of(&bin(BinOp::Add, lit("inf"), lit(0))),
            "the result is not a finite number (Inf)"
        );
    }

    #[test]
    fn negating_a_string_is_perls() {
        let neg = |s: &str| val(&un(UnOp::Neg, lit(s)));
        assert_eq!(neg("foo"), json!("-foo"));
        assert_eq!(neg("_x"), json!("-_x"));
        assert_eq!(neg("-foo"), json!("+foo"));
        assert_eq!(neg("+foo"), json!("-foo"));
        assert_eq!(neg("+12"), json!("-12"));
        assert_eq!(neg("-12"), json!(12));
        assert_eq!(neg("12abc"), json!(-12));
        assert_eq!(neg(" 12"), json!(-12));
        assert_eq!(neg(""), json!(0));
        assert_eq!(neg("é"), json!(0));
        assert_eq!(val(&un(UnOp::Neg, lit(true))), json!(-1));
    }

    #[test]
    fn list_flattens_into_arguments() {
        let list = |e: Expr| call(Func::List, vec![e]);
        let arr = |items: Vec<Expr>| call(Func::Array, items);
        let e = arr(vec![list(arr(vec![lit(1), lit(2)])), lit(3)]);
        assert_eq!(val(&e), json!([1, 2, 3]));
        let e = arr(vec![
            list(var(Ns::A, &["list"])),
            list(var(Ns::V, &["null"])),
        ]);
        assert_eq!(val(&e), json!([10, 20, 30]));
        assert_eq!(
            val(&call(Func::Max, vec![list(var(Ns::A, &["list"])), lit(25)])),
            json!(30)
        );
        // On its own, list gives an array.
        assert_eq!(val(&list(var(Ns::A, &["list"]))), json!([10, 20, 30]));
    }

    #[test]
    fn regex_dollar_is_perls() {
        assert_eq!(val(&matches(lit("abc\n"), "c$")), json!(true));
        assert_eq!(val(&matches(lit("abc\n\n"), "c$")), json!(false));
        assert_eq!(val(&matches(lit("abc"), "c$")), json!(true));
        assert_eq!(val(&matches(lit("a$c"), r"a\$c")), json!(true));
        assert_eq!(val(&matches(lit("a$"), "a[$]")), json!(true));
        assert_eq!(val(&matches(lit("ab\ncd"), "(?m)b$")), json!(true));
        assert_eq!(perl_dollar("[]$]x$"), "[]$]x(?:\n?\\z)");
        assert_eq!(perl_dollar("[[:alpha:]$]$"), "[[:alpha:]$](?:\n?\\z)");
    }

    #[test]
    fn the_spec_example() {
        // v.log = 'dns failed: ' . e._error.msg, then the wfomap with ifdef.
        let mut ctx = fixture();
        let catch = [set(
            path(Ns::V, &["log"]),
            bin(
                BinOp::Concat,
                lit("dns failed: "),
                var(Ns::E, &["_error", "msg"]),
            ),
        )];
        assert_eq!(run(&catch, &mut ctx), Ok(()));
        let wfomap = [
            copy(Ns::V, Ns::O, Some(&["s"])),
            set(
                path(Ns::O, &["log"]),
                call(Func::Ifdef, vec![var(Ns::V, &["log"])]),
            ),
        ];
        assert_eq!(run(&wfomap, &mut ctx), Ok(()));
        assert_eq!(
            Value::Object(ctx.o),
            json!({"s": "text", "log": "dns failed: boom"})
        );
    }
}
