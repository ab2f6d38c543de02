//! Layered configuration: defaults, then a TOML file, then `JC_` environment variables, then
//! command-line flags. Each layer is a [`Layer`] of optional values; [`Config::resolve`]
//! merges them and checks the result; [`Config::dump`] prints it as TOML (`--dump-config`).
//!
//! Listeners are a list (`[[listen]]` tables in the file); a layer that gives listeners
//! replaces the earlier layers' list. On the command line and in `JC_LISTEN` a listener is
//! `KIND:ADDRESS` (e.g. `tcp:127.0.0.1:6522`, `ws:0.0.0.0:6523`) with the default auth
//! methods; TLS listeners need a certificate and so come from the file.
//!
//! ```toml
//! dsn = "host=/run/postgresql dbname=jobcenter user=jcapi"
//! users_file = "/etc/jobcenter/users.toml"
//! http = "127.0.0.1:6524"          # /metrics and JSON-RPC over POST
//!
//! [[listen]]
//! kind = "tcp"                      # tcp, tls, ws or wss
//! address = "0.0.0.0:6522"
//! auth = ["password", "token"]
//!
//! [[listen]]
//! kind = "tls"
//! address = "0.0.0.0:6525"
//! auth = ["password", "token", "clientcert"]
//! tls_cert = "server.pem"
//! tls_key = "server.key"
//! client_ca = "ca.pem"              # verify client certificates against this CA
//! require_client_cert = false
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Error;
pub use jc_db::redact;

/// The gateway's settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// A libpq connection string or URL; the role it logs in as must be allowed to
    /// impersonate the users (rows in `jobcenter.jc_impersonate_roles`).
    pub dsn: String,
    /// Connections in the pool for the calls (the LISTEN connection is extra).
    pub pool_size: usize,
    pub listeners: Vec<Listener>,
    /// The users, their password hashes, API tokens and certificate names.
    pub users_file: Option<PathBuf>,
    /// Where to serve `/metrics` and JSON-RPC over HTTP POST; none by default.
    pub http: Option<String>,
    /// The largest message accepted, in bytes.
    pub max_message_size: usize,
    /// How often workers are pinged.
    pub ping_interval: Duration,
    /// A worker that does not answer a ping within this is disconnected.
    pub ping_timeout: Duration,
    /// A worker that does not take an offered task within this loses it to the next.
    pub offer_timeout: Duration,
    /// How often ready tasks are looked for in the database (NOTIFY is only a hint).
    pub sweep_interval: Duration,
    /// Messages queued for one connection before it counts as too slow and is closed.
    pub write_queue: usize,
    pub log_format: LogFormat,
    pub log_level: String,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// A listener's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Netstrings over TCP.
    Tcp,
    /// Netstrings over TLS.
    Tls,
    /// WebSocket, one JSON-RPC message per text frame.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Tls => "tls",
            Kind::Ws => "ws",
            Kind::Wss => "wss",
        }
    }

    fn parse(s: &str) -> Result<Kind, Error> {
        match s {
            "tcp" => Ok(Kind::Tcp),
            "tls" => Ok(Kind::Tls),
            "ws" => Ok(Kind::Ws),
            "wss" => Ok(Kind::Wss),
            _ => Err(Error::Config(format!(
                "listener kind {s:?} is not tcp, tls, ws or wss"
            ))),
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Kind::Tls | Kind::Wss)
    }
}

/// An authentication method a listener accepts in `hello`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// A password checked against the users file's hash.
    Password,
    /// An API token checked against the users file's token digests.
    Token,
    /// The verified TLS client certificate's CN.
    ClientCert,
}

impl AuthMethod {
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
            AuthMethod::ClientCert => "clientcert",
        }
    }

    pub fn parse(s: &str) -> Option<AuthMethod> {
        match s {
            "password" => Some(AuthMethod::Password),
            "token" => Some(AuthMethod::Token),
            "clientcert" => Some(AuthMethod::ClientCert),
            _ => None,
        }
    }
}

/// One listener, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub kind: Kind,
    pub address: String,
    pub auth: Vec<AuthMethod>,
    pub tls: Option<Tls>,
}

/// A TLS listener's certificate and client-certificate policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are verified against this CA (and then can log in).
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate.
    pub require_client_cert: bool,
}

/// A listener as a layer gives it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenLayer {
    pub kind: String,
    pub address: String,
    pub auth: Option<Vec<String>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: Option<bool>,
}

