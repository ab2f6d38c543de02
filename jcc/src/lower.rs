//! Lowering of one parsed file to a [`jcl::Model`], with the semantic checks that need the
//! statements: callees and their inputs and outputs, namespaces, types, labels, locks,
//! unreachable statements and, over the finished task graph, variables read before any
//! assignment.
//!
//! Statements are lowered front to back into fragments: a fragment has an entry task and a
//! list of holes (a task's default `next` or a conditional edge still to be pointed at
//! whatever follows). A block joins its statements by pointing each one's holes at the next
//! one's entry. `goto` and `return` make no task: their fragment's entry is the label's
//! `no_op` task or the `end` task, so whatever precedes them jumps there directly.

use std::collections::{BTreeSet, HashMap};

use jcl::ir::{self, Func, Ns};
use jcl::{
    ActionKind, Callee, Config, Destination, Edge, LockDecl, Model, Param, RateConfig, RetryConfig,
    SystemAction, Task, TaskAttributes,
};
use jcl_syntax::ast::{self, AssignKind, ExprKind, Span, StmtKind};
use jcl_syntax::Diagnostic;
use serde_json::{Map, Value};

use crate::catalog::{system_interface, Catalog, Interface};
use crate::codes;
use crate::flow::{self, Info, Op};
use crate::schedule::{self, Schedule};
use crate::types::{infer, Ty};

/// Looks callees up: files of the same compile first, then the database.
#[derive(Debug)]
pub struct Resolver<'a> {
    pub local: &'a HashMap<String, Interface>,
    pub catalog: &'a Catalog,
}

impl Resolver<'_> {
    /// The interface of `name`, and whether it is a file of this compile.
    pub fn lookup(&self, name: &str) -> Option<(&Interface, bool)> {
        if let Some(i) = self.local.get(name) {
            return Some((i, true));
        }
        self.catalog.externals.get(name).map(|i| (i, false))
    }

    fn names(&self) -> Vec<&str> {
        self.local
            .keys()
            .chain(self.catalog.externals.keys())
            .map(String::as_str)
            .collect()
    }
}

/// The result of lowering one file.
#[derive(Debug)]
pub struct Lowered {
    pub model: Model,
    pub diagnostics: Vec<Diagnostic>,
    /// Names of files of this compile that the model's tasks call (to load them first).
    pub deps: BTreeSet<String>,
    /// The workflow's schedules that passed their checks.
    pub schedules: Vec<Schedule>,
}

/// A task's default edge or a conditional edge, still to be pointed somewhere.
#[derive(Debug, Clone)]
enum Hole {
    Next(u32),
    Edge(u32, String),
}

/// A lowered statement or block: where it starts (none for an empty block) and its exits.
#[derive(Debug, Default)]
struct Frag {
    entry: Option<u32>,
    holes: Vec<Hole>,
}

/// The kind of an assignment block: decides the default namespace, what may be written and
/// read, and the direction of `<x>` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Imap,
    Omap,
    Eval,
    Wfomap,
}

impl Block {
    fn default_ns(self) -> Ns {
        match self {
            Block::Imap => Ns::I,
            Block::Omap | Block::Eval => Ns::V,
            Block::Wfomap => Ns::O,
        }
    }

    fn writable(self) -> &'static [Ns] {
        match self {
            Block::Imap => &[Ns::I, Ns::T],
            Block::Omap | Block::Eval => &[Ns::V, Ns::T],
            Block::Wfomap => &[Ns::O, Ns::T],
        }
    }

    fn readable(self) -> &'static [Ns] {
        match self {
            Block::Imap => &[Ns::A, Ns::E, Ns::V, Ns::I, Ns::T],
            Block::Omap | Block::Wfomap => &[Ns::A, Ns::E, Ns::V, Ns::O, Ns::T],
            Block::Eval => &[Ns::A, Ns::E, Ns::V, Ns::T],
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Block::Imap => "an input map",
            Block::Omap => "an output map (`into:`/`collect:`)",
            Block::Eval => "an eval block",
            Block::Wfomap => "the wfomap",
        }
    }
}

/// What an expression may read, and what `o.` means there.
#[derive(Debug, Clone, Copy)]
struct ExprCx<'b> {
    readable: &'b [Ns],
    /// The interface whose outputs `o.` holds (the callee in an omap, the workflow itself in
    /// the wfomap).
    outputs: Option<&'b Interface>,
    what: &'b str,
}

/// A child of a split: callee, `using` list (for `map`), input map, output map, position.
type FlowParts<'x> = (
    &'x ast::Name,
    Option<&'x ast::Expr>,
    &'x [ast::Assign],
    Option<&'x ast::Block<ast::Assign>>,
    Span,
);

/// Expressions evaluated on their own (conditions, case values, `using` lists, dispatch).
const EXPR_NS: &[Ns] = &[Ns::A, Ns::E, Ns::V];

/// Which inputs an imap sets.
#[derive(Debug, Default)]
struct Assigned {
    all: bool,
    keys: BTreeSet<String>,
}

#[derive(Debug)]
struct LabelInfo {
    id: u32,
    defined: Option<Span>,
    uses: Vec<Span>,
}

struct Lowerer<'a> {
    file: &'a str,
    ast: &'a ast::File,
    me: &'a Interface,
    res: &'a Resolver<'a>,
    diags: Vec<Diagnostic>,
    tasks: Vec<Task>,
    infos: Vec<Info>,
    index: HashMap<u32, usize>,
    next_id: u32,
    try_stack: Vec<Vec<usize>>,
    labels: HashMap<String, LabelInfo>,
    end_id: Option<u32>,
    deps: BTreeSet<String>,
}

/// Lowers `ast` (whose declared interface, with `interface:` resolved, is `me`).
pub fn lower(
    file: &str,
    src: &str,
    ast: &ast::File,
    me: &Interface,
    res: &Resolver<'_>,
) -> Lowered {
    let mut l = Lowerer {
        file,
        ast,
        me,
        res,
        diags: vec![],
        tasks: vec![],
        infos: vec![],
        index: HashMap::new(),
        next_id: 0,
        try_stack: vec![],
        labels: HashMap::new(),
        end_id: None,
        deps: BTreeSet::new(),
    };
    l.check_sections();
    let config = l.config();
    let wfenv = l.wfenv();
    let locks = l.locks();
    let schedules = if me.kind == ActionKind::Workflow {
        l.schedules()
    } else {
        vec![]
    };
    if me.kind == ActionKind::Workflow {
        l.body();
    }
    let model = Model {
        kind: me.kind,
        name: ast.name.text.clone(),
        inputs: me.inputs.clone(),
        outputs: me.outputs.clone(),
        wfenv,
        role: ast.role.as_ref().map(|r| r.items.text.clone()),
        config,
        locks,
        tasks: std::mem::take(&mut l.tasks),
        src: Some(src.to_owned()),
    };
    l.diags.sort_by_key(|d| (d.span.line, d.span.col));
    Lowered {
        model,
        diagnostics: l.diags,
        deps: l.deps,
        schedules,
    }
}

/// The names within edit distance 2 of `name` (for "did you mean").
pub fn similar<'n>(name: &str, candidates: &[&'n str]) -> Vec<&'n str> {
    let mut v: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (distance(name, c), *c))
        .filter(|(d, c)| *d <= 2.min(name.len().max(c.len()) / 2) && *d > 0)
        .collect();
    v.sort();
    v.dedup();
    v.into_iter().take(3).map(|(_, c)| c).collect()
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            let del = prev[j + 1] + 1;
            let ins = cur[j] + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn lit(v: Value) -> ir::Expr {
    ir::Expr::Lit(v)
}

fn ipath(ns: Ns, key: &str) -> ir::Path {
    ir::Path {
        ns,
        segs: vec![ir::Seg::Key(key.to_owned())],
    }
}

fn set(ns: Ns, key: &str, value: ir::Expr) -> ir::Stmt {
    ir::Stmt::Assign {
        target: ipath(ns, key),
        op: ir::AssignOp::Set,
        value,
    }
}

/// Attributes carrying the source position of a statement.
fn attrs_at(span: Span) -> TaskAttributes {
    TaskAttributes {
        line: Some(span.line),
        col: Some(span.col),
        ..TaskAttributes::default()
    }
}

impl<'a> Lowerer<'a> {
    fn error(&mut self, code: &'static str, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::error(code, self.file, span, msg));
        let last = self.diags.len() - 1;
        &mut self.diags[last]
    }

    fn warning(&mut self, code: &'static str, span: Span, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::warning(code, self.file, span, msg));
    }

    fn hint(&mut self, hint: impl Into<String>) {
        if let Some(d) = self.diags.last_mut() {
            d.hint = Some(hint.into());
        }
    }

    fn is_workflow(&self) -> bool {
        self.me.kind == ActionKind::Workflow
    }

    // ---- sections -------------------------------------------------------------------------

    fn check_sections(&mut self) {
        let a = self.ast;
        let kind = self.me.kind.as_str();
        let bad = |l: &mut Self, name: &str, span: Option<Span>, only: &str| {
            if let Some(span) = span {
                l.error(
                    codes::SECTION,
                    span,
                    format!("{kind} {} cannot have a `{name}:` section", a.name.text),
                );
                l.hint(format!("`{name}:` belongs in {only}"));
            }
        };
        if self.is_workflow() {
            bad(
                self,
                "env",
                a.env.as_ref().map(|s| s.span),
                "an action or procedure",
            );
        } else {
            let w = "a workflow";
            bad(self, "wfenv", a.wfenv.as_ref().map(|s| s.span), w);
            bad(self, "locks", a.locks.as_ref().map(|s| s.span), w);
            bad(self, "wfomap", a.wfomap.as_ref().map(|s| s.span), w);
            bad(self, "do", a.body.as_ref().map(|s| s.span), w);
            bad(self, "schedule", a.schedule.as_ref().map(|s| s.span), w);
        }
    }

