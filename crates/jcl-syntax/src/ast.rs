//! The abstract syntax tree of one JCL source file, with a [`Span`] on every node.
//!
//! The tree is what [`crate::parse`] returns and what the compiler (`jcc`) checks and lowers
//! into a [`jcl::Model`]. It keeps the source's shape (sections, statements with their
//! companion blocks such as `into:` or `catch:`) and leaves every semantic question to the
//! compiler: which sections an action may have, whether a callee exists, whether a namespace is
//! writable, whether a type name is known, whether a label is defined.
//!
//! Expressions mirror [`jcl::ir::Expr`] one to one and reuse its operator, function and
//! namespace enums, so lowering is a plain recursive copy that drops the spans. Two things the
//! IR does not have are settled here already: a negative number literal (`-1`) is folded into
//! the literal, and regex flags (`/re/i`) are folded into the pattern as `(?i)re`.
//!
//! # Spans
//!
//! `start`/`end` are byte offsets into the source text (`end` exclusive); `line` and `col` are
//! 1-based and point at `start`. `col` counts characters (Unicode scalar values) of the original
//! line, so a tab counts as one column here even though indentation measures it as up to 8.
//! The span of a statement covers its header line (from the keyword to the end of the line,
//! comments excluded), not its nested block; the span of a section covers its header line.

use jcl::ir::{AssignOp, BinOp, Func, Ns, UnOp};
use serde::Serialize;
use serde_json::Value;

/// A region of the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// 1-based line of `start`.
    pub line: u32,
    /// 1-based column of `start`, in characters of the original line (a tab is one).
    pub col: u32,
}

/// A name as written: an ASCII word that may contain dots (`dns.configure`), or a quoted string
/// (`"prov.get_ip_list"`, `'my action'`). Used for workflow and action names, type names,
/// section keys, lock types, labels and case labels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Name {
    /// The name without quotes, escapes resolved.
    pub text: String,
    /// Whether it was written as a quoted string.
    pub quoted: bool,
    pub span: Span,
}

/// What a file defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// `workflow NAME:`
    Workflow,
    /// `action NAME:`: performed by a worker.
    Action,
    /// `procedure NAME:`: performed by a PostgreSQL function.
    Procedure,
}

/// One source file: a header `workflow|action|procedure NAME:` and its sections, each at most
/// once and in any order. Which sections a kind may have is checked by the compiler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct File {
    pub kind: FileKind,
    pub name: Name,
    /// The header line.
    pub span: Span,
    /// `in:` lines `name type [default-literal]`.
    pub inputs: Option<Section<Vec<Param>>>,
    /// `out:` lines `name type [optional]`.
    pub outputs: Option<Section<Vec<Param>>>,
    /// `env:` lines `name type [default-literal]`: an action's inputs taken from the job
    /// environment.
    pub env: Option<Section<Vec<Param>>>,
    /// `interface: OTHER`: copy the inputs and outputs of another action or workflow.
    pub interface: Option<Section<Name>>,
    /// `wfenv:` lines `key = literal`.
    pub wfenv: Option<Section<Vec<Setting>>>,
    /// `role: NAME`.
    pub role: Option<Section<Name>>,
    /// `config:` lines `key = literal`.
    pub config: Option<Section<Vec<Setting>>>,
    /// `locks:` lines `locktype value [manual] [inherit]`.
    pub locks: Option<Section<Vec<LockDecl>>>,
    /// `wfomap:` assignments computing the workflow's outputs.
    pub wfomap: Option<Section<Vec<Assign>>>,
    /// `do:` the statement block.
    pub body: Option<Section<Vec<Stmt>>>,
    /// `schedule:` named schedules that start the workflow periodically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Section<Vec<Schedule>>>,
}

/// A section of a file: its header line and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section<T> {
    /// The header line (`in:` …).
    pub span: Span,
    pub items: T,
}

/// A declared input or output: `name type [default-literal | optional]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Param {
    pub name: Name,
    /// The type name (`string`, `number`, a JSON-Schema type such as `integer`).
    pub ty: Name,
    /// The default value (`in:` and `env:`); an input with a default is optional.
    pub default: Option<Literal>,
    /// The `optional` keyword (`out:`).
    pub optional: bool,
    pub span: Span,
}

