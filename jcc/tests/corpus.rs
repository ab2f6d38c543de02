//! The corpus: every file of `workflows/tests/ok` compiles without a diagnostic (its model is
//! snapshotted as JSON), every file of `workflows/tests/err` fails with the code, line and
//! column its first line documents (its rendered diagnostics are snapshotted), and every
//! example of `workflows/examples` compiles; the original-style files of `workflows/compat`
//! compile with only their one documented warning (their models are snapshotted too).
//! Also, offline: the checked schedules of a `schedule:` section with their defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use jcc::SourceFile;

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// The source files of a directory (`.jcl`, and the original's `.wf` and `.ac`), sorted,
/// named by their file name.
fn sources(rel: &str) -> Vec<SourceFile> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jcl" || e == "wf" || e == "ac")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            SourceFile::new(name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_ok_file_compiles_and_its_model_is_stable() {
    let src = sources("workflows/tests/ok");
    assert!(src.len() > 20, "the ok corpus is there");
    let out = jcc::compile_offline(src.clone());
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        jcc::render(&out.diagnostics, &src)
    );
    assert_eq!(out.units.len(), src.len());
    for u in &out.units {
        u.model.validate().unwrap();
        let mut m = u.model.clone();
        m.src = None;
        insta::assert_json_snapshot!(format!("ok__{}", u.model.name), m);
    }
}

#[test]
fn the_original_style_files_compile_with_one_warning_and_their_models_are_stable() {
    let src = sources("workflows/compat");
    assert!(src.len() >= 20, "the compat files are there");
    let out = jcc::compile_offline(src.clone());
    let got: Vec<(&str, &str, jcl_syntax::Severity, u32, u32)> = out
        .diagnostics
        .iter()
        .map(|d| (d.file.as_str(), d.code, d.severity, d.span.line, d.span.col))
        .collect();
    assert_eq!(
        got,
        vec![(
            "eventtest.wf",
            "JC0301",
            jcl_syntax::Severity::Warning,
            18,
            31
        )],
        "{}",
        jcc::render(&out.diagnostics, &src)
    );
    assert!(!out.has_errors());
    assert_eq!(
        out.diagnostics[0].to_json()["severity"],
        "warning",
        "the JSON form carries the severity"
    );
    insta::assert_snapshot!("compat__warning", jcc::render(&out.diagnostics, &src));
    assert_eq!(out.units.len(), src.len());
    for u in &out.units {
        u.model.validate().unwrap();
        let mut m = u.model.clone();
        m.src = None;
        insta::assert_json_snapshot!(format!("compat__{}", u.model.name), m);
    }
}

#[test]
fn callees_load_before_their_callers() {
    let out = jcc::compile_offline(sources("workflows/tests/ok"));
    let pos = |n: &str| out.units.iter().position(|u| u.model.name == n).unwrap();
    assert!(pos("add") < pos("calltest"));
    assert!(pos("calltest") < pos("childjobtest"));
    assert!(pos("calltest") < pos("splittest"));
    assert!(pos("lockchild") < pos("lockparent"));
    assert!(pos("shape") < pos("dispatchtest"));
}

/// The `# expect: JCnnnn line:col` of an err file.
fn expectation(src: &SourceFile) -> (String, u32, u32) {
    let first = src.text.lines().next().unwrap();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{}: first line is not `# expect: CODE line:col`", src.name));
    let (code, pos) = rest.trim().split_once(' ').unwrap();
    let (line, col) = pos.split_once(':').unwrap();
    (code.to_owned(), line.parse().unwrap(), col.parse().unwrap())
}

#[test]
fn every_err_file_fails_with_its_documented_code_at_its_line_and_column() {
    let lib = sources("workflows/tests/ok");
    let errs = sources("workflows/tests/err");
    assert!(errs.len() >= 20, "the err corpus is there");
    let docs = std::fs::read_to_string(dir("docs/errors.md")).unwrap();
    for e in &errs {
        let (code, line, col) = expectation(e);
        let mut all = lib.clone();
        all.push(e.clone());
        let out = jcc::compile_offline(all.clone());
        assert!(out.has_errors(), "{} compiles", e.name);
        assert!(
            out.diagnostics.iter().all(|d| d.file == e.name),
            "{}: diagnostics in other files: {}",
            e.name,
            jcc::render(&out.diagnostics, &all)
        );
        assert!(
            out.diagnostics
                .iter()
                .any(|d| d.code == code && d.span.line == line && d.span.col == col),
            "{}: expected {code} at {line}:{col}, got:\n{}",
            e.name,
            jcc::render(&out.diagnostics, &all)
        );
        for d in out
            .diagnostics
            .iter()
            .filter(|d| d.code.starts_with("JC02"))
        {
            assert!(
                docs.contains(&format!("## {}", d.code)),
                "{} is not documented in docs/errors.md",
                d.code
            );
        }
        let rendered = jcc::render(&out.diagnostics, &all);
        insta::assert_snapshot!(
            format!("err__{}", e.name.trim_end_matches(".jcl")),
            rendered
        );
    }
}

