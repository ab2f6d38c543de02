//! jcc, the JCL compiler: parses `.jcl` files (with `jcl-syntax`), checks them against each
//! other and against the database, lowers each to a [`jcl::Model`] and writes the models into
//! the jobcenter tables in one transaction (see [`db`]), with the schedules of a workflow's
//! `schedule:` section (see [`schedule`]).
//!
//! ```
//! let src = "workflow hello:\nout:\n\tgreeting string\nwfomap:\n\t<greeting>\ndo:\n\teval:\n\t\tgreeting = 'hi'\n";
//! let out = jcc::compile_offline(vec![jcc::SourceFile::new("hello.jcl", src)]);
//! assert!(out.diagnostics.is_empty());
//! assert_eq!(out.units[0].model.tasks.len(), 3); // start, eval, end
//! ```
//!
//! Diagnostics carry stable codes: `JC01xx` for syntax errors (from `jcl-syntax`), `JC02xx`
//! for the semantic errors and `JC03xx` for the warnings listed in [`codes`]; all are
//! documented in `docs/errors.md`. A warning does not stop a compile.

pub mod catalog;
pub mod db;
pub mod flow;
pub mod lower;
pub mod schedule;
pub mod types;

use std::collections::{BTreeSet, HashMap};

use jcl::{ActionKind, Callee, Model};
use jcl_syntax::ast::{self, FileKind, StmtKind};
use jcl_syntax::Diagnostic;

pub use catalog::{Catalog, Interface};

/// The semantic error codes (`JC02xx`), documented in `docs/errors.md`.
pub mod codes {
    /// Unknown callee (action, procedure or workflow).
    pub const UNKNOWN_CALLEE: &str = "JC0201";
    /// An input map sets an input the callee does not have.
    pub const UNKNOWN_INPUT: &str = "JC0202";
    /// A required input of the callee is not set.
    pub const MISSING_INPUT: &str = "JC0203";
    /// A value's static type does not fit the declared type.
    pub const TYPE: &str = "JC0204";
    /// A variable read that no path from the start assigns.
    pub const UNASSIGNED_VAR: &str = "JC0205";
    /// `a.x` where `x` is not a declared input.
    pub const UNKNOWN_ARG: &str = "JC0206";
    /// `o.x` where `x` is not an output of the callee (or of the workflow, in the wfomap).
    pub const UNKNOWN_OUTPUT: &str = "JC0207";
    /// `goto` to a label that is not defined.
    pub const UNKNOWN_LABEL: &str = "JC0208";
    /// A label defined twice.
    pub const DUPLICATE_LABEL: &str = "JC0209";
    /// `lock`/`unlock`/`wait_for_lock` of a lock type not declared `manual`.
    pub const LOCK_NOT_MANUAL: &str = "JC0210";
    /// A lock type used but not declared in `locks:`.
    pub const UNDECLARED_LOCK: &str = "JC0211";
    /// A required workflow output never assigned in the wfomap.
    pub const OUTPUT_UNASSIGNED: &str = "JC0212";
    /// A statement after `goto`, `return` or `raise_error` in the same block.
    pub const UNREACHABLE: &str = "JC0213";
    /// A built-in function called with the wrong number of arguments.
    pub const ARITY: &str = "JC0214";
    /// A section this kind of file cannot have.
    pub const SECTION: &str = "JC0215";
    /// An unknown config key or a config value of the wrong form.
    pub const CONFIG: &str = "JC0216";
    /// A namespace that cannot be read or written where it is used.
    pub const NAMESPACE: &str = "JC0217";
    /// Something declared or used twice (inputs, outputs, case labels, lock types, files).
    pub const DUPLICATE: &str = "JC0218";
    /// A callee of the wrong kind (`callflow`/`map`/`detachflow` of an action).
    pub const CALLEE_KIND: &str = "JC0219";
    /// Files of one compile that call each other in a cycle.
    pub const CYCLE: &str = "JC0220";
    /// An unknown type name.
    pub const UNKNOWN_TYPE: &str = "JC0221";
    /// `<x>` in an eval block.
    pub const COPY: &str = "JC0222";
    /// An `interface:` that cannot be resolved, or a candidate that does not match it.
    pub const INTERFACE: &str = "JC0223";
    /// A bad schedule: an invalid cron expression or time zone, an unknown key, a value of
    /// the wrong form, no `cron`.
    pub const SCHEDULE: &str = "JC0224";
    /// A lock `limit` that is not a whole number from 1 to 2147483647.
    pub const LOCK_LIMIT: &str = "JC0225";
    /// A call `priority` out of -1000 to 1000, or on a call of an action or procedure.
    pub const PRIORITY: &str = "JC0226";
    /// A bad action `rate`: not `'N per INTERVAL'` or `{limit, per}`, a limit outside 1 to
    /// 10000, a window that is no positive interval, or on a procedure.
    pub const RATE: &str = "JC0227";
    /// A bad action `concurrency`: not a whole number from 1 to 10000, or on a procedure.
    pub const CONCURRENCY: &str = "JC0228";
    /// The compiled model fails the loader's structural checks: a compiler bug.
    pub const INTERNAL: &str = "JC0299";
    /// Warning: `wait_for_event` names an event the workflow never subscribes to.
    pub const NEVER_SUBSCRIBED: &str = "JC0301";
    /// Warning: an action without `role:`, which only its owner and the default worker role
    /// may serve ([`role_warnings`](super::role_warnings)).
    pub const NO_ROLE: &str = "JC0302";
}