impl ListenLayer {
    /// `KIND:ADDRESS`, e.g. `tcp:127.0.0.1:6522`.
    pub fn parse_short(s: &str) -> Result<ListenLayer, Error> {
        let (kind, address) = s
            .split_once(':')
            .ok_or_else(|| Error::Config(format!("listener {s:?} is not KIND:ADDRESS")))?;
        Ok(ListenLayer {
            kind: kind.to_owned(),
            address: address.to_owned(),
            ..ListenLayer::default()
        })
    }
}

/// One layer of configuration: every value optional, later layers win.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub dsn: Option<String>,
    pub pool_size: Option<usize>,
    pub listen: Option<Vec<ListenLayer>>,
    pub users_file: Option<PathBuf>,
    pub http: Option<String>,
    pub max_message_size: Option<usize>,
    pub ping_interval: Option<String>,
    pub ping_timeout: Option<String>,
    pub offer_timeout: Option<String>,
    pub sweep_interval: Option<String>,
    pub write_queue: Option<usize>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
}

/// The environment variables read by [`Layer::from_env`].
pub const ENV_VARS: [&str; 13] = [
    "JC_DSN",
    "JC_POOL_SIZE",
    "JC_LISTEN",
    "JC_USERS_FILE",
    "JC_HTTP",
    "JC_MAX_MESSAGE_SIZE",
    "JC_PING_INTERVAL",
    "JC_PING_TIMEOUT",
    "JC_OFFER_TIMEOUT",
    "JC_SWEEP_INTERVAL",
    "JC_WRITE_QUEUE",
    "JC_LOG_FORMAT",
    "JC_LOG_LEVEL",
];

fn number(var: &str, value: &str) -> Result<usize, Error> {
    value
        .parse()
        .map_err(|_| Error::Config(format!("{var}: {value:?} is not a number")))
}

