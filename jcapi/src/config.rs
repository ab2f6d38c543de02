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
    /// Results (`task_done`, `tasks_done`) arriving within this of the first are finished
    /// together, in one transaction (group commit), when another batch is in the database
    /// (else the first goes at once); 0 sends what is queued at once.
    pub task_done_window: Duration,
    /// `create_job` calls (without a `key`) arriving within this of the first are made in
    /// one transaction (group commit), when another batch of them is in the database (else
    /// the first goes at once); 0 sends what is queued at once.
    pub create_job_window: Duration,
    /// Takes (`get_task`, `get_tasks`) of different workers arriving within this of the
    /// first are made in one transaction (group commit), when another batch of them is in
    /// the database (else the first goes at once); 0 sends what is queued at once.
    pub get_task_window: Duration,
    /// Messages queued for one connection before it counts as too slow and is closed.
    pub write_queue: usize,
    pub log_format: LogFormat,
    pub log_level: String,
    /// The limits that protect the gateway from its peers (see SECURITY.md).
    pub limits: Limits,
    /// The HTTP listener's auth methods and TLS.
    pub http_auth: Vec<AuthMethod>,
    pub http_tls: Option<Tls>,
    /// Browser origins allowed to open WebSocket connections (a request without an
    /// `Origin` header, as non-browser clients send, is always allowed).
    pub ws_origins: Vec<String>,
}

/// Limits on what peers may cost the gateway; every one has a safe default.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// The largest message before a successful `hello`, in bytes.
    pub pre_auth_max_message: usize,
    /// The longest password or token `hello` (or HTTP Basic) may present, in bytes.
    pub max_password: usize,
    /// Open connections per listener (the HTTP listener counts as one).
    pub max_connections: usize,
    /// Open connections per peer address (IPv6 per /64), over all listeners.
    pub max_connections_per_peer: usize,
    /// A connection without a successful `hello` (and TLS/WebSocket handshake) is closed
    /// after this; also the time an HTTP connection gets for a request's head and may idle
    /// between requests.
    pub pre_auth_timeout: Duration,
    /// A logged-in client that sends nothing for this long, is no worker and waits for no
    /// job is closed.
    pub idle_timeout: Duration,
    /// Bytes of answers queued for a connection before it counts as not reading and is
    /// closed; `pre_auth_write_queue_bytes` before a successful `hello`.
    pub write_queue_bytes: usize,
    pub pre_auth_write_queue_bytes: usize,
    /// A connection whose queue stays full this long is closed.
    pub write_timeout: Duration,
    /// Password checks running at once (each argon2 check takes its memory cost).
    pub password_checks: usize,
    /// Failed logins per peer address before it is refused, and the time that gives one
    /// back (a token bucket).
    pub login_failures: usize,
    pub login_failure_refill: Duration,
    /// The longest peer-supplied string put in a log line, in characters.
    pub log_field_max: usize,
    /// Log lines per second about refused peers before auth (the rest are counted).
    pub pre_auth_log_rate: usize,
    /// The most `slots` one `announce` or `create_slotgroup` may ask for.
    pub max_slots: u32,
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
    /// A PEM file of certificate revocation lists of the client CA.
    pub crl: Option<PathBuf>,
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
    pub crl: Option<PathBuf>,
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
    pub task_done_window: Option<String>,
    pub create_job_window: Option<String>,
    pub get_task_window: Option<String>,
    pub write_queue: Option<usize>,
    pub log_format: Option<String>,
    pub log_level: Option<String>,
    pub pre_auth_max_message: Option<usize>,
    pub max_password: Option<usize>,
    pub max_connections: Option<usize>,
    pub max_connections_per_peer: Option<usize>,
    pub pre_auth_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub write_queue_bytes: Option<usize>,
    pub pre_auth_write_queue_bytes: Option<usize>,
    pub write_timeout: Option<String>,
    pub password_checks: Option<usize>,
    pub login_failures: Option<usize>,
    pub login_failure_refill: Option<String>,
    pub log_field_max: Option<usize>,
    pub pre_auth_log_rate: Option<usize>,
    pub max_slots: Option<usize>,
    pub http_auth: Option<Vec<String>>,
    pub http_tls_cert: Option<PathBuf>,
    pub http_tls_key: Option<PathBuf>,
    pub ws_origins: Option<Vec<String>>,
}

