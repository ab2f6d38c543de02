//! Helpers shared by the integration tests: parsing that panics with the rendered diagnostic,
//! and a compact s-expression form of expressions and assignments.
#![allow(dead_code, clippy::unwrap_used)]

use jcl_syntax::ast::{
    assignop_symbol, binop_symbol, Assign, AssignKind, Expr, ExprKind, File, Seg, Stmt, StmtKind,
    Target,
};
use jcl_syntax::Diagnostic;

/// Parses `src`, panicking with the rendered diagnostic on error.
pub fn ok(src: &str) -> File {
    match jcl_syntax::parse("t.jcl", src) {
        Ok(f) => f,
        Err(d) => panic!("unexpected error:\n{}", d.render(src)),
    }
}

/// Parses `src` and returns its error, panicking if it parses.
pub fn err(src: &str) -> Box<Diagnostic> {
    match jcl_syntax::parse("t.jcl", src) {
        Ok(f) => panic!("expected an error, parsed:\n{f:#?}"),
        Err(d) => d,
    }
}

/// A workflow whose `do:` block is `body` (lines indented by one more tab).
pub fn wf(body: &str) -> String {
    let mut s = String::from("workflow t:\ndo:\n");
    for line in body.lines() {
        s.push('\t');
        s.push_str(line);
        s.push('\n');
    }
    s
}

/// The statements of a workflow with `body` as its `do:` block.
pub fn stmts(body: &str) -> Vec<Stmt> {
    ok(&wf(body)).body.unwrap().items
}

/// The one statement of a `do:` block.
pub fn stmt(body: &str) -> StmtKind {
    let mut s = stmts(body);
    assert_eq!(s.len(), 1, "{s:#?}");
    s.remove(0).kind
}

/// The source of an `eval` assigning `e` to `r`.
pub fn expr_src(e: &str) -> String {
    wf(&format!("eval:\n\tr = {e}"))
}

/// The expression `e` as an s-expression.
pub fn expr(e: &str) -> String {
    match stmt(&format!("eval:\n\tr = {e}")) {
        StmtKind::Eval { assigns } => match &assigns[0].kind {
            AssignKind::Set { value, .. } => sexp(value),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// The error of the expression `e`.
pub fn expr_err(e: &str) -> Box<Diagnostic> {
    err(&expr_src(e))
}

pub fn sexp(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Lit(v) => v.to_string(),
        ExprKind::Path(p) => format!("{}{}", p.ns.letter(), segs(&p.segs, true)),
        ExprKind::Unary { op, expr } => {
            let op = match op {
                jcl::UnOp::Not => "!",
                jcl::UnOp::Neg => "neg",
            };
            format!("({op} {})", sexp(expr))
        }
        ExprKind::Binary { op, left, right } => {
            format!("({} {} {})", binop_symbol(*op), sexp(left), sexp(right))
        }
        ExprKind::Call { func, args, .. } => format!(
            "{}({})",
            func.name(),
            args.iter().map(sexp).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Match { expr, regex, .. } => format!("(~ {} /{regex}/)", sexp(expr)),
    }
}

fn segs(segs: &[Seg], dot_first: bool) -> String {
    let mut s = String::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Key { name, .. } => {
                if i > 0 || dot_first {
                    s.push('.');
                }
                s.push_str(name);
            }
            Seg::Index(e) => s.push_str(&format!("[{}]", sexp(e))),
        }
    }
    s
}

pub fn target(t: &Target) -> String {
    match t.ns {
        Some(ns) => format!("{}{}", ns.letter(), segs(&t.segs, true)),
        None => segs(&t.segs, false),
    }
}

pub fn assign(a: &Assign) -> String {
    match &a.kind {
        AssignKind::Set {
            target: t,
            op,
            value,
        } => {
            format!("{} {} {}", target(t), assignop_symbol(*op), sexp(value))
        }
        AssignKind::Copy { names: None } => "<*>".to_owned(),
        AssignKind::CopyAll { from, to } => format!("%{} = %{}", to.letter(), from.letter()),
        AssignKind::Copy { names: Some(n) } => format!(
            "<{}>",
            n.iter()
                .map(|n| n.text.as_str())
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

pub fn assigns(a: &[Assign]) -> Vec<String> {
    a.iter().map(assign).collect()
}
