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
