//! Layered configuration: defaults, then a TOML file, then `JC_` environment variables, then
//! command-line flags. Each layer is a [`Layer`] of optional values; [`Config::resolve`]
//! merges them and checks the result. `--dump-config` prints the resolved configuration.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
pub use jc_db::redact;

/// The maestro's settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// A libpq connection string (`host=… dbname=…`) or URL (`postgres://…`).
    pub dsn: String,
    /// Connections in the pool for the calls (the LISTEN connection is extra).
    pub pool_size: usize,
    /// How often dead workers are looked for and ended jobs archived.
    pub maintenance_interval: Duration,
    /// The longest the timer loop sleeps without re-reading the next due time (the engine's
    /// `timer_horizon()` caps it too: timeouts due further off are not notified).
    pub max_sleep: Duration,
    /// The longest wait between reconnection attempts (the back-off doubles up to it).
    pub reconnect_max: Duration,
    /// Where to serve `/metrics` (Prometheus text format); none by default.
    pub metrics: Option<String>,
    /// `pretty` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `maestro=debug,info`.
    pub log_level: String,
    /// When set, written to the `dead_worker_policy` setting at start: what happens to the
    /// tasks of a dead worker whose action is not retryable (`error` or `requeue`).
    pub dead_worker_policy: Option<String>,
    /// When set, written to the `worker_timeout` setting at start: how long a worker may be
    /// silent before it counts as dead (a PostgreSQL interval, e.g. `3 minutes`).
    pub worker_timeout: Option<String>,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// One layer of configuration: every value optional, later layers win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub dsn: Option<String>,
    pub pool_size: Option<usize>,
    pub maintenance_interval: Option<String>,
    pub max_sleep: Option<String>,
    pub reconnect_max: Option<String>,
    pub metrics: Option<String>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub dead_worker_policy: Option<String>,
    pub worker_timeout: Option<String>,
}

/// The environment variables read by [`Layer::from_env`], with their keys.
pub const ENV_VARS: [(&str, &str); 10] = [
    ("JC_DSN", "dsn"),
    ("JC_POOL_SIZE", "pool_size"),
    ("JC_MAINTENANCE_INTERVAL", "maintenance_interval"),
    ("JC_MAX_SLEEP", "max_sleep"),
    ("JC_RECONNECT_MAX", "reconnect_max"),
    ("JC_METRICS", "metrics"),
    ("JC_LOG_FORMAT", "log_format"),
    ("JC_LOG_LEVEL", "log_level"),
    ("JC_DEAD_WORKER_POLICY", "dead_worker_policy"),
    ("JC_WORKER_TIMEOUT", "worker_timeout"),
];

impl Layer {
    /// The built-in defaults.
    pub fn defaults() -> Layer {
        Layer {
            dsn: None,
            pool_size: Some(4),
            maintenance_interval: Some("1m".into()),
            max_sleep: Some("1m".into()),
            reconnect_max: Some("5s".into()),
            metrics: None,
            log_format: Some("pretty".into()),
            log_level: Some("info".into()),
            dead_worker_policy: None,
            worker_timeout: None,
        }
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Layer, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| Error::ConfigSyntax {
            path: path.to_owned(),
            source,
        })
    }

    /// Reads the `JC_` variables of [`ENV_VARS`] from `lookup` (e.g. `std::env::var`).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Layer, Error> {
        let mut layer = Layer::default();
        for (var, key) in ENV_VARS {
            if let Some(value) = lookup(var) {
                layer
                    .set(key, value)
                    .map_err(|e| Error::Config(format!("{var}: {e}")))?;
            }
        }
        Ok(layer)
    }

    fn set(&mut self, key: &str, value: String) -> Result<(), String> {
        let slot = match key {
            "pool_size" => {
                self.pool_size = Some(
                    value
                        .parse()
                        .map_err(|_| format!("{value} is not a number"))?,
                );
                return Ok(());
            }
            "dsn" => &mut self.dsn,
            "maintenance_interval" => &mut self.maintenance_interval,
            "max_sleep" => &mut self.max_sleep,
            "reconnect_max" => &mut self.reconnect_max,
            "metrics" => &mut self.metrics,
            "log_format" => &mut self.log_format,
            "log_level" => &mut self.log_level,
            "dead_worker_policy" => &mut self.dead_worker_policy,
            "worker_timeout" => &mut self.worker_timeout,
            _ => return Err(format!("unknown key {key}")),
        };
        *slot = Some(value);
        Ok(())
    }

    /// This layer with the values of `over` on top.
    pub fn merge(self, over: Layer) -> Layer {
        Layer {
            dsn: over.dsn.or(self.dsn),
            pool_size: over.pool_size.or(self.pool_size),
            maintenance_interval: over.maintenance_interval.or(self.maintenance_interval),
            max_sleep: over.max_sleep.or(self.max_sleep),
            reconnect_max: over.reconnect_max.or(self.reconnect_max),
            metrics: over.metrics.or(self.metrics),
            log_format: over.log_format.or(self.log_format),
            log_level: over.log_level.or(self.log_level),
            dead_worker_policy: over.dead_worker_policy.or(self.dead_worker_policy),
            worker_timeout: over.worker_timeout.or(self.worker_timeout),
        }
    }
}

