//! The original JobCenter's constructs, rule by rule: trailing `;`, `interface NAME:` as a
//! header line, `object(k: v)`, quoted path keys, bare-word lock values, the block forms of
//! `raise_error:` and `sleep:`, and embedded Perl translated into the same syntax tree (with
//! JC0109 at the first token outside the subset).
#![allow(clippy::unwrap_used)]

mod common;
use common::{assigns, err, expr, expr_err, ok, sexp, stmt, stmts, wf};
use jcl_syntax::ast::{AssignKind, ExprKind, StmtKind};
use serde_json::json;

#[test]
fn a_semicolon_may_end_declarations_assignments_and_settings() {
    let f = ok(
        "workflow w:\nin:\n\tx string;\n\ty number 1;\nout:\n\tz string optional;\n\
                config:\n\tmax_steps = 20;\nlocks:\n\tfoo bar;\nwfomap:\n\tz = v.z;\n\t<y>;\ndo:\n\
                \tcall add:\n\t\tcounter = 1;\n\t\tstep = 2;\n\tinto:\n\t\t<counter>;\n\
                \tcounter = 1;\n",
    );
    let inputs = f.inputs.unwrap().items;
    assert_eq!(inputs[1].default.as_ref().unwrap().value, json!(1));
    assert!(f.outputs.unwrap().items[0].optional);
    assert_eq!(f.config.unwrap().items[0].value.value, json!(20));
    assert_eq!(assigns(&f.wfomap.unwrap().items), ["z = v.z", "<y>"]);
    let body = f.body.unwrap().items;
    let StmtKind::Call { imap, into, .. } = &body[0].kind else {
        panic!()
    };
    assert_eq!(assigns(imap), ["counter = 1", "step = 2"]);
    assert_eq!(assigns(&into.as_ref().unwrap().items), ["<counter>"]);
    assert!(matches!(body[1].kind, StmtKind::Eval { .. }));
    // one, at the end: two is a syntax error, and so is one inside an expression
    assert_eq!(err(&wf("x = 1;;")).code, "JC0101");
    assert_eq!(err(&wf("x = (1;)")).code, "JC0101");
    assert_eq!(
        err("workflow w:\nin:\n\tx string ; y number\n").code,
        "JC0101"
    );
}

#[test]
fn interface_name_colon_is_a_header_line() {
    let f = ok("action a.add:\ninterface add:\n");
    let i = f.interface.unwrap();
    assert_eq!((i.items.text.as_str(), i.span.line), ("add", 2));
    let f = ok("action b.add:\ninterface \"add\":\nin:\n\textra string\n");
    assert_eq!(f.interface.unwrap().items.text, "add");
    // the section form still works, and the two together are a duplicate
    assert_eq!(
        ok("action a:\ninterface: add\n")
            .interface
            .unwrap()
            .items
            .text,
        "add"
    );
    let d = err("action a:\ninterface add:\ninterface: add\n");
    assert_eq!((d.code, d.span.line), ("JC0107", 3));
    let d = err("action a:\ninterface add:\n\tin:\n");
    assert_eq!(d.code, "JC0104");
    let d = err("action a:\ninterface add\n");
    assert_eq!((d.code, d.span.line), ("JC0101", 2));
}

#[test]
fn object_members_may_be_written_with_colons() {
    assert_eq!(expr("object(\"foo\": \"bar\")"), "object(\"foo\", \"bar\")");
    assert_eq!(
        expr("object(a.in: \"bar\", \"blah\": 1)"),
        "object(a.in, \"bar\", \"blah\", 1)"
    );
    assert_eq!(expr("object('a', 1, 'b': 2)"), "object(\"a\", 1, \"b\", 2)");
    // a colon after a value, or in another function, is an error at the colon
    let d = expr_err("object('a': 1: 2)");
    assert_eq!((d.code, d.span.col), ("JC0101", 20));
    assert!(d.hint.unwrap().contains("a colon follows a key"));
    let d = expr_err("array('a': 1)");
    assert_eq!((d.code, d.span.col), ("JC0101", 16));
    assert!(d.message.contains("`array`"), "{}", d.message);
}

