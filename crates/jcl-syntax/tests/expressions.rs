//! Expressions rule by rule: every operator with its precedence and associativity, literals,
//! paths, function calls and the expression errors.
#![allow(clippy::unwrap_used)]

mod common;
use common::{expr, expr_err};

#[test]
fn each_binary_operator() {
    for (src, want) in [
        ("1 ** 2", "(** 1 2)"),
        ("1 * 2", "(* 1 2)"),
        ("1 / 2", "(/ 1 2)"),
        ("1 % 2", "(% 1 2)"),
        ("'a' x 3", "(x \"a\" 3)"),
        ("1 + 2", "(+ 1 2)"),
        ("1 - 2", "(- 1 2)"),
        ("'a' . 'b'", "(. \"a\" \"b\")"),
        ("1 < 2", "(< 1 2)"),
        ("1 <= 2", "(<= 1 2)"),
        ("1 > 2", "(> 1 2)"),
        ("1 >= 2", "(>= 1 2)"),
        ("1 == 2", "(== 1 2)"),
        ("1 != 2", "(!= 1 2)"),
        ("'a' lt 'b'", "(lt \"a\" \"b\")"),
        ("'a' le 'b'", "(le \"a\" \"b\")"),
        ("'a' gt 'b'", "(gt \"a\" \"b\")"),
        ("'a' ge 'b'", "(ge \"a\" \"b\")"),
        ("'a' eq 'b'", "(eq \"a\" \"b\")"),
        ("'a' ne 'b'", "(ne \"a\" \"b\")"),
        ("v.a && v.b", "(&& v.a v.b)"),
        ("v.a and v.b", "(&& v.a v.b)"),
        ("v.a || v.b", "(|| v.a v.b)"),
        ("v.a or v.b", "(|| v.a v.b)"),
        ("v.a // v.b", "(// v.a v.b)"),
        ("v.a xor v.b", "(xor v.a v.b)"),
    ] {
        assert_eq!(expr(src), want, "{src}");
    }
}

#[test]
fn operators_without_spaces() {
    assert_eq!(expr("1+2*3"), "(+ 1 (* 2 3))");
    assert_eq!(
        expr("v.a.v.b"),
        "v.a.v.b",
        "a dotted path, not a concatenation"
    );
    // A quoted key continues the path, as in the original ("Identifier Quoting").
    assert_eq!(expr("v.a.'x'"), "v.a.x");
    assert_eq!(expr("v.a . 'x'"), "(. v.a \"x\")");
    assert_eq!(expr("'x'.v.a"), "(. \"x\" v.a)");
    assert_eq!(expr("v.a//2"), "(// v.a 2)");
    assert_eq!(expr("2**-1"), "(** 2 -1)");
    assert_eq!(expr("v.x<=v.y"), "(<= v.x v.y)");
}

#[test]
fn unary_operators() {
    assert_eq!(expr("!v.a"), "(! v.a)");
    assert_eq!(expr("not v.a"), "(! v.a)");
    assert_eq!(expr("-v.a"), "(neg v.a)");
    assert_eq!(expr("- -v.a"), "(neg (neg v.a))");
    assert_eq!(expr("!!v.a"), "(! (! v.a))");
    assert_eq!(expr("-1"), "-1", "a negative literal is folded");
    assert_eq!(expr("-1.5"), "-1.5");
    assert_eq!(expr("-(2)"), "-2");
}

#[test]
fn precedence_levels_from_low_to_high() {
    // or/xor < and < not < || // < && < equality < relational < additive < multiplicative
    // < match < unary ! - < **
    assert_eq!(expr("v.a or v.b and v.c"), "(|| v.a (&& v.b v.c))");
    assert_eq!(expr("v.a xor v.b and v.c"), "(xor v.a (&& v.b v.c))");
    assert_eq!(expr("not v.a and v.b"), "(&& (! v.a) v.b)");
    assert_eq!(expr("not v.a || v.b"), "(! (|| v.a v.b))");
    assert_eq!(expr("v.a || v.b && v.c"), "(|| v.a (&& v.b v.c))");
    assert_eq!(expr("v.a // v.b && v.c"), "(// v.a (&& v.b v.c))");
    assert_eq!(expr("v.a && v.b == v.c"), "(&& v.a (== v.b v.c))");
    assert_eq!(expr("v.a == v.b < v.c"), "(== v.a (< v.b v.c))");
    assert_eq!(expr("v.a eq v.b lt v.c"), "(eq v.a (lt v.b v.c))");
    assert_eq!(expr("v.a < v.b + v.c"), "(< v.a (+ v.b v.c))");
    assert_eq!(expr("v.a + v.b * v.c"), "(+ v.a (* v.b v.c))");
    assert_eq!(expr("v.a . v.b x 2"), "(. v.a (x v.b 2))");
    assert_eq!(expr("v.a * v.b ~ /x/"), "(* v.a (~ v.b /x/))");
    assert_eq!(expr("!v.a ~ /x/"), "(~ (! v.a) /x/)");
    assert_eq!(expr("-v.a ** 2"), "(neg (** v.a 2))");
    assert_eq!(expr("-2 ** 2"), "(neg (** 2 2))");
    assert_eq!(expr("!v.a ** 2"), "(! (** v.a 2))");
}