/// The errors of the compiler's I/O (database, files). Errors in the source are
/// [`Diagnostic`]s, not `Error`s.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database: {0}")]
    Connect(#[from] jc_db::Error),
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot serialise the model: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{file}: cannot load {name}: {message}")]
    Load {
        file: String,
        name: String,
        message: String,
    },
    #[error("the source has errors")]
    Diagnostics,
}

/// A source file: its name (as shown in diagnostics) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub name: String,
    pub text: String,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Reads a file from disk.
    pub fn read(path: &str) -> Result<SourceFile, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(SourceFile::new(path, text))
    }
}

/// A parsed source file (`ast` is `None` when it has a syntax error).
#[derive(Debug, Clone)]
pub struct Parsed {
    pub source: SourceFile,
    pub ast: Option<ast::File>,
}

/// A compiled file.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    /// The source file name.
    pub file: String,
    pub model: Model,
    /// A workflow's schedules (its `schedule:` section), written after the model.
    pub schedules: Vec<schedule::Schedule>,
}

/// The result of a compile: the models in load order (callees before callers) and every
/// diagnostic. Models are only meant to be written when there is no error.
#[derive(Debug, Clone, Default)]
pub struct Output {
    pub units: Vec<Unit>,
    pub diagnostics: Vec<Diagnostic>,
}

impl Output {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == jcl_syntax::Severity::Error)
    }
}

/// Parses every source; a file with a syntax error gives its (first) syntax error.
pub fn parse(sources: Vec<SourceFile>) -> (Vec<Parsed>, Vec<Diagnostic>) {
    let mut diags = vec![];
    let parsed = sources
        .into_iter()
        .map(|source| {
            let ast = match jcl_syntax::parse(&source.name, &source.text) {
                Ok(f) => Some(f),
                Err(d) => {
                    diags.push(*d);
                    None
                }
            };
            Parsed { source, ast }
        })
        .collect();
    (parsed, diags)
}

/// The names the parsed files refer to (callees, interfaces, dispatch candidates) that none
/// of them defines: what the database must be asked about.
pub fn external_names(parsed: &[Parsed]) -> BTreeSet<String> {
    let defined: BTreeSet<&str> = parsed
        .iter()
        .filter_map(|p| p.ast.as_ref())
        .map(|a| a.name.text.as_str())
        .collect();
    let mut out = BTreeSet::new();
    for a in parsed.iter().filter_map(|p| p.ast.as_ref()) {
        let mut names = vec![];
        if let Some(i) = &a.interface {
            names.push(i.items.text.clone());
        }
        stmt_names(a.statements(), &mut names);
        for n in names {
            if !defined.contains(n.as_str()) {
                out.insert(n);
            }
        }
    }
    out
}

