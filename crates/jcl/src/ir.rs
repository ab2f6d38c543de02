//! The compiled form of JCL expressions and assignments.
//!
//! This is what `jcc` stores in `tasks.attributes` and what the extension evaluates. It is
//! serialised with serde as JSON; [`IR_VERSION`] is bumped whenever the meaning or the shape of
//! the serialised form changes, and the evaluator refuses code of another version.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the serialised IR. Stored with every [`Code`] blob.
pub const IR_VERSION: u32 = 1;

/// A namespace an expression can read from or an assignment can write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ns {
    /// `a.`: the job's arguments (read-only).
    A,
    /// `e.`: the job's environment (read-only).
    E,
    /// `v.`: the job's variables.
    V,
    /// `i.`: the inputs being built for a call (imap).
    I,
    /// `o.`: the outputs of a call (omap) or of the workflow (wfomap).
    O,
    /// `t.`: temporaries living for one evaluation.
    T,
}

impl Ns {
    /// All namespaces, in the order they are listed in the language reference.
    pub const ALL: [Ns; 6] = [Ns::A, Ns::E, Ns::V, Ns::I, Ns::O, Ns::T];

    /// The one-letter prefix used in source and in the evaluation context.
    pub fn letter(self) -> &'static str {
        match self {
            Ns::A => "a",
            Ns::E => "e",
            Ns::V => "v",
            Ns::I => "i",
            Ns::O => "o",
            Ns::T => "t",
        }
    }

    /// Parses a one-letter prefix.
    pub fn from_letter(s: &str) -> Option<Ns> {
        Ns::ALL.into_iter().find(|n| n.letter() == s)
    }

    /// Whether assignments may target this namespace.
    pub fn writable(self) -> bool {
        !matches!(self, Ns::A | Ns::E)
    }
}

/// One step of a path after its namespace: `.key` or `[index]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seg {
    /// `.name` (also the first name after the namespace).
    Key(String),
    /// `[expr]`: an array index (negative counts from the end) or an object key.
    Index(Box<Expr>),
}

/// A path into one namespace, such as `v.a.b` or `a.list[-1]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Path {
    pub ns: Ns,
    pub segs: Vec<Seg>,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnOp {
    /// `!` and `not`: boolean negation by truthiness.
    Not,
    /// `-`: numeric negation.
    Neg,
}

/// Binary operators, with Perl-like semantics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinOp {
    /// `**`
    Pow,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `x`: repeat a string.
    Repeat,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `.`: string concatenation.
    Concat,
    /// `<`
    NumLt,
    /// `<=`
    NumLe,
    /// `>`
    NumGt,
    /// `>=`
    NumGe,
    /// `==`
    NumEq,
    /// `!=`
    NumNe,
    /// `lt`
    StrLt,
    /// `le`
    StrLe,
    /// `gt`
    StrGt,
    /// `ge`
    StrGe,
    /// `eq`
    StrEq,
    /// `ne`
    StrNe,
    /// `&&` and `and`: the left operand when it is false, else the right one.
    And,
    /// `||` and `or`: the left operand when it is true, else the right one.
    Or,
    /// `//`: the left operand when it is defined (not null), else the right one.
    DefinedOr,
    /// `xor`: boolean exclusive or.
    Xor,
}

impl BinOp {
    /// Every operator, for generators and exhaustive tests.
    pub const ALL: [BinOp; 24] = [
        BinOp::Pow,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Mod,
        BinOp::Repeat,
        BinOp::Add,
        BinOp::Sub,
        BinOp::Concat,
        BinOp::NumLt,
        BinOp::NumLe,
        BinOp::NumGt,
        BinOp::NumGe,
        BinOp::NumEq,
        BinOp::NumNe,
        BinOp::StrLt,
        BinOp::StrLe,
        BinOp::StrGt,
        BinOp::StrGe,
        BinOp::StrEq,
        BinOp::StrNe,
        BinOp::And,
        BinOp::Or,
        BinOp::DefinedOr,
        BinOp::Xor,
    ];

    /// Whether the operator always gives a boolean: the comparisons and `xor`.
    pub fn is_boolean(self) -> bool {
        matches!(
            self,
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
                | BinOp::Xor
        )
    }
}

/// Built-in functions. The names are the ones used in source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Func {
    // The original's functions.
    Concat,
    Defined,
    Ifdef,
    Tostring,
    Tonumber,
    Array,
    Object,
    EncodeJson,
    DecodeJson,
    EncodeBase64,
    DecodeBase64,
    Md5Hex,
    Md5Base64,
    List,
    Keys,
    Values,
    // The standard library (ours).
    Length,
    Lc,
    Uc,
    Trim,
    Substr,
    Index,
    Join,
    Split,
    Replace,
    StartsWith,
    EndsWith,
    Contains,
    Exists,
    Abs,
    Int,
    Floor,
    Ceil,
    Round,
    Min,
    Max,
    Sum,
    Sort,
    Reverse,
    Unique,
    Slice,
    Merge,
    Typeof,
}

