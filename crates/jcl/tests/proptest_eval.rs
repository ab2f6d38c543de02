//! Property tests of the evaluator: it never panics and is deterministic on random programs,
//! its operators agree with plain Rust where they should, and the IR survives serde.

use jcl::build::{bin, call, idx, lit, path, read, set, un};
use jcl::value::{number_value, to_number, to_string, truthy};
use jcl::{eval, run, AssignOp, BinOp, Context, Expr, Func, Ns, Path, Seg, Stmt, UnOp};
use proptest::prelude::*;
use serde_json::{Map, Value};

const BINOPS: [BinOp; 24] = BinOp::ALL;

const ASSIGN_OPS: [AssignOp; 9] = AssignOp::ALL;

/// Fails to compile when an operator is added, so that `BinOp::ALL` stays complete.
fn position_of(op: BinOp) -> usize {
    match op {
        BinOp::Pow => 0,
        BinOp::Mul => 1,
        BinOp::Div => 2,
        BinOp::Mod => 3,
        BinOp::Repeat => 4,
        BinOp::Add => 5,
        BinOp::Sub => 6,
        BinOp::Concat => 7,
        BinOp::NumLt => 8,
        BinOp::NumLe => 9,
        BinOp::NumGt => 10,
        BinOp::NumGe => 11,
        BinOp::NumEq => 12,
        BinOp::NumNe => 13,
        BinOp::StrLt => 14,
        BinOp::StrLe => 15,
        BinOp::StrGt => 16,
        BinOp::StrGe => 17,
        BinOp::StrEq => 18,
        BinOp::StrNe => 19,
        BinOp::And => 20,
        BinOp::Or => 21,
        BinOp::DefinedOr => 22,
        BinOp::Xor => 23,
    }
}

fn assign_position_of(op: AssignOp) -> usize {
    match op {
        AssignOp::Set => 0,
        AssignOp::Concat => 1,
        AssignOp::Push => 2,
        AssignOp::Add => 3,
        AssignOp::Sub => 4,
        AssignOp::Mul => 5,
        AssignOp::Div => 6,
        AssignOp::DefinedOr => 7,
        AssignOp::Or => 8,
    }
}

#[test]
fn operator_lists_are_complete() {
    for (i, op) in BINOPS.into_iter().enumerate() {
        assert_eq!(position_of(op), i);
    }
    for (i, op) in ASSIGN_OPS.into_iter().enumerate() {
        assert_eq!(assign_position_of(op), i);
    }
}

/// Keys shared by the random contexts and paths, so that paths often hit something.
const KEYS: [&str; 5] = ["a", "b", "c", "0", "1"];

fn arb_key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS.as_slice()).prop_map(str::to_owned)
}

