//! Embedded Perl `[[ … ]]`, as the original compiler allowed it, translated at compile time
//! into the same syntax tree as JCL (so it is checked and evaluated like any expression).
//!
//! The subset is what real workflow files use:
//!
//! - a hash element of a namespace, read or written: `$a{input}`, `$v->{counter}`,
//!   `$e{_error}{msg}`, `$v{list}[0]`, `$o->{'odd key'}` (JCL `a.input`, `v.counter`, …); a
//!   key may also be an expression in braces (`$v{$a{k}}`, JCL `v[a.k]`);
//! - a whole copy of one namespace into another: `%i = %a` (every key, like `<*>`);
//! - string and number literals: `'sleutel'`, `"a\tb"` (no interpolation), `42`, `1.5`,
//!   `0x1A`;
//! - the operators `** ! - * / % x + - . < <= > >= lt le gt ge == != eq ne && || // and or
//!   xor not` and parentheses, with Perl's precedence;
//! - assignments `= .= += -= *= /= //= ||=` to a hash element, separated by `;`.
//!
//! Anything else (regex matches, `if`, function calls, `my`, interpolation, …) is error
//! JC0109 at the first token outside the subset, with a hint showing the JCL way to write it.
//! Spans point into the source text inside the block.

use jcl::ir::{BinOp, Ns, UnOp};
use serde_json::{Number, Value};

use crate::ast::{Assign, AssignKind, Expr, ExprKind, Path, Seg, Span, Target};
use crate::expr::{assign_op, negate};
use crate::source::{hint, PResult, Source};

