//! A source file being parsed: its name and text, byte offsets to [`Span`]s (1-based line and
//! character column), and the constructor for this crate's diagnostics.

use crate::ast::Span;
use crate::diagnostic::Diagnostic;

/// The result type of every parsing step: the error is the first syntax error.
pub(crate) type PResult<T> = Result<T, Box<Diagnostic>>;

/// The file name and text, with an index of line starts.
#[derive(Debug)]
pub(crate) struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// Whether each line is pure ASCII, so that its columns are byte differences.
    ascii: Vec<bool>,
}

impl<'a> Source<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Source<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let ascii = line_starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = line_starts.get(n + 1).copied().unwrap_or(text.len());
                text.as_bytes()
                    .get(start..end)
                    .is_some_and(|b| b.is_ascii())
            })
            .collect();
        Source {
            file,
            text,
            line_starts,
            ascii,
        }
    }

    /// The span of bytes `start..end`.
    pub fn span(&self, start: usize, end: usize) -> Span {
        let start = start.min(self.text.len());
        let end = end.clamp(start, self.text.len());
        let n = self.line_starts.partition_point(|&s| s <= start).max(1) - 1;
        let line_start = self.line_starts.get(n).copied().unwrap_or(0);
        let col = if self.ascii.get(n).copied().unwrap_or(false) {
            start - line_start
        } else {
            self.text
                .get(line_start..start)
                .map_or(start - line_start, |s| s.chars().count())
        };
        Span {
            start,
            end,
            line: u32::try_from(n + 1).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
        }
    }

    /// An error diagnostic at bytes `start..end`.
    pub fn error(
        &self,
        code: &'static str,
        start: usize,
        end: usize,
        message: impl Into<String>,
    ) -> Box<Diagnostic> {
        Box::new(Diagnostic::error(
            code,
            self.file,
            self.span(start, end),
            message,
        ))
    }
}

/// Adds a hint to a boxed diagnostic.
pub(crate) fn hint(mut d: Box<Diagnostic>, text: impl Into<String>) -> Box<Diagnostic> {
    d.hint = Some(text.into());
    d
}

/// Adds a label to a boxed diagnostic.
pub(crate) fn label(
    mut d: Box<Diagnostic>,
    span: Span,
    text: impl Into<String>,
) -> Box<Diagnostic> {
    d.labels.push(crate::diagnostic::Label {
        span,
        message: text.into(),
    });
    d
}

/// The candidates within a small edit distance of `word`, closest first.
pub(crate) fn similar<'c>(word: &str, candidates: &[&'c str]) -> Vec<&'c str> {
    let max = if word.chars().count() <= 3 { 1 } else { 2 };
    let mut found: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, _)| *d <= max)
        .collect();
    found.sort();
    found.into_iter().map(|(_, c)| c).collect()
}

/// The Levenshtein distance between two short strings, ignoring ASCII case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().map(|c| c.to_ascii_lowercase()).collect();
    let b: Vec<char> = b.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            cur.push(sub.min(del).min(ins));
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}
