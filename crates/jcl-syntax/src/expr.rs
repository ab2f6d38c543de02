//! From pest pairs to AST nodes for the parts of a line: expressions (climbed with pest's
//! `PrattParser` using Perl's precedence), literals, names, assignment targets and assignment
//! lines.
//!
//! Precedence, lowest to highest: `or xor` < `and` < `not` < `|| //` < `&&` <
//! `== != eq ne` < `< <= > >= lt le gt ge` < `+ - .` < `* / % x` < `~ /re/` < `! -` (unary) <
//! `**`. Binary operators associate to the left except `**`; a comparison cannot be the
//! unparenthesised operand of another comparison of the same level (`a < b < c` is an error).

use std::sync::LazyLock;

use jcl::ir::{AssignOp, BinOp, Func, Ns, UnOp};
use pest::iterators::Pair;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use serde_json::{Map, Number, Value};

use crate::ast::{
    binop_symbol, Assign, AssignKind, Expr, ExprKind, Literal, Name, Path, Seg, Span, Target,
};
use crate::grammar::Rule;
use crate::source::{hint, similar, PResult, Source};

static PRATT: LazyLock<PrattParser<Rule>> = LazyLock::new(|| {
    use Assoc::{Left, Right};
    PrattParser::new()
        .op(Op::infix(Rule::op_or, Left) | Op::infix(Rule::op_xor, Left))
        .op(Op::infix(Rule::op_and, Left))
        .op(Op::prefix(Rule::op_not))
        .op(Op::infix(Rule::op_oror, Left) | Op::infix(Rule::op_dor, Left))
        .op(Op::infix(Rule::op_andand, Left))
        .op(Op::infix(Rule::op_eq, Left)
            | Op::infix(Rule::op_ne, Left)
            | Op::infix(Rule::op_str_eq, Left)
            | Op::infix(Rule::op_str_ne, Left))
        .op(Op::infix(Rule::op_lt, Left)
            | Op::infix(Rule::op_le, Left)
            | Op::infix(Rule::op_gt, Left)
            | Op::infix(Rule::op_ge, Left)
            | Op::infix(Rule::op_str_lt, Left)
            | Op::infix(Rule::op_str_le, Left)
            | Op::infix(Rule::op_str_gt, Left)
            | Op::infix(Rule::op_str_ge, Left))
        .op(Op::infix(Rule::op_add, Left)
            | Op::infix(Rule::op_sub, Left)
            | Op::infix(Rule::op_concat, Left))
        .op(Op::infix(Rule::op_mul, Left)
            | Op::infix(Rule::op_div, Left)
            | Op::infix(Rule::op_mod, Left)
            | Op::infix(Rule::op_repeat, Left))
        .op(Op::postfix(Rule::match_op))
        .op(Op::prefix(Rule::op_bang) | Op::prefix(Rule::op_neg) | Op::prefix(Rule::op_plus))
        .op(Op::infix(Rule::op_pow, Right))
});

/// An operand during climbing: whether it was written in parentheses matters for the
/// non-associative comparisons.
struct Operand {
    expr: Expr,
    paren: bool,
}

fn binop(rule: Rule) -> Option<BinOp> {
    Some(match rule {
        Rule::op_pow => BinOp::Pow,
        Rule::op_mul => BinOp::Mul,
        Rule::op_div => BinOp::Div,
        Rule::op_mod => BinOp::Mod,
        Rule::op_repeat => BinOp::Repeat,
        Rule::op_add => BinOp::Add,
        Rule::op_sub => BinOp::Sub,
        Rule::op_concat => BinOp::Concat,
        Rule::op_lt => BinOp::NumLt,
        Rule::op_le => BinOp::NumLe,
        Rule::op_gt => BinOp::NumGt,
        Rule::op_ge => BinOp::NumGe,
        Rule::op_eq => BinOp::NumEq,
        Rule::op_ne => BinOp::NumNe,
        Rule::op_str_lt => BinOp::StrLt,
        Rule::op_str_le => BinOp::StrLe,
        Rule::op_str_gt => BinOp::StrGt,
        Rule::op_str_ge => BinOp::StrGe,
        Rule::op_str_eq => BinOp::StrEq,
        Rule::op_str_ne => BinOp::StrNe,
        Rule::op_andand | Rule::op_and => BinOp::And,
        Rule::op_oror | Rule::op_or => BinOp::Or,
        Rule::op_dor => BinOp::DefinedOr,
        Rule::op_xor => BinOp::Xor,
        _ => return None,
    })
}

