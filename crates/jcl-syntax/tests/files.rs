//! Files, sections, comments and indentation: headers, every section and its line forms,
//! literals of config values, tabs as 8 columns, comments, and Perl blocks.
#![allow(clippy::unwrap_used)]

mod common;
use common::{assigns, err, ok, sexp, stmts};
use jcl_syntax::ast::{FileKind, StmtKind};
use serde_json::json;

#[test]
fn headers() {
    for (src, kind, name) in [
        ("workflow calltest:\n", FileKind::Workflow, "calltest"),
        ("action add:\n", FileKind::Action, "add"),
        ("procedure jc.do_it:\n", FileKind::Procedure, "jc.do_it"),
        (
            "workflow \"prov.vhost_event\":\n",
            FileKind::Workflow,
            "prov.vhost_event",
        ),
        ("workflow 'a b' :\n", FileKind::Workflow, "a b"),
    ] {
        let f = ok(src);
        assert_eq!((f.kind, f.name.text.as_str()), (kind, name), "{src}");
    }
    assert_eq!(err("").code, "JC0108");
    assert_eq!(err("# only a comment\n").code, "JC0108");
    assert_eq!(err("in:\n\tx string\n").code, "JC0108");
    let d = err("workflow a:\nworkflow b:\n");
    assert_eq!((d.code, d.span.line), ("JC0108", 2));
    assert_eq!(d.labels[0].span.line, 1);
    let d = err("workflow a\n");
    assert_eq!(d.message, "expected `:` after `workflow a`");
}

#[test]
fn params() {
    let f = ok("workflow w:\nin:\n\tdomain string\n\tplan string 'basic'\n\tn integer -3\n\tm object {a: [1, 2]}\n\
                \t\"odd name\" string\nout:\n\tsite_url string\n\tlog string optional\n");
    let inputs = f.inputs.unwrap();
    assert_eq!(inputs.span.line, 2);
    let p: Vec<(String, String, Option<serde_json::Value>, bool)> = inputs
        .items
        .iter()
        .map(|p| {
            (
                p.name.text.clone(),
                p.ty.text.clone(),
                p.default.as_ref().map(|d| d.value.clone()),
                p.optional,
            )
        })
        .collect();
    assert_eq!(
        p,
        [
            ("domain".into(), "string".into(), None, false),
            ("plan".into(), "string".into(), Some(json!("basic")), false),
            ("n".into(), "integer".into(), Some(json!(-3)), false),
            (
                "m".into(),
                "object".into(),
                Some(json!({"a": [1, 2]})),
                false
            ),
            ("odd name".into(), "string".into(), None, false),
        ]
    );
    let out = f.outputs.unwrap().items;
    assert!(!out[0].optional && out[1].optional);
    let f = ok("action a:\nenv:\n\tuser string\n");
    assert_eq!(f.env.unwrap().items[0].name.text, "user");
}

#[test]
fn settings_and_literals() {
    let f = ok("workflow w:\nconfig:\n\tmax_steps = 200, max_depth = 5\n\
                \tretry = {tries: 3, interval: '5 seconds', 'backoff': \"fixed\", jitter: true,}\n\
                \tfilter = ['a', 'b']\n\tarchive = '30 days'\nwfenv:\n\tcolour = 'blue'\n\tlimit = 0x10\n\tnothing = null\n\
                \tnested = [ [1, -2.5], {}, [] ]\n");
    let config: Vec<(String, serde_json::Value)> = f
        .config
        .unwrap()
        .items
        .into_iter()
        .map(|s| (s.key.text, s.value.value))
        .collect();
    assert_eq!(
        config,
        [
            ("max_steps".into(), json!(200)),
            ("max_depth".into(), json!(5)),
            (
                "retry".into(),
                json!({"tries": 3, "interval": "5 seconds", "backoff": "fixed", "jitter": true})
            ),
            ("filter".into(), json!(["a", "b"])),
            ("archive".into(), json!("30 days")),
        ]
    );
    let wfenv: Vec<serde_json::Value> = f
        .wfenv
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.value.value)
        .collect();
    assert_eq!(
        wfenv,
        [
            json!("blue"),
            json!(16),
            json!(null),
            json!([[1, -2.5], {}, []])
        ]
    );
    let d = err("workflow w:\nconfig:\n\tretry = {tries: 3 interval: 2}\n");
    assert_eq!(
        d.message,
        "expected `,` or `}` after `retry = {tries: 3`, found `interval`"
    );
    assert_eq!(
        err("workflow w:\nconfig:\n\tx = {a: 1, a: 2}\n").code,
        "JC0114"
    );
    assert_eq!(err("workflow w:\nconfig:\n\tx = v.y\n").code, "JC0101");
}

