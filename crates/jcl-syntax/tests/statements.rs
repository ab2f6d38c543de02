//! Statements rule by rule: every form, its companion blocks, and the errors of misplaced or
//! missing parts.
#![allow(clippy::unwrap_used)]

mod common;
use common::{assigns, err, sexp, stmt, stmts, target, wf};
use jcl_syntax::ast::{FlowKind, StmtKind, Unsubscribe};

#[test]
fn call_with_imap_and_into() {
    let StmtKind::Call {
        callee, imap, into, ..
    } = stmt("call add:\n\tcounter = a.input\n\tstep = 3\ninto:\n\tthing = o.counter")
    else {
        panic!()
    };
    assert_eq!(callee.text, "add");
    assert!(!callee.quoted);
    assert_eq!(assigns(&imap), ["counter = a.input", "step = 3"]);
    let into = into.unwrap();
    assert_eq!(into.span.line, 6);
    assert_eq!(assigns(&into.items), ["thing = o.counter"]);
}

#[test]
fn call_names_dotted_and_quoted() {
    let StmtKind::Call {
        callee, imap, into, ..
    } = stmt("call dns.configure:")
    else {
        panic!()
    };
    assert_eq!(callee.text, "dns.configure");
    assert!(imap.is_empty() && into.is_none());
    let StmtKind::Call { callee, .. } = stmt("call \"prov.get_ip_list\":\n\t<rid>") else {
        panic!()
    };
    assert_eq!(
        (callee.text.as_str(), callee.quoted),
        ("prov.get_ip_list", true)
    );
    let StmtKind::Call { callee, .. } = stmt("call 'odd name \\'x\\'':") else {
        panic!()
    };
    assert_eq!(callee.text, "odd name 'x'");
}

#[test]
fn eval_and_let() {
    for kw in ["eval", "let"] {
        let StmtKind::Eval { assigns: a } = stmt(&format!("{kw}:\n\tx = 1\n\tv.y .= 'a'")) else {
            panic!()
        };
        assert_eq!(assigns(&a), ["x = 1", "v.y .= \"a\""]);
    }
}

#[test]
fn every_assignment_operator_and_target() {
    let StmtKind::Eval { assigns: a } = stmt(
        "eval:\n\tx = 1\n\tx .= 1\n\tx ,= 1\n\tx += 1\n\tx -= 1\n\tx *= 1\n\tx /= 1\n\tx //= 1\n\tx ||= 1\n\
         \tv.x = 1\n\ti.a.b = 1\n\tv.list[0] = 1\n\to.x = 1\n\tt.y = 1\n\tfoo.bar = 1\n\tv[0] = 1\n\
         \t<x>\n\t<a,b>\n\t< a , b >\n\t<*>",
    ) else {
        panic!()
    };
    assert_eq!(
        assigns(&a),
        [
            "x = 1",
            "x .= 1",
            "x ,= 1",
            "x += 1",
            "x -= 1",
            "x *= 1",
            "x /= 1",
            "x //= 1",
            "x ||= 1",
            "v.x = 1",
            "i.a.b = 1",
            "v.list[0] = 1",
            "o.x = 1",
            "t.y = 1",
            "foo.bar = 1",
            "v[0] = 1",
            "<x>",
            "<a,b>",
            "<a,b>",
            "<*>"
        ]
    );
    let jcl_syntax::ast::AssignKind::Set { target: t, .. } = &a[0].kind else {
        panic!()
    };
    assert_eq!((t.ns, target(t)), (None, "x".to_owned()));
}

#[test]
fn assignments_among_statements_form_an_eval() {
    let s = stmts("v.log = 'x'\nn += 1\nreturn\nlabel = 'a label variable'");
    assert_eq!(s.len(), 3);
    let StmtKind::Eval { assigns: a } = &s[0].kind else {
        panic!()
    };
    assert_eq!(assigns(a), ["v.log = \"x\"", "n += 1"]);
    assert!(matches!(s[1].kind, StmtKind::Return));
    assert!(matches!(s[2].kind, StmtKind::Eval { .. }));
}

