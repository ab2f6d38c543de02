//! Cron expressions for schedules (`sql/schedules.sql`): when does a schedule fire next, when
//! did it last have to fire, and is an expression valid.
//!
//! An expression has six fields, `sec min hour day-of-month month day-of-week`, and an
//! optional seventh, the year; or one of `@yearly @monthly @weekly @daily @hourly`. The
//! day of week follows classic cron (0 or 7 = Sunday, 1 = Monday … 6 = Saturday) or names
//! (`MON-FRI`); the `cron` crate counts 1 = Sunday, so numbers are rewritten to names before
//! parsing. Times are computed in an IANA time zone (`chrono-tz`), so `0 0 9 * * MON-FRI` in
//! `Europe/Amsterdam` follows daylight saving time.

use std::str::FromStr;

use chrono::DateTime;
use chrono_tz::Tz;
use pgrx::prelude::*;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Day names by classic cron number (0 and 7 are Sunday).
const DAY_NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];

/// Rewrites one day-of-week value: a classic cron number to its name, anything else as is.
fn day_name(value: &str) -> Result<String, String> {
    if value.chars().all(|c| c.is_ascii_digit()) {
        let n: usize = value
            .parse()
            .map_err(|_| format!("day of week {value} is not a number"))?;
        return DAY_NAMES
            .get(n)
            .map(|name| (*name).to_owned())
            .ok_or_else(|| format!("day of week {value} is out of range 0-7"));
    }
    Ok(value.to_owned())
}

/// Rewrites a day-of-week field from classic cron numbers to names.
fn day_of_week_field(field: &str) -> Result<String, String> {
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let rewritten = match range.split_once('-') {
            // `1-7` is Monday to Sunday: the crate's ranges cannot wrap, so Sunday is added.
            Some((from, "7")) if step.is_none() => format!("{}-SAT,SUN", day_name(from)?),
            Some((_, "7")) => {
                return Err(format!(
                    "day of week range {range} with a step: write 0-6 or names"
                ))
            }
            Some((from, to)) => format!("{}-{}", day_name(from)?, day_name(to)?),
            None => day_name(range)?,
        };
        items.push(match step {
            Some(step) => format!("{rewritten}/{step}"),
            None => rewritten,
        });
    }
    Ok(items.join(","))
}

/// Parses an expression (see the module documentation).
pub fn parse(expr: &str) -> Result<::cron::Schedule, String> {
    let expr = expr.trim();
    if expr.starts_with('@') {
        return ::cron::Schedule::from_str(expr).map_err(|e| format!("{expr}: {e}"));
    }
    let mut fields: Vec<String> = expr.split_whitespace().map(str::to_owned).collect();
    if fields.len() != 6 && fields.len() != 7 {
        return Err(format!(
            "{expr}: a cron expression has 6 fields (sec min hour day-of-month month \
             day-of-week) and an optional year, not {}",
            fields.len()
        ));
    }
    fields[5] = day_of_week_field(&fields[5]).map_err(|e| format!("{expr}: {e}"))?;
    ::cron::Schedule::from_str(&fields.join(" ")).map_err(|e| format!("{expr}: {e}"))
}

/// Parses an IANA time zone name.
pub fn zone(tz: &str) -> Result<Tz, String> {
    Tz::from_str(tz).map_err(|_| format!("unknown time zone {tz}"))
}

/// The first time strictly after `after` (microseconds since the Unix epoch) at which the
/// schedule fires, `None` when it never fires again.
pub fn next_after(expr: &str, after: i64, tz: &str) -> Result<Option<i64>, String> {
    let schedule = parse(expr)?;
    let zone = zone(tz)?;
    let start = DateTime::from_timestamp_micros(after)
        .ok_or_else(|| format!("time {after} out of range"))?
        .with_timezone(&zone);
    Ok(schedule.after(&start).next().map(|t| t.timestamp_micros()))
}

/// The last time strictly before `before` at which the schedule fired, `None` if never.
pub fn prev_before(expr: &str, before: i64, tz: &str) -> Result<Option<i64>, String> {
    let schedule = parse(expr)?;
    let zone = zone(tz)?;
    let start = DateTime::from_timestamp_micros(before)
        .ok_or_else(|| format!("time {before} out of range"))?
        .with_timezone(&zone);
    Ok(schedule
        .after(&start)
        .next_back()
        .map(|t| t.timestamp_micros()))
}

fn to_unix(t: TimestampWithTimeZone) -> i64 {
    i64::from(t).saturating_add(PG_EPOCH_MICROS)
}

fn from_unix(micros: i64) -> Option<TimestampWithTimeZone> {
    TimestampWithTimeZone::try_from(micros.saturating_sub(PG_EPOCH_MICROS)).ok()
}

fn raise(msg: String) -> ! {
    ereport!(ERROR, PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, msg);
}

/// The first time after `after` at which cron expression `expr` fires in time zone `tz`;
/// null when it never fires again. An invalid expression or zone is an error.
#[pg_extern(immutable, parallel_safe)]
fn cron_next(
    expr: &str,
    after: TimestampWithTimeZone,
    tz: default!(&str, "'UTC'"),
) -> Option<TimestampWithTimeZone> {
    match next_after(expr, to_unix(after), tz) {
        Ok(next) => next.and_then(from_unix),
        Err(msg) => raise(msg),
    }
}

/// The last time before `before` at which `expr` fired in time zone `tz`; null if never.
#[pg_extern(immutable, parallel_safe)]
fn cron_prev(
    expr: &str,
    before: TimestampWithTimeZone,
    tz: default!(&str, "'UTC'"),
) -> Option<TimestampWithTimeZone> {
    match prev_before(expr, to_unix(before), tz) {
        Ok(prev) => prev.and_then(from_unix),
        Err(msg) => raise(msg),
    }
}

/// Null when `expr` is a valid cron expression and `tz` a known time zone, else why not.
#[pg_extern(immutable, parallel_safe)]
fn cron_check(expr: &str, tz: default!(&str, "'UTC'")) -> Option<String> {
    parse(expr).and(zone(tz)).err()
}
