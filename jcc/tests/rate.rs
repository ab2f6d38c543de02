//! An action's `rate` config: both forms lower to `{limit, per}` with a normalised window, and
//! every bad value (and a rate on a procedure or workflow) fails with its own code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jcc::SourceFile;
use jcl::RateConfig;

fn compile(kind: &str, rate: &str) -> jcc::Output {
    let src = format!("{kind} r:\nin:\n\tn number\nconfig:\n\trate = {rate}\n");
    jcc::compile_offline(vec![SourceFile::new("r.jcl", src)])
}

#[test]
fn both_forms_lower_to_a_limit_and_a_window() {
    for (rate, limit, per) in [
        ("'10 per 1 second'", 10, "1 seconds"),
        ("'3 per second'", 3, "1 seconds"),
        ("'10000 per 2.5 minutes'", 10000, "2.5 minutes"),
        ("{limit: 5, per: '1 hour'}", 5, "1 hours"),
        ("{limit: 1, per: 30}", 1, "30 seconds"),
        ("'2 per 3 days'", 2, "3 days"),
    ] {
        let out = compile("action", rate);
        assert!(out.diagnostics.is_empty(), "{rate}: {:?}", out.diagnostics);
        let want = RateConfig {
            limit,
            per: per.to_owned(),
        };
        assert_eq!(out.units[0].model.config.rate, Some(want), "{rate}");
    }
}

#[test]
fn bad_rates_fail_with_jc0227() {
    for rate in [
        "'0 per 1 second'",
        "'10001 per 1 second'",
        "'-1 per 1 second'",
        "'ten per 1 second'",
        "'10 per 0 seconds'",
        "'10 per 1 fortnight'",
        "'10 every second'",
        "{limit: 3}",
        "{limit: 3, per: '1 second', burst: 2}",
        "{limit: 2.5, per: '1 second'}",
        "10",
        "true",
    ] {
        let out = compile("action", rate);
        let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
        assert_eq!(codes, ["JC0227"], "{rate}");
        assert!(out.has_errors());
    }
    let out = compile("procedure", "'1 per 1 second'");
    assert!(
        out.diagnostics.iter().any(|d| d.code == "JC0227"),
        "{:?}",
        out.diagnostics
    );
    let out = compile("workflow", "'1 per 1 second'");
    assert!(out.has_errors(), "a workflow has no rate");
}