/// Multi-character punctuation, longest first so that the lexer takes the longest match.
const PUNCT: [&str; 44] = [
    "||=", "//=", "&&=", "**=", "<=>", "...", "->", "=~", "!~", "==", "!=", "<=", ">=", "&&", "||",
    "//", "**", ".=", "+=", "-=", "*=", "/=", "=>", "::", "=", "<", ">", "+", "-", ".", "*", "/",
    "%", "!", "(", ")", "{", "}", "[", "]", ";", ",", "?", ":",
];

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// `$name`, `%name` or `@name`.
    Var(char, String),
    Word(String),
    Str(String),
    Num(Value),
    Punct(&'static str),
    /// A character of no token above; the parser reports it where it is reached.
    Other,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// The translator of one block: its tokens and where it is in the source.
struct Perl<'s, 'a> {
    src: &'s Source<'a>,
    toks: Vec<Token>,
    pos: usize,
    /// The end of the block's text (for "expected … at the end" errors).
    end: usize,
    /// How deep expressions nest now; bounded like the brackets of a JCL line, since the
    /// layout pass does not look inside a Perl block.
    depth: usize,
}

/// Translates the Perl expression of the block whose text is `start..end` of the source.
pub(crate) fn expr(src: &Source<'_>, start: usize, end: usize) -> PResult<Expr> {
    let mut p = Perl::new(src, start, end)?;
    let e = p.expr_bp(0)?;
    p.eat(";");
    p.finish()?;
    Ok(e)
}

/// Translates the Perl assignments (`;`-separated) of the block whose text is `start..end`.
pub(crate) fn assigns(src: &Source<'_>, start: usize, end: usize) -> PResult<Vec<Assign>> {
    let mut p = Perl::new(src, start, end)?;
    let mut out = Vec::new();
    loop {
        while p.eat(";") {}
        if p.peek().is_none() {
            break;
        }
        out.push(p.assign()?);
        if p.peek().is_some() && !p.eat(";") {
            return Err(p.unsupported_here("expected `;` between two assignments"));
        }
    }
    if out.is_empty() {
        return Err(hint(
            src.error("JC0109", start, end, "this Perl block assigns nothing"),
            "write JCL assignments such as `x = a.x`, or remove the block",
        ));
    }
    Ok(out)
}

fn is_word_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'s, 'a> Perl<'s, 'a> {
    fn new(src: &'s Source<'a>, start: usize, end: usize) -> PResult<Perl<'s, 'a>> {
        let toks = lex(src, start, end)?;
        Ok(Perl {
            src,
            toks,
            pos: 0,
            end,
            depth: 0,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.pos)
    }

    fn peek_at(&self, n: usize) -> Option<&Token> {
        self.toks.get(self.pos + n)
    }

    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Token { tok: Tok::Punct(q), .. }) if *q == p)
    }

    fn eat(&mut self, p: &str) -> bool {
        let yes = self.is(p);
        if yes {
            self.pos += 1;
        }
        yes
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += usize::from(t.is_some());
        t
    }

    fn span(&self, start: usize, end: usize) -> Span {
        self.src.span(start, end)
    }

    /// The end offset of the last token taken.
    fn last_end(&self) -> usize {
        self.pos
            .checked_sub(1)
            .and_then(|i| self.toks.get(i))
            .map_or(self.end, |t| t.end)
    }

    fn finish(&self) -> PResult<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unsupported_here("expected the end of the Perl block")),
        }
    }

    /// JC0109 at the current token (or the end of the block), with a hint fitting the token.
    fn unsupported_here(&self, context: &str) -> Box<crate::Diagnostic> {
        match self.peek() {
            Some(t) => {
                let text = self.src.text.get(t.start..t.end).unwrap_or("");
                let next_is_paren = matches!(
                    self.peek_at(1),
                    Some(Token {
                        tok: Tok::Punct("("),
                        ..
                    })
                );
                hint(
                    self.src.error(
                        "JC0109",
                        t.start,
                        t.end,
                        format!(
                            "embedded Perl: `{text}` is outside the subset jcc translates \
                             ({context})"
                        ),
                    ),
                    token_hint(&t.tok, next_is_paren),
                )
            }
            None => hint(
                self.src.error(
                    "JC0109",
                    self.end,
                    self.end,
                    format!("embedded Perl: the block ends too early ({context})"),
                ),
                GENERIC_HINT,
            ),
        }
    }

    /// One assignment: `%to = %from` or `$X{…} op EXPR`.
    fn assign(&mut self) -> PResult<Assign> {
        let start = self.peek().map_or(self.end, |t| t.start);
        if let Some(Token {
            tok: Tok::Var('%', to),
            start: to_start,
            end: to_end,
        }) = self.peek().cloned()
        {
            self.pos += 1;
            let to = self.namespace(&to, to_start, to_end)?;
            if !self.eat("=") {
                return Err(self.unsupported_here("a whole namespace is copied with `=`"));
            }
            let Some(Token {
                tok: Tok::Var('%', from),
                start: fs,
                end: fe,
            }) = self.peek().cloned()
            else {
                return Err(self.unsupported_here("expected `%a`, `%v`, … after `%x =`"));
            };
            self.pos += 1;
            let from = self.namespace(&from, fs, fe)?;
            return Ok(Assign {
                kind: AssignKind::CopyAll { from, to },
                span: self.span(start, fe),
            });
        }
        let path = match self.peek().cloned() {
            Some(Token {
                tok: Tok::Var('$', name),
                start: s,
                end: e,
            }) => {
                self.pos += 1;
                self.element(&name, s, e)?
            }
            _ => return Err(self.unsupported_here("expected an assignment to `$x{key}`")),
        };
        let op = match self.peek().map(|t| &t.tok) {
            Some(Tok::Punct(p @ ("=" | ".=" | "+=" | "-=" | "*=" | "/=" | "//=" | "||="))) => {
                assign_op(p)
            }
            _ => return Err(self.unsupported_here("expected an assignment operator")),
        };
        self.pos += 1;
        let value = self.expr_bp(0)?;
        let span = self.span(start, value.span.end);
        Ok(Assign {
            kind: AssignKind::Set {
                target: Target {
                    ns: Some(path.ns),
                    segs: path.segs,
                    span: path.span,
                },
                op,
                value,
            },
            span,
        })
    }

    fn namespace(&self, name: &str, start: usize, end: usize) -> PResult<Ns> {
        Ns::from_letter(name).ok_or_else(|| {
            hint(
                self.src.error(
                    "JC0109",
                    start,
                    end,
                    format!("embedded Perl: `{name}` is not a namespace"),
                ),
                format!(
                    "the namespaces are a e v i o t; a Perl variable of its own is a JCL \
                     variable `v.{name}` or a temporary `t.{name}`"
                ),
            )
        })
    }

    /// `$X{key}…` after the `$X` token: a path into namespace X.
    fn element(&mut self, name: &str, start: usize, end: usize) -> PResult<Path> {
        let ns = self.namespace(name, start, end)?;
        let mut segs = Vec::new();
        loop {
            let arrow = self.is("->")
                && matches!(
                    self.peek_at(1),
                    Some(Token {
                        tok: Tok::Punct("{" | "["),
                        ..
                    })
                );
            if arrow {
                self.pos += 1;
            }
            if self.eat("{") {
                segs.push(self.key()?);
                if !self.eat("}") {
                    return Err(self.unsupported_here("expected `}` after the hash key"));
                }
            } else if !segs.is_empty() && self.eat("[") {
                let index = self.expr_bp(0)?;
                segs.push(Seg::Index(Box::new(index)));
                if !self.eat("]") {
                    return Err(self.unsupported_here("expected `]` after the array index"));
                }
            } else {
                break;
            }
        }
        if segs.is_empty() {
            let d = self.src.error(
                "JC0109",
                start,
                end,
                format!("embedded Perl: `${name}` alone is not a value jcc translates"),
            );
            return Err(hint(
                d,
                format!(
                    "read one element: `${name}{{key}}` is JCL `{name}.key`; a whole namespace \
                     is only copied: `%i = %{name}`"
                ),
            ));
        }
        Ok(Path {
            ns,
            segs,
            span: self.span(start, self.last_end()),
        })
    }

    /// A hash key: a bare word, a string, or an expression.
    fn key(&mut self) -> PResult<Seg> {
        let bare = matches!(
            (self.peek(), self.peek_at(1)),
            (
                Some(Token {
                    tok: Tok::Word(_) | Tok::Str(_),
                    ..
                }),
                Some(Token {
                    tok: Tok::Punct("}"),
                    ..
                })
            )
        );
        if bare {
            if let Some(Token {
                tok: Tok::Word(w) | Tok::Str(w),
                start,
                end,
            }) = self.next()
            {
                return Ok(Seg::Key {
                    name: w,
                    span: self.span(start, end),
                });
            }
        }
        Ok(Seg::Index(Box::new(self.expr_bp(0)?)))
    }

    /// Precedence climbing over Perl's operators; `min` is the lowest binding power taken.
    fn expr_bp(&mut self, min: u8) -> PResult<Expr> {
        if self.depth >= crate::layout::MAX_BRACKET_DEPTH {
            let at = self.peek().map_or(self.end, |t| t.start);
            return Err(hint(
                self.src
                    .error("JC0116", at, at, "this Perl block nests too deep"),
                "split the expression into several assignments",
            ));
        }
        self.depth += 1;
        let e = self.climb(min);
        self.depth -= 1;
        e
    }

    fn climb(&mut self, min: u8) -> PResult<Expr> {
        let mut lhs = self.prefix()?;
        while let Some((bp, right, op)) = self.peek().and_then(|t| infix(&t.tok)) {
            if bp < min {
                break;
            }
            self.pos += 1;
            let rhs = self.expr_bp(if right { bp } else { bp + 1 })?;
            let span = self.span(lhs.span.start, rhs.span.end);
            lhs = Expr {
                kind: ExprKind::Binary {
                    op,
                    left: Box::new(lhs),
                    right: Box::new(rhs),
                },
                span,
            };
            if matches!(bp, EQUALITY | RELATIONAL)
                && self.peek().and_then(|t| infix(&t.tok)).map(|i| i.0) == Some(bp)
            {
                let t = self
                    .peek()
                    .map_or((self.end, self.end), |t| (t.start, t.end));
                return Err(hint(
                    self.src
                        .error("JC0113", t.0, t.1, "comparisons cannot be chained"),
                    "add parentheses, or combine two comparisons with `&&`",
                ));
            }
        }
        if let Some(t) = self.peek() {
            if matches!(t.tok, Tok::Punct("=~" | "!~" | "?" | "<=>" | "=")) {
                return Err(self.unsupported_here("an operator without a translation"));
            }
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> PResult<Expr> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.unsupported_here("expected a value"));
        };
        let unary = match &t.tok {
            Tok::Punct("!") => Some((UnOp::Not, UNARY)),
            Tok::Punct("-") => Some((UnOp::Neg, UNARY)),
            Tok::Word(w) if w == "not" => Some((UnOp::Not, NOT)),
            _ => None,
        };
        if let Some((op, bp)) = unary {
            self.pos += 1;
            let operand = self.expr_bp(bp)?;
            let span = self.span(t.start, operand.span.end);
            return Ok(match (op, operand.kind) {
                (UnOp::Neg, ExprKind::Lit(Value::Number(n))) => Expr::lit(negate(&n), span),
                (op, kind) => Expr {
                    kind: ExprKind::Unary {
                        op,
                        expr: Box::new(Expr {
                            kind,
                            span: operand.span,
                        }),
                    },
                    span,
                },
            });
        }
        self.primary()
    }

    fn primary(&mut self) -> PResult<Expr> {
        let Some(t) = self.peek().cloned() else {
            return Err(self.unsupported_here("expected a value"));
        };
        let span = self.span(t.start, t.end);
        match t.tok {
            Tok::Num(v) => {
                self.pos += 1;
                Ok(Expr::lit(v, span))
            }
            Tok::Str(s) => {
                self.pos += 1;
                Ok(Expr::lit(Value::String(s), span))
            }
            Tok::Punct("(") => {
                self.pos += 1;
                let mut inner = self.expr_bp(0)?;
                if !self.eat(")") {
                    return Err(self.unsupported_here("expected `)`"));
                }
                inner.span = self.span(t.start, self.last_end());
                Ok(inner)
            }
            Tok::Var('$', name) => {
                self.pos += 1;
                let path = self.element(&name, t.start, t.end)?;
                Ok(Expr {
                    span: path.span,
                    kind: ExprKind::Path(path),
                })
            }
            _ => Err(self.unsupported_here("expected a value")),
        }
    }
}