fn stmt_names(stmts: &[ast::Stmt], out: &mut Vec<String>) {
    for s in stmts {
        match &s.kind {
            StmtKind::Call { callee, .. } | StmtKind::Detachflow { callee, .. } => {
                out.push(callee.text.clone())
            }
            StmtKind::Map(m) => out.push(m.callee.text.clone()),
            StmtKind::Split { flows } => {
                for f in flows {
                    match &f.kind {
                        ast::FlowKind::Callflow { callee, .. } => out.push(callee.text.clone()),
                        ast::FlowKind::Map(m) => out.push(m.callee.text.clone()),
                    }
                }
            }
            StmtKind::Dispatch {
                interface,
                candidates,
                ..
            } => {
                out.push(interface.text.clone());
                out.extend(candidates.iter().map(|c| c.text.clone()));
            }
            StmtKind::If {
                branches,
                otherwise,
            } => {
                for b in branches {
                    stmt_names(&b.body, out);
                }
                if let Some(o) = otherwise {
                    stmt_names(&o.items, out);
                }
            }
            StmtKind::While { body, .. } | StmtKind::Repeat { body, .. } => stmt_names(body, out),
            StmtKind::Case {
                whens, otherwise, ..
            } => {
                for w in whens {
                    stmt_names(&w.body, out);
                }
                if let Some(o) = otherwise {
                    stmt_names(&o.items, out);
                }
            }
            StmtKind::Try { body, catch } => {
                stmt_names(body, out);
                stmt_names(&catch.items, out);
            }
            _ => {}
        }
    }
}

fn kind_of(k: FileKind) -> ActionKind {
    match k {
        FileKind::Workflow => ActionKind::Workflow,
        FileKind::Action => ActionKind::Action,
        FileKind::Procedure => ActionKind::Procedure,
    }
}

/// Resolves the interface of every parsed file (its own declarations plus its `interface:`).
fn interfaces(
    parsed: &[Parsed],
    catalog: &Catalog,
    diags: &mut [Vec<Diagnostic>],
) -> HashMap<String, Interface> {
    let mut declared: HashMap<String, (usize, Vec<jcl::Param>, Vec<jcl::Param>)> = HashMap::new();
    for (i, p) in parsed.iter().enumerate() {
        let Some(a) = &p.ast else { continue };
        if let Some((first, _, _)) = declared.get(&a.name.text) {
            let first = parsed[*first].source.name.clone();
            diags[i].push(
                Diagnostic::error(
                    codes::DUPLICATE,
                    &p.source.name,
                    a.name.span,
                    format!("`{}` is also defined in {first}", a.name.text),
                )
                .with_hint("one compile can hold one version of each name"),
            );
            continue;
        }
        let (ins, outs) = lower::declared_params(&p.source.name, a, catalog, &mut diags[i]);
        declared.insert(a.name.text.clone(), (i, ins, outs));
    }
    let mut done: HashMap<String, Interface> = HashMap::new();
    let names: Vec<String> = {
        let mut v: Vec<(usize, String)> = declared.iter().map(|(n, d)| (d.0, n.clone())).collect();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    };
    for name in names {
        let mut stack = vec![];
        resolve(
            &name, parsed, catalog, &declared, &mut done, &mut stack, diags,
        );
    }
    done
}