/// The non-associative levels: equality and ordering comparisons.
fn comparison_level(op: BinOp) -> Option<u8> {
    match op {
        BinOp::NumEq | BinOp::NumNe | BinOp::StrEq | BinOp::StrNe => Some(0),
        BinOp::NumLt
        | BinOp::NumLe
        | BinOp::NumGt
        | BinOp::NumGe
        | BinOp::StrLt
        | BinOp::StrLe
        | BinOp::StrGt
        | BinOp::StrGe => Some(1),
        _ => None,
    }
}

/// The namespaces in words, for hints.
const NAMESPACES: &str = "a. (arguments), e. (environment), v. (variables), i. (inputs being \
                          built), o. (outputs), t. (temporaries)";

/// Converts the pairs of one line; positions in pairs are relative to the line, which starts
/// at byte `base` of the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cx<'s, 'a> {
    pub src: &'s Source<'a>,
    pub base: usize,
}

impl Cx<'_, '_> {
    pub fn span(&self, s: pest::Span<'_>) -> Span {
        self.src.span(self.base + s.start(), self.base + s.end())
    }

    fn error(
        &self,
        code: &'static str,
        s: pest::Span<'_>,
        message: impl Into<String>,
    ) -> Box<crate::Diagnostic> {
        self.src
            .error(code, self.base + s.start(), self.base + s.end(), message)
    }

    /// An `expr` pair.
    pub fn expr(&self, pair: Pair<'_, Rule>) -> PResult<Expr> {
        self.climb(pair).map(|o| o.expr)
    }

    fn climb(&self, pair: Pair<'_, Rule>) -> PResult<Operand> {
        // The Pratt parser panics on an empty sequence; the grammar never produces one.
        if pair.as_rule() != Rule::expr || pair.clone().into_inner().next().is_none() {
            return Err(self.error("JC0101", pair.as_span(), "expected an expression"));
        }
        PRATT
            .map_primary(|p| self.primary(p))
            .map_prefix(|op, rhs| {
                let rhs = rhs?;
                // Unary `+` does nothing, as in Perl (`+'foo'` is `'foo'`).
                if op.as_rule() == Rule::op_plus {
                    return Ok(Operand {
                        expr: rhs.expr,
                        paren: false,
                    });
                }
                let span = self.join(self.span(op.as_span()), rhs.expr.span);
                let un = if op.as_rule() == Rule::op_neg {
                    UnOp::Neg
                } else {
                    UnOp::Not
                };
                let expr = match (un, rhs.expr.kind) {
                    (UnOp::Neg, ExprKind::Lit(Value::Number(n))) => Expr::lit(negate(&n), span),
                    (op, kind) => Expr {
                        kind: ExprKind::Unary {
                            op,
                            expr: Box::new(Expr {
                                kind,
                                span: rhs.expr.span,
                            }),
                        },
                        span,
                    },
                };
                Ok(Operand { expr, paren: false })
            })
            .map_postfix(|lhs, op| {
                let lhs = lhs?;
                let (regex, regex_span) = self.regex(op)?;
                let span = self.join(lhs.expr.span, regex_span);
                Ok(Operand {
                    expr: Expr {
                        kind: ExprKind::Match {
                            expr: Box::new(lhs.expr),
                            regex,
                            regex_span,
                        },
                        span,
                    },
                    paren: false,
                })
            })
            .map_infix(|lhs, op, rhs| {
                let (lhs, rhs) = (lhs?, rhs?);
                let Some(bin) = binop(op.as_rule()) else {
                    return Err(self.error("JC0101", op.as_span(), "unexpected operator"));
                };
                if let (Some(level), ExprKind::Binary { op: inner, .. }) =
                    (comparison_level(bin), &lhs.expr.kind)
                {
                    if !lhs.paren && comparison_level(*inner) == Some(level) {
                        let d = self.error(
                            "JC0113",
                            op.as_span(),
                            format!(
                                "comparisons cannot be chained: `{}` follows `{}`",
                                op.as_str(),
                                binop_symbol(*inner)
                            ),
                        );
                        return Err(hint(
                            d,
                            "add parentheses, or combine two comparisons with `&&`",
                        ));
                    }
                }
                let span = self.join(lhs.expr.span, rhs.expr.span);
                Ok(Operand {
                    expr: Expr {
                        kind: ExprKind::Binary {
                            op: bin,
                            left: Box::new(lhs.expr),
                            right: Box::new(rhs.expr),
                        },
                        span,
                    },
                    paren: false,
                })
            })
            .parse(pair.into_inner())
    }