#[test]
fn every_example_compiles() {
    let src = sources("workflows/examples");
    assert!(src.len() >= 6);
    let out = jcc::compile_offline(src.clone());
    assert!(
        out.diagnostics.is_empty(),
        "{}",
        jcc::render(&out.diagnostics, &src)
    );
    for u in &out.units {
        u.model.validate().unwrap();
    }
}

#[test]
fn all_semantic_errors_of_a_file_are_reported_together() {
    let src = "workflow many:\nin:\n\tx number\nout:\n\ty string\ndo:\n\tcall nosuch:\n\t\ta = 1\n\tif a.x > 1:\n\t\tgoto nowhere\n\t\teval:\n\t\t\tz = 1\n\teval:\n\t\tz = a.q\n";
    let out = jcc::compile_offline(vec![SourceFile::new("many.jcl", src)]);
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(
        codes,
        vec!["JC0212", "JC0201", "JC0208", "JC0213", "JC0206"],
        "{}",
        jcc::render(&out.diagnostics, &[SourceFile::new("many.jcl", src)])
    );
}

#[test]
fn files_calling_each_other_in_a_cycle_are_an_error_but_self_recursion_is_not() {
    let a = "workflow ping:\ndo:\n\tcall pong:\n";
    let b = "workflow pong:\ndo:\n\tcall ping:\n";
    let out = jcc::compile_offline(vec![
        SourceFile::new("ping.jcl", a),
        SourceFile::new("pong.jcl", b),
    ]);
    let cycles: Vec<(&str, u32)> = out
        .diagnostics
        .iter()
        .map(|d| (d.code, d.span.line))
        .collect();
    assert_eq!(cycles, vec![("JC0220", 1), ("JC0220", 1)]);
    let rec = "workflow countdown:\nin:\n\tn number\ndo:\n\tif a.n > 0:\n\t\tcall countdown:\n\t\t\tn = a.n - 1\n";
    let out = jcc::compile_offline(vec![SourceFile::new("countdown.jcl", rec)]);
    assert!(out.diagnostics.is_empty());
}

#[test]
fn a_diagnostic_renders_with_the_source_line_a_caret_and_a_hint() {
    let src = "workflow w:\ndo:\n\tcall ad:\n\t\tcounter = 1\n";
    let add = "action add:\nin:\n\tcounter number\nout:\n\tcounter number\n";
    let all = vec![
        SourceFile::new("w.jcl", src),
        SourceFile::new("add.jcl", add),
    ];
    let out = jcc::compile_offline(all.clone());
    let text = jcc::render(&out.diagnostics, &all);
    assert_eq!(
        text,
        "w.jcl:3:7: error[JC0201]: unknown action or workflow `ad`\n  |\n3 |         call ad:\n  |              ^^\n  = hint: did you mean `add`?\n"
    );
    let json = out.diagnostics[0].to_json();
    assert_eq!(json["code"], "JC0201");
    assert_eq!(json["span"]["line"], 3);
    assert_eq!(json["span"]["col"], 7);
}

#[test]
fn schedules_are_checked_offline_and_carry_their_defaults() {
    let src = "workflow tick:\nin:\n\tn number 1\ndo:\n\treturn\nschedule:\n\
               \tsoon: cron = '*/10 * * * * *'\n\
               \tlater:\n\t\tcron = '0 0 9 * * MON-FRI'\n\t\ttz = 'Europe/Amsterdam'\n\
               \t\tmissed = 'catchup', enabled = false, args = {n: 2}\n";
    let out = jcc::compile_offline(vec![SourceFile::new("tick.jcl", src)]);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let got: Vec<(String, &str, &str, &str, serde_json::Value, bool, u32)> = out.units[0]
        .schedules
        .iter()
        .map(|s| {
            (
                s.db_name("tick"),
                s.cron.as_str(),
                s.timezone.as_str(),
                s.missed.as_str(),
                s.args.clone(),
                s.enabled,
                s.span.line,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "tick/soon".to_owned(),
                "*/10 * * * * *",
                "UTC",
                "skip",
                serde_json::json!({}),
                true,
                7
            ),
            (
                "tick/later".to_owned(),
                "0 0 9 * * MON-FRI",
                "Europe/Amsterdam",
                "catchup",
                serde_json::json!({"n": 2}),
                false,
                8
            ),
        ]
    );
    // only workflows have schedules; a name or a key twice is JC0218
    let action = "action act:\nschedule:\n\ts: cron = '@daily'\n";
    let twice = "workflow twice:\nschedule:\n\ts: cron = '@daily'\n\ts: cron = '@hourly', cron = '@daily'\n";
    let out = jcc::compile_offline(vec![
        SourceFile::new("act.jcl", action),
        SourceFile::new("twice.jcl", twice),
    ]);
    let codes: Vec<(&str, &str, u32, u32)> = out
        .diagnostics
        .iter()
        .map(|d| (d.file.as_str(), d.code, d.span.line, d.span.col))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("act.jcl", "JC0215", 2, 1),
            ("twice.jcl", "JC0218", 4, 2),
            ("twice.jcl", "JC0218", 4, 23),
        ]
    );
    let act = out.units.iter().find(|u| u.model.name == "act").unwrap();
    assert!(act.schedules.is_empty());
}
