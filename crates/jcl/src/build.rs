//! Small constructors for IR trees, for tests and for code that builds expressions by hand.
//!
//! ```
//! use jcl::build::{bin, lit, path, set, var};
//! use jcl::{run, BinOp, Context, Ns};
//!
//! let mut ctx = Context::default();
//! run(&[set(path(Ns::V, &["sum"]), bin(BinOp::Add, lit(2), var(Ns::V, &["x"])))], &mut ctx)?;
//! assert_eq!(ctx.v["sum"], 2);
//! # Ok::<(), jcl::EvalError>(())
//! ```

use serde_json::Value;

use crate::ir::{AssignOp, BinOp, Expr, Func, Ns, Path, Seg, Stmt, UnOp};

/// A literal: `lit(5)`, `lit("text")`, `lit(json!([1, 2]))`.
pub fn lit(v: impl Into<Value>) -> Expr {
    Expr::Lit(v.into())
}

/// The path `ns.k1.k2…`; `path(Ns::V, &[])` is the whole namespace.
pub fn path(ns: Ns, keys: &[&str]) -> Path {
    Path {
        ns,
        segs: keys.iter().map(|k| Seg::Key((*k).to_owned())).collect(),
    }
}

/// `p.key`: the path with one more key.
pub fn key(mut p: Path, key: &str) -> Path {
    p.segs.push(Seg::Key(key.to_owned()));
    p
}

/// `p[index]`: the path with one more index.
pub fn idx(mut p: Path, index: Expr) -> Path {
    p.segs.push(Seg::Index(Box::new(index)));
    p
}

/// Reads a path.
pub fn read(p: Path) -> Expr {
    Expr::Path(p)
}

/// Reads `ns.k1.k2…`: shorthand for `read(path(ns, keys))`.
pub fn var(ns: Ns, keys: &[&str]) -> Expr {
    read(path(ns, keys))
}

/// A unary operation.
pub fn un(op: UnOp, e: Expr) -> Expr {
    Expr::Unary {
        op,
        expr: Box::new(e),
    }
}

/// A binary operation.
pub fn bin(op: BinOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary {
        op,
        left: Box::new(l),
        right: Box::new(r),
    }
}

/// A function call.
pub fn call(func: Func, args: Vec<Expr>) -> Expr {
    Expr::Call { func, args }
}

/// `e ~ /regex/`.
pub fn matches(e: Expr, regex: &str) -> Expr {
    Expr::Match {
        expr: Box::new(e),
        regex: regex.to_owned(),
    }
}

/// `target op value`.
pub fn assign(target: Path, op: AssignOp, value: Expr) -> Stmt {
    Stmt::Assign { target, op, value }
}

/// `target = value`.
pub fn set(target: Path, value: Expr) -> Stmt {
    assign(target, AssignOp::Set, value)
}

/// `<a,b>` (`Some(&["a", "b"])`) or `<*>` (`None`), copying from `from` into `to`.
pub fn copy(from: Ns, to: Ns, names: Option<&[&str]>) -> Stmt {
    Stmt::Copy {
        from,
        to,
        names: names.map(|ns| ns.iter().map(|n| (*n).to_owned()).collect()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn constructors_build_the_expected_trees() {
        let p = idx(key(path(Ns::V, &["a"]), "b"), lit(0));
        assert_eq!(
            p,
            Path {
                ns: Ns::V,
                segs: vec![
                    Seg::Key("a".into()),
                    Seg::Key("b".into()),
                    Seg::Index(Box::new(Expr::Lit(json!(0)))),
                ],
            }
        );
        assert_eq!(var(Ns::A, &["x"]), read(path(Ns::A, &["x"])));
        assert_eq!(
            set(path(Ns::O, &["x"]), lit("y")),
            Stmt::Assign {
                target: path(Ns::O, &["x"]),
                op: AssignOp::Set,
                value: Expr::Lit(json!("y")),
            }
        );
        assert_eq!(
            copy(Ns::V, Ns::O, Some(&["x"])),
            Stmt::Copy {
                from: Ns::V,
                to: Ns::O,
                names: Some(vec!["x".into()]),
            }
        );
        assert_eq!(
            matches(un(UnOp::Not, lit(true)), "^$"),
            Expr::Match {
                expr: Box::new(Expr::Unary {
                    op: UnOp::Not,
                    expr: Box::new(Expr::Lit(json!(true))),
                }),
                regex: "^$".into(),
            }
        );
        assert_eq!(
            bin(BinOp::Add, lit(1), call(Func::Abs, vec![lit(-1)])),
            Expr::Binary {
                op: BinOp::Add,
                left: Box::new(Expr::Lit(json!(1))),
                right: Box::new(Expr::Call {
                    func: Func::Abs,
                    args: vec![Expr::Lit(json!(-1))],
                }),
            }
        );
    }
}
