//! Diagnostics: an error or warning with a stable code, a span, an optional hint and labels,
//! rendered for a terminal (`file:line:col: error[JC0101]: message` and a caret under the
//! source) or serialised as JSON for `--format json`.
//!
//! Codes `JC01xx` are syntax errors raised by this crate; `JC02xx` and up are semantic errors
//! raised by the compiler. Every code is documented in `docs/errors.md`.

use std::fmt::Write as _;

use serde::Serialize;

use crate::ast::Span;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// A secondary span with a note, such as "first defined here".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// A message about a source file: the one error type of this crate, and what the compiler
/// reports for semantic errors too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{file}:{}:{}: {}[{code}]: {message}", span.line, span.col, severity.as_str())]
pub struct Diagnostic {
    /// A stable code such as `JC0101`, documented in `docs/errors.md`.
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    /// The file name as given to the parser or compiler.
    pub file: String,
    pub span: Span,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Other places that explain the error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
}

impl Diagnostic {
    /// An error with `code` at `span` of `file`.
    pub fn error(
        code: &'static str,
        file: &str,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            file: file.to_owned(),
            span,
            hint: None,
            labels: Vec::new(),
        }
    }

    /// A warning with `code` at `span` of `file`.
    pub fn warning(
        code: &'static str,
        file: &str,
        span: Span,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, file, span, message)
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a secondary label.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label {
            span,
            message: message.into(),
        });
        self
    }

    /// Renders the diagnostic for a terminal, quoting `src` (the text of [`Diagnostic::file`]):
    ///
    /// ```text
    /// calltest.jcl:10:2: error[JC0101]: expected ':' after the statement 'call add'
    ///    |
    /// 10 |         call add
    ///    |                 ^
    ///    = hint: a call looks like `call NAME:` with its inputs on the indented lines below
    /// ```
    ///
    /// Tabs in the quoted line are expanded to 8-column stops so that the caret lines up.
    pub fn render(&self, src: &str) -> String {
        let mut out = format!("{self}\n");
        let width = gutter_width(self.span.line, &self.labels);
        snippet(&mut out, src, self.span, '^', None, width);
        for label in &self.labels {
            snippet(&mut out, src, label.span, '-', Some(&label.message), width);
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "{:width$} = hint: {hint}", "");
        }
        out
    }

    /// The JSON form, as printed by `--format json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// Renders several diagnostics of one source, separated by blank lines.
pub fn render_all(diagnostics: &[Diagnostic], src: &str) -> String {
    diagnostics
        .iter()
        .map(|d| d.render(src))
        .collect::<Vec<_>>()
        .join("\n")
}

fn gutter_width(line: u32, labels: &[Label]) -> usize {
    let max = labels.iter().map(|l| l.span.line).fold(line, u32::max);
    max.to_string().len()
}

/// Appends the source line of `span` with `mark` characters under the span (one when the span
/// is empty; up to the end of the line when it spans lines).
fn snippet(
    out: &mut String,
    src: &str,
    span: Span,
    mark: char,
    message: Option<&str>,
    width: usize,
) {
    let Some((line_start, text)) = line_of(src, span.start) else {
        return;
    };
    let (shown, from) = expand_tabs(text, span.start.saturating_sub(line_start));
    let to = if span.end > span.start {
        let end = span.end.min(line_start + text.len());
        expand_tabs(text, end.saturating_sub(line_start)).1
    } else {
        from
    };
    let marks = to.saturating_sub(from).max(1);
    let _ = writeln!(out, "{:width$} |", "");
    let _ = writeln!(out, "{:>width$} | {}", span.line, shown.trim_end());
    let underline: String = std::iter::repeat_n(mark, marks).collect();
    match message {
        Some(m) => {
            let _ = writeln!(out, "{:width$} | {:from$}{underline} {m}", "", "");
        }
        None => {
            let _ = writeln!(out, "{:width$} | {:from$}{underline}", "", "");
        }
    }
}

/// The line containing byte `offset`: its start offset and text (without the line break).
fn line_of(src: &str, offset: usize) -> Option<(usize, &str)> {
    let offset = offset.min(src.len());
    let start = src.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let rest = src.get(start..)?;
    let text = rest.split('\n').next().unwrap_or("");
    Some((start, text.strip_suffix('\r').unwrap_or(text)))
}

/// The line with tabs expanded to 8-column stops, and the display column of byte `upto`.
fn expand_tabs(line: &str, upto: usize) -> (String, usize) {
    let mut shown = String::with_capacity(line.len());
    let mut col = 0;
    let mut at = None;
    for (i, c) in line.char_indices() {
        if at.is_none() && i >= upto {
            at = Some(col);
        }
        if c == '\t' {
            let next = (col / 8 + 1) * 8;
            shown.extend(std::iter::repeat_n(' ', next - col));
            col = next;
        } else {
            shown.push(c);
            col += 1;
        }
    }
    (shown, at.unwrap_or(col))
}
