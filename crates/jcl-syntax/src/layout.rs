//! The layout pass: from source text to a tree of lines, before any grammar is applied.
//!
//! JCL blocks are made by indentation, which a PEG cannot express. So parsing happens in two
//! layers:
//!
//! 1. This pass scans the text once, character by character, with a small state machine
//!    (code, single- or double-quoted string, regex after `~`, `#` comment, `#[[ … #]]`
//!    comment, Perl block `[[ … ]]`). It produces a *clean* copy of the text of the same byte
//!    length in which every comment character and the inside of every Perl block (its line
//!    breaks too) is replaced by spaces, so byte offsets stay valid for spans and the parser
//!    reads a Perl block from the source. Along the way it reports what only a whole-text view
//!    can see: an unterminated string, regex, multi-line comment or Perl block, and brackets
//!    nested deeper than [`MAX_BRACKET_DEPTH`] (which would otherwise make the recursive-descent grammar overflow
//!    the stack).
//! 2. It then splits the clean text into lines, drops the blank ones, measures each line's
//!    indentation (a space is one column, a tab advances to the next multiple of 8) and builds
//!    a tree: a line's children are the lines after it that are indented deeper, up to the
//!    first line that is not. All children of one line must have the same indentation; a line
//!    that dedents to a level no enclosing block has is an error (JC0102). The tree is built
//!    with an explicit stack and limited to [`MAX_BLOCK_DEPTH`] levels.
//!
//! The parser then walks the tree and applies a pest rule to the text of each line, choosing
//! the rule from the line's context and its first word.

use crate::source::{hint, PResult, Source};

/// The deepest nesting of blocks.
pub(crate) const MAX_BLOCK_DEPTH: usize = 64;
/// The deepest nesting of `(`, `[` and `{` on one line.
pub(crate) const MAX_BRACKET_DEPTH: usize = 64;

/// One non-blank line and the lines indented under it.
#[derive(Debug)]
pub(crate) struct Line {
    /// Byte offset of the first character after the indentation.
    pub start: usize,
    /// Byte offset after the last non-blank character (comments are blank).
    pub end: usize,
    /// Indentation in columns, tabs expanded to multiples of 8.
    pub indent: usize,
    pub children: Vec<Line>,
}

/// The clean text (comments blanked) and the top-level lines.
#[derive(Debug)]
pub(crate) struct Layout {
    pub clean: String,
    pub lines: Vec<Line>,
}

/// Runs both steps of the pass.
pub(crate) fn layout(src: &Source<'_>) -> PResult<Layout> {
    let clean = clean(src)?;
    let lines = tree(src, &clean)?;
    Ok(Layout { clean, lines })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    /// In a string opened by the quote at the offset.
    Str(char, usize),
    /// In a regex opened at the offset.
    Regex(usize),
    LineComment,
    /// In a `#[[` comment opened at the offset.
    BlockComment(usize),
}

fn blank(out: &mut String, c: char) {
    if c == '\n' {
        out.push('\n');
    } else {
        out.extend(std::iter::repeat_n(' ', c.len_utf8()));
    }
}

/// Blanks out comments and checks strings, regexes, Perl blocks and bracket depth.
fn clean(src: &Source<'_>) -> PResult<String> {
    let text = src.text;
    let mut out = String::with_capacity(text.len());
    let mut state = State::Code;
    // The last non-blank code character on this line, to tell a regex `~ /` from a division.
    let mut last: Option<char> = None;
    let mut depth = 0usize;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let rest = text.get(i..).unwrap_or("");
        match state {
            State::Code => match c {
                '\n' => {
                    out.push('\n');
                    last = None;
                    depth = 0;
                }
                '\'' | '"' => {
                    out.push(c);
                    state = State::Str(c, i);
                }
                '#' if rest.starts_with("#[[") => {
                    out.push_str("   ");
                    chars.next();
                    chars.next();
                    state = State::BlockComment(i);
                }
                '#' => {
                    out.push(' ');
                    state = State::LineComment;
                }
                '[' if rest.starts_with("[[") => {
                    // Embedded Perl: its text is blanked here (line breaks too, so a block
                    // spanning lines is one line of the tree) and translated by the parser
                    // from the source, which the blanks keep in place.
                    let Some(close) = rest.find("]]") else {
                        let end = rest.find('\n').map_or(text.len(), |n| i + n);
                        return Err(hint(
                            src.error("JC0110", i, end, "this Perl block `[[` is never closed"),
                            "end the block with `]]`",
                        ));
                    };
                    out.push_str("[[");
                    let inner = rest.get(2..close).unwrap_or("");
                    out.extend(std::iter::repeat_n(' ', inner.len()));
                    out.push_str("]]");
                    while chars.next_if(|&(j, _)| j < i + close + 2).is_some() {}
                    last = Some(']');
                }
                '/' if last == Some('~') => {
                    out.push(c);
                    state = State::Regex(i);
                }
                '(' | '[' | '{' => {
                    depth += 1;
                    if depth > MAX_BRACKET_DEPTH {
                        return Err(hint(
                            src.error(
                                "JC0116",
                                i,
                                i + 1,
                                format!(
                                    "brackets nested more than {MAX_BRACKET_DEPTH} deep on one line"
                                ),
                            ),
                            "split the expression into several assignments",
                        ));
                    }
                    out.push(c);
                    last = Some(c);
                }
                ')' | ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    out.push(c);
                    last = Some(c);
                }
                _ => {
                    out.push(c);
                    if !c.is_whitespace() {
                        last = Some(c);
                    }
                }
            },
            State::Str(_, start) if c == '\n' => {
                return Err(unterminated(src, "string", start, i));
            }
            State::Regex(start) if c == '\n' => {
                return Err(unterminated(src, "regular expression", start, i));
            }
            State::Str(quote, _) => {
                out.push(c);
                if c == '\\' {
                    if let Some(&(_, next)) = chars.peek() {
                        if next != '\n' {
                            out.push(next);
                            chars.next();
                        }
                    }
                } else if c == quote {
                    state = State::Code;
                    last = Some(c);
                }
            }
            State::Regex(_) => {
                out.push(c);
                if c == '\\' {
                    if let Some(&(_, next)) = chars.peek() {
                        if next != '\n' {
                            out.push(next);
                            chars.next();
                        }
                    }
                } else if c == '/' {
                    state = State::Code;
                    last = Some(c);
                }
            }
            State::LineComment => {
                blank(&mut out, c);
                if c == '\n' {
                    state = State::Code;
                    last = None;
                    depth = 0;
                }
            }
            State::BlockComment(_) => {
                if rest.starts_with("#]]") {
                    out.push_str("   ");
                    chars.next();
                    chars.next();
                    state = State::Code;
                } else {
                    blank(&mut out, c);
                    if c == '\n' {
                        last = None;
                        depth = 0;
                    }
                }
            }
        }
    }
    match state {
        State::Str(_, start) => Err(unterminated(src, "string", start, text.len())),
        State::Regex(start) => Err(unterminated(src, "regular expression", start, text.len())),
        State::BlockComment(start) => Err(hint(
            src.error(
                "JC0110",
                start,
                start + 3,
                "this `#[[` comment is never closed",
            ),
            "end the comment with `#]]`",
        )),
        State::Code | State::LineComment => Ok(out),
    }
}

