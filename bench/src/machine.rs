//! The machine's state beside the figures: cores, load average, PostgreSQL and extension
//! versions, and the commit probe (how many single-row commits one client gets per second
//! right now; this disk's rate swings several-fold from minute to minute).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{json, Value};

use crate::conn::Conn;
use crate::sql;
use crate::summary::{rate, round_to};

/// The 1, 5 and 15 minute load averages, `None` where /proc/loadavg cannot be read.
pub fn loadavg() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

pub fn nproc() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// The server's version and the time (UTC, ISO 8601) by its clock.
pub async fn server_facts(cluster: &testkit::Cluster) -> anyhow::Result<(String, String)> {
    let facts = Conn::open(&cluster.dsn("postgres")).await?;
    let row = facts
        .client
        .query_one(
            "select version(), \
             to_char(now() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
            &[],
        )
        .await
        .context("could not ask the server for its version")?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// The machine as JSON: cores, load averages now, the PostgreSQL version and (if known)
/// the extension's version.
pub fn json(postgres: &str, extension: Option<&str>) -> Value {
    let load = loadavg();
    json!({
        "nproc": nproc(),
        "loadavg_1m_at_start": load.map(|l| l[0]),
        "loadavg_5m_at_start": load.map(|l| l[1]),
        "loadavg_15m_at_start": load.map(|l| l[2]),
        "postgres": postgres,
        "jobcenter_extension": extension,
    })
}

/// The commit probe: one client inserting one row per transaction for `span`, on the
/// `postgres` database of `cluster`; commits per second.
pub async fn probe(cluster: &testkit::Cluster, span: Duration) -> anyhow::Result<f64> {
    let conn = Conn::open(&cluster.dsn("postgres")).await?;
    let c = &conn.client;
    c.batch_execute(sql::PROBE_TABLE)
        .await
        .context("could not create the probe's table")?;
    let insert = c.prepare(sql::PROBE_INSERT).await?;
    let start = Instant::now();
    let mut commits = 0u64;
    while start.elapsed() < span {
        c.execute(&insert, &[])
            .await
            .context("the probe's insert failed")?;
        commits += 1;
    }
    Ok(round_to(
        rate(commits as f64, start.elapsed().as_secs_f64()),
        0,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_averages_are_read_from_proc_format() {
        assert_eq!(
            parse_loadavg("3.70 2.34 1.18 3/412 8842\n"),
            Some([3.7, 2.34, 1.18])
        );
        assert_eq!(parse_loadavg("3.70 x"), None);
        assert_eq!(parse_loadavg(""), None);
    }
}
