//! The pest grammar (`jcl.pest`) and the translation of pest's errors into diagnostics a user
//! can act on: the rules pest expected are named in words (`:`, "an expression", "a name"),
//! the message says what was found instead or what the expected token should follow, and the
//! hint shows the form of the line being parsed.

use pest::error::{ErrorVariant, InputLocation};
use pest_derive::Parser;

use crate::diagnostic::Diagnostic;
use crate::source::{hint, Source};

/// The generated parser; its `Rule` enum names every rule of `jcl.pest`.
#[derive(Debug, Parser)]
#[grammar = "jcl.pest"]
pub(crate) struct JclParser;

/// Whether a rule is an operator token (prefix, infix or postfix).
pub(crate) fn is_operator(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::op_not
            | Rule::op_bang
            | Rule::op_neg
            | Rule::op_plus
            | Rule::match_op
            | Rule::op_pow
            | Rule::op_mul
            | Rule::op_dor
            | Rule::op_div
            | Rule::op_mod
            | Rule::op_repeat
            | Rule::op_add
            | Rule::op_sub
            | Rule::op_concat
            | Rule::op_le
            | Rule::op_lt
            | Rule::op_ge
            | Rule::op_gt
            | Rule::op_eq
            | Rule::op_ne
            | Rule::op_str_le
            | Rule::op_str_lt
            | Rule::op_str_ge
            | Rule::op_str_gt
            | Rule::op_str_eq
            | Rule::op_str_ne
            | Rule::op_andand
            | Rule::op_oror
            | Rule::op_and
            | Rule::op_or
            | Rule::op_xor
    )
}

/// How a rule is named in "expected …" messages.
fn describe(rule: Rule) -> String {
    let s = match rule {
        Rule::EOI => "the end of the line",
        Rule::colon => "`:`",
        Rule::comma => "`,`",
        Rule::equals => "`=`",
        Rule::open_paren => "`(`",
        Rule::close_paren => "`)`",
        Rule::open_bracket | Rule::index => "`[`",
        Rule::close_bracket => "`]`",
        Rule::open_brace => "`{`",
        Rule::close_brace => "`}`",
        Rule::open_angle => "`<`",
        Rule::close_angle => "`>`",
        Rule::word => "a word",
        Rule::dotted | Rule::name => "a name",
        Rule::string | Rule::sq_string | Rule::dq_string => "a quoted string",
        Rule::placeholder => "`_`",
        Rule::semi => "`;`",
        Rule::lock_word => "a lock value",
        Rule::file_kind => "`workflow`, `action` or `procedure`",
        Rule::type_name => "a type name",
        Rule::setting => "`key = value`",
        Rule::literal
        | Rule::lit_number
        | Rule::object
        | Rule::array
        | Rule::lit_true
        | Rule::lit_false
        | Rule::lit_null => "a literal (a number, a string, true, false, null, [ … ] or { … })",
        Rule::object_entry => "`key: value`",
        Rule::lock_flag => "`manual` or `inherit`",
        Rule::copy => "`<name>`",
        Rule::copy_all => "`*`",
        Rule::set => "an assignment",
        Rule::target => "an assignment target such as `v.x`",
        Rule::assign_op => "an assignment operator (= .= ,= += -= *= /= //= ||=)",
        Rule::case_label | Rule::case_number => "a case label",
        Rule::expr
        | Rule::paren
        | Rule::number
        | Rule::hex
        | Rule::decimal
        | Rule::func_call
        | Rule::perl_block
        | Rule::path
        | Rule::bare_word
        | Rule::op_not
        | Rule::op_bang
        | Rule::op_neg
        | Rule::op_plus => "an expression",
        Rule::match_op => "an operator",
        Rule::regex | Rule::regex_body => "a regular expression `/…/`",
        Rule::regex_flags => "regular expression flags",
        Rule::section_head => "a section such as `in:`",
        other => {
            let name = format!("{other:?}");
            if let Some(kw) = name.strip_prefix("kw_") {
                return format!("`{kw}`");
            }
            if name.starts_with("op_") {
                return "an operator".to_owned();
            }
            return name.replace('_', " ");
        }
    };
    s.to_owned()
}