impl Func {
    /// Every function, for listings and exhaustive tests.
    pub const ALL: [Func; 43] = [
        Func::Concat,
        Func::Defined,
        Func::Ifdef,
        Func::Tostring,
        Func::Tonumber,
        Func::Array,
        Func::Object,
        Func::EncodeJson,
        Func::DecodeJson,
        Func::EncodeBase64,
        Func::DecodeBase64,
        Func::Md5Hex,
        Func::Md5Base64,
        Func::List,
        Func::Keys,
        Func::Values,
        Func::Length,
        Func::Lc,
        Func::Uc,
        Func::Trim,
        Func::Substr,
        Func::Index,
        Func::Join,
        Func::Split,
        Func::Replace,
        Func::StartsWith,
        Func::EndsWith,
        Func::Contains,
        Func::Exists,
        Func::Abs,
        Func::Int,
        Func::Floor,
        Func::Ceil,
        Func::Round,
        Func::Min,
        Func::Max,
        Func::Sum,
        Func::Sort,
        Func::Reverse,
        Func::Unique,
        Func::Slice,
        Func::Merge,
        Func::Typeof,
    ];

    /// The name used in source.
    pub fn name(self) -> &'static str {
        match self {
            Func::Concat => "concat",
            Func::Defined => "defined",
            Func::Ifdef => "ifdef",
            Func::Tostring => "tostring",
            Func::Tonumber => "tonumber",
            Func::Array => "array",
            Func::Object => "object",
            Func::EncodeJson => "encode_json",
            Func::DecodeJson => "decode_json",
            Func::EncodeBase64 => "encode_base64",
            Func::DecodeBase64 => "decode_base64",
            Func::Md5Hex => "md5_hex",
            Func::Md5Base64 => "md5_base64",
            Func::List => "list",
            Func::Keys => "keys",
            Func::Values => "values",
            Func::Length => "length",
            Func::Lc => "lc",
            Func::Uc => "uc",
            Func::Trim => "trim",
            Func::Substr => "substr",
            Func::Index => "index",
            Func::Join => "join",
            Func::Split => "split",
            Func::Replace => "replace",
            Func::StartsWith => "starts_with",
            Func::EndsWith => "ends_with",
            Func::Contains => "contains",
            Func::Exists => "exists",
            Func::Abs => "abs",
            Func::Int => "int",
            Func::Floor => "floor",
            Func::Ceil => "ceil",
            Func::Round => "round",
            Func::Min => "min",
            Func::Max => "max",
            Func::Sum => "sum",
            Func::Sort => "sort",
            Func::Reverse => "reverse",
            Func::Unique => "unique",
            Func::Slice => "slice",
            Func::Merge => "merge",
            Func::Typeof => "typeof",
        }
    }

    /// Looks a function up by its source name, or by one of the original's other names for it
    /// ([`Func::ALIASES`]).
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .or_else(|| {
                Func::ALIASES
                    .iter()
                    .find(|(a, _)| *a == name)
                    .map(|(_, f)| *f)
            })
    }

    /// The original JobCenter's other names for built-in functions, accepted in source so that
    /// its workflows compile unchanged.
    pub const ALIASES: [(&'static str, Func); 8] = [
        ("tojson", Func::EncodeJson),
        ("to_json", Func::EncodeJson),
        ("fromjson", Func::DecodeJson),
        ("from_json", Func::DecodeJson),
        ("b64encode", Func::EncodeBase64),
        ("b64decode", Func::DecodeBase64),
        ("md5", Func::Md5Hex),
        ("md5b64", Func::Md5Base64),
    ];

    /// The accepted argument counts: (minimum, maximum; `None` = unbounded).
    pub fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::Concat | Func::Array | Func::Object | Func::Min | Func::Max | Func::Merge => {
                (0, None)
            }
            Func::Substr | Func::Slice => (2, Some(3)),
            Func::Index | Func::Join | Func::Split | Func::StartsWith | Func::EndsWith => {
                (2, Some(2))
            }
            Func::Contains | Func::Exists => (2, Some(2)),
            Func::Replace => (3, Some(3)),
            Func::Round => (1, Some(2)),
            _ => (1, Some(1)),
        }
    }
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// A literal JSON value.
    Lit(Value),
    /// A read of a path; a missing value reads as `null`.
    Path(Path),
    /// A unary operation.
    Unary { op: UnOp, expr: Box<Expr> },
    /// A binary operation.
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// A call of a built-in function.
    Call { func: Func, args: Vec<Expr> },
    /// `expr ~ /regex/`: true when the string form of `expr` matches.
    Match { expr: Box<Expr>, regex: String },
}