#[test]
fn associativity() {
    assert_eq!(expr("1 - 2 - 3"), "(- (- 1 2) 3)");
    assert_eq!(expr("1 + 2 . 3"), "(. (+ 1 2) 3)");
    assert_eq!(expr("1 / 2 * 3 % 4"), "(% (* (/ 1 2) 3) 4)");
    assert_eq!(expr("2 ** 3 ** 2"), "(** 2 (** 3 2))");
    assert_eq!(expr("v.a // v.b || v.c"), "(|| (// v.a v.b) v.c)");
    assert_eq!(expr("v.a or v.b xor v.c"), "(xor (|| v.a v.b) v.c)");
    assert_eq!(expr("v.a && v.b && v.c"), "(&& (&& v.a v.b) v.c)");
    assert_eq!(expr("v.a ~ /x/ ~ /y/"), "(~ (~ v.a /x/) /y/)");
}

#[test]
fn comparisons_do_not_chain() {
    for src in [
        "1 == 2 == 3",
        "1 < 2 < 3",
        "'a' eq 'b' ne 'c'",
        "1 <= 2 ge 3",
    ] {
        let d = expr_err(src);
        assert_eq!(d.code, "JC0113", "{src}: {d}");
    }
    assert_eq!(expr("(1 == 2) == 3"), "(== (== 1 2) 3)");
    assert_eq!(expr("1 == (2 == 3)"), "(== 1 (== 2 3))");
    assert_eq!(expr("1 < 2 == 3 < 4"), "(== (< 1 2) (< 3 4))");
    assert_eq!(expr("1 < 2 && 2 < 3"), "(&& (< 1 2) (< 2 3))");
}

#[test]
fn parentheses() {
    assert_eq!(expr("(1 + 2) * 3"), "(* (+ 1 2) 3)");
    assert_eq!(expr("((((1))))"), "1");
    assert_eq!(expr("not (v.a)"), "(! v.a)");
}

#[test]
fn regex_match() {
    assert_eq!(expr("v.a ~ /^a.b$/"), "(~ v.a /^a.b$/)");
    assert_eq!(expr("v.a ~/x/"), "(~ v.a /x/)");
    assert_eq!(expr(r"v.a ~ /a\/b/"), "(~ v.a /a/b/)");
    assert_eq!(
        expr(r"v.a ~ /\d+ # not a comment/"),
        r"(~ v.a /\d+ # not a comment/)"
    );
    assert_eq!(expr("v.a ~ /abc/i"), "(~ v.a /(?i)abc/)");
    assert_eq!(expr("v.a ~ /abc/ims"), "(~ v.a /(?ims)abc/)");
    assert_eq!(expr_err("v.a ~ /abc/q").code, "JC0115");
    assert_eq!(expr_err("v.a ~ /a(b/").code, "JC0115");
    assert_eq!(expr_err("v.a ~ /abc").code, "JC0110");
}

#[test]
fn number_literals() {
    for (src, want) in [
        ("0", "0"),
        ("42", "42"),
        ("1.5", "1.5"),
        ("1e3", "1000.0"),
        ("2.5E-2", "0.025"),
        ("0x1F", "31"),
        ("0XfF", "255"),
        ("-0x10", "-16"),
        ("18446744073709551615", "18446744073709551615"),
        ("-9223372036854775808", "-9223372036854775808"),
        ("100000000000000000000", "1e+20"),
    ] {
        assert_eq!(expr(src), want, "{src}");
    }
    assert_eq!(expr_err("1e999").code, "JC0114");
    assert_eq!(expr_err("0x10000000000000000").code, "JC0114");
}