#[test]
fn quoted_keys_continue_a_path() {
    assert_eq!(expr("e.'_error'.class"), "e._error.class");
    assert_eq!(expr("v.\"2nd\""), "v.2nd");
    assert_eq!(expr("v.m.'some key'[0]"), "v.m.some key[0]");
    assert_eq!(expr("v.'it\\'s'"), "v.it's");
    // and in targets, also as the first key
    let StmtKind::Eval { assigns: a } = stmt("eval:\n\t'2-factor' = v.\"2nd\"\n\tv.'x y' = 1")
    else {
        panic!()
    };
    assert_eq!(assigns(&a), ["2-factor = v.2nd", "v.x y = 1"]);
    let AssignKind::Set { target, .. } = &a[1].kind else {
        panic!()
    };
    assert_eq!(target.ns, Some(jcl::Ns::V));
    // a space ends the path: then `.` concatenates
    assert_eq!(expr("v.a . 'x'"), "(. v.a \"x\")");
    assert_eq!(expr_err("v.'unterminated").code, "JC0110");
}

#[test]
fn bare_words_are_lock_values() {
    let f = ok(
        "workflow w:\nlocks:\n\tfoo bar\n\tabc def inherit\n\tschloss schlüssel\n\
                \tslot _ manual\n\tzone a.zone manual inherit\n\tq 'quoted'\n",
    );
    let locks = f.locks.unwrap().items;
    let got: Vec<(String, Option<String>, bool, bool)> = locks
        .iter()
        .map(|l| {
            (
                l.locktype.text.clone(),
                l.value.as_ref().map(sexp),
                l.manual,
                l.inherit,
            )
        })
        .collect();
    let s = |x: &str| Some(x.to_owned());
    assert_eq!(
        got,
        vec![
            ("foo".into(), s("\"bar\""), false, false),
            ("abc".into(), s("\"def\""), false, true),
            ("schloss".into(), s("\"schlüssel\""), false, false),
            ("slot".into(), None, true, false),
            ("zone".into(), s("a.zone"), true, true),
            ("q".into(), s("\"quoted\""), false, false),
        ]
    );
    let bar = locks[0].value.as_ref().unwrap();
    assert_eq!((bar.span.line, bar.span.col), (3, 6));
    // a word followed by more than flags is not a value
    let d = err("workflow w:\nlocks:\n\tfoo bar baz\n");
    assert_eq!((d.code, d.span.col), ("JC0101", 10));
}

#[test]
fn raise_error_and_sleep_take_a_block_with_their_one_argument() {
    let StmtKind::RaiseError { msg } = stmt("raise_error:\n\tmsg = \"let's raise an error\"")
    else {
        panic!()
    };
    assert_eq!(sexp(&msg), "\"let's raise an error\"");
    assert_eq!(msg.span.line, 4);
    let StmtKind::RaiseError { msg } = stmt("raise_error:\n\ti.msg = 'x' . a.y;") else {
        panic!()
    };
    assert_eq!(sexp(&msg), "(. \"x\" a.y)");
    let StmtKind::Sleep { interval } = stmt("sleep:\n\ttimeout = \"11.55 seconds\"") else {
        panic!()
    };
    assert_eq!(sexp(&interval), "\"11.55 seconds\"");
    // the one-line forms are unchanged
    assert!(matches!(stmt("sleep '1 second'"), StmtKind::Sleep { .. }));
    assert!(matches!(
        stmt("raise_error 'x'"),
        StmtKind::RaiseError { .. }
    ));
    // near misses
    for (body, code, line) in [
        ("raise_error:", "JC0103", 3),
        ("raise_error:\n\tmessage = 'x'", "JC0119", 4),
        ("raise_error:\n\tmsg = 'x'\n\tclass = 'y'", "JC0119", 4),
        ("raise_error:\n\tmsg .= 'x'", "JC0119", 4),
        ("sleep:\n\tmsg = '1 second'", "JC0119", 4),
        ("raise_error 'x'\n\tmsg = 'y'", "JC0104", 4),
    ] {
        let d = err(&wf(body));
        assert_eq!((d.code, d.span.line), (code, line), "{body}: {}", d.message);
    }
}

