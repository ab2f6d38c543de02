//! The parser: source text to [`crate::ast::File`].
//!
//! JCL blocks are made by indentation, which a PEG cannot express, so [`parse`] works in
//! layers:
//!
//! 1. **Layout** (`layout.rs`): one pass over the text with a small state machine (code,
//!    string, regex, comment) blanks out comments, keeping byte offsets, and reports what needs
//!    the whole text: unterminated strings, regexes and `#[[` comments, Perl blocks `[[ … ]]`,
//!    brackets nested too deep. Then the clean text is split into lines; blank lines are
//!    dropped, indentation is measured (a tab advances to the next multiple of 8 columns), and
//!    the lines are nested into a tree with an explicit stack: a line's children are the
//!    following lines indented deeper. Siblings must share one indentation (JC0102).
//! 2. **Lines** (this module): the tree is walked top-down. Each line is parsed by one pest
//!    rule of `jcl.pest`, chosen by where the line is (a section, an assignment block, a
//!    statement block) and, for statements, by its first word, so a syntax error is reported
//!    against the construct being written ("expected `:` after `call add`") rather than as a
//!    list of every statement that could have started there. Statements with companion blocks
//!    (`into:`, `elsif`/`else:`, `until`, `catch:`, `when`, `collect:`, the `call` after
//!    `interface`) consume the sibling lines that follow them.
//! 3. **Expressions** (`expr.rs`): pest's `PrattParser` climbs the operator sequence of an
//!    `expr` pair with Perl's precedence.
//!
//! Parsing stops at the first error. No input makes it panic: there is no indexing or
//! unwrapping on input-dependent paths, and nesting is bounded (blocks and brackets 64 deep by
//! the layout pass, at most 256 operators and 4000 tokens per line here) so that neither the
//! grammar's recursion nor the depth of the tree can exhaust the stack.

use std::iter::Peekable;
use std::slice::Iter;

use pest::iterators::{Pair, Pairs};
use pest::Parser as _;

use crate::ast::{
    Assign, Block, Branch, File, FileKind, Flow, FlowKind, LockDecl, MapFlow, Name, Param,
    Schedule, Section, Setting, Span, Stmt, StmtKind, Unsubscribe, When,
};
use crate::diagnostic::Diagnostic;
use crate::expr::{quoted_list, Cx};
use crate::grammar::{is_operator, syntax_error, JclParser, Rule};
use crate::layout::{layout, Line};
use crate::source::{hint, label, similar, PResult, Source};

/// The most grammar tokens one line may have.
pub(crate) const MAX_LINE_TOKENS: usize = 4000;
/// The most operators one line may have; bounds the depth of an expression tree, and so the
/// recursion of the Pratt parser and of everything that walks the tree.
pub(crate) const MAX_LINE_OPERATORS: usize = 256;

const SECTIONS: [&str; 11] = [
    "in",
    "out",
    "env",
    "interface",
    "wfenv",
    "role",
    "config",
    "locks",
    "wfomap",
    "do",
    "schedule",
];

const STATEMENTS: [&str; 25] = [
    "call",
    "eval",
    "let",
    "if",
    "while",
    "repeat",
    "case",
    "try",
    "raise_error",
    "assert",
    "goto",
    "label",
    "return",
    "sleep",
    "subscribe",
    "unsubscribe",
    "raise_event",
    "wait_for_event",
    "lock",
    "unlock",
    "wait_for_lock",
    "split",
    "map",
    "detachflow",
    "interface",
];

/// Parses one source file. `file_name` is only used in diagnostics. The error is the first
/// syntax error of the file.
pub fn parse(file_name: &str, src: &str) -> Result<File, Box<Diagnostic>> {
    let source = Source::new(file_name, src);
    let layout = layout(&source)?;
    let p = P {
        src: &source,
        clean: &layout.clean,
    };
    p.file(&layout.lines)
}

type Lines<'l> = Peekable<Iter<'l, Line>>;

/// The parser's state: the source and its clean text (comments blanked).
struct P<'s, 'a> {
    src: &'s Source<'a>,
    clean: &'s str,
}

/// The length of the first word of `text`, or of its first character when it has none.
fn head_len(text: &str, word: &str) -> usize {
    if word.is_empty() {
        text.chars().next().map_or(0, char::len_utf8)
    } else {
        word.len()
    }
}

/// The leading word of a line (`[A-Za-z0-9_]*`).
fn first_word(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    text.get(..end).unwrap_or("")
}

