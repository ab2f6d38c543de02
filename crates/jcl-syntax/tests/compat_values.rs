//! The original's spellings that the expression grammar accepts: its other function names
//! (`tojson`), unary `+` and numbers without a leading digit (`.5`).
#![allow(clippy::unwrap_used)]

mod common;
use common::expr;

#[test]
fn the_originals_function_names() {
    assert_eq!(expr("tojson(v.x)"), "encode_json(v.x)");
    assert_eq!(expr("fromjson(v.x)"), "decode_json(v.x)");
    assert_eq!(expr("b64encode(v.x)"), "encode_base64(v.x)");
    assert_eq!(expr("md5(v.x)"), "md5_hex(v.x)");
}

#[test]
fn numbers_without_a_leading_digit() {
    assert_eq!(expr(".5"), "0.5");
    assert_eq!(expr("-.25e1"), "-2.5");
    assert_eq!(expr("1 + .5"), "(+ 1 0.5)");
    // After an operand a dot still concatenates.
    assert_eq!(expr("v.x . 5"), "(. v.x 5)");
    assert_eq!(expr("'a' .5"), "(. \"a\" 5)");
}

#[test]
fn unary_plus_does_nothing() {
    assert_eq!(expr("+'foo'"), "\"foo\"");
    assert_eq!(expr("+v.x * 2"), "(* v.x 2)");
    assert_eq!(expr("1 - +2"), "(- 1 2)");
    assert_eq!(expr("-+2"), "-2");
}