#[test]
fn if_elsif_else() {
    let StmtKind::If {
        branches,
        otherwise,
    } = stmt("if v.a:\n\treturn\nelsif v.b:\n\treturn\nelsif v.c:\n\treturn\nelse:\n\treturn")
    else {
        panic!()
    };
    assert_eq!(branches.len(), 3);
    assert_eq!(sexp(&branches[2].cond), "v.c");
    assert_eq!(branches[2].span.line, 7);
    assert_eq!(otherwise.unwrap().items.len(), 1);
    let StmtKind::If {
        branches,
        otherwise,
    } = stmt("if v.a:\n\treturn")
    else {
        panic!()
    };
    assert_eq!(branches.len(), 1);
    assert!(otherwise.is_none());
}

#[test]
fn while_loop() {
    let StmtKind::While { cond, body } = stmt("while !v.thing or v.thing < 10:\n\treturn") else {
        panic!()
    };
    assert_eq!(sexp(&cond), "(|| (! v.thing) (< v.thing 10))");
    assert_eq!(body.len(), 1);
}

#[test]
fn repeat_until() {
    let StmtKind::Repeat {
        body,
        until,
        until_span,
    } = stmt("repeat:\n\tn += 1\nuntil v.n >= 3")
    else {
        panic!()
    };
    assert_eq!(body.len(), 1);
    assert_eq!(sexp(&until), "(>= v.n 3)");
    assert_eq!((until_span.line, until_span.col), (5, 2));
    let d = err(&wf("repeat:\n\treturn\nreturn"));
    assert_eq!(d.code, "JC0118");
}

#[test]
fn case_with_sibling_or_nested_branches() {
    for body in [
        "case a.input:\nwhen \"foo\":\n\treturn\nwhen bar, baz, 42:\n\treturn\nelse:\n\treturn",
        "case a.input:\n\twhen \"foo\":\n\t\treturn\n\twhen bar, baz, 42:\n\t\treturn\n\telse:\n\t\treturn",
    ] {
        let StmtKind::Case {
            value,
            whens,
            otherwise,
        } = stmt(body)
        else {
            panic!()
        };
        assert_eq!(sexp(&value), "a.input");
        let labels: Vec<Vec<(&str, bool)>> = whens
            .iter()
            .map(|w| w.labels.iter().map(|l| (l.text.as_str(), l.quoted)).collect())
            .collect();
        assert_eq!(
            labels,
            [vec![("foo", true)], vec![("bar", false), ("baz", false), ("42", false)]]
        );
        assert!(otherwise.is_some());
    }
    assert_eq!(err(&wf("case v.x:\nreturn")).code, "JC0118");
    assert_eq!(
        err(&wf("case v.x:\n\twhen a:\n\t\treturn\n\treturn")).code,
        "JC0101"
    );
}

#[test]
fn try_catch() {
    let StmtKind::Try { body, catch } =
        stmt("try:\n\tcall x:\ncatch:\n\tv.log = e._error.msg\n\traise_error 'failed'")
    else {
        panic!()
    };
    assert_eq!(body.len(), 1);
    assert_eq!(catch.items.len(), 2);
    assert_eq!(err(&wf("try:\n\treturn\nreturn")).code, "JC0118");
}

#[test]
fn simple_statements() {
    let StmtKind::RaiseError { msg } = stmt("raise_error 'cannot ' . a.domain") else {
        panic!()
    };
    assert_eq!(sexp(&msg), "(. \"cannot \" a.domain)");
    let StmtKind::Goto { label } = stmt("goto top") else {
        panic!()
    };
    assert_eq!(label.text, "top");
    let StmtKind::Label { name } = stmt("label top") else {
        panic!()
    };
    assert_eq!(name.text, "top");
    assert!(matches!(stmt("return"), StmtKind::Return));
    let StmtKind::Sleep { interval } = stmt("sleep '5 seconds'") else {
        panic!()
    };
    assert_eq!(sexp(&interval), "\"5 seconds\"");
}