const EQUALITY: u8 = 6;
const RELATIONAL: u8 = 7;
const NOT: u8 = 3;
const UNARY: u8 = 10;

/// The binding power, right associativity and operator of an infix token.
fn infix(tok: &Tok) -> Option<(u8, bool, BinOp)> {
    let name = match tok {
        Tok::Punct(p) => *p,
        Tok::Word(w) => w.as_str(),
        _ => return None,
    };
    Some(match name {
        "or" => (1, false, BinOp::Or),
        "xor" => (1, false, BinOp::Xor),
        "and" => (2, false, BinOp::And),
        "||" => (4, false, BinOp::Or),
        "//" => (4, false, BinOp::DefinedOr),
        "&&" => (5, false, BinOp::And),
        "==" => (EQUALITY, false, BinOp::NumEq),
        "!=" => (EQUALITY, false, BinOp::NumNe),
        "eq" => (EQUALITY, false, BinOp::StrEq),
        "ne" => (EQUALITY, false, BinOp::StrNe),
        "<" => (RELATIONAL, false, BinOp::NumLt),
        "<=" => (RELATIONAL, false, BinOp::NumLe),
        ">" => (RELATIONAL, false, BinOp::NumGt),
        ">=" => (RELATIONAL, false, BinOp::NumGe),
        "lt" => (RELATIONAL, false, BinOp::StrLt),
        "le" => (RELATIONAL, false, BinOp::StrLe),
        "gt" => (RELATIONAL, false, BinOp::StrGt),
        "ge" => (RELATIONAL, false, BinOp::StrGe),
        "+" => (8, false, BinOp::Add),
        "-" => (8, false, BinOp::Sub),
        "." => (8, false, BinOp::Concat),
        "*" => (9, false, BinOp::Mul),
        "/" => (9, false, BinOp::Div),
        "%" => (9, false, BinOp::Mod),
        "x" => (9, false, BinOp::Repeat),
        "**" => (11, true, BinOp::Pow),
        _ => return None,
    })
}

