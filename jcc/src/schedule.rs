//! Schedules of a workflow file (`schedule:`): what jcc writes with
//! `jobcenter.create_schedule`, and the checks of a cron expression and a time zone that need
//! no database.
//!
//! The extension decides what a valid expression is (`jobcenter.cron_check`, the `cron` crate
//! behind it); without a database jcc can only check the structure: six fields (seconds first)
//! and an optional year, or one of the shorthands; each field a comma-separated list of `*`,
//! `?` (day of month and day of week only), values and ranges `a-b`, each optionally with a
//! step `/n`; values in their field's range; names only for months (`JAN`, `january`) and days
//! of the week (`MON`, `monday`). Whatever passes here may still be refused by the database
//! (a month range of a name and a number, a schedule that never fires again): `jcc` asks it
//! before writing.

use jcl_syntax::ast::Span;
use serde_json::Value;

/// The keys of a schedule, in the order the hint lists them.
pub const KEYS: [&str; 5] = ["cron", "tz", "missed", "args", "enabled"];

/// What jcc marks its schedules with (`jobcenter.schedules.source`): it drops the ones of a
/// workflow that its file no longer has, and never touches schedules made by hand.
pub const SOURCE: &str = "jcc";

/// A checked schedule of a workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// The name as written; the database name is [`Schedule::db_name`].
    pub name: String,
    pub cron: String,
    /// An IANA time zone (`UTC` when not given).
    pub timezone: String,
    /// `skip` or `catchup`.
    pub missed: String,
    /// The job's arguments: an object of the workflow's inputs.
    pub args: Value,
    pub enabled: bool,
    /// The schedule's line.
    pub span: Span,
    /// The cron expression's literal.
    pub cron_span: Span,
    /// The time zone's literal, when given.
    pub tz_span: Option<Span>,
}

impl Schedule {
    /// The schedule's name in `jobcenter.schedules`: `WORKFLOW/NAME`, unique across
    /// workflows.
    pub fn db_name(&self, workflow: &str) -> String {
        format!("{workflow}/{}", self.name)
    }
}

const SHORTHANDS: [&str; 5] = ["@yearly", "@monthly", "@weekly", "@daily", "@hourly"];

/// Each field's name and range of values (the day of week counts 0 or 7 for Sunday).
const FIELDS: [(&str, u32, u32); 7] = [
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
    ("year", 1970, 2100),
];

const MONTHS: [&str; 23] = [
    "jan",
    "january",
    "feb",
    "february",
    "mar",
    "march",
    "apr",
    "april",
    "may",
    "jun",
    "june",
    "jul",
    "july",
    "aug",
    "august",
    "sep",
    "september",
    "oct",
    "october",
    "nov",
    "november",
    "dec",
    "december",
];

const DAYS: [&str; 16] = [
    "sun",
    "sunday",
    "mon",
    "monday",
    "tue",
    "tues",
    "tuesday",
    "wed",
    "wednesday",
    "thu",
    "thurs",
    "thursday",
    "fri",
    "friday",
    "sat",
    "saturday",
];

/// Checks the structure of a cron expression (see the module documentation); the error says
/// what is wrong.
pub fn check_cron(expr: &str) -> Result<(), String> {
    let e = expr.trim();
    if e.starts_with('@') {
        return if SHORTHANDS.contains(&e) {
            Ok(())
        } else {
            Err(format!(
                "unknown shorthand `{e}`: the shorthands are {}",
                SHORTHANDS.join(" ")
            ))
        };
    }
    let fields: Vec<&str> = e.split_whitespace().collect();
    if fields.len() != 6 && fields.len() != 7 {
        return Err(format!(
            "a cron expression has 6 fields (sec min hour day-of-month month day-of-week) \
             and an optional year, not {}",
            fields.len()
        ));
    }
    for (i, f) in fields.iter().enumerate() {
        check_field(f, i)?;
    }
    Ok(())
}