#[test]
fn role_interface_locks() {
    let f = ok("workflow w:\nrole: admin\ninterface:\n\tother.flow\nlocks:\n\tzoneid _ manual\n\
                \tworkflowlock 'prov.vhost_event'\n\taccount a.name manual inherit\n\tslot _ inherit manual\n");
    assert_eq!(f.role.unwrap().items.text, "admin");
    assert_eq!(f.interface.unwrap().items.text, "other.flow");
    let locks: Vec<(String, Option<String>, bool, bool)> = f
        .locks
        .unwrap()
        .items
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
    assert_eq!(
        locks,
        [
            ("zoneid".into(), None, true, false),
            (
                "workflowlock".into(),
                Some("\"prov.vhost_event\"".into()),
                false,
                false
            ),
            ("account".into(), Some("a.name".into()), true, true),
            ("slot".into(), None, true, true),
        ]
    );
    // `limit N` anywhere among the flags; a limit is digits only
    let f =
        ok("workflow w:\nlocks:\n\tslot _ manual limit 3\n\tzone a.z limit 12 inherit\n\tm 'x'\n");
    let limits: Vec<Option<u64>> = f
        .locks
        .unwrap()
        .items
        .iter()
        .map(|l| l.limit.map(|(n, _)| n))
        .collect();
    assert_eq!(limits, [Some(3), Some(12), None]);
    assert_eq!(err("workflow w:\nlocks:\n\tslot _ limit\n").code, "JC0101");
    assert_eq!(
        err("workflow w:\nlocks:\n\tslot _ limit -1\n").code,
        "JC0101"
    );
    assert_eq!(err("workflow w:\nrole:\n").code, "JC0103");
    assert_eq!(err("workflow w:\nrole:\n\ta\n\tb\n").code, "JC0119");
}

#[test]
fn schedules_on_one_line_or_with_their_settings_indented_below() {
    let f = ok(
        "workflow w:\nschedule:\n\tnightly: cron = '0 30 2 * * *', tz = 'Europe/Amsterdam', \
                missed = 'catchup', args = {input: 1},\n\
                \t'every minute':\n\t\tcron = \"0 * * * * *\"\n\t\tenabled = false, args = {}\n\
                \tboth: cron = '@daily'\n\t\ttz = 'UTC'\ndo:\n\treturn\n",
    );
    let section = f.schedule.unwrap();
    assert_eq!(section.span.line, 2);
    type Settings = Vec<(String, serde_json::Value)>;
    let got: Vec<(String, u32, Settings)> = section
        .items
        .iter()
        .map(|s| {
            (
                s.name.text.clone(),
                s.span.line,
                s.settings
                    .iter()
                    .map(|x| (x.key.text.clone(), x.value.value.clone()))
                    .collect(),
            )
        })
        .collect();
    let kv = |k: &str, v: serde_json::Value| (k.to_owned(), v);
    assert_eq!(
        got,
        [
            (
                "nightly".to_owned(),
                3,
                vec![
                    kv("cron", json!("0 30 2 * * *")),
                    kv("tz", json!("Europe/Amsterdam")),
                    kv("missed", json!("catchup")),
                    kv("args", json!({"input": 1})),
                ]
            ),
            (
                "every minute".to_owned(),
                4,
                vec![
                    kv("cron", json!("0 * * * * *")),
                    kv("enabled", json!(false)),
                    kv("args", json!({})),
                ]
            ),
            (
                "both".to_owned(),
                7,
                vec![kv("cron", json!("@daily")), kv("tz", json!("UTC"))]
            ),
        ]
    );
    // the settings' spans point at their keys' lines and columns
    let nightly = &section.items[0];
    assert_eq!(
        (
            nightly.settings[1].key.span.line,
            nightly.settings[1].key.span.col
        ),
        (3, 34)
    );
    // one schedule may follow the section's colon
    let f = ok("workflow w:\nschedule: tick: cron = '* * * * * *'\n");
    assert_eq!(f.schedule.unwrap().items[0].name.text, "tick");
    // errors: a schedule without settings, a missing colon, a setting that is not a literal,
    // the section twice
    let d = err("workflow w:\nschedule:\n\tnightly:\n");
    assert_eq!((d.code, d.span.line), ("JC0103", 3));
    assert_eq!(d.message, "the schedule `nightly` has no settings");
    let d = err("workflow w:\nschedule:\n\tnightly cron = '* * * * * *'\n");
    assert_eq!(d.code, "JC0101");
    assert_eq!(d.message, "expected `:` after `nightly`, found `cron`");
    let d = err("workflow w:\nschedule:\n\tn: cron = a.cron\n");
    assert_eq!((d.code, d.span.line, d.span.col), ("JC0101", 3, 12));
    let d = err("workflow w:\nschedule:\n\tn:\n\t\tcron\n");
    assert_eq!((d.code, d.span.line), ("JC0101", 4));
    let d = err("workflow w:\nschedule: a: cron = '@daily'\nschedule: b: cron = '@daily'\n");
    assert_eq!((d.code, d.span.line), ("JC0107", 3));
}