const GENERIC_HINT: &str = "write it in JCL instead: `$v{x}` is `v.x`, `.` concatenates, \
                            `==`/`eq` compare, and statements such as `if C:` replace Perl's";

/// What to write in JCL instead of a token outside the subset.
fn token_hint(tok: &Tok, next_is_paren: bool) -> String {
    match tok {
        Tok::Punct("=~" | "!~") => {
            "JCL matches a regular expression with `~`: `v.x ~ /^a/`, negated `!(v.x ~ /^a/)`"
                .into()
        }
        Tok::Punct("?" | ":") => {
            "write an `if C:` statement; for a default value use `//` or `ifdef(…)`".into()
        }
        Tok::Punct("=") => "an assignment is a JCL line of its own: `x = a.y`".into(),
        Tok::Var('@', _) => {
            "JCL reads an array through its path (`v.list`, `v.list[0]`) and builds one with \
             `array(…)`; `v.list ,= x` appends"
                .into()
        }
        Tok::Var('%', n) => {
            format!("a whole namespace is only copied: `%i = %{n}` (in JCL, `<*>` in a map)")
        }
        Tok::Var(_, n) => {
            format!("a Perl variable of its own is a JCL variable `v.{n}` or a temporary `t.{n}`")
        }
        Tok::Word(w) => match w.as_str() {
            "if" | "unless" | "else" | "elsif" | "for" | "foreach" | "while" | "until" => {
                "write JCL statements: `if C:` (or `while C:`) with the assignments in its block"
                    .into()
            }
            "my" | "our" | "local" => "keep a temporary value in `t.`: `t.x = …`".into(),
            "push" => "append to an array with `,=`: `v.list ,= a.x`".into(),
            "undef" => "JCL writes the undefined value as `null`".into(),
            _ if next_is_paren => format!(
                "call a JCL function with JCL arguments, e.g. `{w}(v.x)` if JCL has it; the \
                 functions are listed in the language reference"
            ),
            _ => format!("a bare word is not a value: write the string `'{w}'` or a path `v.{w}`"),
        },
        Tok::Str(_) => "strings are joined with `.`: `'a' . v.x`".into(),
        _ => GENERIC_HINT.into(),
    }
}