/// The form of the line an entry rule parses, shown as the hint of its syntax errors.
pub(crate) fn usage(rule: Rule) -> &'static str {
    match rule {
        Rule::header_line => {
            "a file starts with `workflow NAME:`, `action NAME:` or `procedure NAME:`"
        }
        Rule::section_head => "a section header is a word and a colon, such as `in:` or `do:`",
        Rule::param_line => {
            "an input or output is `name type`, optionally followed by a default literal \
             (inputs) or `optional` (outputs)"
        }
        Rule::setting_line => {
            "a setting is `key = literal`, such as `max_steps = 200` or \
             `retry = {tries: 3, interval: '5 seconds'}`"
        }
        Rule::schedule_line => {
            "a schedule is `NAME:` followed by `key = literal` settings, on its line or \
             indented below, such as `nightly: cron = '0 30 2 * * *', tz = 'Europe/Amsterdam'`"
        }
        Rule::lock_line => {
            "a lock is `locktype value [manual] [inherit] [limit N]`; `_` as the value is a \
             placeholder"
        }
        Rule::name_line => "write a single name",
        Rule::names_line => "write names separated by commas",
        Rule::expr_line => "write a single expression",
        Rule::assign_line | Rule::lockwait_line => {
            "an assignment is `target = expression` (or .= ,= += -= *= /= //= ||=), or \
             `<name>`, `<a,b>`, `<*>` to copy same-named values"
        }
        Rule::call_head => {
            "a call looks like `call NAME:` with its inputs on the indented lines below; to \
             call a workflow chosen at run time use `interface IFACE:` … `call E:`"
        }
        Rule::eval_head => "`eval:` (or `let:`) takes no arguments; the assignments go below",
        Rule::if_head => "an if looks like `if CONDITION:` with its block indented below",
        Rule::elsif_head => "`elsif CONDITION:` with its block indented below",
        Rule::else_head => "`else:` takes no condition; write `elsif CONDITION:` for another test",
        Rule::while_head => "a loop looks like `while CONDITION:` with its block indented below",
        Rule::repeat_head => "a repeat loop is `repeat:`, its block, then `until CONDITION`",
        Rule::until_line => {
            "a repeat loop ends with `until CONDITION` (no colon) at the indentation of `repeat:`"
        }
        Rule::case_head => "a case looks like `case EXPRESSION:` followed by `when` branches",
        Rule::when_head => {
            "a branch looks like `when label, other_label:`; labels are words, strings or numbers"
        }
        Rule::try_head => "`try:` takes no arguments; its block is followed by `catch:`",
        Rule::catch_head => "`catch:` takes no arguments",
        Rule::raise_error_line => {
            "`raise_error MESSAGE` where MESSAGE is an expression, or `raise_error:` with \
             `msg = MESSAGE` indented below"
        }
        Rule::assert_head => "`assert CONDITION: MESSAGE` (or the message on the next line)",
        Rule::goto_line => "`goto LABEL` where LABEL is a word",
        Rule::label_line => "`label NAME` where NAME is a word",
        Rule::return_line => "`return` takes no arguments",
        Rule::sleep_line => {
            "`sleep INTERVAL`, such as `sleep '5 seconds'`, or `sleep:` with `timeout = \
             INTERVAL` indented below"
        }
        Rule::subscribe_head => "`subscribe:` with `name = …` and `mask = …` indented below",
        Rule::unsubscribe_line => "`unsubscribe NAME`, or `unsubscribe:` with `name = …` below",
        Rule::raise_event_head => "`raise_event:` with `event = …` indented below",
        Rule::wait_for_event_head => {
            "`wait_for_event:` with `events = …` and `timeout = …` indented below, then \
             optionally `into:`"
        }
        Rule::into_head => "`into:` takes no arguments; the output mapping goes below",
        Rule::lock_stmt_line => "`lock LOCKTYPE VALUE`, such as `lock zoneid a.zoneid`",
        Rule::unlock_line => "`unlock LOCKTYPE VALUE`, such as `unlock zoneid a.zoneid`",
        Rule::wait_for_lock_head => {
            "`wait_for_lock LOCKTYPE:` with `value = …` and `wait = yes|no|INTERVAL` below"
        }
        Rule::split_head => "`split:` with `callflow NAME:` and `map NAME using LIST:` below",
        Rule::callflow_head => "`callflow NAME:` with its inputs indented below",
        Rule::map_head => "`map NAME using LIST:` with its inputs indented below",
        Rule::collect_head => "`collect:` takes no arguments; the output mapping goes below",
        Rule::detachflow_head => "`detachflow NAME:` with its inputs indented below",
        Rule::interface_head => {
            "`interface IFACE:` with the candidate workflows indented below, then `call E:`"
        }
        Rule::dispatch_head => "`call EXPRESSION:` calls the listed workflow E names",
        _ => "see the language reference",
    }
}