#[test]
fn assert_with_inline_or_indented_message() {
    let StmtKind::Assert { cond, msg } = stmt("assert v.n > 0: 'n must be positive'") else {
        panic!()
    };
    assert_eq!(
        (sexp(&cond), sexp(&msg)),
        ("(> v.n 0)".into(), "\"n must be positive\"".into())
    );
    let StmtKind::Assert { msg, .. } = stmt("assert defined(v.n):\n\t'n is ' . 'missing'") else {
        panic!()
    };
    assert_eq!(sexp(&msg), "(. \"n is \" \"missing\")");
    assert_eq!(err(&wf("assert v.n:")).code, "JC0103");
    assert_eq!(err(&wf("assert v.n:\n\t'a'\n\t'b'")).code, "JC0119");
}

#[test]
fn events() {
    let StmtKind::Subscribe { imap } = stmt("subscribe:\n\tname = 'ev'\n\tmask = object('a', 1)")
    else {
        panic!()
    };
    assert_eq!(assigns(&imap), ["name = \"ev\"", "mask = object(\"a\", 1)"]);
    let StmtKind::Unsubscribe(Unsubscribe::Name(n)) = stmt("unsubscribe ev") else {
        panic!()
    };
    assert_eq!(n.text, "ev");
    let StmtKind::Unsubscribe(Unsubscribe::Imap(imap)) = stmt("unsubscribe:\n\tname = v.sub")
    else {
        panic!()
    };
    assert_eq!(assigns(&imap), ["name = v.sub"]);
    let StmtKind::RaiseEvent { imap } = stmt("raise_event:\n\tevent = object('x', 1)") else {
        panic!()
    };
    assert_eq!(imap.len(), 1);
    let StmtKind::WaitForEvent { imap, into } =
        stmt("wait_for_event:\n\tevents = array('ev')\n\ttimeout = 10\ninto:\n\tev = o.event")
    else {
        panic!()
    };
    assert_eq!(imap.len(), 2);
    assert_eq!(assigns(&into.unwrap().items), ["ev = o.event"]);
    assert_eq!(err(&wf("subscribe:")).code, "JC0103");
}

#[test]
fn locks() {
    let StmtKind::Lock { locktype, value } = stmt("lock zoneid a.zoneid") else {
        panic!()
    };
    assert_eq!(
        (locktype.text.as_str(), sexp(&value)),
        ("zoneid", "a.zoneid".into())
    );
    let StmtKind::Unlock { locktype, value } = stmt("unlock foo 'bar'") else {
        panic!()
    };
    assert_eq!(
        (locktype.text.as_str(), sexp(&value)),
        ("foo", "\"bar\"".into())
    );
    for (wait, want) in [
        ("yes", "wait = true"),
        ("no", "wait = false"),
        ("'5 minutes'", "wait = \"5 minutes\""),
        ("v.wait", "wait = v.wait"),
    ] {
        let StmtKind::WaitForLock { locktype, imap } = stmt(&format!(
            "wait_for_lock foo:\n\tvalue = 'bar'\n\twait = {wait}"
        )) else {
            panic!()
        };
        assert_eq!(locktype.text, "foo");
        assert_eq!(
            assigns(&imap),
            ["value = \"bar\"".to_owned(), want.to_owned()]
        );
    }
    // `yes` is only a keyword after `wait =` in a wait_for_lock block.
    assert_eq!(err(&wf("eval:\n\twait = yes")).code, "JC0111");
}

#[test]
fn split_with_callflow_and_map() {
    let StmtKind::Split { flows } = stmt(
        "split:\n\tcallflow vhost.create:\n\t\tdomain = a.domain\n\tcallflow mysql.create:\n\tinto:\n\t\tdb = o.database\n\
         \tmap child using a.list:\n\t\titem = e._v\n\tcollect:\n\t\tall ,= o.result",
    ) else {
        panic!()
    };
    assert_eq!(flows.len(), 3);
    let FlowKind::Callflow { callee, imap, into } = &flows[0].kind else {
        panic!()
    };
    assert_eq!(
        (callee.text.as_str(), imap.len(), into.is_none()),
        ("vhost.create", 1, true)
    );
    let FlowKind::Callflow { into, .. } = &flows[1].kind else {
        panic!()
    };
    assert_eq!(assigns(&into.as_ref().unwrap().items), ["db = o.database"]);
    let FlowKind::Map(m) = &flows[2].kind else {
        panic!()
    };
    assert_eq!(
        (m.callee.text.as_str(), sexp(&m.using)),
        ("child", "a.list".into())
    );
    assert_eq!(
        assigns(&m.collect.as_ref().unwrap().items),
        ["all ,= o.result"]
    );
    assert_eq!(err(&wf("split:\n\treturn")).code, "JC0101");
    assert_eq!(err(&wf("split:")).code, "JC0103");
}

