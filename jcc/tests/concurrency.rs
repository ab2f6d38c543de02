//! An action's `concurrency` config: a whole number from 1 to 10000 lowers to the model's
//! `concurrency`; any other value, and one on a procedure or workflow, fails (JC0228 on an
//! action or procedure).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jcc::SourceFile;

fn compile(kind: &str, value: &str) -> jcc::Output {
    let src = format!("{kind} r:\nin:\n\tn number\nconfig:\n\tconcurrency = {value}\n");
    jcc::compile_offline(vec![SourceFile::new("r.jcl", src)])
}

#[test]
fn a_whole_number_lowers_to_the_limit() {
    for (value, n) in [("1", 1), ("40", 40), ("10000", 10000)] {
        let out = compile("action", value);
        assert!(out.diagnostics.is_empty(), "{value}: {:?}", out.diagnostics);
        assert_eq!(out.units[0].model.config.concurrency, Some(n), "{value}");
    }
}

#[test]
fn bad_limits_fail_with_jc0228() {
    for value in ["0", "10001", "-1", "2.5", "'40'", "true", "{n: 3}"] {
        let out = compile("action", value);
        let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["JC0228"], "{value}");
        assert!(out.has_errors());
        let hint = out.diagnostics[0].hint.as_deref().unwrap_or("");
        assert!(hint.contains("concurrency = 40"), "{value}: {hint}");
    }
    let out = compile("procedure", "3");
    assert!(
        out.diagnostics.iter().any(|d| d.code == "JC0228"),
        "{:?}",
        out.diagnostics
    );
    let out = compile("workflow", "3");
    assert!(out.has_errors(), "a workflow has no concurrency");
}