/// Splits the block's text into tokens.
fn lex(src: &Source<'_>, start: usize, end: usize) -> PResult<Vec<Token>> {
    let text = src.text.get(start..end).unwrap_or("");
    let mut toks: Vec<Token> = Vec::new();
    let mut i = 0;
    while let Some(c) = text.get(i..).and_then(|r| r.chars().next()) {
        let at = start + i;
        let rest = text.get(i..).unwrap_or("");
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        if c == '#' {
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        // `%` and `@` are sigils where a value may start, `%` an operator after a value.
        let after_value = toks.last().is_some_and(|t| {
            matches!(
                t.tok,
                Tok::Var(..) | Tok::Str(_) | Tok::Num(_) | Tok::Punct(")" | "}" | "]")
            )
        });
        let sigil = c == '$' || c == '@' || (c == '%' && !after_value);
        let word_len = |s: &str| s.find(|ch: char| !is_word_char(ch)).unwrap_or(s.len());
        if sigil
            && rest
                .get(1..)
                .and_then(|r| r.chars().next())
                .is_some_and(is_word_start)
        {
            let name_len = word_len(rest.get(1..).unwrap_or(""));
            let name = rest.get(1..1 + name_len).unwrap_or("").to_owned();
            toks.push(Token {
                tok: Tok::Var(c, name),
                start: at,
                end: at + 1 + name_len,
            });
            i += 1 + name_len;
            continue;
        }
        if c == '@' {
            // An array dereference such as `@{…}`: reported by the parser with its hint.
            toks.push(Token {
                tok: Tok::Var('@', String::new()),
                start: at,
                end: at + 1,
            });
            i += 1;
            continue;
        }
        if is_word_start(c) {
            let n = word_len(rest);
            toks.push(Token {
                tok: Tok::Word(rest.get(..n).unwrap_or("").to_owned()),
                start: at,
                end: at + n,
            });
            i += n;
            continue;
        }
        if c.is_ascii_digit()
            || (c == '.'
                && rest
                    .get(1..)
                    .is_some_and(|r| r.starts_with(|d: char| d.is_ascii_digit())))
        {
            let (v, n) = number(src, at, rest)?;
            toks.push(Token {
                tok: Tok::Num(v),
                start: at,
                end: at + n,
            });
            i += n;
            continue;
        }
        if c == '\'' || c == '"' {
            let (s, n) = string(src, at, rest, c)?;
            toks.push(Token {
                tok: Tok::Str(s),
                start: at,
                end: at + n,
            });
            i += n;
            continue;
        }
        match PUNCT.iter().find(|p| rest.starts_with(**p)) {
            Some(p) => {
                toks.push(Token {
                    tok: Tok::Punct(p),
                    start: at,
                    end: at + p.len(),
                });
                i += p.len();
            }
            None => {
                toks.push(Token {
                    tok: Tok::Other,
                    start: at,
                    end: at + c.len_utf8(),
                });
                i += c.len_utf8();
            }
        }
    }
    Ok(toks)
}

/// A number at the start of `rest` (at byte `at` of the source): its value and length.
fn number(src: &Source<'_>, at: usize, rest: &str) -> PResult<(Value, usize)> {
    let bad = |n: usize| {
        hint(
            src.error("JC0114", at, at + n, "this number is out of range"),
            "numbers are 64-bit integers or double-precision floats",
        )
    };
    if let Some(hex) = rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X")) {
        let n = hex
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '_'))
            .unwrap_or(hex.len());
        let digits: String = hex.get(..n).unwrap_or("").replace('_', "");
        let v = u64::from_str_radix(&digits, 16).map_err(|_| bad(n + 2))?;
        return Ok((Value::from(v), n + 2));
    }
    let bytes = rest.as_bytes();
    let mut n = 0;
    let digits = |n: &mut usize| {
        while bytes
            .get(*n)
            .is_some_and(|b| b.is_ascii_digit() || *b == b'_')
        {
            *n += 1;
        }
    };
    digits(&mut n);
    let mut float = false;
    // `1..5` is a range, not a fraction.
    if bytes.get(n) == Some(&b'.') && bytes.get(n + 1).is_some_and(u8::is_ascii_digit) {
        float = true;
        n += 1;
        digits(&mut n);
    }
    if matches!(bytes.get(n), Some(b'e' | b'E')) {
        let mut m = n + 1;
        if matches!(bytes.get(m), Some(b'+' | b'-')) {
            m += 1;
        }
        if bytes.get(m).is_some_and(u8::is_ascii_digit) {
            float = true;
            n = m;
            digits(&mut n);
        }
    }
    let text = rest.get(..n).unwrap_or("").replace('_', "");
    if !float {
        if let Ok(v) = text.parse::<u64>() {
            return Ok((Value::from(v), n));
        }
    }
    let f: f64 = text.parse().map_err(|_| bad(n))?;
    let v = Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| bad(n))?;
    Ok((v, n))
}