    /// The span from the start of `a` to the end of `b`.
    fn join(&self, a: Span, b: Span) -> Span {
        Span {
            end: b.end.max(a.end),
            ..a
        }
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> PResult<Operand> {
        let span = self.span(pair.as_span());
        let kind = match pair.as_rule() {
            Rule::paren => {
                let inner = pair
                    .into_inner()
                    .find(|p| p.as_rule() == Rule::expr)
                    .ok_or_else(|| {
                        self.src
                            .error("JC0101", span.start, span.end, "empty parentheses")
                    })?;
                let mut expr = self.expr(inner)?;
                expr.span = span;
                return Ok(Operand { expr, paren: true });
            }
            Rule::number => ExprKind::Lit(self.number(pair.as_str(), false, pair.as_span())?),
            Rule::string => ExprKind::Lit(Value::String(self.string(pair)?)),
            Rule::lit_true => ExprKind::Lit(Value::Bool(true)),
            Rule::lit_false => ExprKind::Lit(Value::Bool(false)),
            Rule::lit_null => ExprKind::Lit(Value::Null),
            Rule::func_call => self.call(pair)?,
            Rule::perl_block => {
                let (start, end) = self.perl_inner(&pair);
                return Ok(Operand {
                    expr: crate::perl::expr(self.src, start, end)?,
                    paren: true,
                });
            }
            Rule::path => ExprKind::Path(self.path(pair)?),
            Rule::bare_word => return Err(self.bare_word(pair)),
            _ => {
                return Err(self.error(
                    "JC0101",
                    pair.as_span(),
                    format!("unexpected `{}`", pair.as_str()),
                ))
            }
        };
        Ok(Operand {
            expr: Expr { kind, span },
            paren: false,
        })
    }

    /// The source range of the text inside a `perl_block` pair's `[[ … ]]`.
    pub fn perl_inner(&self, pair: &Pair<'_, Rule>) -> (usize, usize) {
        let s = pair.as_span();
        (
            self.base + s.start() + 2,
            self.base + s.end().saturating_sub(2).max(s.start() + 2),
        )
    }

    fn bare_word(&self, pair: Pair<'_, Rule>) -> Box<crate::Diagnostic> {
        let word = pair.as_str();
        let d = self.error(
            "JC0111",
            pair.as_span(),
            format!("`{word}` is not an expression: a name needs a namespace prefix"),
        );
        let lower = word.to_ascii_lowercase();
        let help = match lower.as_str() {
            "true" | "false" | "null" => format!("write `{lower}` in lower case"),
            "undef" | "nil" | "none" => "write `null`".to_owned(),
            _ => format!(
                "write `v.{word}` to read the variable {word}, or `'{word}'` for a string; the \
                 namespaces are {NAMESPACES}"
            ),
        };
        hint(d, help)
    }

    fn call(&self, pair: Pair<'_, Rule>) -> PResult<ExprKind> {
        let mut inner = pair.into_inner();
        let Some(name) = inner.next() else {
            return Ok(ExprKind::Lit(Value::Null));
        };
        let Some(func) = Func::from_name(name.as_str()) else {
            let names: Vec<&str> = Func::ALL.iter().map(|f| f.name()).collect();
            let close = similar(name.as_str(), &names);
            let d = self.error(
                "JC0112",
                name.as_span(),
                format!("unknown function `{}`", name.as_str()),
            );
            let help = if close.is_empty() {
                format!("the functions are: {}", names.join(", "))
            } else {
                format!("did you mean {}?", quoted_list(&close))
            };
            return Err(hint(d, help));
        };
        let mut args = Vec::new();
        for a in inner {
            match a.as_rule() {
                Rule::expr => args.push(self.expr(a)?),
                // `key: value`, as the original wrote object members: a colon may only
                // follow a key of `object(…)`.
                Rule::colon if func != Func::Object || args.len() % 2 == 0 => {
                    let d = self.error(
                        "JC0101",
                        a.as_span(),
                        format!("unexpected `:` in the arguments of `{}`", name.as_str()),
                    );
                    let help = if func == Func::Object {
                        "`object(key: value, key: value)`: a colon follows a key, a comma a value"
                    } else {
                        "a colon separates a key from its value only in `object(…)`; separate \
                         arguments with `,`"
                    };
                    return Err(hint(d, help));
                }
                _ => {}
            }
        }
        Ok(ExprKind::Call {
            func,
            name_span: self.span(name.as_span()),
            args,
        })
    }

    fn path(&self, pair: Pair<'_, Rule>) -> PResult<Path> {
        let span = self.span(pair.as_span());
        let mut inner = pair.into_inner();
        let Some(first) = inner.next() else {
            return Err(self.src.error("JC0101", span.start, span.end, "empty path"));
        };
        let Some(ns) = Ns::from_letter(first.as_str()) else {
            let d = self.error(
                "JC0111",
                first.as_span(),
                format!("unknown namespace `{}`", first.as_str()),
            );
            return Err(hint(
                d,
                format!("a path starts with a namespace: {NAMESPACES}"),
            ));
        };
        let segs = inner.map(|p| self.seg(p)).collect::<PResult<Vec<_>>>()?;
        Ok(Path { ns, segs, span })
    }

    fn seg(&self, pair: Pair<'_, Rule>) -> PResult<Seg> {
        if pair.as_rule() == Rule::index {
            let span = self.span(pair.as_span());
            let inner = pair
                .into_inner()
                .find(|p| p.as_rule() == Rule::expr)
                .ok_or_else(|| {
                    self.src
                        .error("JC0101", span.start, span.end, "empty index")
                })?;
            Ok(Seg::Index(Box::new(self.expr(inner)?)))
        } else if pair.as_rule() == Rule::string {
            Ok(Seg::Key {
                span: self.span(pair.as_span()),
                name: self.string(pair)?,
            })
        } else {
            Ok(Seg::Key {
                name: pair.as_str().to_owned(),
                span: self.span(pair.as_span()),
            })
        }
    }

    /// A `match_op` pair: the regex with its flags folded in.
    fn regex(&self, op: Pair<'_, Rule>) -> PResult<(String, Span)> {
        let whole = op.as_span();
        let regex = op
            .into_inner()
            .next()
            .ok_or_else(|| self.error("JC0101", whole, "expected a regular expression"))?;
        let regex_span = self.span(regex.as_span());
        let mut body = String::new();
        let mut flags = String::new();
        for part in regex.into_inner() {
            match part.as_rule() {
                Rule::regex_body => {
                    // `\/` is how a slash is written inside `/…/`; other escapes are the regex's.
                    body = part.as_str().replace("\\/", "/");
                }
                Rule::regex_flags => {
                    for c in part.as_str().chars() {
                        if !"imsx".contains(c) {
                            let d = self.error(
                                "JC0115",
                                part.as_span(),
                                format!("unknown regular expression flag `{c}`"),
                            );
                            return Err(hint(d, "the flags are i, m, s and x"));
                        }
                        if !flags.contains(c) {
                            flags.push(c);
                        }
                    }
                }
                _ => {}
            }
        }
        let pattern = if flags.is_empty() {
            body
        } else {
            format!("(?{flags}){body}")
        };
        if let Err(e) = regex::RegexBuilder::new(&pattern)
            .size_limit(1 << 20)
            .build()
        {
            let first = e.to_string();
            let last = first.lines().last().unwrap_or("invalid").trim();
            let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
            let d = self.src.error(
                "JC0115",
                regex_span.start,
                regex_span.end,
                format!("invalid regular expression: {last}"),
            );
            return Err(hint(d, "the syntax is that of Rust's regex crate (Perl-like, no backreferences or look-around)"));
        }
        Ok((pattern, regex_span))
    }

    /// The value of a number token, `negative` when a literal's `-` precedes it.
    pub fn number(&self, text: &str, negative: bool, at: pest::Span<'_>) -> PResult<Value> {
        let out_of_range = || {
            hint(
                self.error("JC0114", at, format!("the number `{text}` is out of range")),
                "numbers are 64-bit integers or double-precision floats",
            )
        };
        let digits = text.strip_prefix('-').unwrap_or(text);
        if let Some(hex) = digits
            .strip_prefix("0x")
            .or_else(|| digits.strip_prefix("0X"))
        {
            let v = u64::from_str_radix(hex, 16).map_err(|_| out_of_range())?;
            return Ok(signed(v, negative));
        }
        if !digits.contains(['.', 'e', 'E']) {
            if let Ok(v) = digits.parse::<u64>() {
                return Ok(signed(v, negative));
            }
        }
        let v: f64 = digits.parse().map_err(|_| out_of_range())?;
        let v = if negative { -v } else { v };
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(out_of_range)
    }

    /// A `string` pair: the text between the quotes with escapes resolved.
    pub fn string(&self, pair: Pair<'_, Rule>) -> PResult<String> {
        let raw = pair.as_str();
        let start = self.base + pair.as_span().start();
        let body = raw.get(1..raw.len().saturating_sub(1)).unwrap_or("");
        let mut out = String::with_capacity(body.len());
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            let next = chars.next().map(|(_, n)| n);
            match next {
                Some('\\') => out.push('\\'),
                Some('\'') => out.push('\''),
                Some('"') => out.push('"'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                other => {
                    let len = 1 + other.map_or(0, char::len_utf8);
                    let at = start + 1 + i;
                    let shown = body.get(i..i + len).unwrap_or("\\");
                    let d = self.src.error(
                        "JC0114",
                        at,
                        at + len,
                        format!("unknown escape `{shown}` in a string"),
                    );
                    return Err(hint(
                        d,
                        "the escapes are \\\\ \\' \\\" \\n \\t \\r; write \\\\ for a backslash",
                    ));
                }
            }
        }
        Ok(out)
    }

    /// A `name` pair.
    pub fn name(&self, pair: Pair<'_, Rule>) -> PResult<Name> {
        let span = self.span(pair.as_span());
        let inner = pair.into_inner().next();
        match inner {
            Some(s) if s.as_rule() == Rule::string => Ok(Name {
                text: self.string(s)?,
                quoted: true,
                span,
            }),
            Some(w) => Ok(Name {
                text: w.as_str().to_owned(),
                quoted: false,
                span,
            }),
            None => Err(self
                .src
                .error("JC0101", span.start, span.end, "expected a name")),
        }
    }

    /// A plain word pair as a name.
    pub fn word(&self, pair: &Pair<'_, Rule>) -> Name {
        Name {
            text: pair.as_str().to_owned(),
            quoted: false,
            span: self.span(pair.as_span()),
        }
    }

    /// A `literal` pair.
    pub fn literal(&self, pair: Pair<'_, Rule>) -> PResult<Literal> {
        let span = self.span(pair.as_span());
        let value = self.literal_value(pair)?;
        Ok(Literal { value, span })
    }

    fn literal_value(&self, pair: Pair<'_, Rule>) -> PResult<Value> {
        let at = pair.as_span();
        let pair = match pair.as_rule() {
            Rule::literal => match pair.into_inner().next() {
                Some(p) => p,
                None => return Err(self.error("JC0101", at, "expected a literal")),
            },
            _ => pair,
        };
        Ok(match pair.as_rule() {
            Rule::string => Value::String(self.string(pair)?),
            Rule::perl_block => {
                let d = self.error(
                    "JC0109",
                    pair.as_span(),
                    "embedded Perl `[[ … ]]` is not a literal",
                );
                return Err(hint(
                    d,
                    "a literal is a constant; for a nested array put a space between the \
                     brackets: `[ [1], [2] ]`",
                ));
            }
            Rule::lit_number => {
                let text = pair.as_str();
                self.number(text, text.starts_with('-'), pair.as_span())?
            }
            Rule::lit_true => Value::Bool(true),
            Rule::lit_false => Value::Bool(false),
            Rule::lit_null => Value::Null,
            Rule::array => Value::Array(
                pair.into_inner()
                    .filter(|p| p.as_rule() == Rule::literal)
                    .map(|p| self.literal_value(p))
                    .collect::<PResult<_>>()?,
            ),
            Rule::object => {
                let mut map = Map::new();
                for entry in pair.into_inner() {
                    if entry.as_rule() != Rule::object_entry {
                        continue;
                    }
                    let mut kv = entry.into_inner().filter(|p| p.as_rule() != Rule::colon);
                    let (Some(k), Some(v)) = (kv.next(), kv.next()) else {
                        continue;
                    };
                    let key = if k.as_rule() == Rule::string {
                        self.string(k.clone())?
                    } else {
                        k.as_str().to_owned()
                    };
                    if map.contains_key(&key) {
                        return Err(self.error(
                            "JC0114",
                            k.as_span(),
                            format!("the key `{key}` appears twice in this object"),
                        ));
                    }
                    map.insert(key, self.literal_value(v)?);
                }
                Value::Object(map)
            }
            _ => return Err(self.error("JC0101", at, "expected a literal")),
        })
    }

    /// A `target` pair.
    pub fn target(&self, pair: Pair<'_, Rule>) -> PResult<Target> {
        let span = self.span(pair.as_span());
        let parts: Vec<Pair<'_, Rule>> = pair.into_inner().collect();
        let ns = match parts.as_slice() {
            [first, second, ..]
                if first.as_rule() == Rule::word
                    && matches!(second.as_rule(), Rule::word | Rule::string) =>
            {
                Ns::from_letter(first.as_str())
            }
            _ => None,
        };
        let skip = usize::from(ns.is_some());
        let segs = parts
            .into_iter()
            .skip(skip)
            .map(|p| self.seg(p))
            .collect::<PResult<Vec<_>>>()?;
        Ok(Target { ns, segs, span })
    }

    /// The inner pairs of an `assign_line` (or of a `lockwait_line` when `lockwait`).
    pub fn assign(&self, pair: Pair<'_, Rule>, span: Span) -> PResult<Assign> {
        let kind = match pair.as_rule() {
            Rule::copy => {
                let mut names = Vec::new();
                let mut all = false;
                for p in pair.into_inner() {
                    match p.as_rule() {
                        Rule::copy_all => all = true,
                        Rule::word => names.push(self.word(&p)),
                        _ => {}
                    }
                }
                AssignKind::Copy {
                    names: (!all).then_some(names),
                }
            }
            Rule::set => {
                let mut inner = pair.into_inner();
                let (Some(t), Some(op), Some(e)) = (inner.next(), inner.next(), inner.next())
                else {
                    return Err(self.src.error(
                        "JC0101",
                        span.start,
                        span.end,
                        "incomplete assignment",
                    ));
                };
                AssignKind::Set {
                    target: self.target(t)?,
                    op: assign_op(op.as_str()),
                    value: self.expr(e)?,
                }
            }
            _ => {
                return Err(self.src.error(
                    "JC0101",
                    span.start,
                    span.end,
                    "expected an assignment",
                ))
            }
        };
        Ok(Assign { kind, span })
    }
}

pub(crate) fn assign_op(s: &str) -> AssignOp {
    match s {
        ".=" => AssignOp::Concat,
        ",=" => AssignOp::Push,
        "+=" => AssignOp::Add,
        "-=" => AssignOp::Sub,
        "*=" => AssignOp::Mul,
        "/=" => AssignOp::Div,
        "//=" => AssignOp::DefinedOr,
        "||=" => AssignOp::Or,
        _ => AssignOp::Set,
    }
}

/// `v` with the sign applied, as an integer when it fits.
fn signed(v: u64, negative: bool) -> Value {
    if negative {
        match i64::try_from(v) {
            Ok(i) => Value::from(-i),
            Err(_) if v == i64::MIN.unsigned_abs() => Value::from(i64::MIN),
            Err(_) => Number::from_f64(-(v as f64)).map_or(Value::Null, Value::Number),
        }
    } else {
        Value::from(v)
    }
}

/// The negation of a number literal (`-5` is folded into the literal).
pub(crate) fn negate(n: &Number) -> Value {
    if let Some(i) = n.as_i64() {
        if let Some(neg) = i.checked_neg() {
            return Value::from(neg);
        }
    }
    if let Some(u) = n.as_u64() {
        return signed(u, true);
    }
    n.as_f64()
        .and_then(|f| Number::from_f64(-f))
        .map_or(Value::Null, Value::Number)
}

/// Names as "`a`, `b` or `c`".
pub(crate) fn quoted_list(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}