#[test]
fn wait_for_event_may_leave_out_events() {
    let StmtKind::WaitForEvent { imap, into } =
        stmt("wait_for_event:\n\ttimeout = 2\ninto:\n\t<event>")
    else {
        panic!()
    };
    assert_eq!(assigns(&imap), ["timeout = 2"]);
    assert_eq!(assigns(&into.unwrap().items), ["<event>"]);
}

#[test]
fn perl_hash_elements_and_whole_copies_are_assignments() {
    let StmtKind::Call { imap, into, .. } =
        stmt("call add:\n\t[[ %i = %a ]]\ninto:\n\t[[ $v->{counter} = $o->{sum}; $v{n} .= 'x' ]]")
    else {
        panic!()
    };
    assert_eq!(assigns(&imap), ["%i = %a"]);
    assert_eq!(
        assigns(&into.unwrap().items),
        ["v.counter = o.sum", "v.n .= \"x\""]
    );
    let f = ok(
        "workflow w:\nwfomap: [[ $o{output} = $v{thing}; ]]\ndo:\n\t[[ $i{input} = $a{input} ]]\n",
    );
    assert_eq!(assigns(&f.wfomap.unwrap().items), ["o.output = v.thing"]);
    let StmtKind::Eval { assigns: a } = &f.body.unwrap().items[0].kind else {
        panic!()
    };
    assert_eq!(assigns(a), ["i.input = a.input"]);
    // every assignment operator, and a block spanning lines below `eval:`
    let s = stmts(
        "eval:\n[[\n\t$v{a} = 1; $v{b} += 2; $v{c} -= 3; $v{d} *= 4;\n\t$v{e} /= 5; $v{f} //= 6; \
         $v{g} ||= 7;\n]]\nreturn",
    );
    assert_eq!(s.len(), 2);
    let StmtKind::Eval { assigns: a } = &s[0].kind else {
        panic!()
    };
    assert_eq!(
        assigns(a),
        [
            "v.a = 1",
            "v.b += 2",
            "v.c -= 3",
            "v.d *= 4",
            "v.e /= 5",
            "v.f //= 6",
            "v.g ||= 7"
        ]
    );
    assert_eq!(a[5].span.line, 6);
}

#[test]
fn perl_expressions_translate_with_perl_precedence() {
    for (perl, jcl) in [
        ("'sleutel'", "\"sleutel\""),
        ("\"a\\tb\"", "\"a\\tb\""),
        ("'it\\'s \\n'", "\"it's \\\\n\""),
        ("42", "42"),
        ("1.5e3", "1500.0"),
        ("0x1A", "26"),
        ("-3", "-3"),
        ("$a{x} + $v{y} * 2", "(+ a.x (* v.y 2))"),
        ("$a{x} . ' ' . $a{y}", "(. (. a.x \" \") a.y)"),
        ("$v{n} ** 2 ** 3", "(** v.n (** 2 3))"),
        ("-$v{n} ** 2", "(neg (** v.n 2))"),
        ("$v{a} % 3 x 2", "(x (% v.a 3) 2)"),
        (
            "$v{a} < 10 && $v{b} eq 'x' || !$v{c}",
            "(|| (&& (< v.a 10) (eq v.b \"x\")) (! v.c))",
        ),
        ("$v{a} // 'd'", "(// v.a \"d\")"),
        ("not $v{a} and $v{b} or $v{c}", "(|| (&& (! v.a) v.b) v.c)"),
        ("$v{a} xor $v{b}", "(xor v.a v.b)"),
        ("($v{a} + 1) * 2", "(* (+ v.a 1) 2)"),
        ("$e{_error}{msg}", "e._error.msg"),
        ("$v->{list}[0]", "v.list[0]"),
        ("$v->{list}->[-1]", "v.list[-1]"),
        ("$v{'odd key'}", "v.odd key"),
        ("$v{$a{k}}", "v[a.k]"),
        ("$a{x} ge 'm' ", "(ge a.x \"m\")"),
        ("$a{x} != 2;", "(!= a.x 2)"),
    ] {
        assert_eq!(expr(&format!("[[ {perl} ]]")), jcl, "{perl}");
    }
    // a Perl block is one operand of a JCL expression
    assert_eq!(expr("[[ $a{x} ]] . '!'"), "(. a.x \"!\")");
    // conditions, case values, lock values, sleep and raise_error take one
    let StmtKind::If { branches, .. } = stmt("if [[ $v{n} > 2 ]]:\n\treturn") else {
        panic!()
    };
    assert_eq!(sexp(&branches[0].cond), "(> v.n 2)");
    let StmtKind::Unlock { value, .. } = stmt("unlock slot [[ 'sleutel' ]]") else {
        panic!()
    };
    assert_eq!(sexp(&value), "\"sleutel\"");
    let StmtKind::Repeat { until, .. } = stmt("repeat:\n\treturn\nuntil [[ $v{thing} > 100 ]]")
    else {
        panic!()
    };
    assert_eq!(sexp(&until), "(> v.thing 100)");
    let ExprKind::Path(p) = &({
        let StmtKind::Case { value, .. } = stmt("case [[ $v{type} ]]:\nwhen foo:\n\treturn") else {
            panic!()
        };
        value
    })
    .kind
    else {
        panic!()
    };
    assert_eq!((p.span.line, p.span.col), (3, 10));
}