/// Joins names as "a", "a or b", "a, b or c".
fn one_of(names: &[String]) -> String {
    match names {
        [] => "something else".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The token at the start of `rest`, for "found …".
fn token(rest: &str) -> &str {
    let Some(first) = rest.chars().next() else {
        return "";
    };
    let len = if first.is_ascii_alphanumeric() || first == '_' {
        rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len())
    } else {
        first.len_utf8()
    };
    rest.get(..len).unwrap_or(rest)
}

/// Shortens `s` to its last `max` characters.
fn tail(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        s.to_owned()
    } else {
        let t: String = s.chars().skip(n - max).collect();
        format!("…{t}")
    }
}

/// Turns a pest error on `line` (which starts at byte `base` of the source) into a JC0101
/// diagnostic.
pub(crate) fn syntax_error(
    src: &Source<'_>,
    base: usize,
    line: &str,
    rule: Rule,
    err: &pest::error::Error<Rule>,
) -> Box<Diagnostic> {
    let pos = match err.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(line.len());
    let rest = line.get(pos..).unwrap_or("");
    let found = token(rest.trim_start());
    let found_at = pos + (rest.len() - rest.trim_start().len());
    let mut expected: Vec<String> = Vec::new();
    let mut unexpected: Vec<String> = Vec::new();
    match &err.variant {
        ErrorVariant::ParsingError {
            positives,
            negatives,
        } => {
            // A trailing `;` is optional everywhere it is allowed; naming it adds nothing.
            for r in positives.iter().filter(|r| **r != Rule::semi) {
                let d = describe(*r);
                if !expected.contains(&d) {
                    expected.push(d);
                }
            }
            for r in negatives {
                let d = describe(*r);
                if !unexpected.contains(&d) {
                    unexpected.push(d);
                }
            }
        }
        ErrorVariant::CustomError { message } => unexpected.push(message.clone()),
    }
    // Inside an expression, its kinds of operand are all "an expression".
    if expected.iter().any(|e| e == "an expression") {
        let operand = [
            describe(Rule::word),
            describe(Rule::string),
            describe(Rule::literal),
            describe(Rule::open_paren),
        ];
        expected.retain(|e| !operand.contains(e));
    }
    // Inside parentheses a `:` only separates the members of `object(k: v)`; naming it
    // beside `,` would mislead.
    let before_pos = line.get(..pos).unwrap_or("");
    if before_pos.matches('(').count() > before_pos.matches(')').count() {
        let colon = describe(Rule::colon);
        expected.retain(|e| *e != colon);
    }
    // `[` only ever continues a path; "an operator" says enough.
    if expected.iter().any(|e| e == "an operator") {
        let bracket = describe(Rule::open_bracket);
        expected.retain(|e| *e != bracket);
    }
    let before = tail(line.get(..pos).unwrap_or("").trim_end(), 40);
    let message = if expected.is_empty() {
        if found.is_empty() {
            format!("unexpected end of the line after `{before}`")
        } else {
            format!("unexpected `{found}`")
        }
    } else if found.is_empty() {
        format!("expected {} after `{before}`", one_of(&expected))
    } else if before.is_empty() {
        format!("expected {}, found `{found}`", one_of(&expected))
    } else {
        format!(
            "expected {} after `{before}`, found `{found}`",
            one_of(&expected)
        )
    };
    let d = src.error(
        "JC0101",
        base + found_at,
        base + found_at + found.len(),
        message,
    );
    let help = if found == "=" && expected.iter().any(|e| e == "an operator") {
        "to compare, use `==` (numbers) or `eq` (strings)"
    } else {
        usage(rule)
    };
    hint(d, help)
}
