//! Interface calls with actions among the candidates, compiled offline: the call becomes a
//! `case` over the candidate names with one call each and an `else` raising an error; a
//! candidate without the interface's inputs is JC0223; an unknown one, and a mistake in the
//! shared imap, are reported once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use jcc::SourceFile;
use jcl::{Callee, SystemAction};

const ADD: &str = "action add:\nin:\n\tcounter number\n\tstep number 1\nout:\n\tcounter number\n";

/// A workflow `adder` calling the candidates with the imap line `imap`.
fn adder(candidates: &str, imap: &str) -> String {
    format!(
        "workflow adder:\nin:\n\tcounter number\n\twhich string\nout:\n\tcounter number\n\
         wfomap:\n\t<counter>\ndo:\n\tinterface add:\n\t\t{candidates}\n\
         \tcall a.which . '.add':\n\t\t{imap}\n\tinto:\n\t\t<counter>\n"
    )
}

fn compile(files: &[(&str, &str)]) -> jcc::Output {
    jcc::compile_offline(
        files
            .iter()
            .map(|(n, s)| SourceFile::new((*n).to_owned(), (*s).to_owned()))
            .collect(),
    )
}

#[test]
fn an_interface_call_to_actions_is_a_case_with_a_call_per_candidate() {
    let out = compile(&[
        ("add.ac", ADD),
        ("a.add.ac", "action a.add:\ninterface add:\n"),
        (
            "b.add.wf",
            "workflow b.add:\ninterface add:\nwfomap:\n\t<counter>\ndo:\n\tcall add:\n\t\t\
             counter = a.counter\n\tinto:\n\t\t<counter>\n",
        ),
        ("adder.wf", &adder("a.add, b.add", "<*>")),
    ]);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let m = &out
        .units
        .iter()
        .find(|u| u.model.name == "adder")
        .unwrap()
        .model;
    let switch = m
        .tasks
        .iter()
        .find(|t| t.callee == Callee::System(SystemAction::Switch))
        .expect("a switch on the callee's name");
    let whens: Vec<(&str, &Callee)> = switch
        .edges
        .iter()
        .map(|e| {
            let to = m.tasks.iter().find(|t| t.id == e.to).unwrap();
            (e.when.as_str(), &to.callee)
        })
        .collect();
    assert!(
        matches!(whens.as_slice(), [("a.add", Callee::Named { name: a, .. }), ("b.add", Callee::Named { name: b, .. })] if a == "a.add" && b == "b.add"),
        "{whens:?}"
    );
    // the default edge raises the error
    let other = m.tasks.iter().find(|t| Some(t.id) == switch.next).unwrap();
    assert_eq!(other.callee, Callee::System(SystemAction::RaiseError));
    // `<*>` copies the inputs the interface declares
    let call = m.tasks.iter().find(|t| t.id == switch.edges[0].to).unwrap();
    let imap = serde_json::to_value(&call.attributes.imap).unwrap();
    assert_eq!(
        imap,
        serde_json::json!([{"copy": {"from": "v", "to": "i", "names": ["counter", "step"]}}])
    );
}

#[test]
fn a_candidate_without_the_interface_is_refused_and_an_unknown_one_reported_once() {
    let out = compile(&[
        ("add.ac", ADD),
        (
            "x.add.ac",
            "action x.add:\nin:\n\tother number\nout:\n\tcounter number\n",
        ),
        ("a.add.ac", "action a.add:\ninterface add:\n"),
        (
            "adder.wf",
            &adder("a.add, x.add, y.add", "counter = v.nothing"),
        ),
    ]);
    let got: Vec<(&str, u32, u32)> = out
        .diagnostics
        .iter()
        .map(|d| (d.code, d.span.line, d.span.col))
        .collect();
    assert_eq!(
        got.iter().filter(|(c, ..)| *c == "JC0223").count(),
        1,
        "{got:?}"
    );
    assert_eq!(
        got.iter().filter(|(c, ..)| *c == "JC0201").count(),
        1,
        "{got:?}"
    );
    // the imap is the same for every candidate: its mistake is reported once
    assert_eq!(
        got.iter().filter(|(c, ..)| *c == "JC0205").count(),
        1,
        "{got:?}"
    );
    let iface = out.diagnostics.iter().find(|d| d.code == "JC0223").unwrap();
    assert_eq!(
        iface.message,
        "action `x.add` does not have the inputs and outputs of interface `add`"
    );
}