fn check_field(text: &str, i: usize) -> Result<(), String> {
    let (what, _, _) = FIELDS.get(i).copied().unwrap_or(("field", 0, 0));
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("the {what} field `{text}` has an empty item"));
        }
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        if let Some(step) = step {
            if step.is_empty() || !step.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!(
                    "the step `/{step}` of the {what} field must be a number"
                ));
            }
        }
        match base {
            "*" => {}
            "?" if i == 3 || i == 5 => {}
            "?" => {
                return Err(format!(
                    "`?` is only allowed for the day of month and the day of week, not the {what}"
                ))
            }
            _ => match base.split_once('-') {
                Some((a, b)) => {
                    check_value(a, i)?;
                    check_value(b, i)?;
                }
                None => check_value(base, i)?,
            },
        }
    }
    Ok(())
}

fn check_value(v: &str, i: usize) -> Result<(), String> {
    let (what, lo, hi) = FIELDS.get(i).copied().unwrap_or(("field", 0, 0));
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()) {
        return match v.parse::<u32>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(()),
            _ => Err(format!("{what} {v} is out of range {lo}-{hi}")),
        };
    }
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphabetic()) {
        let lower = v.to_ascii_lowercase();
        let known = match i {
            4 => MONTHS.contains(&lower.as_str()),
            5 => DAYS.contains(&lower.as_str()),
            _ => false,
        };
        return if known {
            Ok(())
        } else if i == 4 || i == 5 {
            Err(format!("`{v}` is not a {what} name"))
        } else {
            Err(format!("the {what} field takes numbers, not `{v}`"))
        };
    }
    Err(format!("`{v}` is not a valid {what}"))
}

/// Checks the form of a time zone name (the database knows which exist).
pub fn check_timezone(tz: &str) -> Result<(), String> {
    if tz.is_empty() {
        return Err("the time zone is empty".to_owned());
    }
    if tz.starts_with('/')
        || !tz
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '-'))
    {
        return Err(format!(
            "`{tz}` is not a time zone name such as `UTC` or `Europe/Amsterdam`"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_expressions_pass() {
        for e in [
            "0 30 2 * * *",
            "* * * * * *",
            "0 */5 * * * *",
            "0 0 9 * * MON-FRI",
            "0 0 9 ? * 1-7",
            "0 0 0 1 JAN,jul * 2030",
            "0 0,30 8-18/2 1-31 1-12 0",
            "  @daily ",
            "@hourly",
        ] {
            assert_eq!(check_cron(e), Ok(()), "{e}");
        }
    }

    #[test]
    fn structural_errors_are_found() {
        for (e, why) in [
            ("0 * * * *", "not 5"),
            ("0 0 0 1 1 * 2030 x", "not 8"),
            ("@often", "unknown shorthand"),
            ("60 * * * * *", "second 60 is out of range 0-59"),
            ("0 0 24 * * *", "hour 24"),
            ("0 0 0 0 * *", "day of month 0"),
            ("0 0 0 * 13 *", "month 13"),
            ("0 0 0 * * 8", "day of week 8"),
            ("0 0 0 * FOO *", "`FOO` is not a month name"),
            ("0 0 0 * * MONDAYS", "`MONDAYS` is not a day of week name"),
            ("x * * * * *", "the second field takes numbers"),
            ("? * * * * *", "`?` is only allowed"),
            ("0 */x * * * *", "step `/x`"),
            ("0 1,,2 * * * *", "empty item"),
            ("0 0 0 * * * 1969", "year 1969"),
            ("0 0 0 * * #", "`#` is not a valid day of week"),
        ] {
            let err = check_cron(e).expect_err(e);
            assert!(err.contains(why), "{e}: {err}");
        }
    }

    #[test]
    fn time_zones() {
        for tz in [
            "UTC",
            "Europe/Amsterdam",
            "Etc/GMT+1",
            "America/Port-au-Prince",
        ] {
            assert_eq!(check_timezone(tz), Ok(()), "{tz}");
        }
        for tz in ["", "/etc", "Europe Amsterdam", "Mars;drop"] {
            assert!(check_timezone(tz).is_err(), "{tz}");
        }
    }
}