fn unterminated(src: &Source<'_>, what: &str, start: usize, end: usize) -> Box<crate::Diagnostic> {
    let end = src
        .text
        .get(start..end)
        .map_or(end, |s| start + s.trim_end().len());
    let close = if what == "string" {
        "add the closing quote; a string cannot span lines (write \\n for a line break)"
    } else {
        "add the closing `/`; a regular expression cannot span lines"
    };
    hint(
        src.error(
            "JC0110",
            start,
            end.max(start + 1),
            format!("unterminated {what}"),
        ),
        close,
    )
}

/// An open line while building the tree, with the indentation its children must have.
struct Open {
    line: Line,
    child_indent: Option<usize>,
}

/// Splits the clean text into non-blank lines and nests them by indentation.
fn tree(src: &Source<'_>, clean: &str) -> PResult<Vec<Line>> {
    let mut roots = Vec::new();
    let mut root_indent = None;
    let mut stack: Vec<Open> = Vec::new();
    let mut offset = 0;
    for raw in clean.split('\n') {
        let line_start = offset;
        offset += raw.len() + 1;
        let mut indent = 0;
        let mut content = raw.len();
        for (i, c) in raw.char_indices() {
            match c {
                // A byte-order mark at the start of the file is not indentation.
                '\u{feff}' if line_start + i == 0 => {}
                ' ' => indent += 1,
                '\t' => indent = (indent / 8 + 1) * 8,
                _ => {
                    content = i;
                    break;
                }
            }
        }
        let body = raw.get(content..).unwrap_or("").trim_end();
        if body.is_empty() {
            continue;
        }
        let line = Line {
            start: line_start + content,
            end: line_start + content + body.len(),
            indent,
            children: Vec::new(),
        };
        while stack.last().is_some_and(|o| o.line.indent >= indent) {
            close(&mut stack, &mut roots);
        }
        let expected = match stack.last_mut() {
            Some(open) => &mut open.child_indent,
            None => &mut root_indent,
        };
        match *expected {
            Some(e) if e != indent => {
                return Err(hint(
                    src.error(
                        "JC0102",
                        line.start,
                        line.end,
                        format!(
                            "this line is indented {indent} columns, which matches no \
                             enclosing block (the lines above it are indented {e})"
                        ),
                    ),
                    "indent all lines of a block alike; a tab counts as 8 columns",
                ));
            }
            Some(_) => {}
            None => *expected = Some(indent),
        }
        if stack.len() >= MAX_BLOCK_DEPTH {
            return Err(hint(
                src.error(
                    "JC0116",
                    line.start,
                    line.end,
                    format!("blocks nested more than {MAX_BLOCK_DEPTH} deep"),
                ),
                "move some of the nested statements into a separate workflow",
            ));
        }
        stack.push(Open {
            line,
            child_indent: None,
        });
    }
    while !stack.is_empty() {
        close(&mut stack, &mut roots);
    }
    Ok(roots)
}

/// Pops the innermost open line and appends it to its parent.
fn close(stack: &mut Vec<Open>, roots: &mut Vec<Line>) {
    if let Some(open) = stack.pop() {
        match stack.last_mut() {
            Some(parent) => parent.line.children.push(open.line),
            None => roots.push(open.line),
        }
    }
}