#[test]
fn string_literals() {
    assert_eq!(expr("'single'"), "\"single\"");
    assert_eq!(expr("\"double\""), "\"double\"");
    assert_eq!(expr(r"'it\'s'"), r#""it's""#);
    assert_eq!(expr(r#""say \"hi\"""#), r#""say \"hi\"""#);
    assert_eq!(expr(r#""a\tb\nc\\d\re""#), r#""a\tb\nc\\d\re""#);
    assert_eq!(expr("'a \" b'"), r#""a \" b""#);
    assert_eq!(expr("\"a ' b\""), "\"a ' b\"");
    assert_eq!(expr("'# not a comment'"), "\"# not a comment\"");
    assert_eq!(
        expr("'$v{x} is not interpolated'"),
        "\"$v{x} is not interpolated\""
    );
    assert_eq!(expr("'ünïcödé ✓'"), "\"ünïcödé ✓\"");
    assert_eq!(expr("''"), "\"\"");
    let d = expr_err(r"'a\qb'");
    assert_eq!(d.code, "JC0114");
    assert_eq!(
        (d.span.line, d.span.col),
        (4, 9),
        "at the backslash; a tab is one column"
    );
}

#[test]
fn keyword_literals() {
    assert_eq!(expr("true"), "true");
    assert_eq!(expr("false"), "false");
    assert_eq!(expr("null"), "null");
    let d = expr_err("TRUE");
    assert_eq!(d.code, "JC0111");
    assert!(d.hint.unwrap().contains("lower case"));
}

#[test]
fn paths() {
    assert_eq!(expr("v.a.b"), "v.a.b");
    assert_eq!(expr("a.list[0]"), "a.list[0]");
    assert_eq!(expr("a.list[-1]"), "a.list[-1]");
    assert_eq!(expr("e._error.msg"), "e._error.msg");
    assert_eq!(expr("v.m['some key'].x"), "v.m[\"some key\"].x");
    assert_eq!(expr("v.a[v.b[0] + 1]"), "v.a[(+ v.b[0] 1)]");
    assert_eq!(expr("v.a[ 0 ][1]"), "v.a[0][1]");
    for ns in ["a", "e", "v", "i", "o", "t"] {
        assert_eq!(expr(&format!("{ns}.x")), format!("{ns}.x"));
    }
}

#[test]
fn a_name_without_namespace_is_an_error() {
    let d = expr_err("thing + 1");
    assert_eq!(d.code, "JC0111");
    assert_eq!((d.span.line, d.span.col), (4, 7));
    assert!(d.hint.unwrap().contains("v.thing"));
    let d = expr_err("q.thing");
    assert_eq!(d.code, "JC0111");
    assert!(d.message.contains("unknown namespace `q`"));
}

#[test]
fn function_calls() {
    for f in jcl::Func::ALL {
        assert_eq!(
            expr(&format!("{}(v.x)", f.name())),
            format!("{}(v.x)", f.name())
        );
    }
    assert_eq!(expr("array()"), "array()");
    assert_eq!(expr("concat('a', v.b, 3,)"), "concat(\"a\", v.b, 3)");
    assert_eq!(expr("length(keys(v.m)) + 1"), "(+ length(keys(v.m)) 1)");
    assert_eq!(expr("defined (v.x)"), "defined(v.x)");
}

#[test]
fn unknown_functions_suggest_close_names() {
    let d = expr_err("lenght(v.a)");
    assert_eq!(d.code, "JC0112");
    assert_eq!(d.hint.as_deref(), Some("did you mean `length`?"));
    let d = expr_err("frobnicate(v.a)");
    assert!(d
        .hint
        .unwrap()
        .starts_with("the functions are: concat, defined"));
}

#[test]
fn missing_operands_and_operators() {
    let d = expr_err("1 +");
    assert_eq!(d.code, "JC0101");
    assert_eq!(d.message, "expected an expression after `r = 1 +`");
    let d = expr_err("v.a v.b");
    assert_eq!(
        d.message,
        "expected the end of the line or an operator after `r = v.a`, found `v`"
    );
    let d = expr_err("(1 + 2");
    assert!(
        d.message.starts_with("expected `)` or an operator"),
        "{}",
        d.message
    );
    let d = expr_err("concat(1 2)");
    assert!(
        d.message.contains("`)`") && d.message.contains("`,`"),
        "{}",
        d.message
    );
}