/// A constant written in the JSON-ish literal syntax: numbers (optionally negative, `0x` hex),
/// strings in either quote, `true false null`, `[a, b]` arrays and `{key: value}` objects whose
/// keys are words or strings (a trailing comma is allowed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Literal {
    pub value: Value,
    pub span: Span,
}

/// `key = literal`, a line (or a comma-separated part of a line) of `wfenv:` or `config:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Setting {
    pub key: Name,
    pub value: Literal,
    pub span: Span,
}

/// A schedule of the `schedule:` section: `NAME:` followed by `key = literal` settings,
/// comma-separated on its line and/or one or more per line on the lines indented below it:
///
/// ```text
/// schedule:
///     nightly: cron = '0 30 2 * * *', tz = 'Europe/Amsterdam', args = {days: 1}
///     hourly:
///         cron = '0 0 * * * *'
///         missed = 'catchup'
/// ```
///
/// Which keys exist (`cron`, `tz`, `missed`, `args`, `enabled`) and what their values must be
/// is checked by the compiler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub name: Name,
    /// In source order: those of the name's line first, then those of the lines below.
    pub settings: Vec<Setting>,
    /// The name's line.
    pub span: Span,
}

/// A line of `locks:`: `locktype value [manual] [inherit] [limit N]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LockDecl {
    pub locktype: Name,
    /// The value to lock; `None` is the `_` placeholder (the value is given by `lock`). A bare
    /// word (`foo bar`) is the string literal `'bar'`.
    pub value: Option<Expr>,
    pub manual: bool,
    pub inherit: bool,
    /// `limit N`: the most holders of one value (saturated at `u64::MAX`), and where it is.
    pub limit: Option<(u64, Span)>,
    pub span: Span,
}

/// A companion block introduced by its own header line: `into:`, `collect:`, `else:`,
/// `catch:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block<T> {
    /// The header line.
    pub span: Span,
    pub items: Vec<T>,
}

/// One line of an assignment block (imap, omap, wfomap, `eval:` and the blocks of
/// `subscribe:`, `raise_event:`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assign {
    pub kind: AssignKind,
    pub span: Span,
}

/// The two forms of an assignment line.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssignKind {
    /// `target op value`.
    Set {
        target: Target,
        op: AssignOp,
        value: Expr,
    },
    /// `<x>`, `<a,b>` (names given) or `<*>` (`None`): copy same-named values across; the
    /// direction depends on the block (see [`jcl::ir::Stmt::Copy`]).
    Copy { names: Option<Vec<Name>> },
    /// `%to = %from` in embedded Perl: every key of one namespace copied into another (like
    /// `<*>`, with both namespaces named).
    CopyAll { from: Ns, to: Ns },
}

/// The left side of an assignment: `x`, `v.x`, `i.a.b`, `v.list[0]`. Without a namespace the
/// block's default applies (`i.` in an imap, `v.` in an omap or eval, `o.` in a wfomap). A
/// first word that is one of the letters `a e v i o t` followed by a dot is a namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub ns: Option<Ns>,
    /// At least one; the first is always a [`Seg::Key`].
    pub segs: Vec<Seg>,
    pub span: Span,
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

/// The forms of an expression; each maps to the [`jcl::ir::Expr`] variant of the same name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExprKind {
    /// A literal: number, string, `true`, `false`, `null`.
    Lit(Value),
    /// A read of a path such as `v.a.b` or `a.list[-1]`; in expressions the namespace is
    /// required.
    Path(Path),
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// A call of a built-in function.
    Call {
        func: Func,
        /// The span of the function name.
        name_span: Span,
        args: Vec<Expr>,
    },
    /// `expr ~ /regex/flags`; flags are folded into `regex` as `(?flags)`.
    Match {
        expr: Box<Expr>,
        regex: String,
        /// The span of the regex literal.
        regex_span: Span,
    },
}