fn duration(key: &str, value: Option<String>) -> Result<Duration, Error> {
    let value = value.ok_or_else(|| Error::Config(format!("{key} is not set")))?;
    let d = humantime::parse_duration(&value)
        .map_err(|e| Error::Config(format!("{key} = {value:?}: {e} (e.g. \"30s\", \"1m\")")))?;
    if d.is_zero() {
        return Err(Error::Config(format!("{key} must be more than zero")));
    }
    Ok(d)
}

impl Config {
    /// Merges the layers in order (later ones win) over the defaults and checks the result.
    pub fn resolve(layers: impl IntoIterator<Item = Layer>) -> Result<Config, Error> {
        let l = layers
            .into_iter()
            .fold(Layer::defaults(), |acc, layer| acc.merge(layer));
        let dsn = l
            .dsn
            .filter(|d| !d.trim().is_empty())
            .ok_or_else(|| Error::Config("no database: give --dsn or JC_DSN".into()))?;
        jc_db::connect_config(&dsn, "check").map_err(Error::Dsn)?;
        let pool_size = l.pool_size.unwrap_or(4);
        if pool_size == 0 {
            return Err(Error::Config("pool_size must be at least 1".into()));
        }
        let log_format = match l.log_format.as_deref() {
            Some("pretty") | None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(Error::Config(format!(
                    "log_format {other:?} is not \"pretty\" or \"json\""
                )))
            }
        };
        if let Some(p) = &l.dead_worker_policy {
            if p != "error" && p != "requeue" {
                return Err(Error::Config(format!(
                    "dead_worker_policy {p:?} is not \"error\" or \"requeue\""
                )));
            }
        }
        Ok(Config {
            dsn,
            pool_size,
            maintenance_interval: duration("maintenance_interval", l.maintenance_interval)?,
            max_sleep: duration("max_sleep", l.max_sleep)?,
            reconnect_max: duration("reconnect_max", l.reconnect_max)?,
            metrics: l.metrics.filter(|m| !m.is_empty()),
            log_format,
            log_level: l.log_level.unwrap_or_else(|| "info".into()),
            dead_worker_policy: l.dead_worker_policy,
            worker_timeout: l.worker_timeout,
        })
    }

    /// The configuration as a TOML file would give it, with any password hidden.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let quoted = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let dur = |d: Duration| quoted(&humantime::format_duration(d).to_string());
        let _ = writeln!(out, "dsn = {}", quoted(&redact(&self.dsn)));
        let _ = writeln!(out, "pool_size = {}", self.pool_size);
        let _ = writeln!(
            out,
            "maintenance_interval = {}",
            dur(self.maintenance_interval)
        );
        let _ = writeln!(out, "max_sleep = {}", dur(self.max_sleep));
        let _ = writeln!(out, "reconnect_max = {}", dur(self.reconnect_max));
        if let Some(m) = &self.metrics {
            let _ = writeln!(out, "metrics = {}", quoted(m));
        }
        let format = match self.log_format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        };
        let _ = writeln!(out, "log_format = {}", quoted(format));
        let _ = writeln!(out, "log_level = {}", quoted(&self.log_level));
        if let Some(p) = &self.dead_worker_policy {
            let _ = writeln!(out, "dead_worker_policy = {}", quoted(p));
        }
        if let Some(t) = &self.worker_timeout {
            let _ = writeln!(out, "worker_timeout = {}", quoted(t));
        }
        out
    }
}