/// Floats that print and parse back exactly (see the serde round trip).
fn arb_float() -> impl Strategy<Value = f64> {
    any::<i32>().prop_map(|k| f64::from(k) / 1000.0)
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            [
                "",
                "0",
                "00",
                "0.0",
                "1",
                " 12abc",
                "abc",
                "0x1f",
                "-3.5e2",
                "1e999",
                "héllo",
                "a,b",
                "[1]",
                "{\"a\":1}",
                "aGVsbG8="
            ]
            .as_slice()
        )
        .prop_map(str::to_owned),
        "[a-c0-9 .,]{0,6}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-20i64..20).prop_map(Value::from),
        prop::sample::select(
            [i64::MIN, i64::MAX, -1_000_000_007, 4_503_599_627_370_497].as_slice()
        )
        .prop_map(Value::from),
        arb_float().prop_map(Value::from),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((arb_key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn arb_object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec((arb_key(), arb_json()), 0..5).prop_map(|kv| kv.into_iter().collect())
}

fn arb_context() -> impl Strategy<Value = Context> {
    (
        arb_object(),
        arb_object(),
        arb_object(),
        arb_object(),
        arb_object(),
        arb_object(),
    )
        .prop_map(|(a, e, v, i, o, t)| Context { a, e, v, i, o, t })
}

fn arb_ns() -> impl Strategy<Value = Ns> {
    prop::sample::select(Ns::ALL.as_slice())
}

fn arb_path(index: BoxedStrategy<Expr>) -> impl Strategy<Value = Path> {
    let seg = prop_oneof![
        3 => arb_key().prop_map(Seg::Key),
        1 => index.prop_map(|e| Seg::Index(Box::new(e))),
    ];
    (arb_ns(), prop::collection::vec(seg, 0..4)).prop_map(|(ns, segs)| Path { ns, segs })
}

fn arb_regex() -> impl Strategy<Value = String> {
    prop::sample::select(
        [
            "^a",
            "b$",
            r"\d+",
            "(?i)HÉ",
            "^$",
            "(unclosed",
            "[",
            "a{2,}",
            ".*",
        ]
        .as_slice(),
    )
    .prop_map(str::to_owned)
}

/// Random expression trees over every `Expr` variant, every operator and every function.
fn arb_expr() -> BoxedStrategy<Expr> {
    let leaf = prop_oneof![
        arb_json().prop_map(Expr::Lit),
        arb_path(arb_json().prop_map(Expr::Lit).boxed()).prop_map(Expr::Path),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            (
                prop::sample::select([UnOp::Not, UnOp::Neg].as_slice()),
                inner.clone()
            )
                .prop_map(|(op, e)| un(op, e)),
            (
                prop::sample::select(BINOPS.as_slice()),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, r)| bin(op, l, r)),
            (
                prop::sample::select(Func::ALL.as_slice()),
                prop::collection::vec(inner.clone(), 0..4)
            )
                .prop_map(|(f, args)| call(f, args)),
            (inner.clone(), arb_regex()).prop_map(|(e, re)| Expr::Match {
                expr: Box::new(e),
                regex: re
            }),
            arb_path(inner).prop_map(Expr::Path),
        ]
    })
    .boxed()
}

fn arb_stmt() -> impl Strategy<Value = Stmt> {
    prop_oneof![
        (
            arb_path(arb_expr()),
            prop::sample::select(ASSIGN_OPS.as_slice()),
            arb_expr()
        )
            .prop_map(|(target, op, value)| Stmt::Assign { target, op, value }),
        (
            arb_ns(),
            arb_ns(),
            prop::option::of(prop::collection::vec(arb_key(), 0..3))
        )
            .prop_map(|(from, to, names)| Stmt::Copy { from, to, names }),
    ]
}

/// A writable path made of keys and literal indexes.
fn arb_target() -> impl Strategy<Value = Path> {
    let seg = prop_oneof![
        2 => arb_key().prop_map(Seg::Key),
        1 => (-3i64..6).prop_map(|i| Seg::Index(Box::new(lit(i)))),
        1 => arb_key().prop_map(|k| Seg::Index(Box::new(lit(k)))),
    ];
    (
        prop::sample::select([Ns::V, Ns::I, Ns::O, Ns::T].as_slice()),
        prop::collection::vec(seg, 1..5),
    )
        .prop_map(|(ns, segs)| Path { ns, segs })
}

/// Integers whose sums, differences and products fit an `i64` easily.
const SMALL_INTS: std::ops::Range<i64> = -1_000_000_000..1_000_000_000;