#[test]
fn perl_outside_the_subset_is_jc0109_at_the_token_with_the_jcl_way() {
    for (perl, col, hint) in [
        ("$v{x} =~ /a/", 16, "`~`"),
        ("lc($v{x})", 10, "JCL function"),
        ("$counter < 10", 10, "`v.counter`"),
        ("\"got $a{in}\"", 15, "concatenate"),
        ("@{$v{ips}}", 10, "array(…)"),
        ("$v{a} ? 1 : 2", 16, "`if C:`"),
        ("$a", 10, "`a.key`"),
        ("$a[0]", 10, "`a.key`"),
        ("%a", 10, "copied"),
        ("if ($v{a}) { 1 }", 10, "`if C:`"),
        ("$v{a} <=> 1", 16, "JCL"),
        ("bareword", 10, "'bareword'"),
        ("$x{a}", 10, "namespaces"),
        ("", 11, "JCL"),
    ] {
        let d = expr_err(&format!("[[ {perl} ]]"));
        assert_eq!(
            (d.code, d.span.line, d.span.col),
            ("JC0109", 4, col),
            "{perl}: {}",
            d.message
        );
        let h = d.hint.unwrap();
        assert!(h.contains(hint), "{perl}: {h}");
    }
    let d = expr_err("[[ $v{a} == 1 == 2 ]]");
    assert_eq!(d.code, "JC0113");
    // in an assignment block: what is not an assignment, or a copy into a bad form
    for (body, col) in [
        ("eval:\n\t[[ $v{a} ]]", 12),
        ("eval:\n\t[[ $v{a} = 1 $v{b} = 2 ]]", 16),
        ("eval:\n\t[[ my $x = 1 ]]", 6),
        ("eval:\n\t[[ %v = $a{x} ]]", 11),
        ("eval:\n\t[[ push @{$v{l}}, 1 ]]", 6),
        ("eval:\n\t[[ ]]", 5),
    ] {
        let d = err(&wf(body));
        assert_eq!(
            (d.code, d.span.col),
            ("JC0109", col),
            "{body}: {}",
            d.message
        );
    }
    // nesting is bounded
    let deep = format!("[[ {}1{} ]]", "(".repeat(100), ")".repeat(100));
    assert_eq!(expr_err(&deep).code, "JC0116");
    assert_eq!(
        expr_err(&format!("[[ {}1 ]]", "!".repeat(100))).code,
        "JC0116"
    );
    // an unterminated block, and a nested array in a literal
    let d = err(&wf("eval:\n\tx = [[ $a{x}"));
    assert_eq!((d.code, d.span.line), ("JC0110", 4));
    let d = err("workflow w:\nconfig:\n\tx = [[1], [2]]\n");
    assert_eq!(d.code, "JC0109");
    assert!(d.hint.unwrap().contains("[ [1], [2] ]"));
}