/// A quoted string at the start of `rest`: its value and length. Single quotes know `\\` and
/// `\'`; double quotes the usual escapes and no interpolation.
fn string(src: &Source<'_>, at: usize, rest: &str, quote: char) -> PResult<(String, usize)> {
    let mut out = String::new();
    let mut chars = rest.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == quote {
            return Ok((out, i + 1));
        }
        if c == '\\' {
            let Some((_, n)) = chars.next() else { break };
            match (quote, n) {
                (_, '\\') => out.push('\\'),
                (q, n) if n == q => out.push(n),
                ('\'', n) => {
                    out.push('\\');
                    out.push(n);
                }
                (_, 'n') => out.push('\n'),
                (_, 't') => out.push('\t'),
                (_, 'r') => out.push('\r'),
                (_, '0') => out.push('\0'),
                (_, '$' | '@' | '\'') => out.push(n),
                (_, other) => {
                    return Err(hint(
                        src.error(
                            "JC0109",
                            at + i,
                            at + i + 1 + other.len_utf8(),
                            format!("embedded Perl: the escape `\\{other}` is not translated"),
                        ),
                        "the escapes are \\\\ \\\" \\n \\t \\r \\0 \\$ \\@",
                    ))
                }
            }
            continue;
        }
        if quote == '"' && (c == '$' || c == '@') {
            return Err(hint(
                src.error(
                    "JC0109",
                    at + i,
                    at + i + 1,
                    "embedded Perl: jcc does not translate interpolation in a string",
                ),
                "concatenate instead: `'text ' . a.x . ' more'`",
            ));
        }
        out.push(c);
    }
    Err(hint(
        src.error("JC0110", at, at + rest.len(), "unterminated string"),
        "add the closing quote",
    ))
}