impl Expr {
    /// This expression as one whose value is its string form, for a place that compares
    /// strings (a `case`), when it may give Perl's computed false: that must compare as `""`
    /// there too, as in Perl (`case 1 > 2` takes `when '':`).
    pub fn into_text(self) -> Expr {
        if self.may_be_perl_false() {
            Expr::Call {
                func: Func::Tostring,
                args: vec![self],
            }
        } else {
            self
        }
    }

    fn may_be_perl_false(&self) -> bool {
        match self {
            Expr::Unary { op: UnOp::Not, .. } | Expr::Match { .. } => true,
            Expr::Binary { op, left, right } => match op {
                BinOp::And | BinOp::Or | BinOp::DefinedOr => {
                    left.may_be_perl_false() || right.may_be_perl_false()
                }
                op => op.is_boolean(),
            },
            Expr::Call { func, .. } => matches!(
                func,
                Func::Defined | Func::StartsWith | Func::EndsWith | Func::Contains | Func::Exists
            ),
            Expr::Lit(_) | Expr::Path(_) | Expr::Unary { .. } => false,
        }
    }
}

/// Assignment operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignOp {
    /// `=`
    Set,
    /// `.=`: append to the string form.
    Concat,
    /// `,=`: push onto an array (a missing target becomes a one-element array).
    Push,
    /// `+=`
    Add,
    /// `-=`
    Sub,
    /// `*=`
    Mul,
    /// `/=`
    Div,
    /// `//=`: assign when the target is undefined or null.
    DefinedOr,
    /// `||=`: assign when the target is false.
    Or,
}

impl AssignOp {
    /// Every operator, for generators and exhaustive tests.
    pub const ALL: [AssignOp; 9] = [
        AssignOp::Set,
        AssignOp::Concat,
        AssignOp::Push,
        AssignOp::Add,
        AssignOp::Sub,
        AssignOp::Mul,
        AssignOp::Div,
        AssignOp::DefinedOr,
        AssignOp::Or,
    ];
}

/// One statement of an assignment block (imap, omap, wfomap, eval).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stmt {
    /// `target op value`. An undefined value (from `ifdef`) leaves the target untouched.
    Assign {
        target: Path,
        op: AssignOp,
        value: Expr,
    },
    /// `<x,y>` (names given) or `<*>` (`names` is `None`): copies same-named values of the
    /// `from` namespace into the `to` namespace; with `<*>` every key of `from`.
    Copy {
        from: Ns,
        to: Ns,
        names: Option<Vec<String>>,
    },
}

/// A compiled block of statements, tagged with the IR version it was compiled for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Code {
    pub ir: u32,
    pub stmts: Vec<Stmt>,
}

impl Code {
    /// A block of the current IR version.
    pub fn new(stmts: Vec<Stmt>) -> Code {
        Code {
            ir: IR_VERSION,
            stmts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_the_originals_aliases_resolve() {
        for f in Func::ALL {
            assert_eq!(Func::from_name(f.name()), Some(f));
        }
        assert_eq!(Func::from_name("tojson"), Some(Func::EncodeJson));
        assert_eq!(Func::from_name("fromjson"), Some(Func::DecodeJson));
        assert_eq!(Func::from_name("md5"), Some(Func::Md5Hex));
        assert_eq!(Func::from_name("nosuch"), None);
        // An alias never shadows a function of the same name.
        for (alias, _) in Func::ALIASES {
            assert!(Func::ALL.iter().all(|f| f.name() != alias), "{alias}");
        }
    }

    #[test]
    fn number_literals_survive_storage() {
        // Found by the eval fuzz target: the default float parser read these back changed.
        for n in [
            9.759412660323115e139,
            1.0548895412117992e-303,
            -4.5287504477911344e-41,
        ] {
            let code = Code::new(vec![Stmt::Assign {
                target: Path {
                    ns: Ns::V,
                    segs: vec![Seg::Key("x".into())],
                },
                op: AssignOp::Set,
                value: Expr::Lit(Value::from(n)),
            }]);
            let stored = serde_json::to_string(&code).expect("serialises");
            let loaded: Code = serde_json::from_str(&stored).expect("loads");
            assert_eq!(loaded, code, "{stored}");
        }
    }
}