/// A path into a namespace: `v.a.b`, `a.list[0]`, `e._error.msg`, `v.m['some key']`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Path {
    pub ns: Ns,
    /// At least one; the first is always a [`Seg::Key`].
    pub segs: Vec<Seg>,
    pub span: Span,
}

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Seg {
    /// `.name` (also the first name after the namespace).
    Key { name: String, span: Span },
    /// `[expr]`: an array index (negative counts from the end) or an object key.
    Index(Box<Expr>),
}

/// A statement of a `do:` block (or of a nested block).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stmt {
    pub kind: StmtKind,
    /// The statement's header line.
    pub span: Span,
}

/// The statements. Blocks of assignments are called `imap` when they build a call's inputs
/// and `into`/`collect` when they map outputs back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StmtKind {
    /// `call NAME:` imap, then optionally `into:` omap.
    Call {
        callee: Name,
        /// `call NAME priority N:`: the child job's priority (saturated to the `i64` range),
        /// and where it is.
        priority: Option<(i64, Span)>,
        imap: Vec<Assign>,
        into: Option<Block<Assign>>,
    },
    /// `eval:` or `let:` with assignments (default namespace `v.`). Assignment lines written
    /// directly among statements (`v.log = 'failed'` in a `catch:` block) are an `Eval` too,
    /// one per run of consecutive lines, spanning the first of them.
    Eval { assigns: Vec<Assign> },
    /// `if C:` …, any number of `elsif C:` …, optionally `else:` …. The first branch is the
    /// `if`.
    If {
        branches: Vec<Branch>,
        otherwise: Option<Block<Stmt>>,
    },
    /// `while C:` ….
    While { cond: Expr, body: Vec<Stmt> },
    /// `repeat:` … then `until C` on a line of its own at the `repeat`'s indentation.
    Repeat {
        body: Vec<Stmt>,
        until: Expr,
        /// The `until` line.
        until_span: Span,
    },
    /// `case E:` with `when a, b:` … branches and optionally `else:` …. The `when` lines may
    /// be indented under the `case` or follow it at the same indentation.
    Case {
        value: Expr,
        whens: Vec<When>,
        otherwise: Option<Block<Stmt>>,
    },
    /// `try:` … `catch:` ….
    Try { body: Vec<Stmt>, catch: Block<Stmt> },
    /// `raise_error E`, or `raise_error:` with `msg = E` below.
    RaiseError { msg: Expr },
    /// `assert C:` with the message expression on the same line or indented below.
    Assert { cond: Expr, msg: Expr },
    /// `goto L`.
    Goto { label: Name },
    /// `label L`.
    Label { name: Name },
    /// `return`: go to the end of the workflow.
    Return,
    /// `sleep E` (or `sleep:` with `timeout = E` below): E is an interval such as
    /// `'5 seconds'`.
    Sleep { interval: Expr },
    /// `subscribe:` with `name = …`, `mask = …`.
    Subscribe { imap: Vec<Assign> },
    /// `unsubscribe NAME` or `unsubscribe:` with `name = …`.
    Unsubscribe(Unsubscribe),
    /// `raise_event:` with `event = …`.
    RaiseEvent { imap: Vec<Assign> },
    /// `wait_for_event:` with `events = …`, `timeout = …`, then optionally `into:` omap.
    /// Without `events` the compiler waits for nothing but the time-out.
    WaitForEvent {
        imap: Vec<Assign>,
        into: Option<Block<Assign>>,
    },
    /// `lock TYPE E`.
    Lock { locktype: Name, value: Expr },
    /// `unlock TYPE E`.
    Unlock { locktype: Name, value: Expr },
    /// `wait_for_lock TYPE:` with `value = E` and `wait = yes|no|E`. The bare words `yes`
    /// and `no` after `wait =` are read as `true` and `false`.
    WaitForLock { locktype: Name, imap: Vec<Assign> },
    /// `split:` with `callflow` and `map` children: start them all, wait for all, then apply
    /// each one's output map in order.
    Split { flows: Vec<Flow> },
    /// A standalone `map NAME using E:` imap, then optionally `collect:` omap.
    Map(MapFlow),
    /// `detachflow NAME:` imap: start a child nobody waits for.
    Detachflow { callee: Name, imap: Vec<Assign> },
    /// Dynamic dispatch:
    ///
    /// ```text
    /// interface IFACE:
    ///     dest.one, dest.two
    ///     dest.three
    /// call E:
    ///     imap
    /// into:
    ///     omap
    /// ```
    ///
    /// The `interface` block lists the candidate workflows or actions (names, comma-separated or one per
    /// line); the `call E:` line that must follow at the same indentation calls the one named
    /// by the expression E, which must evaluate to one of the candidates. IFACE names the
    /// action or workflow whose inputs and outputs every candidate shares.
    Dispatch {
        interface: Name,
        candidates: Vec<Name>,
        target: Expr,
        /// The `call E:` line.
        call_span: Span,
        imap: Vec<Assign>,
        into: Option<Block<Assign>>,
    },
}