#[allow(clippy::too_many_arguments)]
fn resolve(
    name: &str,
    parsed: &[Parsed],
    catalog: &Catalog,
    declared: &HashMap<String, (usize, Vec<jcl::Param>, Vec<jcl::Param>)>,
    done: &mut HashMap<String, Interface>,
    stack: &mut Vec<String>,
    diags: &mut [Vec<Diagnostic>],
) -> Option<Interface> {
    if let Some(i) = done.get(name) {
        return Some(i.clone());
    }
    let Some((idx, ins, outs)) = declared.get(name) else {
        return catalog.externals.get(name).cloned();
    };
    let p = &parsed[*idx];
    let a = p.ast.as_ref()?;
    let mut inputs = vec![];
    let mut outputs = vec![];
    if let Some(sec) = &a.interface {
        let other = &sec.items.text;
        if stack.iter().any(|s| s == other) || other == name {
            diags[*idx].push(Diagnostic::error(
                codes::INTERFACE,
                &p.source.name,
                sec.items.span,
                format!("`interface: {other}` refers back to {name}"),
            ));
        } else {
            stack.push(name.to_owned());
            let r = resolve(other, parsed, catalog, declared, done, stack, diags);
            stack.pop();
            match r {
                Some(i) => {
                    inputs = i.inputs.clone();
                    outputs = i.outputs.clone();
                }
                None => diags[*idx].push(
                    Diagnostic::error(
                        codes::INTERFACE,
                        &p.source.name,
                        sec.items.span,
                        format!("unknown action or workflow `{other}` in `interface:`"),
                    )
                    .with_hint("compile it in the same run, or load it into the database first"),
                ),
            }
        }
    }
    for (list, own, what) in [(&mut inputs, ins, "input"), (&mut outputs, outs, "output")] {
        for q in own {
            if list.iter().any(|x| x.name == q.name) {
                let span = a.interface.as_ref().map_or(a.span, |s| s.items.span);
                diags[*idx].push(Diagnostic::error(
                    codes::DUPLICATE,
                    &p.source.name,
                    span,
                    format!("{what} `{}` is declared here and by the interface", q.name),
                ));
            } else {
                list.push(q.clone());
            }
        }
    }
    let iface = Interface {
        name: name.to_owned(),
        kind: kind_of(a.kind),
        inputs,
        outputs,
        version: None,
    };
    done.insert(name.to_owned(), iface.clone());
    Some(iface)
}

/// Checks and lowers parsed files against each other and the catalog. Files with syntax
/// errors are skipped (their error is already reported by [`parse`]).
pub fn check_and_lower(parsed: &[Parsed], catalog: &Catalog) -> Output {
    let mut diags: Vec<Vec<Diagnostic>> = vec![vec![]; parsed.len()];
    let local = interfaces(parsed, catalog, &mut diags);
    let res = lower::Resolver {
        local: &local,
        catalog,
    };
    let mut units: Vec<(usize, Unit, BTreeSet<String>)> = vec![];
    for (i, p) in parsed.iter().enumerate() {
        let Some(a) = &p.ast else { continue };
        let Some(me) = local.get(&a.name.text) else {
            continue;
        };
        if diags[i]
            .iter()
            .any(|d| d.code == codes::DUPLICATE && d.span == a.name.span)
        {
            continue;
        }
        let l = lower::lower(&p.source.name, &p.source.text, a, me, &res);
        let is_error = |d: &Diagnostic| d.severity == jcl_syntax::Severity::Error;
        let clean = !l.diagnostics.iter().any(is_error) && !diags[i].iter().any(is_error);
        diags[i].extend(l.diagnostics);
        if clean {
            if let Err(e) = l.model.validate() {
                diags[i].push(
                    Diagnostic::error(
                        codes::INTERNAL,
                        &p.source.name,
                        a.span,
                        format!("internal error: the compiled model is invalid: {e}"),
                    )
                    .with_hint("this is a bug of jcc; please report it with the file"),
                );
            }
        }
        units.push((
            i,
            Unit {
                file: p.source.name.clone(),
                model: l.model,
                schedules: l.schedules,
            },
            l.deps,
        ));
    }
    let ordered = order(parsed, units, &mut diags);
    let mut diagnostics = vec![];
    for mut d in diags {
        d.sort_by_key(|d| (d.span.line, d.span.col));
        diagnostics.extend(d);
    }
    Output {
        units: ordered,
        diagnostics,
    }
}

