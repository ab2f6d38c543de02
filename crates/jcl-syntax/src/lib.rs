//! The JCL front end: the pest grammar and the parser ([`parser`]), the syntax tree with spans
//! ([`ast`]) and diagnostics with stable codes and caret rendering ([`diagnostic`]).
//!
//! ```
//! let src = "workflow hello:\ndo:\n\teval:\n\t\tgreeting = 'hi'\n";
//! let file = jcl_syntax::parse("hello.jcl", src)?;
//! assert_eq!(file.name.text, "hello");
//! # Ok::<(), Box<jcl_syntax::Diagnostic>>(())
//! ```
//!
//! Semantic checks (names, namespaces, types, sections allowed per kind) and lowering to
//! [`jcl::Model`] live in the compiler, `jcc`. The language is described in section 4 of the
//! specification; the syntax error codes (`JC01xx`) in `docs/errors.md`. How the parser is
//! built (a layout pass turns indentation into a tree of lines, pest parses each line, a Pratt
//! parser climbs expressions) is described in [`parser`].
//!
//! # Details of the syntax
//!
//! Where the specification leaves room, this is what the parser accepts:
//!
//! - **Names** of workflows, actions, types, lock types and case labels are ASCII words that may
//!   contain dots (`dns.configure`) or quoted strings (`"prov.get_ip_list"`). Labels of `goto`
//!   and `label` are plain words.
//! - **Sections** come in any order, each at most once, at the indentation of the header or
//!   indented under it. One item may follow the colon on the header line (`role: admin`,
//!   `interface: other.flow`, `config: max_steps = 10`), except for `do:`.
//! - **Literals** (defaults of `in:`/`env:`, values of `config:` and `wfenv:`) use a JSON-like
//!   syntax: numbers with optional sign, fraction, exponent or `0x` hex; strings in either
//!   quote; `true false null`; arrays `[1, 'a']`; objects `{tries: 3, 'max interval': '1
//!   hour'}` whose keys are words or strings; trailing commas are allowed. Several settings may
//!   share a line: `max_steps = 200, max_depth = 5`. Literals are constants, not expressions.
//! - **Schedules** (ours): a workflow's `schedule:` section names one or more schedules, each
//!   `NAME:` followed by settings written like those of `config:`, after the colon
//!   (comma-separated) and/or on the lines indented below it:
//!
//!   ```text
//!   schedule:
//!       nightly: cron = '0 30 2 * * *', tz = 'Europe/Amsterdam', missed = 'catchup', args = {days: 1}
//!       every_minute:
//!           cron = '0 * * * * *'
//!           enabled = false
//!   ```
//!
//!   The compiler knows the keys: `cron` (required: six fields with seconds and an optional
//!   year, or `@daily`…), `tz` (an IANA time zone, default `'UTC'`), `missed` (`'skip'`, the
//!   default, or `'catchup'`), `args` (an object of the workflow's inputs, default `{}`) and
//!   `enabled` (default `true`). A schedule without any setting is an error (JC0103).
//! - **Expressions** read values through a namespace (`a e v i o t`); a bare word is an error,
//!   as in the original compiler. Only the left side of an assignment may omit it (the block
//!   decides: `i.` in an imap, `v.` in an omap or eval, `o.` in a wfomap). `v.a.b` is one path,
//!   so concatenating two paths needs spaces (`v.a . v.b`); keys that are not words are quoted
//!   (`e.'_error'.class`, `v."2nd"`, also on the left: `'2-factor' = 1`) or indexed:
//!   `v.m['some key']`.
//! - **Strings** know the escapes `\\ \' \" \n \t \r` (others are an error) and do not
//!   interpolate `$`.
//! - **Regexes** are written only after `~`: `v.x ~ /^\d+$/i`. `\/` is a slash; the flags `i m
//!   s x` are folded into the pattern as `(?i)`.
//! - **Comparisons do not chain**: `a < b < c` and `a == b == c` are errors (JC0113), for both
//!   the equality and the ordering operators.
//! - **Assignments among statements** (`v.log = 'failed'` in a `catch:` block, as in the
//!   specification's example) are allowed; consecutive ones form one `eval`.
//! - **`case`** branches may be indented under `case E:` or written at its indentation; labels
//!   are words, quoted strings or integers.
//! - **`repeat:`** ends with `until C` (no colon) at the `repeat`'s indentation; `assert C:`
//!   takes its message after the colon or on one indented line.
//! - **`wait_for_lock`**: in its block, `wait = yes` and `wait = no` mean `true` and `false`.
//! - **`unsubscribe NAME`** takes a name; `unsubscribe:` with `name = E` takes an expression.
//! - **Dynamic dispatch** is two statements in a row: `interface IFACE:` with the candidate
//!   workflows or actions (names, one or more per line) indented below, then `call E:` at the same
//!   indentation, where the expression E names one of the candidates; then the inputs and an
//!   optional `into:` as for any call. See [`ast::StmtKind::Dispatch`].
//! - **Comments**: `#` to the end of the line outside strings and regexes; `#[[ … #]]` anywhere,
//!   also across lines.
//! - **The original's forms** (see `docs/jcl.md`): a trailing `;` after a declaration,
//!   assignment, setting or lock line; `interface NAME:` as a header line (the section
//!   `interface: NAME`); `object(k: v)`; a bare word as a lock value (`foo bar`, any letters);
//!   `raise_error:` and `sleep:` with their one assignment (`msg = …`, `timeout = …`) below.
//! - **Embedded Perl** `[[ … ]]` (outside strings and comments, possibly across lines) stands
//!   for an expression or, as a line of an assignment block, for `;`-separated assignments;
//!   the documented subset is translated into this syntax tree (`perl.rs`), anything else is
//!   JC0109 at its first untranslated token. So a nested array literal is written
//!   `[ [1], [2] ]`.
//! - **Indentation**: a tab advances to the next multiple of 8 columns; all lines of a block
//!   start at the same column. In spans and messages a column counts characters, so a tab is
//!   one column there.
//! - **Limits**: blocks and brackets nest at most 64 deep, a line has at most 256 operators;
//!   beyond that the parser reports JC0116 instead of risking the stack.

pub mod ast;
pub mod diagnostic;
mod expr;
mod grammar;
mod layout;
pub mod parser;
mod perl;
mod source;

pub use diagnostic::{Diagnostic, Label, Severity};
pub use parser::parse;