#[test]
fn wfomap_and_any_section_order() {
    let f = ok("workflow w:\ndo:\n\treturn\nwfomap:\n\t<result>\n\tlog = ifdef(v.log)\nout:\n\tresult string\n");
    assert_eq!(
        assigns(&f.wfomap.unwrap().items),
        ["<result>", "log = ifdef(v.log)"]
    );
    assert!(f.outputs.is_some() && f.body.is_some());
}

#[test]
fn sections_may_be_indented_under_the_header() {
    let f = ok("workflow w:\n    in:\n        x string\n    do:\n        return\n");
    assert_eq!(f.inputs.unwrap().items.len(), 1);
    assert_eq!(f.body.unwrap().items.len(), 1);
}

#[test]
fn section_errors() {
    let d = err("workflow w:\nin:\n\tx string\nin:\n\ty string\n");
    assert_eq!(
        (d.code, d.span.line, d.labels[0].span.line),
        ("JC0107", 4, 2)
    );
    let d = err("workflow w:\nconfg:\n\tx = 1\n");
    assert_eq!(
        (d.code, d.hint.as_deref()),
        ("JC0106", Some("did you mean `config`?"))
    );
    let d = err("workflow w:\ncall x:\n");
    assert_eq!(d.code, "JC0106");
    assert_eq!(d.hint.as_deref(), Some("indent it under `do:`"));
    let d = err("workflow w:\ndo: return\n");
    assert_eq!(d.code, "JC0101");
    assert_eq!(err("workflow w:\ndo:\n").code, "JC0103");
    assert_eq!(
        err("workflow w:\nin:\n\tx string\n\t\ty string\n").code,
        "JC0104"
    );
}

#[test]
fn tabs_count_as_eight_columns() {
    // A tab, 8 spaces and 2 spaces + tab are the same indentation.
    let s = stmts("eval:\n\tx = 1\n        y = 2\n  \tz = 3");
    let StmtKind::Eval { assigns: a } = &s[0].kind else {
        panic!()
    };
    assert_eq!(assigns(a), ["x = 1", "y = 2", "z = 3"]);
    // A tab is not 4 spaces.
    let d = err("workflow w:\ndo:\n\teval:\n\t\tx = 1\n\t    y = 2\n");
    assert_eq!((d.code, d.span.line), ("JC0102", 5));
    assert!(d.message.contains("indented 12 columns"), "{}", d.message);
    // Columns count characters: a tab is one.
    let d = err("workflow w:\ndo:\n\tcall add\n");
    assert_eq!((d.span.line, d.span.col), (3, 10));
}