/// The environment variables read by [`Layer::from_env`].
pub const ENV_VARS: [&str; 33] = [
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
    "JC_TASK_DONE_WINDOW",
    "JC_WRITE_QUEUE",
    "JC_LOG_FORMAT",
    "JC_LOG_LEVEL",
    "JC_PRE_AUTH_MAX_MESSAGE",
    "JC_MAX_PASSWORD",
    "JC_MAX_CONNECTIONS",
    "JC_MAX_CONNECTIONS_PER_PEER",
    "JC_PRE_AUTH_TIMEOUT",
    "JC_IDLE_TIMEOUT",
    "JC_WRITE_QUEUE_BYTES",
    "JC_PRE_AUTH_WRITE_QUEUE_BYTES",
    "JC_WRITE_TIMEOUT",
    "JC_PASSWORD_CHECKS",
    "JC_LOGIN_FAILURES",
    "JC_LOGIN_FAILURE_REFILL",
    "JC_LOG_FIELD_MAX",
    "JC_PRE_AUTH_LOG_RATE",
    "JC_MAX_SLOTS",
    "JC_HTTP_AUTH",
    "JC_HTTP_TLS_CERT",
    "JC_HTTP_TLS_KEY",
    "JC_WS_ORIGINS",
];

fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

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
            task_done_window: Some("1ms".into()),
            create_job_window: Some("1ms".into()),
            get_task_window: Some("1ms".into()),
            write_queue: Some(4096),
            log_format: Some("pretty".into()),
            log_level: Some("info".into()),
            pre_auth_max_message: Some(4096),
            max_password: Some(1024),
            max_connections: Some(1024),
            max_connections_per_peer: Some(64),
            pre_auth_timeout: Some("10s".into()),
            idle_timeout: Some("5m".into()),
            write_queue_bytes: Some(64 << 20),
            pre_auth_write_queue_bytes: Some(64 << 10),
            write_timeout: Some("30s".into()),
            password_checks: Some(4),
            login_failures: Some(10),
            login_failure_refill: Some("6s".into()),
            log_field_max: Some(200),
            pre_auth_log_rate: Some(20),
            max_slots: Some(1000),
            http_auth: None,
            http_tls_cert: None,
            http_tls_key: None,
            ws_origins: Some(Vec::new()),
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
        for p in [
            &mut layer.users_file,
            &mut layer.http_tls_cert,
            &mut layer.http_tls_key,
        ]
        .into_iter()
        .flatten()
        {
            rel(p);
        }
        for l in layer.listen.iter_mut().flatten() {
            for p in [
                &mut l.tls_cert,
                &mut l.tls_key,
                &mut l.client_ca,
                &mut l.crl,
            ]
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
                "JC_TASK_DONE_WINDOW" => l.task_done_window = Some(v),
                "JC_CREATE_JOB_WINDOW" => l.create_job_window = Some(v),
                "JC_GET_TASK_WINDOW" => l.get_task_window = Some(v),
                "JC_WRITE_QUEUE" => l.write_queue = Some(number(var, &v)?),
                "JC_LOG_FORMAT" => l.log_format = Some(v),
                "JC_LOG_LEVEL" => l.log_level = Some(v),
                "JC_PRE_AUTH_MAX_MESSAGE" => l.pre_auth_max_message = Some(number(var, &v)?),
                "JC_MAX_PASSWORD" => l.max_password = Some(number(var, &v)?),
                "JC_MAX_CONNECTIONS" => l.max_connections = Some(number(var, &v)?),
                "JC_MAX_CONNECTIONS_PER_PEER" => {
                    l.max_connections_per_peer = Some(number(var, &v)?)
                }
                "JC_PRE_AUTH_TIMEOUT" => l.pre_auth_timeout = Some(v),
                "JC_IDLE_TIMEOUT" => l.idle_timeout = Some(v),
                "JC_WRITE_QUEUE_BYTES" => l.write_queue_bytes = Some(number(var, &v)?),
                "JC_PRE_AUTH_WRITE_QUEUE_BYTES" => {
                    l.pre_auth_write_queue_bytes = Some(number(var, &v)?)
                }
                "JC_WRITE_TIMEOUT" => l.write_timeout = Some(v),
                "JC_PASSWORD_CHECKS" => l.password_checks = Some(number(var, &v)?),
                "JC_LOGIN_FAILURES" => l.login_failures = Some(number(var, &v)?),
                "JC_LOGIN_FAILURE_REFILL" => l.login_failure_refill = Some(v),
                "JC_LOG_FIELD_MAX" => l.log_field_max = Some(number(var, &v)?),
                "JC_PRE_AUTH_LOG_RATE" => l.pre_auth_log_rate = Some(number(var, &v)?),
                "JC_MAX_SLOTS" => l.max_slots = Some(number(var, &v)?),
                "JC_HTTP_AUTH" => l.http_auth = Some(list(&v)),
                "JC_HTTP_TLS_CERT" => l.http_tls_cert = Some(v.into()),
                "JC_HTTP_TLS_KEY" => l.http_tls_key = Some(v.into()),
                "JC_WS_ORIGINS" => l.ws_origins = Some(list(&v)),
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
            task_done_window: over.task_done_window.or(self.task_done_window),
            create_job_window: over.create_job_window.or(self.create_job_window),
            get_task_window: over.get_task_window.or(self.get_task_window),
            write_queue: over.write_queue.or(self.write_queue),
            log_format: over.log_format.or(self.log_format),
            log_level: over.log_level.or(self.log_level),
            pre_auth_max_message: over.pre_auth_max_message.or(self.pre_auth_max_message),
            max_password: over.max_password.or(self.max_password),
            max_connections: over.max_connections.or(self.max_connections),
            max_connections_per_peer: over
                .max_connections_per_peer
                .or(self.max_connections_per_peer),
            pre_auth_timeout: over.pre_auth_timeout.or(self.pre_auth_timeout),
            idle_timeout: over.idle_timeout.or(self.idle_timeout),
            write_queue_bytes: over.write_queue_bytes.or(self.write_queue_bytes),
            pre_auth_write_queue_bytes: over
                .pre_auth_write_queue_bytes
                .or(self.pre_auth_write_queue_bytes),
            write_timeout: over.write_timeout.or(self.write_timeout),
            password_checks: over.password_checks.or(self.password_checks),
            login_failures: over.login_failures.or(self.login_failures),
            login_failure_refill: over.login_failure_refill.or(self.login_failure_refill),
            log_field_max: over.log_field_max.or(self.log_field_max),
            pre_auth_log_rate: over.pre_auth_log_rate.or(self.pre_auth_log_rate),
            max_slots: over.max_slots.or(self.max_slots),
            http_auth: over.http_auth.or(self.http_auth),
            http_tls_cert: over.http_tls_cert.or(self.http_tls_cert),
            http_tls_key: over.http_tls_key.or(self.http_tls_key),
            ws_origins: over.ws_origins.or(self.ws_origins),
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

/// The group-commit window: zero (no waiting) up to a second.
fn window(name: &str, value: Option<String>) -> Result<Duration, Error> {
    let value = value.unwrap_or_else(|| "0".into());
    let d = if value.trim() == "0" {
        Duration::ZERO
    } else {
        humantime::parse_duration(&value)
            .map_err(|e| Error::Config(format!("{name} = {value:?}: {e} (e.g. \"1ms\", \"0\")")))?
    };
    if d > Duration::from_secs(1) {
        return Err(Error::Config(format!(
            "{name} = {value:?}: at most 1s (calls wait this long)"
        )));
    }
    Ok(d)
}

fn auth_methods(names: &[String]) -> Result<Vec<AuthMethod>, Error> {
    names
        .iter()
        .map(|n| {
            AuthMethod::parse(n).ok_or_else(|| {
                Error::Config(format!(
                    "auth method {n:?} is not password, token or clientcert"
                ))
            })
        })
        .collect()
}

fn limit(key: &str, value: Option<usize>, min: usize) -> Result<usize, Error> {
    let value = value.ok_or_else(|| Error::Config(format!("{key} is not set")))?;
    if value < min {
        return Err(Error::Config(format!("{key} must be at least {min}")));
    }
    Ok(value)
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
        Some(names) => auth_methods(&names)?,
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
        if l.crl.is_some() && l.client_ca.is_none() {
            return Err(Error::Config("crl needs client_ca".to_owned()));
        }
        Some(Tls {
            cert,
            key,
            client_ca: l.client_ca,
            require_client_cert: require,
            crl: l.crl,
        })
    } else {
        if l.tls_cert.is_some() || l.tls_key.is_some() || l.client_ca.is_some() || l.crl.is_some() {
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
        let max_slots = limit("max_slots", l.max_slots, 1)?;
        let limits = Limits {
            pre_auth_max_message: limit("pre_auth_max_message", l.pre_auth_max_message, 256)?,
            max_password: limit("max_password", l.max_password, 16)?,
            max_connections: limit("max_connections", l.max_connections, 1)?,
            max_connections_per_peer: limit(
                "max_connections_per_peer",
                l.max_connections_per_peer,
                1,
            )?,
            pre_auth_timeout: duration("pre_auth_timeout", l.pre_auth_timeout)?,
            idle_timeout: duration("idle_timeout", l.idle_timeout)?,
            write_queue_bytes: limit("write_queue_bytes", l.write_queue_bytes, 64 << 10)?,
            pre_auth_write_queue_bytes: limit(
                "pre_auth_write_queue_bytes",
                l.pre_auth_write_queue_bytes,
                4096,
            )?,
            write_timeout: duration("write_timeout", l.write_timeout)?,
            password_checks: limit("password_checks", l.password_checks, 1)?,
            login_failures: limit("login_failures", l.login_failures, 1)?,
            login_failure_refill: duration("login_failure_refill", l.login_failure_refill)?,
            log_field_max: limit("log_field_max", l.log_field_max, 16)?,
            pre_auth_log_rate: limit("pre_auth_log_rate", l.pre_auth_log_rate, 1)?,
            max_slots: u32::try_from(max_slots)
                .map_err(|_| Error::Config("max_slots is too large".into()))?,
        };
        if limits.pre_auth_max_message > max_message_size {
            return Err(Error::Config(
                "pre_auth_max_message must not be over max_message_size".into(),
            ));
        }
        // By default HTTP accepts what every stream listener accepts (it has no client
        // certificates): a token-only or certificate-only deployment takes no passwords
        // over HTTP either.
        let http_auth = match &l.http_auth {
            Some(names) => auth_methods(names)?,
            None => [AuthMethod::Password, AuthMethod::Token]
                .into_iter()
                .filter(|m| listeners.iter().all(|l| l.auth.contains(m)))
                .collect(),
        };
        if http_auth.contains(&AuthMethod::ClientCert) {
            return Err(Error::Config(
                "http_auth: the HTTP listener takes no client certificates".into(),
            ));
        }
        let http_tls = match (l.http_tls_cert, l.http_tls_key) {
            (Some(cert), Some(key)) => Some(Tls {
                cert,
                key,
                client_ca: None,
                require_client_cert: false,
                crl: None,
            }),
            (None, None) => None,
            _ => {
                return Err(Error::Config(
                    "http_tls_cert and http_tls_key go together".into(),
                ))
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
            task_done_window: window("task_done_window", l.task_done_window)?,
            create_job_window: window("create_job_window", l.create_job_window)?,
            get_task_window: window("get_task_window", l.get_task_window)?,
            write_queue,
            log_format,
            log_level: l.log_level.unwrap_or_else(|| "info".into()),
            limits,
            http_auth,
            http_tls,
            ws_origins: l.ws_origins.unwrap_or_default(),
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
        let _ = writeln!(out, "task_done_window = {}", dur(self.task_done_window));
        let _ = writeln!(out, "create_job_window = {}", dur(self.create_job_window));
        let _ = writeln!(out, "get_task_window = {}", dur(self.get_task_window));
        let _ = writeln!(out, "write_queue = {}", self.write_queue);
        let format = match self.log_format {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        };
        let _ = writeln!(out, "log_format = {}", q(format));
        let _ = writeln!(out, "log_level = {}", q(&self.log_level));
        let m = &self.limits;
        for (key, n) in [
            ("pre_auth_max_message", m.pre_auth_max_message),
            ("max_password", m.max_password),
            ("max_connections", m.max_connections),
            ("max_connections_per_peer", m.max_connections_per_peer),
            ("write_queue_bytes", m.write_queue_bytes),
            ("pre_auth_write_queue_bytes", m.pre_auth_write_queue_bytes),
            ("password_checks", m.password_checks),
            ("login_failures", m.login_failures),
            ("log_field_max", m.log_field_max),
            ("pre_auth_log_rate", m.pre_auth_log_rate),
            ("max_slots", m.max_slots as usize),
        ] {
            let _ = writeln!(out, "{key} = {n}");
        }
        for (key, d) in [
            ("pre_auth_timeout", m.pre_auth_timeout),
            ("idle_timeout", m.idle_timeout),
            ("write_timeout", m.write_timeout),
            ("login_failure_refill", m.login_failure_refill),
        ] {
            let _ = writeln!(out, "{key} = {}", dur(d));
        }
        let names = |ms: &[AuthMethod]| {
            let v: Vec<String> = ms.iter().map(|a| q(a.name())).collect();
            format!("[{}]", v.join(", "))
        };
        let _ = writeln!(out, "http_auth = {}", names(&self.http_auth));
        if let Some(t) = &self.http_tls {
            let _ = writeln!(out, "http_tls_cert = {}", p(&t.cert));
            let _ = writeln!(out, "http_tls_key = {}", p(&t.key));
        }
        let origins: Vec<String> = self.ws_origins.iter().map(|o| q(o)).collect();
        let _ = writeln!(out, "ws_origins = [{}]", origins.join(", "));
        for l in &self.listeners {
            let _ = writeln!(out, "\n[[listen]]");
            let _ = writeln!(out, "kind = {}", q(l.kind.name()));
            let _ = writeln!(out, "address = {}", q(&l.address));
            let _ = writeln!(out, "auth = {}", names(&l.auth));
            if let Some(t) = &l.tls {
                let _ = writeln!(out, "tls_cert = {}", p(&t.cert));
                let _ = writeln!(out, "tls_key = {}", p(&t.key));
                if let Some(ca) = &t.client_ca {
                    let _ = writeln!(out, "client_ca = {}", p(ca));
                }
                if let Some(crl) = &t.crl {
                    let _ = writeln!(out, "crl = {}", p(crl));
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
    fn limits_have_safe_defaults_and_http_follows_the_listeners() {
        let c = Config::resolve([layer("dsn = \"host=/tmp\"\n")]).unwrap();
        assert_eq!(c.limits.pre_auth_max_message, 4096);
        assert_eq!(c.limits.max_password, 1024);
        assert_eq!(c.limits.pre_auth_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.max_slots, 1000);
        assert_eq!(c.http_auth, vec![AuthMethod::Password, AuthMethod::Token]);
        assert!(c.ws_origins.is_empty());
        let tokens_only = layer(
            "dsn = \"host=/tmp\"\n[[listen]]\nkind = \"tcp\"\naddress = \"x\"\n\
             auth = [\"token\"]\n[[listen]]\nkind = \"ws\"\naddress = \"y\"\n",
        );
        let c = Config::resolve([tokens_only.clone()]).unwrap();
        assert_eq!(c.http_auth, vec![AuthMethod::Token]);
        let env = Layer::from_env(|v| match v {
            "JC_MAX_CONNECTIONS_PER_PEER" => Some("5".into()),
            "JC_HTTP_AUTH" => Some("password, token".into()),
            "JC_WS_ORIGINS" => Some("https://a.example,https://b.example".into()),
            _ => None,
        })
        .unwrap();
        let c = Config::resolve([tokens_only, env]).unwrap();
        assert_eq!(c.limits.max_connections_per_peer, 5);
        assert_eq!(c.http_auth, vec![AuthMethod::Password, AuthMethod::Token]);
        assert_eq!(c.ws_origins.len(), 2);
        let mut back = layer(&c.dump());
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
            ("max_connections = 0\n", "max_connections"),
            ("pre_auth_max_message = 100\n", "pre_auth_max_message"),
            (
                "max_message_size = 2048\npre_auth_max_message = 4096\n",
                "not be over",
            ),
            ("http_tls_cert = \"c.pem\"\n", "go together"),
            ("http_auth = [\"clientcert\"]\n", "no client certificates"),
            ("idle_timeout = \"soon\"\n", "idle_timeout"),
            (
                "[[listen]]\nkind = \"tls\"\naddress = \"x\"\ntls_cert = \"c\"\ntls_key = \"k\"\n\
                 crl = \"r.pem\"\n",
                "crl needs client_ca",
            ),
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
