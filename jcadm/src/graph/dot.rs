//! The graph as Graphviz DOT: tasks as boxes (the job's path filled, its current task
//! outlined), edges labelled with their conditions, catch edges dashed.

use std::fmt::Write as _;

use super::{EdgeKind, Graph};

/// A DOT string literal's contents.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders `g` as a DOT digraph.
pub fn render(g: &Graph) -> String {
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "digraph {} {{",
        quote(&format!("{}:{}", g.workflow, g.version))
    );
    let _ = writeln!(s, "  label={};", quote(&g.title()));
    s.push_str("  labelloc=t;\n  node [shape=box, style=rounded, fontname=\"Helvetica\"];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=10];\n");
    for n in &g.nodes {
        let mut attrs = vec![format!("label={}", quote(&g.label(n)))];
        if matches!(n.action.as_str(), "start" | "end") && n.kind == "system" {
            attrs.push("shape=oval".into());
        }
        if n.current {
            attrs.push("style=\"rounded,filled,bold\", fillcolor=\"gold\", penwidth=2".into());
        } else if n.visits > 0 {
            attrs.push("style=\"rounded,filled\", fillcolor=\"lightblue\"".into());
        }
        let _ = writeln!(s, "  t{} [{}];", n.index, attrs.join(", "));
    }
    for e in &g.edges {
        let mut attrs = vec![];
        if !e.label.is_empty() {
            attrs.push(format!("label={}", quote(&e.label)));
        }
        match e.kind {
            EdgeKind::Next | EdgeKind::When => {}
            EdgeKind::Catch => attrs.push("style=dashed".into()),
            EdgeKind::Reaps => attrs.push("style=dotted, constraint=false".into()),
        }
        if e.taken {
            attrs.push("color=\"blue\", penwidth=2".into());
        } else if e.kind == EdgeKind::Catch {
            attrs.push("color=\"red\"".into());
        }
        if attrs.is_empty() {
            let _ = writeln!(s, "  t{} -> t{};", e.from, e.to);
        } else {
            let _ = writeln!(s, "  t{} -> t{} [{}];", e.from, e.to, attrs.join(", "));
        }
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escape_what_dot_reads_specially() {
        assert_eq!(quote("a \"b\" \\ c\nd"), r#""a \"b\" \\ c\nd""#);
    }
}