#[test]
fn byte_order_mark() {
    let f = ok("\u{feff}workflow w:\ndo:\n\treturn\n");
    assert_eq!(f.name.text, "w");
}

#[test]
fn spaces_only_and_crlf() {
    let f = ok("workflow w:\r\nin:\r\n  x string\r\ndo:\r\n  eval:\r\n    y = 'a'\r\n");
    assert_eq!(f.inputs.unwrap().items[0].ty.text, "string");
    assert_eq!(f.body.unwrap().items.len(), 1);
}

#[test]
fn comments() {
    let f = ok("# leading comment\nworkflow w: # the header\n# between\nin:\n\tx string # a comment\n\
                \ty string 'has # in it' # then a comment\ndo:\n    # an indented comment at another depth\n\
                \treturn\n");
    let inputs = f.inputs.unwrap().items;
    assert_eq!(
        inputs[1].default.as_ref().unwrap().value,
        json!("has # in it")
    );
    let f = ok("workflow w:\n#[[ a block comment\n   spanning lines, with 'quotes' \"of\" both kinds\n\
                [[ and perl ]] and a # too\n#]]\ndo:\n\teval: #[[ inline #]]\n\t\tx = 1 #[[ to the\nend #]]\n");
    assert_eq!(f.body.unwrap().items.len(), 1);
    let d = err("workflow w:\n#[[ never closed\ndo:\n");
    assert_eq!((d.code, d.span.line), ("JC0110", 2));
}

#[test]
fn perl_outside_the_subset_is_rejected_at_its_token() {
    let d = err("workflow w:\nwfomap: [[ $o{output} = lc($v{thing}); ]]\n");
    assert_eq!((d.code, d.span.line, d.span.col), ("JC0109", 2, 25));
    let d = err("workflow w:\ndo:\n\tif [[ @{v{ips}} ]]:\n\t\treturn\n");
    assert_eq!((d.code, d.span.line, d.span.col), ("JC0109", 3, 8));
    // Not inside strings or comments.
    ok("workflow w:\ndo:\n\teval:\n\t\tx = '[[ fine ]]' # [[ fine ]]\n");
}

#[test]
fn unterminated_strings() {
    let d = err("workflow w:\ndo:\n\teval:\n\t\tx = 'abc\n\t\ty = 1\n");
    assert_eq!((d.code, d.span.line, d.span.col), ("JC0110", 4, 7));
    let d = err("workflow w:\ndo:\n\teval:\n\t\tx = \"abc");
    assert_eq!(d.code, "JC0110");
}

#[test]
fn spans_point_at_the_source() {
    let src = "workflow w:\ndo:\n\tcall add:\n\t\tcounter = a.input + 1\n";
    let f = ok(src);
    let s = &f.body.unwrap().items[0];
    assert_eq!(&src[s.span.start..s.span.end], "call add:");
    assert_eq!((s.span.line, s.span.col), (3, 2));
    let StmtKind::Call { callee, imap, .. } = &s.kind else {
        panic!()
    };
    assert_eq!(&src[callee.span.start..callee.span.end], "add");
    let jcl_syntax::ast::AssignKind::Set { target, value, .. } = &imap[0].kind else {
        panic!()
    };
    assert_eq!(&src[target.span.start..target.span.end], "counter");
    assert_eq!(&src[value.span.start..value.span.end], "a.input + 1");
    assert_eq!((value.span.line, value.span.col), (4, 13));
    // Non-ASCII characters before a node count as one column each.
    let src = "workflow w:\ndo:\n\teval:\n\t\tx = 'ünï' . v.y\n";
    let f = ok(src);
    let StmtKind::Eval { assigns: a } = &f.body.unwrap().items[0].kind else {
        panic!()
    };
    let jcl_syntax::ast::AssignKind::Set { value, .. } = &a[0].kind else {
        panic!()
    };
    let jcl_syntax::ast::ExprKind::Binary { right, .. } = &value.kind else {
        panic!()
    };
    assert_eq!(
        (right.span.col, &src[right.span.start..right.span.end]),
        (15, "v.y")
    );
}