impl Layer {
    /// The built-in defaults.
    pub fn defaults() -> Layer {
        Layer {
            dsn: None,
            pool_size: Some(8),
            listen: Some(vec![ListenLayer {
                kind: "tcp".into(),
                address: format!("127.0.0.1:{}", jc_proto::DEFAULT_PORT),
                ..ListenLayer::default()
            }]),
            users_file: None,
            http: None,
            max_message_size: Some(jc_proto::DEFAULT_MAX_FRAME),
            ping_interval: Some("60s".into()),
            ping_timeout: Some("30s".into()),
            offer_timeout: Some("10s".into()),
            sweep_interval: Some("5s".into()),
            write_queue: Some(4096),
            log_format: Some("pretty".into()),
            log_level: Some("info".into()),
        }
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Layer, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigFile {
            path: path.to_owned(),
            source,
        })?;
        let mut layer: Layer = toml::from_str(&text).map_err(|source| Error::ConfigSyntax {
            path: path.to_owned(),
            source,
        })?;
        // Relative paths in the file are relative to the file.
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(u) = layer.users_file.as_mut() {
            rel(u);
        }
        for l in layer.listen.iter_mut().flatten() {
            for p in [&mut l.tls_cert, &mut l.tls_key, &mut l.client_ca]
                .into_iter()
                .flatten()
            {
                rel(p);
            }
        }
        Ok(layer)
    }

    /// Reads the `JC_` variables of [`ENV_VARS`] from `lookup` (e.g. `std::env::var`).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Layer, Error> {
        let mut l = Layer::default();
        for var in ENV_VARS {
            let Some(v) = lookup(var) else { continue };
            match var {
                "JC_DSN" => l.dsn = Some(v),
                "JC_POOL_SIZE" => l.pool_size = Some(number(var, &v)?),
                "JC_LISTEN" => {
                    l.listen = Some(
                        v.split(',')
                            .map(str::trim)
                            .filter(|s| !s.is_empty())
                            .map(ListenLayer::parse_short)
                            .collect::<Result<_, _>>()?,
                    )
                }
                "JC_USERS_FILE" => l.users_file = Some(v.into()),
                "JC_HTTP" => l.http = Some(v),
                "JC_MAX_MESSAGE_SIZE" => l.max_message_size = Some(number(var, &v)?),
                "JC_PING_INTERVAL" => l.ping_interval = Some(v),
                "JC_PING_TIMEOUT" => l.ping_timeout = Some(v),
                "JC_OFFER_TIMEOUT" => l.offer_timeout = Some(v),
                "JC_SWEEP_INTERVAL" => l.sweep_interval = Some(v),
                "JC_WRITE_QUEUE" => l.write_queue = Some(number(var, &v)?),
                "JC_LOG_FORMAT" => l.log_format = Some(v),
                "JC_LOG_LEVEL" => l.log_level = Some(v),
                _ => {}
            }
        }
        Ok(l)
    }

    /// This layer with the values of `over` on top.
    pub fn merge(self, over: Layer) -> Layer {
        Layer {
            dsn: over.dsn.or(self.dsn),
            pool_size: over.pool_size.or(self.pool_size),
            listen: over.listen.or(self.listen),
            users_file: over.users_file.or(self.users_file),
            http: over.http.or(self.http),
            max_message_size: over.max_message_size.or(self.max_message_size),
            ping_interval: over.ping_interval.or(self.ping_interval),
            ping_timeout: over.ping_timeout.or(self.ping_timeout),
            offer_timeout: over.offer_timeout.or(self.offer_timeout),
            sweep_interval: over.sweep_interval.or(self.sweep_interval),
            write_queue: over.write_queue.or(self.write_queue),
            log_format: over.log_format.or(self.log_format),
            log_level: over.log_level.or(self.log_level),
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

fn listener(l: ListenLayer) -> Result<Listener, Error> {
    let kind = Kind::parse(&l.kind)?;
    if l.address.trim().is_empty() {
        return Err(Error::Config(format!(
            "a {} listener has no address",
            l.kind
        )));
    }
    let auth = match l.auth {
        None if kind.is_tls() && l.client_ca.is_some() => vec![
            AuthMethod::Password,
            AuthMethod::Token,
            AuthMethod::ClientCert,
        ],
        None => vec![AuthMethod::Password, AuthMethod::Token],
        Some(names) => names
            .iter()
            .map(|n| {
                AuthMethod::parse(n).ok_or_else(|| {
                    Error::Config(format!(
                        "auth method {n:?} is not password, token or clientcert"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    if auth.is_empty() {
        return Err(Error::Config(format!(
            "the listener on {} accepts no auth method",
            l.address
        )));
    }
    let tls = if kind.is_tls() {
        let (Some(cert), Some(key)) = (l.tls_cert, l.tls_key) else {
            return Err(Error::Config(format!(
                "the {} listener on {} needs tls_cert and tls_key",
                kind.name(),
                l.address
            )));
        };
        let require = l.require_client_cert.unwrap_or(false);
        if require && l.client_ca.is_none() {
            return Err(Error::Config(
                "require_client_cert needs client_ca".to_owned(),
            ));
        }
        Some(Tls {
            cert,
            key,
            client_ca: l.client_ca,
            require_client_cert: require,
        })
    } else {
        if l.tls_cert.is_some() || l.tls_key.is_some() || l.client_ca.is_some() {
            return Err(Error::Config(format!(
                "the {} listener on {} is not TLS: use kind tls or wss",
                kind.name(),
                l.address
            )));
        }
        None
    };
    if auth.contains(&AuthMethod::ClientCert) && tls.as_ref().is_none_or(|t| t.client_ca.is_none())
    {
        return Err(Error::Config(format!(
            "clientcert auth on {} needs a TLS listener with client_ca",
            l.address
        )));
    }
    Ok(Listener {
        kind,
        address: l.address,
        auth,
        tls,
    })
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
        let pool_size = l.pool_size.unwrap_or(8);
        if pool_size == 0 {
            return Err(Error::Config("pool_size must be at least 1".into()));
        }
        let listeners = l
            .listen
            .unwrap_or_default()
            .into_iter()
            .map(listener)
            .collect::<Result<Vec<_>, _>>()?;
        if listeners.is_empty() {
            return Err(Error::Config("no listeners".into()));
        }
        let max_message_size = l.max_message_size.unwrap_or(jc_proto::DEFAULT_MAX_FRAME);
        if max_message_size < 1024 {
            return Err(Error::Config(
                "max_message_size must be at least 1024 bytes".into(),
            ));
        }
        let write_queue = l.write_queue.unwrap_or(4096);
        if write_queue == 0 {
            return Err(Error::Config("write_queue must be at least 1".into()));
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
        Ok(Config {
            dsn,
            pool_size,
            listeners,
            users_file: l.users_file,
            http: l.http.filter(|h| !h.is_empty()),
            max_message_size,
            ping_interval: duration("ping_interval", l.ping_interval)?,
            ping_timeout: duration("ping_timeout", l.ping_timeout)?,
            offer_timeout: duration("offer_timeout", l.offer_timeout)?,
            sweep_interval: duration("sweep_interval", l.sweep_interval)?,
            write_queue,
            log_format,
            log_level: l.log_level.unwrap_or_else(|| "info".into()),
        })
    }

    /// The configuration as a TOML file would give it, with any password hidden.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
        let p = |p: &Path| q(&p.display().to_string());
        let dur = |d: Duration| q(&humantime::format_duration(d).to_string());
        let _ = writeln!(out, "dsn = {}", q(&redact(&self.dsn)));
        let _ = writeln!(out, "pool_size = {}", self.pool_size);
        if let Some(u) = &self.users_file {
            let _ = writeln!(out, "users_file = {}", p(u));
        }
        if let Some(h) = &self.http {
            let _ = writeln!(out, "http = {}", q(h));
        }
        let _ = writeln!(out, "max_message_size = {}", self.max_message_size);
        let _ = writeln!(out, "ping_interval = {}", dur(self.ping_interval));
        let _ = writeln!(out, "ping_timeout = {}", dur(self.ping_timeout));
        let _ = writeln!(out, "offer_timeout = {}", dur(self.offer_timeout));
        let _ = writeln!(out, "sweep_interval = {}", dur(self.sweep_interval));
        let _ = writeln!(out, "write_queue = {}", self.write_queue);
        let format = match self.log_format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        };
        let _ = writeln!(out, "log_format = {}", q(format));
        let _ = writeln!(out, "log_level = {}", q(&self.log_level));
        for l in &self.listeners {
            let _ = writeln!(out, "\n[[listen]]");
            let _ = writeln!(out, "kind = {}", q(l.kind.name()));
            let _ = writeln!(out, "address = {}", q(&l.address));
            let auth: Vec<String> = l.auth.iter().map(|a| q(a.name())).collect();
            let _ = writeln!(out, "auth = [{}]", auth.join(", "));
            if let Some(t) = &l.tls {
                let _ = writeln!(out, "tls_cert = {}", p(&t.cert));
                let _ = writeln!(out, "tls_key = {}", p(&t.key));
                if let Some(ca) = &t.client_ca {
                    let _ = writeln!(out, "client_ca = {}", p(ca));
                }
                let _ = writeln!(out, "require_client_cert = {}", t.require_client_cert);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn layer(toml: &str) -> Layer {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn layers_merge_in_order_and_the_dump_reads_back() {
        let file = layer(
            r#"
            dsn = "host=/tmp dbname=a password=secret"
            ping_interval = "2s"
            [[listen]]
            kind = "ws"
            address = "127.0.0.1:0"
            "#,
        );
        let env = Layer::from_env(|v| match v {
            "JC_PING_INTERVAL" => Some("3s".into()),
            "JC_LISTEN" => Some("tcp:127.0.0.1:1, ws:127.0.0.1:2".into()),
            _ => None,
        })
        .unwrap();
        let c = Config::resolve([file.clone()]).unwrap();
        assert_eq!(c.ping_interval, Duration::from_secs(2));
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].kind, Kind::Ws);
        assert_eq!(
            c.listeners[0].auth,
            vec![AuthMethod::Password, AuthMethod::Token]
        );
        let c = Config::resolve([file, env]).unwrap();
        assert_eq!(c.ping_interval, Duration::from_secs(3));
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(c.ping_timeout, Duration::from_secs(30));
        assert_eq!(c.offer_timeout, Duration::from_secs(10));
        assert_eq!(c.max_message_size, 16 * 1024 * 1024);
        let dump = c.dump();
        assert!(dump.contains("password=***"), "{dump}");
        assert!(!dump.contains("secret"));
        let mut back = layer(&dump);
        back.dsn = Some(c.dsn.clone());
        assert_eq!(Config::resolve([back]).unwrap(), c);
    }

    #[test]
    fn bad_settings_are_refused() {
        let dsn = "dsn = \"host=/tmp\"\n";
        for (bad, why) in [
            ("", "no database"),
            ("[[listen]]\nkind = \"udp\"\naddress = \"x\"\n", "udp"),
            ("[[listen]]\nkind = \"tls\"\naddress = \"x\"\n", "tls_cert"),
            (
                "[[listen]]\nkind = \"tcp\"\naddress = \"x\"\nauth = [\"clientcert\"]\n",
                "clientcert",
            ),
            (
                "[[listen]]\nkind = \"tcp\"\naddress = \"x\"\nauth = [\"magic\"]\n",
                "magic",
            ),
            ("ping_interval = \"0s\"\n", "more than zero"),
            ("max_message_size = 10\n", "max_message_size"),
            ("listen = []\n", "no listeners"),
        ] {
            let text = if bad.is_empty() {
                String::new()
            } else {
                format!("{dsn}{bad}")
            };
            let e = Config::resolve([layer(&text)]).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