impl<'s, 'a> P<'s, 'a> {
    fn text(&self, line: &Line) -> &'s str {
        self.clean.get(line.start..line.end).unwrap_or("")
    }

    fn word(&self, line: &Line) -> &'s str {
        first_word(self.text(line))
    }

    fn line_span(&self, line: &Line) -> Span {
        self.src.span(line.start, line.end)
    }

    fn cx(&self, line: &Line) -> Cx<'s, 'a> {
        Cx {
            src: self.src,
            base: line.start,
        }
    }

    /// Parses the text of `line` with `rule`; returns the rule's inner pairs (without `EOI`).
    fn parse_line(&self, rule: Rule, line: &Line) -> PResult<Pairs<'s, Rule>> {
        let text = self.text(line);
        let mut pairs = JclParser::parse(rule, text)
            .map_err(|e| syntax_error(self.src, line.start, text, rule, &e))?;
        let mut tokens = 0;
        let mut operators = 0;
        for pair in pairs.clone().flatten() {
            tokens += 1;
            operators += usize::from(is_operator(pair.as_rule()));
            if tokens > MAX_LINE_TOKENS || operators > MAX_LINE_OPERATORS {
                let what = if operators > MAX_LINE_OPERATORS {
                    format!("more than {MAX_LINE_OPERATORS} operators")
                } else {
                    format!("more than {MAX_LINE_TOKENS} tokens")
                };
                let at = line.start + pair.as_span().start();
                return Err(hint(
                    self.src.error(
                        "JC0116",
                        at,
                        line.start + pair.as_span().end(),
                        format!("this line is too complex: it has {what}"),
                    ),
                    "split the expression into several assignments",
                ));
            }
        }
        match pairs.next() {
            Some(top) => Ok(top.into_inner()),
            None => Err(self.src.error("JC0101", line.start, line.end, "empty line")),
        }
    }

    /// Fails when `line` has an indented block.
    fn no_block(&self, line: &Line, what: &str) -> PResult<()> {
        match line.children.first() {
            None => Ok(()),
            Some(child) => Err(hint(
                self.src.error(
                    "JC0104",
                    child.start,
                    child.end,
                    format!("unexpected indented block: {what} takes none"),
                ),
                "indent this line like the line above it",
            )),
        }
    }

    /// Fails when `line` has no indented block.
    fn need_block(&self, line: &Line, what: &str) -> PResult<()> {
        if line.children.is_empty() {
            let d = self.src.error(
                "JC0103",
                line.start,
                line.end,
                format!("expected an indented block after `{}`", self.text(line)),
            );
            Err(hint(
                d,
                format!("{what} goes on the lines below, indented deeper"),
            ))
        } else {
            Ok(())
        }
    }

    // ---- Files and sections -------------------------------------------------------------

    fn file(&self, roots: &[Line]) -> PResult<File> {
        let Some((head, rest)) = roots.split_first() else {
            return Err(hint(
                self.src.error("JC0108", 0, 0, "the file defines nothing"),
                "a file starts with `workflow NAME:`, `action NAME:` or `procedure NAME:`",
            ));
        };
        if !matches!(self.word(head), "workflow" | "action" | "procedure") {
            let d = self.src.error(
                "JC0108",
                head.start,
                head.end,
                "expected `workflow NAME:`, `action NAME:` or `procedure NAME:`",
            );
            return Err(hint(d, "a file defines one workflow, action or procedure"));
        }
        let mut pairs = self.parse_line(Rule::header_line, head)?;
        let cx = self.cx(head);
        let kind = match pairs
            .next()
            .map(|p| p.as_str().trim().to_owned())
            .as_deref()
        {
            Some("action") => FileKind::Action,
            Some("procedure") => FileKind::Procedure,
            _ => FileKind::Workflow,
        };
        let name = self.next_name(&cx, &mut pairs, head)?;
        let mut file = File {
            kind,
            name,
            span: self.line_span(head),
            inputs: None,
            outputs: None,
            env: None,
            interface: None,
            wfenv: None,
            role: None,
            config: None,
            locks: None,
            wfomap: None,
            body: None,
            schedule: None,
        };
        for line in head.children.iter().chain(rest) {
            self.section(&mut file, line)?;
        }
        Ok(file)
    }

    fn next_name(
        &self,
        cx: &Cx<'_, '_>,
        pairs: &mut Pairs<'_, Rule>,
        line: &Line,
    ) -> PResult<Name> {
        match pairs.find(|p| p.as_rule() == Rule::name) {
            Some(p) => cx.name(p),
            None => Err(self
                .src
                .error("JC0101", line.start, line.end, "expected a name")),
        }
    }

    fn section(&self, file: &mut File, line: &Line) -> PResult<()> {
        let word = self.word(line);
        if matches!(word, "workflow" | "action" | "procedure") {
            let d = self.src.error(
                "JC0108",
                line.start,
                line.end,
                format!("a second definition (`{word}`) in one file"),
            );
            return Err(hint(
                label(d, file.span, "the file's definition"),
                "put each workflow, action or procedure in a file of its own",
            ));
        }
        if !SECTIONS.contains(&word) {
            return Err(self.unknown_section(line, word));
        }
        if word == "interface"
            && !self
                .text(line)
                .get(word.len()..)
                .unwrap_or("")
                .trim_start()
                .starts_with(':')
        {
            return self.interface_line(file, line);
        }
        let pairs = self.parse_line(Rule::section_head, line)?;
        let colon_end = pairs
            .filter(|p| p.as_rule() == Rule::colon)
            .map(|p| line.start + p.as_span().end())
            .next()
            .unwrap_or(line.end);
        let span = self.src.span(line.start, colon_end);
        // An item on the header line itself (`role: admin`) is parsed like a line of the block.
        let inline = self
            .clean
            .get(colon_end..line.end)
            .map(|s| s.len() - s.trim_start().len())
            .map(|ws| Line {
                start: colon_end + ws,
                end: line.end,
                indent: 0,
                children: Vec::new(),
            })
            .filter(|l| l.start < l.end);
        let items: Vec<&Line> = inline.iter().chain(&line.children).collect();
        let duplicate = |first: Span| {
            hint(
                label(
                    self.src.error(
                        "JC0107",
                        span.start,
                        span.end,
                        format!("the section `{word}:` appears twice"),
                    ),
                    first,
                    "first here",
                ),
                "merge the two sections into one",
            )
        };
        macro_rules! set {
            ($field:ident, $value:expr) => {{
                if let Some(first) = &file.$field {
                    return Err(duplicate(first.span));
                }
                file.$field = Some(Section {
                    span,
                    items: $value,
                });
            }};
        }
        match word {
            "in" => set!(inputs, self.params(&items)?),
            "out" => set!(outputs, self.params(&items)?),
            "env" => set!(env, self.params(&items)?),
            "interface" => set!(interface, self.one_name(line, &items, "`interface:`")?),
            "role" => set!(role, self.one_name(line, &items, "`role:`")?),
            "wfenv" => set!(wfenv, self.settings(&items)?),
            "config" => set!(config, self.settings(&items)?),
            "locks" => set!(locks, self.locks(&items)?),
            "wfomap" => set!(wfomap, self.assigns(items.into_iter(), false)?),
            "schedule" => set!(schedule, self.schedules(&items)?),
            _ => {
                if let Some(first) = inline.as_ref() {
                    let d = self.src.error(
                        "JC0101",
                        first.start,
                        first.end,
                        "statements go on the lines below `do:`",
                    );
                    return Err(hint(d, "move this statement to its own line, indented"));
                }
                self.need_block(line, "the workflow's statements")?;
                set!(body, self.stmts(&line.children)?)
            }
        }
        Ok(())
    }

    /// The original's header line `interface NAME:` (an action file's `interface add:`): the
    /// same as the section `interface: NAME`.
    fn interface_line(&self, file: &mut File, line: &Line) -> PResult<()> {
        self.no_block(line, "`interface NAME:`")?;
        let mut pairs = self.parse_line(Rule::interface_head, line)?;
        let name = self.next_name(&self.cx(line), &mut pairs, line)?;
        let span = self.line_span(line);
        if let Some(first) = &file.interface {
            let d = self.src.error(
                "JC0107",
                span.start,
                span.end,
                "the section `interface:` appears twice",
            );
            return Err(hint(
                label(d, first.span, "first here"),
                "a file copies the interface of one action or workflow",
            ));
        }
        file.interface = Some(Section { span, items: name });
        Ok(())
    }

    fn unknown_section(&self, line: &Line, word: &str) -> Box<Diagnostic> {
        let text = self.text(line);
        let (message, help) = if word.is_empty() {
            (
                format!("expected a section such as `in:` or `do:`, found `{text}`"),
                "indent this line under the section it belongs to".to_owned(),
            )
        } else if STATEMENTS.contains(&word) {
            (
                format!("the statement `{word}` is outside the `do:` section"),
                "indent it under `do:`".to_owned(),
            )
        } else {
            let close = similar(word, &SECTIONS);
            let help = if close.is_empty() {
                format!(
                    "the sections are {}; lines of a section are indented under it",
                    quoted_list(&SECTIONS)
                )
            } else {
                format!("did you mean {}?", quoted_list(&close))
            };
            (format!("unknown section `{word}`"), help)
        };
        let end = line.start + head_len(text, word);
        hint(self.src.error("JC0106", line.start, end, message), help)
    }

    fn params(&self, items: &[&Line]) -> PResult<Vec<Param>> {
        let mut out = Vec::new();
        for line in items {
            self.no_block(line, "an input or output")?;
            let cx = self.cx(line);
            let mut name = None;
            let mut ty = None;
            let mut default = None;
            let mut optional = false;
            for p in self.parse_line(Rule::param_line, line)? {
                match p.as_rule() {
                    Rule::name => name = Some(cx.name(p)?),
                    Rule::type_name => ty = Some(cx.word(&p)),
                    Rule::kw_optional => optional = true,
                    Rule::literal => default = Some(cx.literal(p)?),
                    _ => {}
                }
            }
            let (Some(name), Some(ty)) = (name, ty) else {
                return Err(self
                    .src
                    .error("JC0101", line.start, line.end, "expected `name type`"));
            };
            out.push(Param {
                name,
                ty,
                default,
                optional,
                span: self.line_span(line),
            });
        }
        Ok(out)
    }

    fn one_name(&self, header: &Line, items: &[&Line], what: &str) -> PResult<Name> {
        match items {
            [] => {
                let d = self.src.error(
                    "JC0103",
                    header.start,
                    header.end,
                    format!("{what} needs a name"),
                );
                Err(hint(
                    d,
                    format!("write the name after the colon: {what} NAME"),
                ))
            }
            [line] => {
                self.no_block(line, "a name")?;
                let cx = self.cx(line);
                let mut pairs = self.parse_line(Rule::name_line, line)?;
                self.next_name(&cx, &mut pairs, line)
            }
            [_, second, ..] => Err(hint(
                self.src.error(
                    "JC0119",
                    second.start,
                    second.end,
                    format!("{what} takes one name"),
                ),
                "remove the extra names",
            )),
        }
    }

    fn settings(&self, items: &[&Line]) -> PResult<Vec<Setting>> {
        let mut out = Vec::new();
        for line in items {
            self.no_block(line, "a setting")?;
            let cx = self.cx(line);
            for setting in self.parse_line(Rule::setting_line, line)? {
                if setting.as_rule() == Rule::setting {
                    out.push(self.setting(&cx, setting)?);
                }
            }
        }
        Ok(out)
    }

    /// A `setting` pair: `key = literal`.
    fn setting(&self, cx: &Cx<'_, '_>, setting: Pair<'_, Rule>) -> PResult<Setting> {
        let span = cx.span(setting.as_span());
        let end = span.end;
        let mut kv = setting.into_inner().filter(|p| p.as_rule() != Rule::equals);
        match (kv.next(), kv.next()) {
            (Some(k), Some(v)) => Ok(Setting {
                key: cx.name(k)?,
                value: cx.literal(v)?,
                span,
            }),
            _ => Err(self
                .src
                .error("JC0101", span.start, end, "expected `key = literal`")),
        }
    }

    /// The lines of `schedule:`: `NAME:` with settings after the colon and/or on the lines
    /// indented below it.
    fn schedules(&self, items: &[&Line]) -> PResult<Vec<Schedule>> {
        let mut out = Vec::new();
        for line in items {
            let cx = self.cx(line);
            let mut name = None;
            let mut settings = Vec::new();
            for p in self.parse_line(Rule::schedule_line, line)? {
                match p.as_rule() {
                    Rule::name => name = Some(cx.name(p)?),
                    Rule::setting => settings.push(self.setting(&cx, p)?),
                    _ => {}
                }
            }
            let Some(name) = name else {
                return Err(self
                    .src
                    .error("JC0101", line.start, line.end, "expected a name"));
            };
            if settings.is_empty() && line.children.is_empty() {
                let d = self.src.error(
                    "JC0103",
                    line.start,
                    line.end,
                    format!("the schedule `{}` has no settings", name.text),
                );
                return Err(hint(
                    d,
                    "write its settings after the colon (`cron = '0 0 * * * *'`, …) or on the \
                     lines below, indented deeper",
                ));
            }
            let children: Vec<&Line> = line.children.iter().collect();
            settings.extend(self.settings(&children)?);
            out.push(Schedule {
                name,
                settings,
                span: self.line_span(line),
            });
        }
        Ok(out)
    }

    fn locks(&self, items: &[&Line]) -> PResult<Vec<LockDecl>> {
        let mut out = Vec::new();
        for line in items {
            self.no_block(line, "a lock")?;
            let cx = self.cx(line);
            let mut decl = LockDecl {
                locktype: Name {
                    text: String::new(),
                    quoted: false,
                    span: self.line_span(line),
                },
                value: None,
                manual: false,
                inherit: false,
                limit: None,
                span: self.line_span(line),
            };
            for p in self.parse_line(Rule::lock_line, line)? {
                match p.as_rule() {
                    Rule::name => decl.locktype = cx.name(p)?,
                    Rule::expr => decl.value = Some(cx.expr(p)?),
                    Rule::lock_word => {
                        decl.value = Some(crate::ast::Expr::lit(
                            serde_json::Value::String(p.as_str().to_owned()),
                            cx.span(p.as_span()),
                        ))
                    }
                    Rule::lock_flag => match p.clone().into_inner().next() {
                        Some(l) if l.as_rule() == Rule::lock_limit => {
                            let span = cx.span(l.as_span());
                            let n = l
                                .into_inner()
                                .find(|c| c.as_rule() == Rule::lock_count)
                                .map_or(u64::MAX, |c| c.as_str().parse().unwrap_or(u64::MAX));
                            decl.limit = Some((n, span));
                        }
                        _ if p.as_str().starts_with("manual") => decl.manual = true,
                        _ => decl.inherit = true,
                    },
                    _ => {}
                }
            }
            out.push(decl);
        }
        Ok(out)
    }

    // ---- Assignment blocks --------------------------------------------------------------

    /// Parses assignment lines; in a `wait_for_lock` block (`lockwait`), `wait = yes|no` is
    /// read as `wait = true|false`.
    fn assigns<'l>(
        &self,
        lines: impl Iterator<Item = &'l Line>,
        lockwait: bool,
    ) -> PResult<Vec<Assign>> {
        let mut out = Vec::new();
        for line in lines {
            let word = self.word(line);
            let rest = self.text(line).get(word.len()..).unwrap_or("").trim_start();
            if matches!(word, "into" | "collect") && rest.starts_with(':') {
                let d = self.src.error(
                    "JC0117",
                    line.start,
                    line.start + word.len(),
                    format!("`{word}:` is indented as if it were one of the inputs"),
                );
                return Err(hint(
                    d,
                    format!("write `{word}:` at the indentation of the statement it belongs to"),
                ));
            }
            if !line.children.is_empty() && STATEMENTS.contains(&word) {
                let d = self.src.error(
                    "JC0104",
                    line.start,
                    line.end,
                    format!("the statement `{word}` inside an assignment block"),
                );
                return Err(hint(d, "an assignment block holds only assignments; move the statement out, at the indentation of the block's header"));
            }
            self.no_block(line, "an assignment")?;
            let cx = self.cx(line);
            let span = self.line_span(line);
            if lockwait {
                if let Ok(pairs) = JclParser::parse(Rule::lockwait_line, self.text(line)) {
                    if let Some(assign) = self.lockwait(&cx, pairs, span)? {
                        out.push(assign);
                        continue;
                    }
                }
            }
            let inner = self
                .parse_line(Rule::assign_line, line)?
                .find(|p| matches!(p.as_rule(), Rule::copy | Rule::set | Rule::perl_block));
            match inner {
                Some(p) if p.as_rule() == Rule::perl_block => {
                    let (start, end) = cx.perl_inner(&p);
                    out.extend(crate::perl::assigns(self.src, start, end)?);
                }
                Some(p) => out.push(cx.assign(p, span)?),
                None => {
                    return Err(self.src.error(
                        "JC0101",
                        line.start,
                        line.end,
                        "expected an assignment",
                    ))
                }
            }
        }
        Ok(out)
    }

    fn lockwait(
        &self,
        cx: &Cx<'_, '_>,
        mut pairs: Pairs<'_, Rule>,
        span: Span,
    ) -> PResult<Option<Assign>> {
        let Some(top) = pairs.next() else {
            return Ok(None);
        };
        let mut inner = top.into_inner().filter(|p| p.as_rule() != Rule::equals);
        let (Some(t), Some(word)) = (inner.next(), inner.next()) else {
            return Ok(None);
        };
        let target = cx.target(t)?;
        let value = crate::ast::Expr::lit(
            serde_json::Value::Bool(word.as_rule() == Rule::kw_yes),
            cx.span(word.as_span()),
        );
        Ok(Some(Assign {
            kind: crate::ast::AssignKind::Set {
                target,
                op: jcl::ir::AssignOp::Set,
                value,
            },
            span,
        }))
    }

    // ---- Statements ---------------------------------------------------------------------

    fn stmts(&self, lines: &[Line]) -> PResult<Vec<Stmt>> {
        let mut out = Vec::new();
        let mut iter = lines.iter().peekable();
        while let Some(line) = iter.next() {
            let kind = if self.is_assignment(line) {
                // Assignment lines among statements: consecutive ones make one `eval`.
                let mut group = vec![line];
                while let Some(next) = iter.next_if(|l| self.is_assignment(l)) {
                    group.push(next);
                }
                StmtKind::Eval {
                    assigns: self.assigns(group.into_iter(), false)?,
                }
            } else {
                self.stmt(line, &mut iter)?
            };
            out.push(Stmt {
                kind,
                span: self.line_span(line),
            });
        }
        Ok(out)
    }

    /// Whether a line of a statement block is an assignment rather than a statement: it does
    /// not start with a statement keyword (or the keyword is used as a variable name, as in
    /// `label = 'x'`), and it parses as an assignment.
    fn is_assignment(&self, line: &Line) -> bool {
        let text = self.text(line);
        let word = first_word(text);
        let rest = text.get(word.len()..).unwrap_or("").trim_start();
        let keyword = STATEMENTS.contains(&word);
        let assigns_to_word = ["=", ".", "[", ",=", "+=", "-=", "*=", "/=", "||="]
            .iter()
            .any(|op| rest.starts_with(op))
            && !rest.starts_with("==");
        (!keyword || assigns_to_word) && JclParser::parse(Rule::assign_line, text).is_ok()
    }

    /// The first `expr` among `pairs`.
    fn expr_of(&self, line: &Line, pairs: Pairs<'_, Rule>) -> PResult<crate::ast::Expr> {
        let cx = self.cx(line);
        match pairs.into_iter().find(|p| p.as_rule() == Rule::expr) {
            Some(p) => cx.expr(p),
            None => Err(self
                .src
                .error("JC0101", line.start, line.end, "expected an expression")),
        }
    }

    /// The next sibling when its first word is `word`.
    fn take<'l>(&self, iter: &mut Lines<'l>, word: &str) -> Option<&'l Line> {
        iter.next_if(|l| self.word(l) == word)
    }

    /// An optional `into:` (or `collect:`) block after a call.
    fn companion(
        &self,
        iter: &mut Lines<'_>,
        word: &str,
        rule: Rule,
    ) -> PResult<Option<Block<Assign>>> {
        let Some(line) = self.take(iter, word) else {
            return Ok(None);
        };
        self.parse_line(rule, line)?;
        self.need_block(line, "the output mapping")?;
        Ok(Some(Block {
            span: self.line_span(line),
            items: self.assigns(line.children.iter(), false)?,
        }))
    }

    fn block(&self, line: &Line, rule: Rule) -> PResult<Block<Stmt>> {
        self.parse_line(rule, line)?;
        self.need_block(line, "the block")?;
        Ok(Block {
            span: self.line_span(line),
            items: self.stmts(&line.children)?,
        })
    }

    fn missing(&self, line: &Line, message: &str, help: &str) -> Box<Diagnostic> {
        hint(
            self.src.error("JC0118", line.start, line.end, message),
            help.to_owned(),
        )
    }

    fn stmt<'l>(&self, line: &'l Line, iter: &mut Lines<'l>) -> PResult<StmtKind> {
        let word = self.word(line);
        let cx = self.cx(line);
        Ok(match word {
            "call" => {
                let pairs = self.parse_line(Rule::call_head, line)?;
                let callee = self.next_name(&cx, &mut pairs.clone(), line)?;
                let priority = pairs
                    .flatten()
                    .find(|p| p.as_rule() == Rule::priority_value)
                    .map(|p| {
                        let text = p.as_str();
                        let n = text.parse::<i64>().unwrap_or(if text.starts_with('-') {
                            i64::MIN
                        } else {
                            i64::MAX
                        });
                        (n, cx.span(p.as_span()))
                    });
                let imap = self.assigns(line.children.iter(), false)?;
                let into = self.companion(iter, "into", Rule::into_head)?;
                StmtKind::Call {
                    callee,
                    priority,
                    imap,
                    into,
                }
            }
            "eval" | "let" => {
                self.parse_line(Rule::eval_head, line)?;
                // The original also took a Perl block written below `eval:` at its indentation.
                if line.children.is_empty() {
                    if let Some(perl) = iter.next_if(|l| self.text(l).starts_with("[[")) {
                        return Ok(StmtKind::Eval {
                            assigns: self.assigns(std::iter::once(perl), false)?,
                        });
                    }
                }
                self.need_block(line, "the assignments")?;
                StmtKind::Eval {
                    assigns: self.assigns(line.children.iter(), false)?,
                }
            }
            "if" => {
                let cond = self.expr_of(line, self.parse_line(Rule::if_head, line)?)?;
                self.need_block(line, "the block")?;
                let mut branches = vec![Branch {
                    cond,
                    body: self.stmts(&line.children)?,
                    span: self.line_span(line),
                }];
                while let Some(l) = self.take(iter, "elsif") {
                    let cond = self.expr_of(l, self.parse_line(Rule::elsif_head, l)?)?;
                    self.need_block(l, "the block")?;
                    branches.push(Branch {
                        cond,
                        body: self.stmts(&l.children)?,
                        span: self.line_span(l),
                    });
                }
                let otherwise = match self.take(iter, "else") {
                    Some(l) => Some(self.block(l, Rule::else_head)?),
                    None => None,
                };
                StmtKind::If {
                    branches,
                    otherwise,
                }
            }
            "while" => {
                let cond = self.expr_of(line, self.parse_line(Rule::while_head, line)?)?;
                self.need_block(line, "the loop's block")?;
                StmtKind::While {
                    cond,
                    body: self.stmts(&line.children)?,
                }
            }
            "repeat" => {
                self.parse_line(Rule::repeat_head, line)?;
                self.need_block(line, "the loop's block")?;
                let body = self.stmts(&line.children)?;
                let Some(u) = self.take(iter, "until") else {
                    return Err(self.missing(
                        line,
                        "`repeat:` needs `until CONDITION` after its block",
                        "add `until CONDITION` at the indentation of `repeat:`",
                    ));
                };
                self.no_block(u, "`until`")?;
                let until = self.expr_of(u, self.parse_line(Rule::until_line, u)?)?;
                StmtKind::Repeat {
                    body,
                    until,
                    until_span: self.line_span(u),
                }
            }
            "case" => self.case(line, iter)?,
            "try" => {
                self.parse_line(Rule::try_head, line)?;
                self.need_block(line, "the block")?;
                let body = self.stmts(&line.children)?;
                let Some(c) = self.take(iter, "catch") else {
                    return Err(self.missing(
                        line,
                        "`try:` needs a `catch:` block after its block",
                        "add `catch:` at the indentation of `try:`, with the error handling below",
                    ));
                };
                StmtKind::Try {
                    body,
                    catch: self.block(c, Rule::catch_head)?,
                }
            }
            "raise_error" => StmtKind::RaiseError {
                msg: self.one_argument(line, Rule::raise_error_line, "msg")?,
            },
            "assert" => self.assert(line)?,
            "goto" | "label" => {
                self.no_block(line, &format!("`{word}`"))?;
                let rule = if word == "goto" {
                    Rule::goto_line
                } else {
                    Rule::label_line
                };
                let name = self
                    .parse_line(rule, line)?
                    .find(|p| p.as_rule() == Rule::word)
                    .map(|p| cx.word(&p))
                    .ok_or_else(|| {
                        self.src
                            .error("JC0101", line.start, line.end, "expected a label")
                    })?;
                if word == "goto" {
                    StmtKind::Goto { label: name }
                } else {
                    StmtKind::Label { name }
                }
            }
            "return" => {
                self.no_block(line, "`return`")?;
                self.parse_line(Rule::return_line, line)?;
                StmtKind::Return
            }
            "sleep" => StmtKind::Sleep {
                interval: self.one_argument(line, Rule::sleep_line, "timeout")?,
            },
            "subscribe" | "raise_event" | "wait_for_event" => {
                let rule = match word {
                    "subscribe" => Rule::subscribe_head,
                    "raise_event" => Rule::raise_event_head,
                    _ => Rule::wait_for_event_head,
                };
                self.parse_line(rule, line)?;
                self.need_block(line, "the inputs")?;
                let imap = self.assigns(line.children.iter(), false)?;
                match word {
                    "subscribe" => StmtKind::Subscribe { imap },
                    "raise_event" => StmtKind::RaiseEvent { imap },
                    _ => StmtKind::WaitForEvent {
                        imap,
                        into: self.companion(iter, "into", Rule::into_head)?,
                    },
                }
            }
            "unsubscribe" => {
                let mut pairs = self.parse_line(Rule::unsubscribe_line, line)?;
                match pairs.find(|p| p.as_rule() == Rule::name) {
                    Some(name) => {
                        self.no_block(line, "`unsubscribe NAME`")?;
                        StmtKind::Unsubscribe(Unsubscribe::Name(cx.name(name)?))
                    }
                    None => {
                        self.need_block(line, "`name = …`")?;
                        StmtKind::Unsubscribe(Unsubscribe::Imap(
                            self.assigns(line.children.iter(), false)?,
                        ))
                    }
                }
            }
            "lock" | "unlock" => {
                self.no_block(line, &format!("`{word}`"))?;
                let rule = if word == "lock" {
                    Rule::lock_stmt_line
                } else {
                    Rule::unlock_line
                };
                let pairs = self.parse_line(rule, line)?;
                let locktype = self.next_name(&cx, &mut pairs.clone(), line)?;
                let value = self.expr_of(line, pairs)?;
                if word == "lock" {
                    StmtKind::Lock { locktype, value }
                } else {
                    StmtKind::Unlock { locktype, value }
                }
            }
            "wait_for_lock" => {
                let mut pairs = self.parse_line(Rule::wait_for_lock_head, line)?;
                let locktype = self.next_name(&cx, &mut pairs, line)?;
                self.need_block(line, "`value = …` and `wait = …`")?;
                StmtKind::WaitForLock {
                    locktype,
                    imap: self.assigns(line.children.iter(), true)?,
                }
            }
            "split" => {
                self.parse_line(Rule::split_head, line)?;
                self.need_block(line, "the `callflow` and `map` lines")?;
                let mut flows = Vec::new();
                let mut children = line.children.iter().peekable();
                while let Some(child) = children.next() {
                    let kind = match self.word(child) {
                        "callflow" => {
                            let mut pairs = self.parse_line(Rule::callflow_head, child)?;
                            let callee = self.next_name(&self.cx(child), &mut pairs, child)?;
                            FlowKind::Callflow {
                                callee,
                                imap: self.assigns(child.children.iter(), false)?,
                                into: self.companion(&mut children, "into", Rule::into_head)?,
                            }
                        }
                        "map" => FlowKind::Map(self.map(child, &mut children)?),
                        _ => {
                            let d = self.src.error(
                                "JC0101",
                                child.start,
                                child.end,
                                "expected `callflow NAME:` or `map NAME using LIST:` in a `split:`",
                            );
                            return Err(hint(d, "a split only starts child workflows; put other statements before or after it"));
                        }
                    };
                    flows.push(Flow {
                        kind,
                        span: self.line_span(child),
                    });
                }
                StmtKind::Split { flows }
            }
            "map" => StmtKind::Map(self.map(line, iter)?),
            "detachflow" => {
                let mut pairs = self.parse_line(Rule::detachflow_head, line)?;
                StmtKind::Detachflow {
                    callee: self.next_name(&cx, &mut pairs, line)?,
                    imap: self.assigns(line.children.iter(), false)?,
                }
            }
            "interface" => self.dispatch(line, iter)?,
            _ => return Err(self.unknown_statement(line, word)),
        })
    }

    /// The argument of `raise_error E` / `sleep E`, or of the original's block form
    /// `raise_error:` / `sleep:` with the one assignment `key = E` indented below.
    fn one_argument(&self, line: &Line, rule: Rule, key: &str) -> PResult<crate::ast::Expr> {
        let word = self.word(line);
        let pairs = self.parse_line(rule, line)?;
        if !pairs.clone().any(|p| p.as_rule() == Rule::colon) {
            self.no_block(line, &format!("`{word} E`"))?;
            return self.expr_of(line, pairs);
        }
        self.need_block(line, &format!("`{key} = …`"))?;
        let assigns = self.assigns(line.children.iter(), false)?;
        let only = match assigns.as_slice() {
            [one] => match &one.kind {
                crate::ast::AssignKind::Set { target, op, value }
                    if *op == jcl::ir::AssignOp::Set
                        && matches!(target.ns, None | Some(jcl::ir::Ns::I))
                        && matches!(target.segs.as_slice(),
                            [crate::ast::Seg::Key { name, .. }] if name == key) =>
                {
                    Some(value.clone())
                }
                _ => None,
            },
            _ => None,
        };
        only.ok_or_else(|| {
            let at = line
                .children
                .first()
                .map_or(self.line_span(line), |c| self.line_span(c));
            hint(
                self.src.error(
                    "JC0119",
                    at.start,
                    at.end,
                    format!("`{word}:` takes one assignment, `{key} = …`"),
                ),
                format!("write `{word}:` with `{key} = E` below, or `{word} E` on one line"),
            )
        })
    }

    fn map(&self, line: &Line, iter: &mut Lines<'_>) -> PResult<MapFlow> {
        let cx = self.cx(line);
        let pairs = self.parse_line(Rule::map_head, line)?;
        let callee = self.next_name(&cx, &mut pairs.clone(), line)?;
        let using = self.expr_of(line, pairs)?;
        Ok(MapFlow {
            callee,
            using,
            imap: self.assigns(line.children.iter(), false)?,
            collect: self.companion(iter, "collect", Rule::collect_head)?,
        })
    }

    fn case<'l>(&self, line: &'l Line, iter: &mut Lines<'l>) -> PResult<StmtKind> {
        let value = self.expr_of(line, self.parse_line(Rule::case_head, line)?)?;
        let mut whens = Vec::new();
        let mut otherwise = None;
        // The branches are either indented under `case` or follow it at its indentation.
        let mut nested = line.children.iter().peekable();
        let branches: &mut Lines<'_> = if line.children.is_empty() {
            iter
        } else {
            &mut nested
        };
        while let Some(w) = self.take(branches, "when") {
            let cx = self.cx(w);
            let mut labels = Vec::new();
            for p in self.parse_line(Rule::when_head, w)? {
                if p.as_rule() != Rule::case_label {
                    continue;
                }
                let span = cx.span(p.as_span());
                match p.into_inner().next() {
                    Some(n) if n.as_rule() == Rule::name => labels.push(cx.name(n)?),
                    Some(n) => labels.push(Name {
                        text: n.as_str().to_owned(),
                        quoted: false,
                        span,
                    }),
                    None => {}
                }
            }
            self.need_block(w, "the branch's block")?;
            whens.push(When {
                labels,
                body: self.stmts(&w.children)?,
                span: self.line_span(w),
            });
        }
        if let Some(e) = self.take(branches, "else") {
            otherwise = Some(self.block(e, Rule::else_head)?);
        }
        if let Some(stray) = nested.next() {
            let d = self.src.error(
                "JC0101",
                stray.start,
                stray.end,
                "expected `when LABEL:` or `else:` in a `case` block",
            );
            return Err(hint(
                d,
                "a case block holds only its `when` branches and an optional `else:`",
            ));
        }
        if whens.is_empty() && otherwise.is_none() {
            return Err(self.missing(
                line,
                "`case` needs at least one `when LABEL:` branch",
                "add `when LABEL:` lines with their blocks",
            ));
        }
        Ok(StmtKind::Case {
            value,
            whens,
            otherwise,
        })
    }

    fn assert(&self, line: &Line) -> PResult<StmtKind> {
        let cx = self.cx(line);
        let exprs: Vec<Pair<'_, Rule>> = self
            .parse_line(Rule::assert_head, line)?
            .filter(|p| p.as_rule() == Rule::expr)
            .collect();
        let mut exprs = exprs.into_iter();
        let cond = match exprs.next() {
            Some(p) => cx.expr(p)?,
            None => {
                return Err(self
                    .src
                    .error("JC0101", line.start, line.end, "expected a condition"))
            }
        };
        let msg = match exprs.next() {
            Some(p) => {
                self.no_block(line, "`assert C: MESSAGE`")?;
                cx.expr(p)?
            }
            None => match line.children.as_slice() {
                [] => {
                    let d =
                        self.src
                            .error("JC0103", line.start, line.end, "`assert` needs a message");
                    return Err(hint(
                        d,
                        "write the message after the colon or on the next line, indented",
                    ));
                }
                [m] => {
                    self.no_block(m, "the message")?;
                    self.expr_of(m, self.parse_line(Rule::expr_line, m)?)?
                }
                [_, second, ..] => {
                    let d = self.src.error(
                        "JC0119",
                        second.start,
                        second.end,
                        "`assert` takes one message expression",
                    );
                    return Err(hint(d, "join the parts with `.`"));
                }
            },
        };
        Ok(StmtKind::Assert { cond, msg })
    }

    fn dispatch(&self, line: &Line, iter: &mut Lines<'_>) -> PResult<StmtKind> {
        let cx = self.cx(line);
        let mut pairs = self.parse_line(Rule::interface_head, line)?;
        let interface = self.next_name(&cx, &mut pairs, line)?;
        self.need_block(line, "the list of candidate workflows")?;
        let mut candidates = Vec::new();
        for l in &line.children {
            self.no_block(l, "a candidate")?;
            let lcx = self.cx(l);
            for p in self.parse_line(Rule::names_line, l)? {
                if p.as_rule() == Rule::name {
                    candidates.push(lcx.name(p)?);
                }
            }
        }
        let Some(call) = self.take(iter, "call") else {
            return Err(self.missing(
                line,
                "`interface` needs a `call EXPRESSION:` line after its list",
                "add `call E:` at the indentation of `interface`, where E names one of the listed workflows",
            ));
        };
        let target = self.expr_of(call, self.parse_line(Rule::dispatch_head, call)?)?;
        Ok(StmtKind::Dispatch {
            interface,
            candidates,
            target,
            call_span: self.line_span(call),
            imap: self.assigns(call.children.iter(), false)?,
            into: self.companion(iter, "into", Rule::into_head)?,
        })
    }

    fn unknown_statement(&self, line: &Line, word: &str) -> Box<Diagnostic> {
        let text = self.text(line);
        let end = line.start + head_len(text, word);
        let misplaced = match word {
            "elsif" | "else" => Some("`else`/`elsif` without a preceding `if` (or `case`)"),
            "until" => Some("`until` without a preceding `repeat:` block"),
            "catch" => Some("`catch:` without a preceding `try:` block"),
            "into" => Some("`into:` must follow a `call`, `callflow` or `wait_for_event` block"),
            "collect" => Some("`collect:` must follow a `map … using …:` block"),
            "when" => Some("`when` outside a `case`"),
            "callflow" => Some("`callflow` outside a `split:` block"),
            _ => None,
        };
        if let Some(message) = misplaced {
            return hint(
                self.src.error("JC0117", line.start, end, message),
                "check the indentation: it must line up with the statement it continues",
            );
        }
        if SECTIONS.contains(&word)
            && text
                .get(word.len()..)
                .is_some_and(|r| r.trim_start().starts_with(':'))
        {
            return hint(
                self.src.error(
                    "JC0105",
                    line.start,
                    end,
                    format!("the section `{word}:` inside a statement block"),
                ),
                "sections are written at the indentation of `do:`",
            );
        }
        let close = similar(word, &STATEMENTS);
        if close.is_empty() && (text.contains('=') || text.starts_with('<')) {
            // Meant as an assignment: report what is wrong with it.
            if let Err(e) = self.parse_line(Rule::assign_line, line) {
                return e;
            }
        }
        let help = if close.is_empty() {
            format!(
                "the statements are {}; an assignment is `target = expression`",
                quoted_list(&STATEMENTS)
            )
        } else {
            format!("did you mean {}?", quoted_list(&close))
        };
        let message = if word.is_empty() {
            format!(
                "expected a statement, found `{}`",
                text.chars().next().unwrap_or(' ')
            )
        } else {
            format!("unknown statement `{word}`")
        };
        hint(self.src.error("JC0105", line.start, end, message), help)
    }
}