/// An `if C:` or `elsif C:` branch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Branch {
    pub cond: Expr,
    pub body: Vec<Stmt>,
    /// The `if`/`elsif` line.
    pub span: Span,
}

/// A `when a, b:` branch of a `case`. Labels are words, quoted strings or numbers, compared
/// with the string form of the case value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct When {
    pub labels: Vec<Name>,
    pub body: Vec<Stmt>,
    /// The `when` line.
    pub span: Span,
}

/// The two forms of `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unsubscribe {
    /// `unsubscribe NAME`.
    Name(Name),
    /// `unsubscribe:` with `name = …`.
    Imap(Vec<Assign>),
}

/// A child of a `split:`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flow {
    pub kind: FlowKind,
    /// The `callflow`/`map` line.
    pub span: Span,
}

/// The two kinds of child a `split:` starts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowKind {
    /// `callflow NAME:` imap, then optionally `into:` omap.
    Callflow {
        callee: Name,
        imap: Vec<Assign>,
        into: Option<Block<Assign>>,
    },
    /// `map NAME using E:` imap, then optionally `collect:` omap.
    Map(MapFlow),
}

/// `map NAME using E:` imap, then optionally `collect:` omap: one child per element of the
/// list E; the child's environment has `_v` (the element) and `_i` (its 1-based index).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MapFlow {
    pub callee: Name,
    pub using: Expr,
    pub imap: Vec<Assign>,
    pub collect: Option<Block<Assign>>,
}

impl Expr {
    /// A literal expression.
    pub fn lit(value: Value, span: Span) -> Expr {
        Expr {
            kind: ExprKind::Lit(value),
            span,
        }
    }
}

impl File {
    /// The statements of the `do:` section (empty without one).
    pub fn statements(&self) -> &[Stmt] {
        self.body.as_ref().map_or(&[], |s| s.items.as_slice())
    }
}

/// The binary operators' source spelling, for messages.
pub fn binop_symbol(op: BinOp) -> &'static str {
    match op {
        BinOp::Pow => "**",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::Repeat => "x",
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Concat => ".",
        BinOp::NumLt => "<",
        BinOp::NumLe => "<=",
        BinOp::NumGt => ">",
        BinOp::NumGe => ">=",
        BinOp::NumEq => "==",
        BinOp::NumNe => "!=",
        BinOp::StrLt => "lt",
        BinOp::StrLe => "le",
        BinOp::StrGt => "gt",
        BinOp::StrGe => "ge",
        BinOp::StrEq => "eq",
        BinOp::StrNe => "ne",
        BinOp::And => "&&",
        BinOp::Or => "||",
        BinOp::DefinedOr => "//",
        BinOp::Xor => "xor",
    }
}

/// The assignment operators' source spelling, for messages.
pub fn assignop_symbol(op: AssignOp) -> &'static str {
    match op {
        AssignOp::Set => "=",
        AssignOp::Concat => ".=",
        AssignOp::Push => ",=",
        AssignOp::Add => "+=",
        AssignOp::Sub => "-=",
        AssignOp::Mul => "*=",
        AssignOp::Div => "/=",
        AssignOp::DefinedOr => "//=",
        AssignOp::Or => "||=",
    }
}