/// Orders units so that callees come before their callers (stable otherwise); a cycle
/// between different files is an error.
fn order(
    parsed: &[Parsed],
    units: Vec<(usize, Unit, BTreeSet<String>)>,
    diags: &mut [Vec<Diagnostic>],
) -> Vec<Unit> {
    let by_name: HashMap<String, usize> = units
        .iter()
        .enumerate()
        .map(|(k, (_, u, _))| (u.model.name.clone(), k))
        .collect();
    let n = units.len();
    let deps: Vec<Vec<usize>> = units
        .iter()
        .map(|(_, u, d)| {
            d.iter()
                .filter(|x| **x != u.model.name)
                .filter_map(|x| by_name.get(x).copied())
                .collect()
        })
        .collect();
    let mut placed = vec![false; n];
    let mut out = vec![];
    loop {
        let mut progress = false;
        for k in 0..n {
            if !placed[k] && deps[k].iter().all(|d| placed[*d]) {
                placed[k] = true;
                out.push(k);
                progress = true;
            }
        }
        if !progress {
            break;
        }
    }
    if out.len() < n {
        let stuck: Vec<&str> = (0..n)
            .filter(|k| !placed[*k])
            .map(|k| units[k].1.model.name.as_str())
            .collect();
        for k in (0..n).filter(|k| !placed[*k]) {
            let (i, u, _) = &units[k];
            if let Some(a) = &parsed[*i].ast {
                diags[*i].push(
                    Diagnostic::error(
                        codes::CYCLE,
                        &u.file,
                        a.name.span,
                        format!(
                            "{} is part of a cycle of calls between files: {}",
                            u.model.name,
                            stuck.join(", ")
                        ),
                    )
                    .with_hint("each file is loaded after the ones it calls; only a workflow calling itself is allowed"),
                );
            }
            out.push(k);
        }
    }
    let mut slots: Vec<Option<Unit>> = units.into_iter().map(|(_, u, _)| Some(u)).collect();
    out.into_iter()
        .filter_map(|k| slots.get_mut(k).and_then(Option::take))
        .collect()
}

/// A warning (JC0302) for every action without `role:`: the engine lets only its owner (the
/// role that loads it) and members of the default worker role (`workers`, the setting
/// `default_worker_role`) serve it. `jcc --warn-no-role` adds these to its diagnostics; the
/// checks of [`check_and_lower`] leave them out, so that the original's files compile
/// without a word.
pub fn role_warnings(parsed: &[Parsed]) -> Vec<Diagnostic> {
    parsed
        .iter()
        .filter_map(|p| Some((p, p.ast.as_ref()?)))
        .filter(|(_, a)| a.kind == FileKind::Action && a.role.is_none())
        .map(|(p, a)| {
            Diagnostic::warning(
                codes::NO_ROLE,
                &p.source.name,
                a.name.span,
                format!(
                    "action {} has no role: only its owner and members of the default worker \
                     role (workers) may serve it",
                    a.name.text
                ),
            )
            .with_hint("add `role: NAME` naming the role of the users whose workers serve it")
        })
        .collect()
}

/// Parses, checks and lowers without a database: callees must be in the same compile.
pub fn compile_offline(sources: Vec<SourceFile>) -> Output {
    let (parsed, mut diagnostics) = parse(sources);
    let mut out = check_and_lower(&parsed, &Catalog::offline());
    diagnostics.append(&mut out.diagnostics);
    out.diagnostics = diagnostics;
    out
}

/// Renders diagnostics for a terminal, quoting each one's source line.
pub fn render(diagnostics: &[Diagnostic], sources: &[SourceFile]) -> String {
    diagnostics
        .iter()
        .map(|d| {
            let text = sources
                .iter()
                .find(|s| s.name == d.file)
                .map_or("", |s| s.text.as_str());
            d.render(text)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The names of the local callees of a model's tasks (for tests and tools).
pub fn callees(model: &Model) -> BTreeSet<String> {
    model
        .tasks
        .iter()
        .filter_map(|t| match &t.callee {
            Callee::Named { name, .. } => Some(name.clone()),
            Callee::System(_) => None,
        })
        .collect()
}