fn has_negative_index(p: &Path) -> bool {
    p.segs.iter().any(|s| match s {
        Seg::Index(e) => matches!(&**e, Expr::Lit(v) if v.as_i64().is_some_and(|i| i < 0)),
        Seg::Key(_) => false,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn eval_is_total_and_deterministic(expr in arb_expr(), ctx in arb_context()) {
        let first = eval(&expr, &ctx);
        let second = eval(&expr, &ctx);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn run_is_total_and_deterministic(
        stmts in prop::collection::vec(arb_stmt(), 0..5),
        ctx in arb_context(),
    ) {
        let mut first = ctx.clone();
        let mut second = ctx.clone();
        let r1 = run(&stmts, &mut first);
        let r2 = run(&stmts, &mut second);
        prop_assert_eq!(r1, r2);
        prop_assert_eq!(&first, &second);
        prop_assert_eq!(&first.a, &ctx.a, "a. is read-only");
        prop_assert_eq!(&first.e, &ctx.e, "e. is read-only");
    }

    #[test]
    fn concat_of_strings(a in ".{0,20}", b in ".{0,20}") {
        let e = bin(BinOp::Concat, lit(a.clone()), lit(b.clone()));
        prop_assert_eq!(eval(&e, &Context::default()), Ok(Some(Value::String(a + &b))));
    }

    #[test]
    fn integer_arithmetic(x in SMALL_INTS, y in SMALL_INTS) {
        for (op, want) in [(BinOp::Add, x + y), (BinOp::Sub, x - y), (BinOp::Mul, x * y)] {
            let got = eval(&bin(op, lit(x), lit(y)), &Context::default());
            prop_assert_eq!(&got, &Ok(Some(Value::from(want))));
            prop_assert!(got.is_ok_and(|v| v.is_some_and(|v| v.is_i64())));
        }
    }

    #[test]
    fn not_negates_truthiness(x in arb_json()) {
        let got = eval(&un(UnOp::Not, lit(x.clone())), &Context::default());
        prop_assert_eq!(got.clone(), Ok(Some(Value::Bool(!truthy(&x)))));
        prop_assert_eq!(got.map(|v| v.is_some_and(|v| truthy(&v))), Ok(!truthy(&x)));
    }

    #[test]
    fn set_then_read(target in arb_target(), value in arb_json(), ctx in arb_context()) {
        let stmt = set(target.clone(), lit(value.clone()));
        let mut ctx = ctx;
        if run(std::slice::from_ref(&stmt), &mut ctx).is_ok() {
            prop_assert_eq!(eval(&read(target.clone()), &ctx), Ok(Some(value.clone())));
        }
        // Into an empty namespace, every path without negative indexes can be written.
        let mut empty = Context::default();
        let result = run(std::slice::from_ref(&stmt), &mut empty);
        if !has_negative_index(&target) {
            prop_assert_eq!(result, Ok(()));
            prop_assert_eq!(eval(&read(target), &empty), Ok(Some(value)));
        }
    }

    #[test]
    fn expr_serde_round_trip(expr in arb_expr()) {
        let fail = |e: serde_json::Error| TestCaseError::fail(e.to_string());
        let json = serde_json::to_string(&expr).map_err(fail)?;
        let back: Expr = serde_json::from_str(&json).map_err(fail)?;
        prop_assert_eq!(back, expr);
    }

    #[test]
    fn numbers_print_like_perl_and_parse_back(
        f in any::<f64>().prop_filter("finite", |f| f.is_finite())
    ) {
        // Perl's `%.15g`: 15 significant digits, so the text reads back to within half a
        // unit in the 15th digit, and prints the same again.
        let v = number_value(f).map_err(|e| TestCaseError::fail(e.message))?;
        let text = to_string(&v);
        let back = to_number(&Value::String(text.clone()))
            .map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert!((back - f).abs() <= f.abs() * 5e-15, "{} from {}", text, f);
        let again = number_value(back).map_err(|e| TestCaseError::fail(e.message))?;
        prop_assert_eq!(to_string(&again), text);
    }

    #[test]
    fn index_reads_match_rust(list in prop::collection::vec(arb_json(), 0..6), i in -8i64..8) {
        let mut ctx = Context::default();
        ctx.v.insert("l".into(), Value::Array(list.clone()));
        let len = list.len() as i64;
        let pos = if i < 0 { i + len } else { i };
        let want = usize::try_from(pos).ok().and_then(|p| list.get(p)).cloned();
        let want = want.unwrap_or(Value::Null);
        prop_assert_eq!(eval(&read(idx(path(Ns::V, &["l"]), lit(i))), &ctx), Ok(Some(want)));
    }
}