#[test]
fn standalone_map_and_detachflow() {
    let StmtKind::Map(m) =
        stmt("map calladd using a.input:\n\tinput = tonumber(e._v)\n\tstep = e._i\ncollect:\n\toutput += o.output")
    else {
        panic!()
    };
    assert_eq!(m.imap.len(), 2);
    assert!(m.collect.is_some());
    let StmtKind::Detachflow { callee, imap } = stmt("detachflow cleanup:\n\tid = v.id") else {
        panic!()
    };
    assert_eq!((callee.text.as_str(), imap.len()), ("cleanup", 1));
}

#[test]
fn interface_dispatch() {
    let StmtKind::Dispatch {
        interface,
        candidates,
        target,
        call_span,
        imap,
        into,
    } = stmt(
        "interface backends.api:\n\tbackend.one, backend.two,\n\t'backend.three'\ncall 'backend.' . v.kind:\n\t<name>\ninto:\n\t<result>",
    )
    else {
        panic!()
    };
    assert_eq!(interface.text, "backends.api");
    let c: Vec<&str> = candidates.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(c, ["backend.one", "backend.two", "backend.three"]);
    assert_eq!(sexp(&target), "(. \"backend.\" v.kind)");
    assert_eq!(call_span.line, 6);
    assert_eq!((imap.len(), into.unwrap().items.len()), (1, 1));
    assert_eq!(err(&wf("interface x:\n\ta.b\nreturn")).code, "JC0118");
}

#[test]
fn misplaced_companions() {
    for (body, word) in [
        ("else:\n\treturn", "else"),
        ("elsif v.x:\n\treturn", "elsif"),
        ("until v.x", "until"),
        ("catch:\n\treturn", "catch"),
        ("into:\n\tx = o.x", "into"),
        ("collect:\n\tx = o.x", "collect"),
        ("when a:\n\treturn", "when"),
        ("callflow x:", "callflow"),
    ] {
        let d = err(&wf(body));
        assert_eq!(d.code, "JC0117", "{word}: {d}");
        assert_eq!((d.span.line, d.span.col), (3, 2));
    }
    // A companion must be at the statement's indentation.
    let d = err(&wf("call x:\n\ta = 1\n\tinto:\n\t\tb = o.b"));
    assert_eq!(d.code, "JC0117", "{d}");
}

#[test]
fn blocks_required_or_forbidden() {
    for body in [
        "if v.x:",
        "while v.x:",
        "repeat:\nuntil v.x",
        "try:\ncatch:\n\treturn",
        "eval:",
    ] {
        assert_eq!(err(&wf(body)).code, "JC0103", "{body}");
    }
    for body in [
        "return\n\treturn",
        "goto x\n\treturn",
        "sleep 1\n\treturn",
        "lock a 1\n\tx = 1",
    ] {
        assert_eq!(err(&wf(body)).code, "JC0104", "{body}");
    }
}

#[test]
fn unknown_statements() {
    let d = err(&wf("cal add:"));
    assert_eq!(
        (d.code, d.hint.as_deref()),
        ("JC0105", Some("did you mean `call`?"))
    );
    let d = err(&wf("frobnicate the thing"));
    assert_eq!(d.code, "JC0105");
    assert!(d.hint.unwrap().starts_with("the statements are `call`"));
    let d = err(&wf("wfomap:\n\tx = 1"));
    assert_eq!(d.code, "JC0105");
    let d = err(&wf("x = = 1"));
    assert_eq!(
        (d.code, d.message.as_str()),
        ("JC0101", "expected an expression after `x =`, found `=`")
    );
}
