//! Whole files: the JobCenter slides' examples (calltest, whiletest, casetest,
//! prov.vhost_event), the language reference's example, and a file that uses every statement.
//! The ASTs of two are snapshotted.
#![allow(clippy::unwrap_used)]

mod common;
use common::{assigns, ok, sexp};
use jcl_syntax::ast::{StmtKind, Unsubscribe};

fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn calltest() {
    let f = ok(&data("calltest.jcl"));
    assert_eq!(f.name.text, "calltest");
    assert_eq!(
        assigns(&f.wfomap.as_ref().unwrap().items),
        ["output = v.thing"]
    );
    insta::assert_yaml_snapshot!(f);
}

#[test]
fn whiletest() {
    let f = ok(&data("whiletest.jcl"));
    let StmtKind::While { cond, body } = &f.statements()[0].kind else {
        panic!()
    };
    assert_eq!(sexp(cond), "(|| (! v.thing) (< v.thing 10))");
    let StmtKind::Call { imap, into, .. } = &body[0].kind else {
        panic!()
    };
    assert_eq!(assigns(imap), ["counter = (// v.thing a.input)"]);
    assert_eq!(
        assigns(&into.as_ref().unwrap().items),
        ["thing = o.counter"]
    );
    assert_eq!(f.wfomap.unwrap().span.line, 12);
}

#[test]
fn casetest() {
    let f = ok(&data("casetest.jcl"));
    let StmtKind::Case {
        value,
        whens,
        otherwise,
    } = &f.statements()[0].kind
    else {
        panic!()
    };
    assert_eq!(sexp(value), "a.input");
    assert_eq!(whens.len(), 2);
    let StmtKind::Eval { assigns: a } = &otherwise.as_ref().unwrap().items[0].kind else {
        panic!()
    };
    assert_eq!(
        assigns(a),
        ["counter = -1", "thing = (. \"dunno what i got: \" a.input)"]
    );
    insta::assert_yaml_snapshot!(f);
}

#[test]
fn vhost_event() {
    let f = ok(&data("vhost_event.jcl"));
    assert_eq!(
        (f.name.text.as_str(), f.name.quoted),
        ("prov.vhost_event", true)
    );
    assert_eq!(f.role.unwrap().items.text, "jobs_spooler");
    assert_eq!(f.locks.unwrap().items.len(), 2);
    let kinds: Vec<&str> = f
        .body
        .as_ref()
        .unwrap()
        .items
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Lock { .. } => "lock",
            StmtKind::Call { .. } => "call",
            StmtKind::If { .. } => "if",
            StmtKind::Unlock { .. } => "unlock",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["lock", "call", "call", "if", "unlock"]);
}

#[test]
fn order_wordpress_from_the_reference() {
    let f = ok(&data("order_wordpress.jcl"));
    assert_eq!(
        f.config.as_ref().unwrap().items[0].value.value,
        serde_json::json!(200)
    );
    assert_eq!(f.statements().len(), 4);
    let StmtKind::Try { catch, .. } = &f.statements()[1].kind else {
        panic!()
    };
    assert!(matches!(catch.items[0].kind, StmtKind::Eval { .. }));
    assert!(matches!(catch.items[1].kind, StmtKind::RaiseError { .. }));
}

#[test]
fn everything() {
    let f = ok(&data("everything.jcl"));
    assert_eq!(f.name.text, "test.everything");
    let names: Vec<&str> = f
        .statements()
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Call { .. } => "call",
            StmtKind::Eval { .. } => "eval",
            StmtKind::If { .. } => "if",
            StmtKind::While { .. } => "while",
            StmtKind::Repeat { .. } => "repeat",
            StmtKind::Case { .. } => "case",
            StmtKind::Try { .. } => "try",
            StmtKind::RaiseError { .. } => "raise_error",
            StmtKind::Assert { .. } => "assert",
            StmtKind::Goto { .. } => "goto",
            StmtKind::Label { .. } => "label",
            StmtKind::Return => "return",
            StmtKind::Sleep { .. } => "sleep",
            StmtKind::Subscribe { .. } => "subscribe",
            StmtKind::Unsubscribe(Unsubscribe::Name(_)) => "unsubscribe NAME",
            StmtKind::Unsubscribe(Unsubscribe::Imap(_)) => "unsubscribe:",
            StmtKind::RaiseEvent { .. } => "raise_event",
            StmtKind::WaitForEvent { .. } => "wait_for_event",
            StmtKind::Lock { .. } => "lock",
            StmtKind::Unlock { .. } => "unlock",
            StmtKind::WaitForLock { .. } => "wait_for_lock",
            StmtKind::Split { .. } => "split",
            StmtKind::Map(_) => "map",
            StmtKind::Detachflow { .. } => "detachflow",
            StmtKind::Dispatch { .. } => "interface",
        })
        .collect();
    assert_eq!(
        names,
        [
            "label",
            "eval",
            "eval",
            "if",
            "while",
            "repeat",
            "case",
            "try",
            "subscribe",
            "raise_event",
            "wait_for_event",
            "unsubscribe NAME",
            "unsubscribe:",
            "lock",
            "wait_for_lock",
            "wait_for_lock",
            "unlock",
            "split",
            "map",
            "detachflow",
            "interface",
            "detachflow",
            "label"
        ]
    );
}

#[test]
fn the_repository_examples_parse() {
    let dir = format!("{}/../../workflows/examples", env!("CARGO_MANIFEST_DIR"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jcl") {
            let src = std::fs::read_to_string(&path).unwrap();
            if let Err(d) = jcl_syntax::parse(&path.display().to_string(), &src) {
                panic!("{}", d.render(&src));
            }
        }
    }
}