    fn config(&mut self) -> Config {
        let mut c = Config::default();
        let Some(section) = &self.ast.config else {
            return c;
        };
        let wf = self.is_workflow();
        for s in &section.items {
            let key = s.key.text.as_str();
            let v = &s.value.value;
            let for_wf = matches!(key, "max_steps" | "max_depth");
            let for_action = matches!(
                key,
                "timeout" | "retry" | "retryable" | "filter" | "rate" | "concurrency"
            );
            if (for_wf && !wf) || (for_action && wf) {
                let who = if for_wf {
                    "workflows"
                } else {
                    "actions and procedures"
                };
                self.error(
                    codes::CONFIG,
                    s.key.span,
                    format!("config `{key}` applies to {who} only"),
                );
                continue;
            }
            let bad = match key {
                "max_steps" | "max_depth" => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) if n > 0 => {
                        if key == "max_steps" {
                            c.max_steps = Some(n);
                        } else {
                            c.max_depth = Some(n);
                        }
                        None
                    }
                    _ => Some("a positive whole number"),
                },
                "archive" | "timeout" => match interval(v) {
                    Some(i) => {
                        if key == "archive" {
                            c.archive = Some(i);
                        } else {
                            c.timeout = Some(i);
                        }
                        None
                    }
                    None => Some("an interval such as '5 minutes' (or a number of seconds)"),
                },
                "retryable" => match v.as_bool() {
                    Some(b) => {
                        c.retryable = Some(b);
                        None
                    }
                    None => Some("true or false"),
                },
                "filter" => {
                    let names: Option<Vec<String>> = match v {
                        Value::String(s) => Some(vec![s.clone()]),
                        Value::Array(a) => {
                            a.iter().map(|x| x.as_str().map(str::to_owned)).collect()
                        }
                        _ => None,
                    };
                    match names {
                        Some(names) => {
                            for n in &names {
                                if self.me.argument(n).is_none() {
                                    self.error(
                                        codes::CONFIG,
                                        s.value.span,
                                        format!(
                                            "filter key `{n}` is not an input of {}",
                                            self.me.name
                                        ),
                                    );
                                }
                            }
                            c.filter = Some(names);
                            None
                        }
                        None => Some("an input name or an array of input names"),
                    }
                }
                "rate" => {
                    if self.me.kind != ActionKind::Action {
                        self.error(
                            codes::RATE,
                            s.key.span,
                            "config `rate` applies to actions only: a procedure runs in the database",
                        );
                    } else {
                        match rate(v) {
                            Ok(r) => c.rate = Some(r),
                            Err(msg) => {
                                self.error(
                                    codes::RATE,
                                    s.value.span,
                                    format!("invalid rate: {msg}"),
                                );
                                self.hint("write rate = '10 per 1 second' or rate = {limit: 10, per: '1 second'} (limit 1 to 10000)");
                            }
                        }
                    }
                    None
                }
                "concurrency" => {
                    if self.me.kind != ActionKind::Action {
                        self.error(
                            codes::CONCURRENCY,
                            s.key.span,
                            "config `concurrency` applies to actions only: a procedure runs in the database",
                        );
                    } else {
                        match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
                            Some(n) if (1..=MAX_CONCURRENCY).contains(&n) => {
                                c.concurrency = Some(n)
                            }
                            _ => {
                                self.error(
                                    codes::CONCURRENCY,
                                    s.value.span,
                                    format!(
                                        "invalid concurrency: {v}: a whole number from 1 to {MAX_CONCURRENCY}"
                                    ),
                                );
                                self.hint("write concurrency = 40: at most 40 tasks of the action at work at once");
                            }
                        }
                    }
                    None
                }
                "retry" => match retry(v) {
                    Ok(r) => {
                        c.retry = Some(r);
                        None
                    }
                    Err(msg) => {
                        self.error(codes::CONFIG, s.value.span, format!("invalid retry: {msg}"));
                        self.hint("write retry = {tries: 3, interval: '10 seconds'} (optional: backoff: 'sqrt'|'fixed'|'exponential', max_interval, jitter)");
                        None
                    }
                },
                _ => {
                    self.error(
                        codes::CONFIG,
                        s.key.span,
                        format!("unknown config key `{key}`"),
                    );
                    self.hint(if wf {
                        "a workflow's config keys are max_steps, max_depth and archive"
                    } else {
                        "an action's config keys are timeout, retry, retryable, filter, rate and archive"
                    });
                    None
                }
            };
            if let Some(want) = bad {
                self.error(
                    codes::CONFIG,
                    s.value.span,
                    format!("config `{key}` must be {want}, not {v}"),
                );
            }
        }
        c
    }

    /// Checks the `schedule:` section of a workflow: names, keys and their values, the cron
    /// expression's structure (the database checks it fully before writing) and the
    /// arguments against the workflow's inputs, like the inputs of a call. Returns the
    /// schedules without errors.
    fn schedules(&mut self) -> Vec<Schedule> {
        let Some(section) = &self.ast.schedule else {
            return vec![];
        };
        let me = self.me;
        let mut out = vec![];
        let mut names: HashMap<&str, Span> = HashMap::new();
        for s in &section.items {
            let before = self.diags.len();
            let name = s.name.text.as_str();
            if let Some(first) = names.insert(name, s.name.span) {
                self.error(
                    codes::DUPLICATE,
                    s.name.span,
                    format!("the schedule `{name}` is declared twice"),
                )
                .labels
                .push(jcl_syntax::Label {
                    span: first,
                    message: "first here".to_owned(),
                });
            }
            if name.is_empty() || name.contains('/') {
                self.error(
                    codes::SCHEDULE,
                    s.name.span,
                    format!("`{name}` cannot name a schedule"),
                );
                self.hint(format!(
                    "the schedule is stored as `{}/NAME`; its NAME must not be empty or contain `/`",
                    me.name
                ));
            }
            let mut sched = Schedule {
                name: name.to_owned(),
                cron: String::new(),
                timezone: "UTC".to_owned(),
                missed: "skip".to_owned(),
                args: Value::Object(Map::new()),
                enabled: true,
                span: s.span,
                cron_span: s.name.span,
                tz_span: None,
            };
            let mut cron = false;
            let mut args = None;
            let mut keys: HashMap<&str, Span> = HashMap::new();
            for st in &s.settings {
                let key = st.key.text.as_str();
                let v = &st.value.value;
                let vspan = st.value.span;
                if keys.insert(key, st.key.span).is_some() {
                    self.error(
                        codes::DUPLICATE,
                        st.key.span,
                        format!("`{key}` is set twice for the schedule `{name}`"),
                    );
                    continue;
                }
                let bad = |l: &mut Self, msg: String, hint: &str| {
                    l.error(codes::SCHEDULE, vspan, msg);
                    l.hint(hint);
                };
                match key {
                    "cron" => match v.as_str() {
                        Some(e) => match schedule::check_cron(e) {
                            Ok(()) => {
                                cron = true;
                                sched.cron = e.to_owned();
                                sched.cron_span = vspan;
                            }
                            Err(why) => bad(
                                self,
                                format!("invalid cron expression: {why}"),
                                "six fields: sec min hour day-of-month month day-of-week \
                                 (and an optional year), e.g. '0 */5 * * * *', or @daily",
                            ),
                        },
                        None => bad(
                            self,
                            format!("`cron` must be a string, not {v}"),
                            "write the expression in quotes: cron = '0 30 2 * * *'",
                        ),
                    },
                    "tz" => match v.as_str().map(|tz| (tz, schedule::check_timezone(tz))) {
                        Some((tz, Ok(()))) => {
                            sched.timezone = tz.to_owned();
                            sched.tz_span = Some(vspan);
                        }
                        Some((_, Err(why))) => bad(
                            self,
                            format!("invalid time zone: {why}"),
                            "an IANA time zone, e.g. tz = 'Europe/Amsterdam'",
                        ),
                        None => bad(
                            self,
                            format!("`tz` must be a string, not {v}"),
                            "an IANA time zone, e.g. tz = 'Europe/Amsterdam'",
                        ),
                    },
                    "missed" => match v.as_str() {
                        Some(m @ ("skip" | "catchup")) => sched.missed = m.to_owned(),
                        _ => bad(
                            self,
                            format!("`missed` must be 'skip' or 'catchup', not {v}"),
                            "'skip' drops the runs missed while no maestro ran, 'catchup' fires once for all of them",
                        ),
                    },
                    "enabled" => match v.as_bool() {
                        Some(b) => sched.enabled = b,
                        None => bad(
                            self,
                            format!("`enabled` must be true or false, not {v}"),
                            "write enabled = false to create the schedule disabled",
                        ),
                    },
                    "args" => match v {
                        Value::Object(m) => {
                            for (k, x) in m {
                                self.check_input_key(Some(me), k, vspan, &me.name);
                                if let Some(p) = me.argument(k) {
                                    let ty = Ty::of_value(x);
                                    if !ty.fits(&p.ty) {
                                        let want = p.ty.clone();
                                        self.type_error(vspan, k, &want, ty, "input");
                                    }
                                }
                            }
                            sched.args = v.clone();
                            args = Some((m, vspan));
                        }
                        _ => bad(
                            self,
                            format!("`args` must be an object of the workflow's inputs, not {v}"),
                            "write args = {name: value, …}",
                        ),
                    },
                    _ => {
                        self.error(
                            codes::SCHEDULE,
                            st.key.span,
                            format!("unknown schedule key `{key}`"),
                        );
                        let close = if matches!(key, "timezone" | "time_zone" | "zone") {
                            vec!["tz"]
                        } else {
                            similar(key, &schedule::KEYS)
                        };
                        self.hint(if close.is_empty() {
                            format!("the keys of a schedule are {}", quoted(&schedule::KEYS))
                        } else {
                            format!("did you mean {}?", quoted(&close))
                        });
                    }
                }
            }
            if !cron && !keys.contains_key("cron") {
                self.error(
                    codes::SCHEDULE,
                    s.name.span,
                    format!("the schedule `{name}` has no `cron` expression"),
                );
                self.hint("add cron = '…': six fields sec min hour day-of-month month day-of-week, e.g. '0 30 2 * * *'");
            }
            let given: BTreeSet<String> = args
                .map(|(m, _)| m.keys().cloned().collect())
                .unwrap_or_default();
            let missing: Vec<String> = me
                .arguments()
                .filter(|p| !p.optional && p.default.is_none() && !given.contains(&p.name))
                .map(|p| p.name.clone())
                .collect();
            for m in missing {
                let span = args.map_or(s.name.span, |(_, sp)| sp);
                self.error(
                    codes::MISSING_INPUT,
                    span,
                    format!(
                        "the schedule `{name}` misses the required input `{m}` of workflow {}",
                        me.name
                    ),
                );
                self.hint(format!("add `{m}: …` to its `args = {{…}}`"));
            }
            if self.diags.len() == before {
                out.push(sched);
            }
        }
        out
    }

    fn wfenv(&mut self) -> Option<Map<String, Value>> {
        let section = self.ast.wfenv.as_ref()?;
        let mut m = Map::new();
        for s in &section.items {
            if m.insert(s.key.text.clone(), s.value.value.clone())
                .is_some()
            {
                self.error(
                    codes::DUPLICATE,
                    s.key.span,
                    format!("wfenv key `{}` is set twice", s.key.text),
                );
            }
        }
        Some(m)
    }

    /// A call's `priority`: -1000 to 1000, on a call of a workflow (an action's task runs at
    /// its job's priority).
    fn priority(
        &mut self,
        p: i64,
        span: Span,
        kind: Option<ActionKind>,
        callee: &str,
    ) -> Option<i32> {
        if matches!(kind, Some(ActionKind::Action | ActionKind::Procedure)) {
            self.error(
                codes::PRIORITY,
                span,
                format!("`call {callee} priority {p}`: {callee} is not a workflow"),
            );
            self.hint("a priority is a job's: an action's task runs at its job's priority");
            return None;
        }
        match i32::try_from(p) {
            Ok(p) if (-1000..=1000).contains(&p) => Some(p),
            _ => {
                self.error(
                    codes::PRIORITY,
                    span,
                    format!("priority {p}: a priority is from -1000 to 1000"),
                );
                None
            }
        }
    }

    fn locks(&mut self) -> Vec<LockDecl> {
        let Some(section) = &self.ast.locks else {
            return vec![];
        };
        let mut out: Vec<LockDecl> = vec![];
        for d in &section.items {
            if out.iter().any(|o| o.locktype == d.locktype.text) {
                self.error(
                    codes::DUPLICATE,
                    d.locktype.span,
                    format!("lock type `{}` is declared twice", d.locktype.text),
                );
                continue;
            }
            let cx = ExprCx {
                readable: &[Ns::A, Ns::E],
                outputs: None,
                what: "a lock value",
            };
            let mut ops = vec![];
            let value = d.value.as_ref().map(|e| self.expr(e, cx, &mut ops));
            if d.value.is_none() && !d.manual {
                self.error(
                    codes::LOCK_NOT_MANUAL,
                    d.span,
                    format!(
                        "lock type `{}` has the placeholder value `_` but is not `manual`",
                        d.locktype.text
                    ),
                );
                self.hint(
                    "a lock taken at job start needs a value; add `manual` to take it with `lock`",
                );
            }
            let limit = d.limit.and_then(|(n, span)| match u32::try_from(n) {
                Ok(n) if n >= 1 && i32::try_from(n).is_ok() => Some(n),
                _ => {
                    self.error(
                        codes::LOCK_LIMIT,
                        span,
                        format!(
                            "lock type `{}` has limit {n}: a limit is from 1 to {}",
                            d.locktype.text,
                            i32::MAX
                        ),
                    );
                    None
                }
            });
            out.push(LockDecl {
                locktype: d.locktype.text.clone(),
                value,
                manual: d.manual,
                inherit: d.inherit,
                limit,
            });
        }
        out
    }

    // ---- tasks ----------------------------------------------------------------------------

    fn alloc(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn end_id(&mut self) -> u32 {
        match self.end_id {
            Some(id) => id,
            None => {
                let id = self.alloc();
                self.end_id = Some(id);
                id
            }
        }
    }

    /// Appends a task starting a child job of workflow `name`, continuing to the next task.
    fn push_workflow_call(&mut self, name: String, attrs: TaskAttributes, ops: Vec<Op>) -> u32 {
        let id = self.alloc();
        let callee = Callee::Named {
            name,
            kind: Some(ActionKind::Workflow),
        };
        self.push(
            id,
            callee,
            attrs,
            Info {
                ops,
                dead_next: false,
            },
        );
        id
    }

    fn push(&mut self, id: u32, callee: Callee, attributes: TaskAttributes, info: Info) -> u32 {
        let idx = self.tasks.len();
        self.tasks.push(Task {
            id,
            callee,
            next: None,
            on_error: None,
            edges: vec![],
            attributes,
        });
        self.infos.push(info);
        self.index.insert(id, idx);
        if let Some(top) = self.try_stack.last_mut() {
            top.push(idx);
        }
        id
    }

    fn task_mut(&mut self, id: u32) -> Option<&mut Task> {
        let idx = *self.index.get(&id)?;
        self.tasks.get_mut(idx)
    }

    fn connect(&mut self, holes: Vec<Hole>, to: u32) {
        for h in holes {
            match h {
                Hole::Next(id) => {
                    if let Some(t) = self.task_mut(id) {
                        t.next = Some(to);
                    }
                }
                Hole::Edge(id, when) => {
                    if let Some(t) = self.task_mut(id) {
                        t.edges.push(Edge { when, to });
                    }
                }
            }
        }
    }

    /// Points `from` at `body`'s entry and adds the body's holes to `out`; an empty body
    /// leaves `from` itself in `out`.
    fn attach(&mut self, from: Hole, body: Frag, out: &mut Vec<Hole>) {
        match body.entry {
            Some(e) => {
                self.connect(vec![from], e);
                out.extend(body.holes);
            }
            None => out.push(from),
        }
    }

    fn system(
        &mut self,
        action: SystemAction,
        span: Span,
        attrs: TaskAttributes,
        info: Info,
    ) -> u32 {
        let id = self.alloc();
        let mut a = attrs;
        a.line = Some(span.line);
        a.col = Some(span.col);
        self.push(id, Callee::System(action), a, info)
    }

    fn single(&mut self, id: u32) -> Frag {
        Frag {
            entry: Some(id),
            holes: vec![Hole::Next(id)],
        }
    }

    // ---- the body -------------------------------------------------------------------------

    fn body(&mut self) {
        let start = self.alloc();
        self.push(
            start,
            Callee::System(SystemAction::Start),
            TaskAttributes::default(),
            Info::default(),
        );
        let stmts = self.ast.statements();
        let frag = self.block(stmts);
        let end = self.end_id();
        match frag.entry {
            Some(e) => self.connect(vec![Hole::Next(start)], e),
            None => self.connect(vec![Hole::Next(start)], end),
        }
        self.connect(frag.holes, end);
        // the end task with the wfomap
        let mut ops = vec![];
        let me = self.me;
        let (wfomap, assigned) = match &self.ast.wfomap {
            Some(s) => self.assigns(&s.items, Block::Wfomap, Some(me), "the wfomap", &mut ops),
            None => (vec![], Assigned::default()),
        };
        let span = self.ast.wfomap.as_ref().map_or(self.ast.span, |s| s.span);
        let attrs = TaskAttributes {
            wfomap: Some(wfomap),
            ..TaskAttributes::default()
        };
        self.push(
            end,
            Callee::System(SystemAction::End),
            attrs,
            Info {
                ops,
                dead_next: false,
            },
        );
        // a workflow that never ends normally (an interface that only raises an error)
        // produces no outputs
        let ends = flow::reachable(&self.tasks, &self.infos, end);
        if !assigned.all && ends {
            for o in &me.outputs {
                if !o.optional && !assigned.keys.contains(&o.name) {
                    self.error(
                        codes::OUTPUT_UNASSIGNED,
                        span,
                        format!("output `{}` is never assigned in the wfomap", o.name),
                    );
                    self.hint(format!(
                        "add `{0} = …` (or `<{0}>`) to the wfomap, or declare it `optional`",
                        o.name
                    ));
                }
            }
        }
        // labels
        let mut labels: Vec<(&String, &LabelInfo)> = self.labels.iter().collect();
        labels.sort_by_key(|(n, _)| n.as_str());
        let mut undefined = vec![];
        for (name, info) in labels {
            if info.defined.is_none() {
                for u in &info.uses {
                    undefined.push((name.clone(), *u));
                }
            }
        }
        let known: Vec<String> = self
            .labels
            .iter()
            .filter(|(_, i)| i.defined.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for (name, span) in undefined {
            self.error(
                codes::UNKNOWN_LABEL,
                span,
                format!("unknown label `{name}`"),
            );
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            let close = similar(&name, &refs);
            if close.is_empty() {
                self.hint("define it with `label NAME` in this workflow");
            } else {
                self.hint(format!("did you mean {}?", quoted(&close)));
            }
        }
        // variables read before any assignment
        for (var, span) in flow::unassigned_reads(&self.tasks, &self.infos) {
            self.error(
                codes::UNASSIGNED_VAR,
                span,
                format!("variable `v.{var}` is read here but no path from the start assigns it"),
            );
            self.hint(format!(
                "assign it first (`eval: {var} = …` or an `into:` map), or test it with `defined(v.{var})`"
            ));
        }
        // the end task last, the rest in creation order
        if let Some(pos) = self.tasks.iter().position(|t| t.id == end) {
            let t = self.tasks.remove(pos);
            self.tasks.push(t);
        }
    }

    fn block(&mut self, stmts: &[ast::Stmt]) -> Frag {
        let mut entry = None;
        let mut pending: Vec<Hole> = vec![];
        let mut dead: Option<&str> = None;
        let mut reported = false;
        for s in stmts {
            let is_label = matches!(s.kind, StmtKind::Label { .. });
            if is_label {
                dead = None;
                reported = false;
            } else if let Some(why) = dead {
                if !reported {
                    self.error(
                        codes::UNREACHABLE,
                        s.span,
                        format!("unreachable statement: it follows `{why}` in the same block"),
                    );
                    self.hint("remove it, or put a `label` before it and jump there with `goto`");
                    reported = true;
                }
            }
            let f = self.stmt(s);
            if let Some(e) = f.entry {
                if entry.is_none() {
                    entry = Some(e);
                }
                let p = std::mem::take(&mut pending);
                self.connect(p, e);
            }
            pending.extend(f.holes);
            match s.kind {
                StmtKind::Goto { .. } => dead = Some("goto"),
                StmtKind::Return => dead = Some("return"),
                StmtKind::RaiseError { .. } => dead = Some("raise_error"),
                _ => {}
            }
        }
        Frag {
            entry,
            holes: pending,
        }
    }

    fn label_id(&mut self, name: &str) -> u32 {
        if let Some(l) = self.labels.get(name) {
            return l.id;
        }
        let id = self.alloc();
        self.labels.insert(
            name.to_owned(),
            LabelInfo {
                id,
                defined: None,
                uses: vec![],
            },
        );
        id
    }

    fn stmt(&mut self, s: &ast::Stmt) -> Frag {
        let span = s.span;
        match &s.kind {
            StmtKind::Call {
                callee,
                priority,
                imap,
                into,
            } => {
                let iface = self.callee(callee);
                let kind = iface.as_ref().map(|i| i.kind);
                let id = self.alloc();
                let mut attrs = attrs_at(span);
                if let Some((p, pspan)) = *priority {
                    attrs.priority = self.priority(p, pspan, kind, &callee.text);
                }
                let mut ops = vec![];
                let what = format!("call {}", callee.text);
                let (im, assigned) =
                    self.assigns(imap, Block::Imap, iface.as_ref(), &what, &mut ops);
                if let Some(i) = &iface {
                    self.missing_inputs(i, &assigned, span);
                }
                attrs.imap = Some(im);
                if let Some(into) = into {
                    let (om, _) =
                        self.assigns(&into.items, Block::Omap, iface.as_ref(), &what, &mut ops);
                    attrs.omap = Some(om);
                }
                let callee = Callee::Named {
                    name: callee.text.clone(),
                    kind,
                };
                self.push(
                    id,
                    callee,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                self.single(id)
            }
            StmtKind::Eval { assigns } => {
                let mut ops = vec![];
                let (code, _) = self.assigns(assigns, Block::Eval, None, "an eval block", &mut ops);
                let attrs = TaskAttributes {
                    code: Some(code),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Eval,
                    span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                self.single(id)
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                let mut holes = vec![];
                let mut entry = None;
                let mut prev: Option<u32> = None;
                for b in branches {
                    let mut ops = vec![];
                    let cond = self.expr(&b.cond, self.cond_cx("a condition"), &mut ops);
                    let attrs = TaskAttributes {
                        cond: Some(cond),
                        ..TaskAttributes::default()
                    };
                    let id = self.system(
                        SystemAction::Branch,
                        b.span,
                        attrs,
                        Info {
                            ops,
                            dead_next: false,
                        },
                    );
                    if let Some(p) = prev {
                        self.connect(vec![Hole::Next(p)], id);
                    }
                    entry.get_or_insert(id);
                    let body = self.block(&b.body);
                    self.attach(Hole::Edge(id, "true".into()), body, &mut holes);
                    prev = Some(id);
                }
                if let Some(p) = prev {
                    match otherwise {
                        Some(o) => {
                            let body = self.block(&o.items);
                            self.attach(Hole::Next(p), body, &mut holes);
                        }
                        None => holes.push(Hole::Next(p)),
                    }
                }
                Frag { entry, holes }
            }
            StmtKind::While { cond, body } => {
                let mut ops = vec![];
                let c = self.expr(cond, self.cond_cx("a condition"), &mut ops);
                let attrs = TaskAttributes {
                    cond: Some(c),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Branch,
                    span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                let b = self.block(body);
                match b.entry {
                    Some(e) => {
                        self.connect(vec![Hole::Edge(id, "true".into())], e);
                        self.connect(b.holes, id);
                    }
                    None => self.connect(vec![Hole::Edge(id, "true".into())], id),
                }
                Frag {
                    entry: Some(id),
                    holes: vec![Hole::Next(id)],
                }
            }
            StmtKind::Repeat {
                body,
                until,
                until_span,
            } => {
                let b = self.block(body);
                let mut ops = vec![];
                let c = self.expr(until, self.cond_cx("a condition"), &mut ops);
                let attrs = TaskAttributes {
                    cond: Some(c),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Branch,
                    *until_span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                let entry = b.entry.unwrap_or(id);
                self.connect(b.holes, id);
                self.connect(vec![Hole::Next(id)], entry);
                Frag {
                    entry: Some(entry),
                    holes: vec![Hole::Edge(id, "true".into())],
                }
            }
            StmtKind::Case {
                value,
                whens,
                otherwise,
            } => {
                let mut ops = vec![];
                let v = self.expr(value, self.cond_cx("a case value"), &mut ops);
                let attrs = TaskAttributes {
                    value: Some(v.into_text()),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Switch,
                    span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                let mut holes = vec![];
                let mut seen: HashMap<String, Span> = HashMap::new();
                for w in whens {
                    let body = self.block(&w.body);
                    let mut labels = vec![];
                    for l in &w.labels {
                        if let Some(first) = seen.get(&l.text) {
                            let first = *first;
                            self.error(
                                codes::DUPLICATE,
                                l.span,
                                format!("case label `{}` appears twice", l.text),
                            )
                            .labels
                            .push(jcl_syntax::Label {
                                span: first,
                                message: "first here".into(),
                            });
                            continue;
                        }
                        seen.insert(l.text.clone(), l.span);
                        labels.push(l.text.clone());
                    }
                    match body.entry {
                        Some(e) => {
                            let hs = labels.into_iter().map(|l| Hole::Edge(id, l)).collect();
                            self.connect(hs, e);
                            holes.extend(body.holes);
                        }
                        None => holes.extend(labels.into_iter().map(|l| Hole::Edge(id, l))),
                    }
                }
                match otherwise {
                    Some(o) => {
                        let body = self.block(&o.items);
                        self.attach(Hole::Next(id), body, &mut holes);
                    }
                    None => holes.push(Hole::Next(id)),
                }
                Frag {
                    entry: Some(id),
                    holes,
                }
            }
            StmtKind::Try { body, catch } => {
                self.try_stack.push(vec![]);
                let b = self.block(body);
                let inside = self.try_stack.pop().unwrap_or_default();
                let c = self.block(&catch.items);
                let (catch_entry, mut holes) = match c.entry {
                    Some(e) => (e, c.holes),
                    None => {
                        let id = self.system(
                            SystemAction::NoOp,
                            catch.span,
                            TaskAttributes::default(),
                            Info::default(),
                        );
                        (id, vec![Hole::Next(id)])
                    }
                };
                for idx in inside {
                    if let Some(t) = self.tasks.get_mut(idx) {
                        if t.on_error.is_none() {
                            t.on_error = Some(catch_entry);
                        }
                    }
                }
                match b.entry {
                    Some(e) => {
                        holes.extend(b.holes);
                        Frag {
                            entry: Some(e),
                            holes,
                        }
                    }
                    // an empty try block can raise nothing: the catch is never run
                    None => Frag {
                        entry: None,
                        holes: vec![],
                    },
                }
            }
            StmtKind::RaiseError { msg } => {
                let id = self.raise_error(msg, span);
                Frag {
                    entry: Some(id),
                    holes: vec![],
                }
            }
            StmtKind::Assert { cond, msg } => {
                let mut ops = vec![];
                let c = self.expr(cond, self.cond_cx("an assertion"), &mut ops);
                let attrs = TaskAttributes {
                    cond: Some(c),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Branch,
                    span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                let r = self.raise_error(msg, span);
                self.connect(vec![Hole::Next(id)], r);
                Frag {
                    entry: Some(id),
                    holes: vec![Hole::Edge(id, "true".into())],
                }
            }
            StmtKind::Goto { label } => {
                let id = self.label_id(&label.text);
                if let Some(l) = self.labels.get_mut(&label.text) {
                    l.uses.push(label.span);
                }
                Frag {
                    entry: Some(id),
                    holes: vec![],
                }
            }
            StmtKind::Label { name } => {
                let id = match self.labels.get(&name.text) {
                    Some(LabelInfo {
                        defined: Some(first),
                        ..
                    }) => {
                        let first = *first;
                        self.error(
                            codes::DUPLICATE_LABEL,
                            name.span,
                            format!("label `{}` is defined twice", name.text),
                        )
                        .labels
                        .push(jcl_syntax::Label {
                            span: first,
                            message: "first defined here".into(),
                        });
                        self.hint("rename one of them; a goto must know where to go");
                        self.alloc()
                    }
                    _ => {
                        let id = self.label_id(&name.text);
                        if let Some(l) = self.labels.get_mut(&name.text) {
                            l.defined = Some(name.span);
                        }
                        id
                    }
                };
                let mut attrs = attrs_at(span);
                attrs.line = Some(span.line);
                self.push(
                    id,
                    Callee::System(SystemAction::NoOp),
                    attrs,
                    Info::default(),
                );
                self.single(id)
            }
            StmtKind::Return => {
                let end = self.end_id();
                Frag {
                    entry: Some(end),
                    holes: vec![],
                }
            }
            StmtKind::Sleep { interval } => {
                let mut ops = vec![];
                let iface = system_interface(SystemAction::Sleep);
                let e = self.expr(interval, self.imap_cx("sleep"), &mut ops);
                self.type_check(&iface, "timeout", interval, None);
                let attrs = TaskAttributes {
                    imap: Some(vec![set(Ns::I, "timeout", e)]),
                    ..TaskAttributes::default()
                };
                let id = self.system(
                    SystemAction::Sleep,
                    span,
                    attrs,
                    Info {
                        ops,
                        dead_next: false,
                    },
                );
                self.single(id)
            }
            StmtKind::Subscribe { imap } => {
                self.system_call(SystemAction::Subscribe, imap, None, span)
            }
            StmtKind::Unsubscribe(u) => match u {
                ast::Unsubscribe::Name(n) => {
                    let attrs = TaskAttributes {
                        imap: Some(vec![set(Ns::I, "name", lit(Value::String(n.text.clone())))]),
                        ..TaskAttributes::default()
                    };
                    let id = self.system(SystemAction::Unsubscribe, span, attrs, Info::default());
                    self.single(id)
                }
                ast::Unsubscribe::Imap(imap) => {
                    self.system_call(SystemAction::Unsubscribe, imap, None, span)
                }
            },
            StmtKind::RaiseEvent { imap } => {
                self.system_call(SystemAction::RaiseEvent, imap, None, span)
            }
            StmtKind::WaitForEvent { imap, into } => {
                let imap = self.wait_events(imap, span);
                self.system_call(SystemAction::WaitForEvent, &imap, into.as_ref(), span)
            }
            StmtKind::Lock { locktype, value } => {
                self.lock_stmt(SystemAction::Lock, locktype, Some(value), &[], span)
            }
            StmtKind::Unlock { locktype, value } => {
                self.lock_stmt(SystemAction::Unlock, locktype, Some(value), &[], span)
            }
            StmtKind::WaitForLock { locktype, imap } => {
                self.lock_stmt(SystemAction::Lock, locktype, None, imap, span)
            }
            StmtKind::Split { flows } => {
                let flows: Vec<FlowParts<'_>> = flows
                    .iter()
                    .map(|f| match &f.kind {
                        ast::FlowKind::Callflow { callee, imap, into } => {
                            (callee, None, imap.as_slice(), into.as_ref(), f.span)
                        }
                        ast::FlowKind::Map(m) => (
                            &m.callee,
                            Some(&m.using),
                            m.imap.as_slice(),
                            m.collect.as_ref(),
                            f.span,
                        ),
                    })
                    .collect();
                self.split(&flows, span)
            }
            StmtKind::Map(m) => {
                let flows = [(
                    &m.callee,
                    Some(&m.using),
                    m.imap.as_slice(),
                    m.collect.as_ref(),
                    span,
                )];
                self.split(&flows, span)
            }
            StmtKind::Detachflow { callee, imap } => {
                let iface = self.callee(callee);
                self.need_workflow(callee, iface.as_ref(), "detachflow");
                let mut ops = vec![];
                let what = format!("detachflow {}", callee.text);
                let (im, assigned) =
                    self.assigns(imap, Block::Imap, iface.as_ref(), &what, &mut ops);
                if let Some(i) = &iface {
                    self.missing_inputs(i, &assigned, span);
                }
                let mut attrs = attrs_at(span);
                attrs.imap = Some(im);
                attrs.wait = false;
                attrs.detach = true;
                let id = self.push_workflow_call(callee.text.clone(), attrs, ops);
                self.single(id)
            }
            StmtKind::Dispatch {
                interface,
                candidates,
                target,
                call_span,
                imap,
                into,
            } => {
                let iface = self.callee(interface);
                let mut names = vec![];
                let mut first_wf = None;
                let mut to_actions = false;
                for c in candidates {
                    if let Some((ci, _)) = self.res.lookup(&c.text) {
                        let ci = ci.clone();
                        if ci.kind == ActionKind::Workflow {
                            first_wf.get_or_insert(c.text.clone());
                        } else {
                            to_actions = true;
                        }
                        if let Some(i) = &iface {
                            self.same_interface(i, &ci, c.span);
                        }
                    }
                    names.push(c.text.clone());
                }
                if to_actions {
                    let case = dispatch_case(interface, candidates, target, *call_span, imap, into);
                    return self.stmt_once(&ast::Stmt { kind: case, span });
                }
                for c in candidates {
                    if self.res.lookup(&c.text).is_none() {
                        self.unknown_callee(c);
                    }
                }
                let mut ops = vec![];
                let what = format!("interface {}", interface.text);
                let d = self.expr(target, self.cond_cx("the workflow to call"), &mut ops);
                let (im, assigned) =
                    self.assigns(imap, Block::Imap, iface.as_ref(), &what, &mut ops);
                if let Some(i) = &iface {
                    self.missing_inputs(i, &assigned, *call_span);
                }
                let mut attrs = attrs_at(*call_span);
                attrs.imap = Some(im);
                if let Some(into) = into {
                    let (om, _) =
                        self.assigns(&into.items, Block::Omap, iface.as_ref(), &what, &mut ops);
                    attrs.omap = Some(om);
                }
                attrs.dispatch = Some(d);
                attrs.candidates = Some(names);
                // The task's callee must be a workflow: the interface itself when it is one,
                // else the first candidate (the engine calls the one named at run time).
                let name = match &iface {
                    Some(i) if i.kind == ActionKind::Workflow => interface.text.clone(),
                    _ => first_wf.unwrap_or_else(|| interface.text.clone()),
                };
                if name != interface.text {
                    self.deps_add(&name);
                }
                let id = self.push_workflow_call(name, attrs, ops);
                self.single(id)
            }
        }
    }

    /// Lowers `s` (statements jcc made from one source statement), keeping one diagnostic
    /// per place and code: a later copy's at the place of an earlier one says the same again.
    fn stmt_once(&mut self, s: &ast::Stmt) -> Frag {
        let before = self.diags.len();
        let frag = self.stmt(s);
        let mut kept: Vec<Diagnostic> = vec![];
        for d in self.diags.split_off(before) {
            if !kept.iter().any(|k| k.code == d.code && k.span == d.span) {
                kept.push(d);
            }
        }
        self.diags.extend(kept);
        frag
    }

    fn deps_add(&mut self, name: &str) {
        if let Some((_, true)) = self.res.lookup(name) {
            if name != self.ast.name.text {
                self.deps.insert(name.to_owned());
            }
        }
    }

    fn same_interface(&mut self, iface: &Interface, cand: &Interface, span: Span) {
        let names =
            |ps: &[Param]| -> BTreeSet<String> { ps.iter().map(|p| p.name.clone()).collect() };
        let ci = names(&cand.inputs);
        let ii = names(&iface.inputs);
        let co = names(&cand.outputs);
        let io = names(&iface.outputs);
        if !ii.is_subset(&ci) || !io.is_subset(&co) {
            self.error(
                codes::INTERFACE,
                span,
                format!(
                    "{} `{}` does not have the inputs and outputs of interface `{}`",
                    cand.kind.as_str(),
                    cand.name,
                    iface.name
                ),
            );
            self.hint(format!(
                "declare `interface: {}` in {}",
                iface.name, cand.name
            ));
        }
    }

    /// The imap of a `wait_for_event`, as the original read it: without `events` the job
    /// waits for nothing but the time-out (`events = array()`), and a name the workflow never
    /// subscribes to cannot match, so it is warned about (JC0301) and left out of a literal
    /// list. Names are only known when every `subscribe` of the file names a string literal.
    fn wait_events(&mut self, imap: &[ast::Assign], span: Span) -> Vec<ast::Assign> {
        let mut imap = imap.to_vec();
        let is_events = |a: &ast::Assign| match &a.kind {
            AssignKind::Set { target, .. } => {
                matches!(target.ns, None | Some(Ns::I))
                    && matches!(target.segs.first(), Some(ast::Seg::Key { name, .. }) if name == "events")
            }
            AssignKind::Copy { names } => names
                .as_ref()
                .is_none_or(|n| n.iter().any(|n| n.text == "events")),
            AssignKind::CopyAll { to, .. } => *to == Ns::I,
        };
        let Some(at) = imap.iter().position(is_events) else {
            imap.insert(
                0,
                ast::Assign {
                    kind: AssignKind::Set {
                        target: ast::Target {
                            ns: Some(Ns::I),
                            segs: vec![ast::Seg::Key {
                                name: "events".into(),
                                span,
                            }],
                            span,
                        },
                        op: ir::AssignOp::Set,
                        value: ast::Expr {
                            kind: ExprKind::Call {
                                func: Func::Array,
                                name_span: span,
                                args: vec![],
                            },
                            span,
                        },
                    },
                    span,
                },
            );
            return imap;
        };
        let mut subscribed = BTreeSet::new();
        if !subscribed_names(self.ast.statements(), &mut subscribed) {
            return imap;
        }
        let Some(AssignKind::Set {
            op: ir::AssignOp::Set,
            value,
            ..
        }) = imap.get_mut(at).map(|a| &mut a.kind)
        else {
            return imap;
        };
        let names: Vec<ast::Expr> = match &value.kind {
            ExprKind::Lit(Value::String(_)) => vec![value.clone()],
            ExprKind::Call {
                func: Func::Array,
                args,
                ..
            } if args
                .iter()
                .all(|a| matches!(a.kind, ExprKind::Lit(Value::String(_)))) =>
            {
                args.clone()
            }
            _ => return imap,
        };
        let mut kept = vec![];
        let mut warnings = vec![];
        for n in names {
            match &n.kind {
                ExprKind::Lit(Value::String(s)) if !subscribed.contains(s) => {
                    warnings.push((n.span, s.clone()));
                }
                _ => kept.push(n),
            }
        }
        if warnings.is_empty() {
            return imap;
        }
        *value = ast::Expr {
            kind: ExprKind::Call {
                func: Func::Array,
                name_span: value.span,
                args: kept,
            },
            span: value.span,
        };
        for (at, name) in warnings {
            self.warning(
                codes::NEVER_SUBSCRIBED,
                at,
                format!(
                    "the workflow never subscribes to `{name}`, so waiting for it never matches"
                ),
            );
            self.hint(format!(
                "subscribe first (`subscribe:` with `name = '{name}'`), or remove the name"
            ));
        }
        imap
    }

    fn raise_error(&mut self, msg: &ast::Expr, span: Span) -> u32 {
        let mut ops = vec![];
        let e = self.expr(msg, self.imap_cx("raise_error"), &mut ops);
        let iface = system_interface(SystemAction::RaiseError);
        self.type_check(&iface, "msg", msg, None);
        let attrs = TaskAttributes {
            imap: Some(vec![set(Ns::I, "msg", e)]),
            ..TaskAttributes::default()
        };
        let id = self.system(
            SystemAction::RaiseError,
            span,
            attrs,
            Info {
                ops,
                dead_next: true,
            },
        );
        let end = self.end_id();
        self.connect(vec![Hole::Next(id)], end);
        id
    }

    fn system_call(
        &mut self,
        action: SystemAction,
        imap: &[ast::Assign],
        into: Option<&ast::Block<ast::Assign>>,
        span: Span,
    ) -> Frag {
        let iface = system_interface(action);
        let mut ops = vec![];
        let (im, assigned) = self.assigns(imap, Block::Imap, Some(&iface), action.name(), &mut ops);
        self.missing_inputs(&iface, &assigned, span);
        let mut attrs = TaskAttributes {
            imap: Some(im),
            ..TaskAttributes::default()
        };
        if let Some(into) = into {
            let (om, _) = self.assigns(
                &into.items,
                Block::Omap,
                Some(&iface),
                action.name(),
                &mut ops,
            );
            attrs.omap = Some(om);
        }
        let id = self.system(
            action,
            span,
            attrs,
            Info {
                ops,
                dead_next: false,
            },
        );
        self.single(id)
    }

    fn lock_stmt(
        &mut self,
        action: SystemAction,
        locktype: &ast::Name,
        value: Option<&ast::Expr>,
        imap: &[ast::Assign],
        span: Span,
    ) -> Frag {
        let word = match (action, value.is_some()) {
            (SystemAction::Unlock, _) => "unlock",
            (_, true) => "lock",
            (_, false) => "wait_for_lock",
        };
        let decl = self
            .ast
            .locks
            .as_ref()
            .and_then(|s| s.items.iter().find(|d| d.locktype.text == locktype.text));
        match decl {
            None => {
                self.error(
                    codes::UNDECLARED_LOCK,
                    locktype.span,
                    format!("lock type `{}` is not declared in `locks:`", locktype.text),
                );
                self.hint(format!(
                    "add `{} _ manual` to the workflow's `locks:` section",
                    locktype.text
                ));
            }
            Some(d) if !d.manual => {
                let dspan = d.span;
                self.error(
                    codes::LOCK_NOT_MANUAL,
                    locktype.span,
                    format!(
                        "`{word} {}`: the lock type is not declared `manual`, so the job takes it at start and releases it at the end",
                        locktype.text
                    ),
                )
                .labels
                .push(jcl_syntax::Label {
                    span: dspan,
                    message: "declared here".into(),
                });
                self.hint("add `manual` to its declaration to take and release it with statements");
            }
            Some(_) => {}
        }
        let iface = system_interface(action);
        let mut ops = vec![];
        let mut stmts = vec![set(
            Ns::I,
            "type",
            lit(Value::String(locktype.text.clone())),
        )];
        match value {
            Some(v) => {
                let e = self.expr(v, self.imap_cx(word), &mut ops);
                stmts.push(set(Ns::I, "value", e));
            }
            None => {
                let allowed = Interface {
                    inputs: iface
                        .inputs
                        .iter()
                        .filter(|p| p.name != "type")
                        .cloned()
                        .collect(),
                    ..iface.clone()
                };
                let (im, assigned) =
                    self.assigns(imap, Block::Imap, Some(&allowed), word, &mut ops);
                self.missing_inputs(&allowed, &assigned, span);
                stmts.extend(im);
            }
        }
        let attrs = TaskAttributes {
            imap: Some(stmts),
            ..TaskAttributes::default()
        };
        let id = self.system(
            action,
            span,
            attrs,
            Info {
                ops,
                dead_next: false,
            },
        );
        self.single(id)
    }

    fn split(&mut self, flows: &[FlowParts<'_>], span: Span) -> Frag {
        let mut spawned = vec![];
        let mut entry = None;
        let mut prev: Option<u32> = None;
        for (callee, using, imap, collect, fspan) in flows {
            let iface = self.callee(callee);
            let word = if using.is_some() { "map" } else { "callflow" };
            self.need_workflow(callee, iface.as_ref(), word);
            let mut ops = vec![];
            let what = format!("{word} {}", callee.text);
            let mut attrs = attrs_at(*fspan);
            if let Some(u) = using {
                let e = self.expr(u, self.cond_cx("a map list"), &mut ops);
                let ty = infer(u, &|p| self.path_type(p, None));
                if ty != Ty::Array && ty != Ty::Unknown {
                    self.error(
                        codes::TYPE,
                        u.span,
                        format!("`map … using` needs an array, this is a {}", ty.name()),
                    );
                }
                attrs.map_using = Some(e);
            }
            let (im, assigned) = self.assigns(imap, Block::Imap, iface.as_ref(), &what, &mut ops);
            if let Some(i) = &iface {
                self.missing_inputs(i, &assigned, *fspan);
            }
            attrs.imap = Some(im);
            attrs.wait = false;
            let id = self.push_workflow_call(callee.text.clone(), attrs, ops);
            if let Some(p) = prev {
                self.connect(vec![Hole::Next(p)], id);
            }
            entry.get_or_insert(id);
            prev = Some(id);
            spawned.push((id, iface, *collect, *fspan, what));
        }
        let wait = self.system(
            SystemAction::WaitForChildren,
            span,
            TaskAttributes::default(),
            Info::default(),
        );
        if let Some(p) = prev {
            self.connect(vec![Hole::Next(p)], wait);
        }
        let mut prev = wait;
        for (spawn, iface, collect, fspan, what) in spawned {
            let mut ops = vec![];
            let mut attrs = TaskAttributes {
                spawn_task: Some(spawn),
                ..TaskAttributes::default()
            };
            let om = match collect {
                Some(c) => {
                    self.assigns(&c.items, Block::Omap, iface.as_ref(), &what, &mut ops)
                        .0
                }
                None => vec![],
            };
            attrs.omap = Some(om);
            let id = self.system(
                SystemAction::ReapChild,
                fspan,
                attrs,
                Info {
                    ops,
                    dead_next: false,
                },
            );
            self.connect(vec![Hole::Next(prev)], id);
            prev = id;
        }
        Frag {
            entry: Some(entry.unwrap_or(wait)),
            holes: vec![Hole::Next(prev)],
        }
    }

    fn need_workflow(&mut self, callee: &ast::Name, iface: Option<&Interface>, word: &str) {
        if let Some(i) = iface {
            if i.kind != ActionKind::Workflow {
                self.error(
                    codes::CALLEE_KIND,
                    callee.span,
                    format!(
                        "`{word} {}`: {} is {} {}, not a workflow",
                        callee.text,
                        callee.text,
                        article(i.kind),
                        i.kind.as_str()
                    ),
                );
                self.hint(format!(
                    "`{word}` starts a child job; call an {} with `call`",
                    i.kind.as_str()
                ));
            }
        }
    }

    fn callee(&mut self, name: &ast::Name) -> Option<Interface> {
        match self.res.lookup(&name.text) {
            Some((i, _)) => {
                let i = i.clone();
                self.deps_add(&name.text);
                Some(i)
            }
            None => {
                self.unknown_callee(name);
                None
            }
        }
    }

    fn unknown_callee(&mut self, name: &ast::Name) {
        let names = self.res.names();
        let close = similar(&name.text, &names);
        self.error(
            codes::UNKNOWN_CALLEE,
            name.span,
            format!("unknown action or workflow `{}`", name.text),
        );
        if close.is_empty() {
            self.hint("compile it in the same run, or load it into the database first");
        } else {
            self.hint(format!("did you mean {}?", quoted(&close)));
        }
    }

    fn missing_inputs(&mut self, iface: &Interface, assigned: &Assigned, span: Span) {
        if assigned.all {
            return;
        }
        let missing: Vec<String> = iface
            .arguments()
            .filter(|p| !p.optional && p.default.is_none() && !assigned.keys.contains(&p.name))
            .map(|p| p.name.clone())
            .collect();
        for m in missing {
            let what = if iface.kind == ActionKind::System {
                format!("`{}` needs `{m}`", iface.name)
            } else {
                format!("call of `{}` misses the required input `{m}`", iface.name)
            };
            self.error(codes::MISSING_INPUT, span, what);
            self.hint(format!("add `{m} = …` (or `<{m}>`) to its input map"));
        }
    }

    // ---- assignments and expressions ------------------------------------------------------

    fn cond_cx(&self, what: &'a str) -> ExprCx<'a> {
        ExprCx {
            readable: EXPR_NS,
            outputs: None,
            what,
        }
    }

    fn imap_cx(&self, what: &'a str) -> ExprCx<'a> {
        ExprCx {
            readable: Block::Imap.readable(),
            outputs: None,
            what,
        }
    }

    /// Lowers an assignment block; `iface` is the callee (imap: its inputs; omap: its
    /// outputs) or, for the wfomap, the workflow itself.
    fn assigns(
        &mut self,
        items: &[ast::Assign],
        block: Block,
        iface: Option<&Interface>,
        what: &str,
        ops: &mut Vec<Op>,
    ) -> (Vec<ir::Stmt>, Assigned) {
        let mut out = vec![];
        let mut assigned = Assigned::default();
        let cx = ExprCx {
            readable: block.readable(),
            outputs: match block {
                Block::Omap | Block::Wfomap => iface,
                _ => None,
            },
            what,
        };
        for a in items {
            match &a.kind {
                AssignKind::Set { target, op, value } => {
                    let v = self.expr(value, cx, ops);
                    let ns = target.ns.unwrap_or(block.default_ns());
                    if !block.writable().contains(&ns) {
                        let can: Vec<String> = block
                            .writable()
                            .iter()
                            .map(|n| format!("{}.", n.letter()))
                            .collect();
                        self.error(
                            codes::NAMESPACE,
                            target.span,
                            format!(
                                "cannot assign to `{}.` in {}",
                                ns.letter(),
                                block.describe()
                            ),
                        );
                        self.hint(format!(
                            "{} may set {}",
                            block.describe(),
                            can.join(" and ")
                        ));
                    }
                    let segs = self.segs(&target.segs, cx, ops);
                    let first = match target.segs.first() {
                        Some(ast::Seg::Key { name, span }) => Some((name.as_str(), *span)),
                        _ => None,
                    };
                    if let Some((key, kspan)) = first {
                        match (block, ns) {
                            (Block::Imap, Ns::I) => {
                                assigned.keys.insert(key.to_owned());
                                self.check_input_key(iface, key, kspan, what);
                                if target.segs.len() == 1 && *op == ir::AssignOp::Set {
                                    if let Some(i) = iface {
                                        self.type_check(i, key, value, cx.outputs);
                                    }
                                }
                            }
                            (Block::Wfomap, Ns::O) => {
                                assigned.keys.insert(key.to_owned());
                                self.check_output_key(iface, key, kspan, "the workflow");
                                if target.segs.len() == 1 && *op == ir::AssignOp::Set {
                                    if let Some(i) = iface {
                                        if let Some(p) = i.output(key) {
                                            let ty =
                                                infer(value, &|p| self.path_type(p, cx.outputs));
                                            if !ty.fits(&p.ty) {
                                                self.type_error(
                                                    value.span, key, &p.ty, ty, "output",
                                                );
                                            }
                                        }
                                    }
                                }
                            }
                            (_, Ns::V) => ops.push(Op::Gen(key.to_owned())),
                            _ => {}
                        }
                    }
                    out.push(ir::Stmt::Assign {
                        target: ir::Path { ns, segs },
                        op: *op,
                        value: v,
                    });
                }
                AssignKind::CopyAll { from, to } => {
                    if !block.writable().contains(to) || !block.readable().contains(from) {
                        self.error(
                            codes::NAMESPACE,
                            a.span,
                            format!(
                                "cannot copy `%{}` into `%{}` in {}",
                                from.letter(),
                                to.letter(),
                                block.describe()
                            ),
                        );
                        self.hint(format!(
                            "{} reads {} and may set {}",
                            block.describe(),
                            ns_list(block.readable()),
                            ns_list(block.writable())
                        ));
                        continue;
                    }
                    match to {
                        Ns::I => assigned.all = true,
                        Ns::V => ops.push(Op::GenAll),
                        _ => {}
                    }
                    out.push(ir::Stmt::Copy {
                        from: *from,
                        to: *to,
                        names: if *to == Ns::I {
                            whole_input_copy(iface)
                        } else {
                            None
                        },
                    });
                }
                AssignKind::Copy { names } => {
                    let (from, to) = match block {
                        Block::Imap => (Ns::V, Ns::I),
                        Block::Omap => (Ns::O, Ns::V),
                        Block::Wfomap => (Ns::V, Ns::O),
                        Block::Eval => {
                            self.error(
                                codes::COPY,
                                a.span,
                                "`<x>` copies have no meaning in an eval block",
                            );
                            self.hint("write the assignment out, e.g. `x = a.x`");
                            continue;
                        }
                    };
                    match names {
                        None => {
                            assigned.all = true;
                            if to == Ns::V {
                                ops.push(Op::GenAll);
                            }
                        }
                        Some(ns) => {
                            for n in ns {
                                assigned.keys.insert(n.text.clone());
                                match block {
                                    Block::Imap => {
                                        self.check_input_key(iface, &n.text, n.span, what);
                                        ops.push(Op::Read {
                                            var: n.text.clone(),
                                            span: n.span,
                                        });
                                    }
                                    Block::Omap => {
                                        self.check_output_key(iface, &n.text, n.span, what);
                                        ops.push(Op::Gen(n.text.clone()));
                                    }
                                    Block::Wfomap => {
                                        self.check_output_key(
                                            iface,
                                            &n.text,
                                            n.span,
                                            "the workflow",
                                        );
                                        ops.push(Op::Read {
                                            var: n.text.clone(),
                                            span: n.span,
                                        });
                                    }
                                    Block::Eval => {}
                                }
                            }
                        }
                    }
                    out.push(ir::Stmt::Copy {
                        from,
                        to,
                        names: match names {
                            Some(ns) => Some(ns.iter().map(|n| n.text.clone()).collect()),
                            None if to == Ns::I => whole_input_copy(iface),
                            None => None,
                        },
                    });
                }
            }
        }
        (out, assigned)
    }

    fn check_input_key(&mut self, iface: Option<&Interface>, key: &str, span: Span, what: &str) {
        let Some(i) = iface else { return };
        if i.argument(key).is_some() {
            return;
        }
        let env = i.inputs.iter().any(|p| p.name == key);
        self.error(
            codes::UNKNOWN_INPUT,
            span,
            if env {
                format!("`{key}` of `{what}` is taken from the job environment, not passed")
            } else {
                format!("`{what}` has no input `{key}`")
            },
        );
        let names: Vec<&str> = i.arguments().map(|p| p.name.as_str()).collect();
        let close = similar(key, &names);
        if !close.is_empty() {
            self.hint(format!("did you mean {}?", quoted(&close)));
        } else if names.is_empty() {
            self.hint(format!("{} takes no inputs", i.name));
        } else {
            self.hint(format!("the inputs of {} are {}", i.name, quoted(&names)));
        }
    }

    fn check_output_key(&mut self, iface: Option<&Interface>, key: &str, span: Span, what: &str) {
        let Some(i) = iface else { return };
        if i.output(key).is_some() {
            return;
        }
        self.error(
            codes::UNKNOWN_OUTPUT,
            span,
            format!("{} has no output `{key}`", describe_owner(what, i)),
        );
        let names: Vec<&str> = i.outputs.iter().map(|p| p.name.as_str()).collect();
        let close = similar(key, &names);
        if !close.is_empty() {
            self.hint(format!("did you mean {}?", quoted(&close)));
        } else if names.is_empty() {
            self.hint(format!("{} declares no outputs", i.name));
        } else {
            self.hint(format!("the outputs of {} are {}", i.name, quoted(&names)));
        }
    }

    fn type_check(
        &mut self,
        iface: &Interface,
        key: &str,
        value: &ast::Expr,
        outputs: Option<&Interface>,
    ) {
        let Some(p) = iface.argument(key) else { return };
        let ty = infer(value, &|path| self.path_type(path, outputs));
        if !ty.fits(&p.ty) {
            let ty_name = p.ty.clone();
            self.type_error(value.span, key, &ty_name, ty, "input");
        }
    }

    fn type_error(&mut self, span: Span, key: &str, want: &str, got: Ty, what: &str) {
        self.error(
            codes::TYPE,
            span,
            format!(
                "{what} `{key}` is declared {want}, but this is a {}",
                got.name()
            ),
        );
        let hint = match (Ty::of_decl(want), got) {
            (Ty::String, _) => "convert it with tostring(…)",
            (Ty::Number, _) => "convert it with tonumber(…)",
            _ => "pass a value of the declared type",
        };
        self.hint(hint);
    }

    /// The static type of a path read.
    fn path_type(&self, p: &ast::Path, outputs: Option<&Interface>) -> Ty {
        if p.segs.len() != 1 {
            return Ty::Unknown;
        }
        let Some(ast::Seg::Key { name, .. }) = p.segs.first() else {
            return Ty::Unknown;
        };
        match p.ns {
            Ns::A => self
                .me
                .inputs
                .iter()
                .find(|i| &i.name == name)
                .map_or(Ty::Unknown, |i| Ty::of_decl(&i.ty)),
            Ns::O => outputs
                .and_then(|o| o.output(name))
                .map_or(Ty::Unknown, |o| Ty::of_decl(&o.ty)),
            _ => Ty::Unknown,
        }
    }

    fn segs(&mut self, segs: &[ast::Seg], cx: ExprCx<'_>, ops: &mut Vec<Op>) -> Vec<ir::Seg> {
        segs.iter()
            .map(|s| match s {
                ast::Seg::Key { name, .. } => ir::Seg::Key(name.clone()),
                ast::Seg::Index(e) => ir::Seg::Index(Box::new(self.expr(e, cx, ops))),
            })
            .collect()
    }

    fn expr(&mut self, e: &ast::Expr, cx: ExprCx<'_>, ops: &mut Vec<Op>) -> ir::Expr {
        self.expr_in(e, cx, ops, false)
    }

    /// `exempt`: a read whose definedness is being tested (`defined(v.x)`, `v.x // d`) is
    /// not an error when nothing assigns it.
    fn expr_in(
        &mut self,
        e: &ast::Expr,
        cx: ExprCx<'_>,
        ops: &mut Vec<Op>,
        exempt: bool,
    ) -> ir::Expr {
        match &e.kind {
            ExprKind::Lit(v) => ir::Expr::Lit(v.clone()),
            ExprKind::Path(p) => {
                self.read(p, cx, ops, exempt);
                ir::Expr::Path(ir::Path {
                    ns: p.ns,
                    segs: self.segs(&p.segs, cx, ops),
                })
            }
            ExprKind::Unary { op, expr } => ir::Expr::Unary {
                op: *op,
                expr: Box::new(self.expr_in(expr, cx, ops, false)),
            },
            ExprKind::Binary { op, left, right } => {
                let l_exempt = *op == ir::BinOp::DefinedOr;
                ir::Expr::Binary {
                    op: *op,
                    left: Box::new(self.expr_in(left, cx, ops, l_exempt)),
                    right: Box::new(self.expr_in(right, cx, ops, false)),
                }
            }
            ExprKind::Call {
                func,
                name_span,
                args,
            } => {
                let (min, max) = func.arity();
                let n = args.len();
                if n < min || max.is_some_and(|m| n > m) {
                    let want = match max {
                        Some(m) if m == min => format!("{min}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    };
                    self.error(
                        codes::ARITY,
                        *name_span,
                        format!(
                            "`{}` takes {want} argument{}, not {n}",
                            func.name(),
                            if want == "1" { "" } else { "s" }
                        ),
                    );
                }
                let test = matches!(func, ir::Func::Defined | ir::Func::Ifdef);
                let args = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| self.expr_in(a, cx, ops, test && i == 0))
                    .collect();
                ir::Expr::Call { func: *func, args }
            }
            ExprKind::Match { expr, regex, .. } => ir::Expr::Match {
                expr: Box::new(self.expr_in(expr, cx, ops, false)),
                regex: regex.clone(),
            },
        }
    }

    fn read(&mut self, p: &ast::Path, cx: ExprCx<'_>, ops: &mut Vec<Op>, exempt: bool) {
        if !cx.readable.contains(&p.ns) {
            let can: Vec<String> = cx
                .readable
                .iter()
                .map(|n| format!("{}.", n.letter()))
                .collect();
            self.error(
                codes::NAMESPACE,
                p.span,
                format!("`{}.` cannot be read in {}", p.ns.letter(), cx.what),
            );
            self.hint(format!("{} may read {}", cx.what, can.join(", ")));
            return;
        }
        let Some(ast::Seg::Key { name, span }) = p.segs.first() else {
            return;
        };
        match p.ns {
            Ns::V if !exempt => {
                ops.push(Op::Read {
                    var: name.clone(),
                    span: p.span,
                });
            }
            Ns::A if !self.me.inputs.iter().any(|i| &i.name == name) => {
                self.error(
                    codes::UNKNOWN_ARG,
                    *span,
                    format!("`a.{name}`: {} has no input `{name}`", self.me.name),
                );
                let names: Vec<&str> = self.me.inputs.iter().map(|p| p.name.as_str()).collect();
                let close = similar(name, &names);
                if close.is_empty() {
                    self.hint("declare it in the `in:` section");
                } else {
                    self.hint(format!("did you mean {}?", quoted(&close)));
                }
            }
            Ns::O => {
                if let Some(o) = cx.outputs {
                    let owner = if o.name == self.me.name
                        && self.me.kind == ActionKind::Workflow
                        && cx.what == "the wfomap"
                    {
                        "the workflow"
                    } else {
                        cx.what
                    };
                    self.check_output_key(Some(o), name, *span, owner);
                }
            }
            _ => {}
        }
    }
}

/// Adds the names of the `subscribe` statements of `stmts` (nested ones too) to `out`; false
/// when one of them is not a string literal, so the set of names is not known.
fn subscribed_names(stmts: &[ast::Stmt], out: &mut BTreeSet<String>) -> bool {
    fn blocks(s: &ast::Stmt) -> Vec<&[ast::Stmt]> {
        match &s.kind {
            StmtKind::If {
                branches,
                otherwise,
            } => branches
                .iter()
                .map(|b| b.body.as_slice())
                .chain(otherwise.iter().map(|o| o.items.as_slice()))
                .collect(),
            StmtKind::While { body, .. } | StmtKind::Repeat { body, .. } => vec![body],
            StmtKind::Case {
                whens, otherwise, ..
            } => whens
                .iter()
                .map(|w| w.body.as_slice())
                .chain(otherwise.iter().map(|o| o.items.as_slice()))
                .collect(),
            StmtKind::Try { body, catch } => vec![body, &catch.items],
            _ => vec![],
        }
    }
    for s in stmts {
        if let StmtKind::Subscribe { imap } = &s.kind {
            for a in imap {
                match &a.kind {
                    AssignKind::Set { target, value, .. } if matches!(target.segs.first(), Some(ast::Seg::Key { name, .. }) if name == "name") => {
                        match &value.kind {
                            ExprKind::Lit(Value::String(n)) => {
                                out.insert(n.clone());
                            }
                            _ => return false,
                        }
                    }
                    AssignKind::Set { .. } => {}
                    AssignKind::Copy { .. } | AssignKind::CopyAll { .. } => return false,
                }
            }
        }
        if !blocks(s).into_iter().all(|b| subscribed_names(b, out)) {
            return false;
        }
    }
    true
}

/// Namespaces as "`a.`, `e.` and `v.`".
/// An interface call with an action among its candidates, as the original compiled every
/// interface call: `case E:` with a `when` per candidate calling it with the imap and
/// `into:`, and an `else:` raising a normal error naming the value. (Only a workflow call
/// chooses its callee at run time, one task for all candidates.) The candidates share the
/// interface and the imap, so the copies' diagnostics repeat each other (see `stmt_once`).
fn dispatch_case(
    interface: &ast::Name,
    candidates: &[ast::Name],
    target: &ast::Expr,
    call_span: Span,
    imap: &[ast::Assign],
    into: &Option<ast::Block<ast::Assign>>,
) -> StmtKind {
    let whens = candidates
        .iter()
        .map(|c| ast::When {
            labels: vec![c.clone()],
            body: vec![ast::Stmt {
                kind: StmtKind::Call {
                    callee: c.clone(),
                    priority: None,
                    imap: imap.to_vec(),
                    into: into.clone(),
                },
                span: call_span,
            }],
            span: c.span,
        })
        .collect();
    let msg = ast::Expr {
        kind: ExprKind::Binary {
            op: ir::BinOp::Concat,
            left: Box::new(target.clone()),
            right: Box::new(ast::Expr {
                kind: ExprKind::Lit(Value::String(format!(
                    " is not one of the candidates of interface {}",
                    interface.text
                ))),
                span: target.span,
            }),
        },
        span: target.span,
    };
    StmtKind::Case {
        value: target.clone(),
        whens,
        otherwise: Some(ast::Block {
            span: call_span,
            items: vec![ast::Stmt {
                kind: StmtKind::RaiseError { msg },
                span: call_span,
            }],
        }),
    }
}

/// The keys a whole copy into `i.` (`<*>`, `%i = %a`) takes: the callee's argument inputs
/// when it is known. The original passed every key on; the engine refuses inputs a callee does
/// not declare, so copying only the declared ones keeps the original's meaning.
fn whole_input_copy(callee: Option<&Interface>) -> Option<Vec<String>> {
    callee.map(|i| i.arguments().map(|p| p.name.clone()).collect())
}

fn ns_list(list: &[Ns]) -> String {
    let names: Vec<String> = list.iter().map(|n| format!("`{}.`", n.letter())).collect();
    match names.as_slice() {
        [init @ .., last] if !init.is_empty() => format!("{} and {last}", init.join(", ")),
        _ => names.join(""),
    }
}

fn describe_owner(what: &str, i: &Interface) -> String {
    if what == "the workflow" {
        format!("workflow {}", i.name)
    } else if i.kind == ActionKind::System {
        format!("`{}`", i.name)
    } else {
        format!("`{what}`: {} {}", i.kind.as_str(), i.name)
    }
}

fn article(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::Action => "an",
        _ => "a",
    }
}

/// A config interval: a string as written, or a number of seconds.
fn interval(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) if n.as_f64().is_some_and(|f| f >= 0.0) => Some(format!("{n} seconds")),
        _ => None,
    }
}

/// The most a rate limit may allow per window: the window's start times are kept in one row.
const MAX_RATE: u32 = 10_000;

/// The largest `concurrency` an action may have (its slots are rows of `action_slots`).
const MAX_CONCURRENCY: u32 = 10_000;

/// `'N per INTERVAL'` or `{limit: N, per: INTERVAL}` (an interval string or seconds).
fn rate(v: &Value) -> Result<RateConfig, String> {
    let (limit, per) = match v {
        Value::String(s) => {
            let (n, per) = s
                .split_once(" per ")
                .ok_or_else(|| format!("expected 'N per INTERVAL', not '{s}'"))?;
            let n = n.trim();
            let limit = n
                .parse::<u64>()
                .map_err(|_| format!("the limit must be a whole number, not '{n}'"))?;
            (limit, Value::String(per.trim().to_owned()))
        }
        Value::Object(m) => {
            if let Some(k) = m.keys().find(|k| !matches!(k.as_str(), "limit" | "per")) {
                return Err(format!("unknown key `{k}` (the keys are limit and per)"));
            }
            let limit = m
                .get("limit")
                .and_then(Value::as_u64)
                .ok_or("limit must be a whole number")?;
            (
                limit,
                m.get("per").cloned().ok_or("per (the window) is missing")?,
            )
        }
        _ => return Err(format!("expected 'N per INTERVAL' or an object, not {v}")),
    };
    let limit = u32::try_from(limit)
        .ok()
        .filter(|n| (1..=MAX_RATE).contains(n))
        .ok_or_else(|| format!("the limit must be 1 to {MAX_RATE}, not {limit}"))?;
    let window = match &per {
        Value::Number(n) => n.as_f64().map(|f| (f, "second")),
        Value::String(s) => window(s),
        _ => None,
    };
    match window {
        Some((n, unit)) if n > 0.0 && n.is_finite() => Ok(RateConfig {
            limit,
            per: format!("{n} {unit}s"),
        }),
        _ => Err(format!(
            "per must be a positive number of seconds, minutes, hours or days such as '1 second', not {per}"
        )),
    }
}

/// A rate window `[N] UNIT` (UNIT second, minute, hour or day, singular or plural): checked
/// here, since the engine reads it at every take.
fn window(s: &str) -> Option<(f64, &'static str)> {
    let s = s.trim();
    let (n, unit) = match s.split_once(char::is_whitespace) {
        Some((n, unit)) => (n.parse::<f64>().ok()?, unit.trim()),
        None => (1.0, s),
    };
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    ["second", "minute", "hour", "day"]
        .into_iter()
        .find(|u| *u == unit)
        .map(|u| (n, u))
}

fn retry(v: &Value) -> Result<RetryConfig, String> {
    let Value::Object(m) = v else {
        return Err(format!("expected an object, not {v}"));
    };
    let mut m = m.clone();
    for k in ["interval", "max_interval"] {
        if let Some(x) = m.get(k) {
            let i = interval(x).ok_or_else(|| format!("{k} must be an interval, not {x}"))?;
            m.insert(k.to_owned(), Value::String(i));
        }
    }
    serde_json::from_value(Value::Object(m)).map_err(|e| e.to_string())
}

/// The declared interface of a file from its own `in:`, `out:` and `env:` sections (the
/// `interface:` section is merged in by the caller). Diagnostics for duplicate names, unknown
/// types and defaults that do not fit their type go to `diags`.
pub fn declared_params(
    file: &str,
    ast: &ast::File,
    catalog: &Catalog,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Param>, Vec<Param>) {
    let mut inputs: Vec<Param> = vec![];
    let mut outputs: Vec<Param> = vec![];
    let sections = [
        (ast.inputs.as_ref(), Destination::Arguments, true),
        (ast.env.as_ref(), Destination::Environment, true),
        (ast.outputs.as_ref(), Destination::Arguments, false),
    ];
    for (section, destination, is_input) in sections {
        let Some(section) = section else { continue };
        for p in &section.items {
            let list = if is_input { &mut inputs } else { &mut outputs };
            if list.iter().any(|q| q.name == p.name.text) {
                diags.push(Diagnostic::error(
                    codes::DUPLICATE,
                    file,
                    p.name.span,
                    format!("`{}` is declared twice", p.name.text),
                ));
                continue;
            }
            if !catalog.type_known(&p.ty.text) {
                let mut d = Diagnostic::error(
                    codes::UNKNOWN_TYPE,
                    file,
                    p.ty.span,
                    format!("unknown type `{}`", p.ty.text),
                );
                let names: Vec<&str> = catalog.types.iter().flatten().map(String::as_str).collect();
                let close = similar(&p.ty.text, &names);
                d.hint = Some(if close.is_empty() {
                    "the types are the rows of jobcenter.json_schemas".to_owned()
                } else {
                    format!("did you mean {}?", quoted(&close))
                });
                diags.push(d);
            }
            if let Some(def) = &p.default {
                let ty = Ty::of_value(&def.value);
                if !ty.fits(&p.ty.text) {
                    diags.push(
                        Diagnostic::error(
                            codes::TYPE,
                            file,
                            def.span,
                            format!(
                                "the default of `{}` is a {}, but it is declared {}",
                                p.name.text,
                                ty.name(),
                                p.ty.text
                            ),
                        )
                        .with_hint("give a default of the declared type"),
                    );
                }
            }
            list.push(Param {
                name: p.name.text.clone(),
                ty: p.ty.text.clone(),
                optional: p.optional || p.default.is_some(),
                default: p.default.as_ref().map(|d| d.value.clone()),
                destination,
            });
        }
    }
    (inputs, outputs)
}
