//! The parser never panics and never exhausts the stack: deep nesting gets a clear error, and
//! thousands of random and mutated inputs (the stable stand-in for the cargo-fuzz target in
//! `fuzz/`) parse or fail cleanly, with diagnostics whose spans lie inside the source.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

const EXAMPLES: [&str; 6] = [
    include_str!("data/calltest.jcl"),
    include_str!("data/whiletest.jcl"),
    include_str!("data/casetest.jcl"),
    include_str!("data/vhost_event.jcl"),
    include_str!("data/order_wordpress.jcl"),
    include_str!("data/everything.jcl"),
];

/// Parses `src`; on error renders the diagnostic and checks that its span is sane.
fn check(src: &str) {
    if let Err(d) = jcl_syntax::parse("fuzz.jcl", src) {
        assert!(
            d.span.start <= d.span.end && d.span.end <= src.len(),
            "{d:?}"
        );
        assert!(src.is_char_boundary(d.span.start) && src.is_char_boundary(d.span.end));
        assert!(d.span.line >= 1 && d.span.col >= 1);
        assert!(d.code.starts_with("JC01"), "{d:?}");
        let rendered = d.render(src);
        assert!(rendered.contains(d.code));
        let _ = d.to_json();
    }
}

fn code(src: &str) -> &'static str {
    jcl_syntax::parse("deep.jcl", src).unwrap_err().code
}

#[test]
fn ten_thousand_parentheses() {
    let src = format!(
        "workflow w:\ndo:\n\teval:\n\t\tx = {}1{}\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(code(&src), "JC0116");
    let src = format!(
        "workflow w:\ndo:\n\teval:\n\t\tx = {}\n",
        "(".repeat(10_000)
    );
    assert_eq!(code(&src), "JC0116");
    let src = format!("workflow w:\nconfig:\n\tx = {}\n", "[ ".repeat(10_000));
    assert_eq!(code(&src), "JC0116");
    let src = format!(
        "workflow w:\ndo:\n\teval:\n\t\tx = v.a{}\n",
        "[v.a".repeat(10_000)
    );
    assert_eq!(code(&src), "JC0116");
}

#[test]
fn a_thousand_nested_blocks() {
    let mut src = String::from("workflow w:\ndo:\n");
    for depth in 1..1_000 {
        src.push_str(&" ".repeat(depth));
        src.push_str("if v.x:\n");
    }
    assert_eq!(code(&src), "JC0116");
}

#[test]
fn long_operator_chains() {
    for op in ["!", "-", "not "] {
        let src = format!("workflow w:\ndo:\n\tsleep {}v.x\n", op.repeat(20_000));
        assert_eq!(code(&src), "JC0116", "{op}");
    }
    let src = format!("workflow w:\ndo:\n\tsleep 1{}\n", " ** 2".repeat(20_000));
    assert_eq!(code(&src), "JC0116");
    let src = format!("workflow w:\ndo:\n\tsleep 1{}\n", " + 1".repeat(20_000));
    assert_eq!(code(&src), "JC0116");
    let src = format!("workflow w:\ndo:\n\tsleep v.x{}\n", " ~ /a/".repeat(20_000));
    assert_eq!(code(&src), "JC0116");
}

#[test]
fn the_longest_chains_allowed_fit_on_a_small_stack() {
    // At the limits (256 operators, brackets 64 deep), on a thread with a 1 MiB stack.
    let nested_calls = format!("{}1{}", "length(".repeat(64), ")".repeat(64));
    let negated_parens = format!("{}1{}", "-(".repeat(64), ")".repeat(64));
    let sources = [
        format!("workflow w:\ndo:\n\tsleep {}v.x\n", "!".repeat(256)),
        format!("workflow w:\ndo:\n\tsleep 1{}\n", " ** 2".repeat(256)),
        format!("workflow w:\ndo:\n\tsleep 1{}\n", " + 1".repeat(256)),
        format!(
            "workflow w:\ndo:\n\tsleep {}1{}\n",
            "(".repeat(64),
            ")".repeat(64)
        ),
        format!("workflow w:\ndo:\n\tsleep {nested_calls}\n"),
        format!("workflow w:\ndo:\n\tsleep {negated_parens}\n"),
    ];
    for src in sources {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                let f = jcl_syntax::parse("deep.jcl", &src);
                assert!(f.is_ok(), "{:?}", f.err());
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

#[test]
fn every_prefix_of_every_example() {
    for src in EXAMPLES {
        // Every cut point of the small files, every third one of the large.
        let step = if src.len() > 1000 { 3 } else { 1 };
        for (i, _) in src.char_indices().step_by(step) {
            check(&src[..i]);
        }
    }
}

#[test]
fn every_single_deletion_of_an_example() {
    let src = EXAMPLES[3];
    for (i, c) in src.char_indices() {
        let mut s = src.to_owned();
        s.replace_range(i..i + c.len_utf8(), "");
        check(&s);
    }
}

/// Pieces that are likely to confuse the parser.
const PIECES: [&str; 24] = [
    ":", "\t", "\n", "'", "\"", "#", "#[[", "#]]", "[[", "]]", "(", ")", "[", "]", "{", "}", "~ /",
    "/", "\\", " ", "<*>", "=", "ü", "\r\n",
];

fn mutate(src: &str, edits: &[(usize, usize, usize)]) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for &(kind, pos, arg) in edits {
        let len = chars.len();
        let at = if len == 0 { 0 } else { pos % (len + 1) };
        match kind % 4 {
            0 if at < len => {
                chars.remove(at);
            }
            1 => {
                let piece = PIECES[arg % PIECES.len()];
                for (k, c) in piece.chars().enumerate() {
                    chars.insert(at + k, c);
                }
            }
            2 => chars.truncate(at),
            _ => {
                // Duplicate a slice, which repeats lines and blocks.
                let end = (at + arg % 40).min(len);
                let slice: Vec<char> = chars[at..end].to_vec();
                for (k, c) in slice.into_iter().enumerate() {
                    chars.insert(end + k, c);
                }
            }
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_examples_never_panic(
        which in 0..EXAMPLES.len(),
        edits in prop::collection::vec((0usize..4, 0usize..10_000, 0usize..100), 1..8),
    ) {
        check(&mutate(EXAMPLES[which], &edits));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn random_jcl_like_text_never_panics(
        src in "(workflow w:\n)?((in|out|do|config|locks|wfomap|role|env|wfenv|interface):\n)?([\t ]{0,3}(call|if|case|when|else|elsif|repeat|until|split|map|using|callflow|into|collect|try|catch|eval|interface|lock|wait_for_lock|wait|yes|assert|x|v\\.a|a\\.b\\[0\\]|o\\.c|'s'|\"d\"|[0-9x.e]{1,4}|[-+*/%.<>=!&|~,:#\\[\\](){}_]{1,3}|not|and|or|xor|eq|lt|length|concat|foo|<\\*>| |\t|\n){0,40})",
    ) {
        check(&src);
    }

    #[test]
    fn arbitrary_text_never_panics(src in "\\PC{0,200}") {
        check(&src);
    }
}
