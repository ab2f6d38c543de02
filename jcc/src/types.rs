//! A simple static type inference for expressions: the JSON type of a value when it can be
//! known at compile time (literals, declared arguments and outputs, operators and functions
//! with a fixed result type), `Unknown` otherwise. Unknown never causes an error.

use jcl::ir::{BinOp, Func, UnOp};
use jcl_syntax::ast::{Expr, ExprKind};
use serde_json::Value;

/// The static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
    Unknown,
}

impl Ty {
    /// The type of a JSON value.
    pub fn of_value(v: &Value) -> Ty {
        match v {
            Value::Null => Ty::Null,
            Value::Bool(_) => Ty::Boolean,
            Value::Number(_) => Ty::Number,
            Value::String(_) => Ty::String,
            Value::Array(_) => Ty::Array,
            Value::Object(_) => Ty::Object,
        }
    }

    /// The JSON type of values of a declared type name (`Unknown` for `json` and schema types
    /// whose shape the compiler does not know).
    pub fn of_decl(name: &str) -> Ty {
        match name {
            "null" => Ty::Null,
            "boolean" => Ty::Boolean,
            "number" | "integer" => Ty::Number,
            "string" => Ty::String,
            "array" => Ty::Array,
            "object" | "event" | "error" => Ty::Object,
            _ => Ty::Unknown,
        }
    }

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Ty::Null => "null",
            Ty::Boolean => "boolean",
            Ty::Number => "number",
            Ty::String => "string",
            Ty::Array => "array",
            Ty::Object => "object",
            Ty::Unknown => "unknown",
        }
    }

    /// Whether a value of this static type may be stored where `decl` is declared.
    pub fn fits(self, decl: &str) -> bool {
        let want = Ty::of_decl(decl);
        self == Ty::Unknown || want == Ty::Unknown || self == want
    }
}

/// The result type of a built-in function, when fixed.
pub fn func_result(func: Func) -> Ty {
    match func {
        Func::Concat
        | Func::Tostring
        | Func::EncodeJson
        | Func::EncodeBase64
        | Func::DecodeBase64
        | Func::Md5Hex
        | Func::Md5Base64
        | Func::Lc
        | Func::Uc
        | Func::Trim
        | Func::Substr
        | Func::Join
        | Func::Replace
        | Func::Typeof => Ty::String,
        Func::Defined | Func::StartsWith | Func::EndsWith | Func::Contains | Func::Exists => {
            Ty::Boolean
        }
        Func::Tonumber
        | Func::Length
        | Func::Index
        | Func::Abs
        | Func::Int
        | Func::Floor
        | Func::Ceil
        | Func::Round
        | Func::Sum => Ty::Number,
        Func::Array
        | Func::List
        | Func::Keys
        | Func::Values
        | Func::Split
        | Func::Sort
        | Func::Unique
        | Func::Slice => Ty::Array,
        Func::Object | Func::Merge => Ty::Object,
        Func::Ifdef | Func::DecodeJson | Func::Min | Func::Max | Func::Reverse => Ty::Unknown,
    }
}

/// Infers the type of `expr`; `path_type` gives the type of a path read (`Unknown` when not
/// known).
pub fn infer(expr: &Expr, path_type: &dyn Fn(&jcl_syntax::ast::Path) -> Ty) -> Ty {
    match &expr.kind {
        ExprKind::Lit(v) => Ty::of_value(v),
        ExprKind::Path(p) => path_type(p),
        ExprKind::Unary { op, expr } => match op {
            UnOp::Not => Ty::Boolean,
            // As in Perl, `-'foo'` is the string "-foo".
            UnOp::Neg => match infer(expr, path_type) {
                Ty::String | Ty::Unknown => Ty::Unknown,
                _ => Ty::Number,
            },
        },
        ExprKind::Binary { op, left, right } => match op {
            BinOp::Pow | BinOp::Mul | BinOp::Div | BinOp::Mod | BinOp::Add | BinOp::Sub => {
                Ty::Number
            }
            BinOp::Concat | BinOp::Repeat => Ty::String,
            BinOp::NumLt
            | BinOp::NumLe
            | BinOp::NumGt
            | BinOp::NumGe
            | BinOp::NumEq
            | BinOp::NumNe
            | BinOp::StrLt
            | BinOp::StrLe
            | BinOp::StrGt
            | BinOp::StrGe
            | BinOp::StrEq
            | BinOp::StrNe
            | BinOp::Xor => Ty::Boolean,
            BinOp::And | BinOp::Or | BinOp::DefinedOr => {
                let l = infer(left, path_type);
                let r = infer(right, path_type);
                if l == r {
                    l
                } else {
                    Ty::Unknown
                }
            }
        },
        ExprKind::Call { func, .. } => func_result(*func),
        ExprKind::Match { .. } => Ty::Boolean,
    }
}

#[cfg(test)]
mod tests {
    use jcl_syntax::ast::Span;

    use super::*;

    #[test]
    fn declared_types_accept_their_values_and_unknown() {
        assert!(Ty::Number.fits("integer"));
        assert!(Ty::String.fits("string"));
        assert!(!Ty::String.fits("number"));
        assert!(!Ty::Null.fits("string"));
        assert!(Ty::Null.fits("json"));
        assert!(Ty::Unknown.fits("boolean"));
        assert!(Ty::Array.fits("my_schema_type"));
        assert!(!Ty::Number.fits("event"));
    }

    #[test]
    fn negating_a_string_is_not_a_number() {
        let neg = |v: Value| Expr {
            kind: ExprKind::Unary {
                op: UnOp::Neg,
                expr: Box::new(Expr::lit(v, Span::default())),
            },
            span: Span::default(),
        };
        let no_paths = |_: &jcl_syntax::ast::Path| Ty::Unknown;
        assert_eq!(infer(&neg(Value::from("foo")), &no_paths), Ty::Unknown);
        assert_eq!(infer(&neg(Value::from(true)), &no_paths), Ty::Number);
        assert_eq!(infer(&neg(Value::from(2.5)), &no_paths), Ty::Number);
    }
}
