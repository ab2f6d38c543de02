//! Where the gateway is, how to authenticate, and the connection's timing.

use std::path::PathBuf;
use std::time::Duration;

/// TLS settings: the CA to trust (the system's roots when `None`), an optional client
/// certificate and key (PEM files), and the name to check on the server's certificate
/// (the host by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// How to reach jcapi.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Netstrings over plain TCP (default port 6522).
    Tcp { host: String, port: u16 },
    /// Netstrings over TLS.
    Tls {
        host: String,
        port: u16,
        tls: TlsOptions,
    },
    /// JSON-RPC messages as WebSocket text frames; `wss://` URLs use `tls`.
    WebSocket { url: String, tls: TlsOptions },
}

impl Endpoint {
    /// Plain TCP.
    pub fn tcp(host: impl Into<String>, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: host.into(),
            port,
        }
    }

    /// TLS.
    pub fn tls(host: impl Into<String>, port: u16, tls: TlsOptions) -> Endpoint {
        Endpoint::Tls {
            host: host.into(),
            port,
            tls,
        }
    }

    /// WebSocket (`ws://…` or `wss://…`).
    pub fn websocket(url: impl Into<String>) -> Endpoint {
        Endpoint::WebSocket {
            url: url.into(),
            tls: TlsOptions::default(),
        }
    }

    /// A printable address, for messages.
    pub fn address(&self) -> String {
        match self {
            Endpoint::Tcp { host, port } => format!("{host}:{port}"),
            Endpoint::Tls { host, port, .. } => format!("tls://{host}:{port}"),
            Endpoint::WebSocket { url, .. } => url.clone(),
        }
    }
}

/// Who the client is. The gateway acts for this user in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `hello {who, method: "password", token: password}`.
    Password { who: String, password: String },
    /// An API token: `hello {who, method: "token", token}`.
    Token { who: String, token: String },
    /// The TLS client certificate decides: `hello {who, method: "clientcert"}`.
    ClientCert { who: String },
}

impl Auth {
    pub(crate) fn hello(&self) -> jc_proto::methods::HelloParams {
        let (who, method, token) = match self {
            Auth::Password { who, password } => (who, "password", password.clone()),
            Auth::Token { who, token } => (who, "token", token.clone()),
            Auth::ClientCert { who } => (who, "clientcert", String::new()),
        };
        jc_proto::methods::HelloParams {
            who: who.clone(),
            method: method.to_owned(),
            token,
        }
    }

    /// The user name.
    pub fn who(&self) -> &str {
        match self {
            Auth::Password { who, .. } | Auth::Token { who, .. } | Auth::ClientCert { who } => who,
        }
    }
}

/// Reconnection back-off: the first wait, doubled after each failure up to `max`, with
/// jitter (each wait is between half and all of the current delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

/// A client's whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub endpoint: Endpoint,
    pub auth: Auth,
    /// The worker name used in `announce` (default: `user@host:program:pid`).
    pub workername: Option<String>,
    /// The largest message accepted from the server.
    pub max_frame: usize,
    /// How long to wait for the greeting, `hello` and every call's answer.
    pub call_timeout: Duration,
    /// A worker pings the server after this long without traffic (0: never).
    pub keepalive: Duration,
    /// Whether calls and `work()` reconnect after the connection drops.
    pub reconnect: bool,
    pub backoff: Backoff,
    /// Whether a worker takes tasks with `get_tasks` and sends results with `tasks_done`
    /// (the default; a gateway without them is detected and the original calls used),
    /// or always with `get_task` and `task_done`.
    pub batched: bool,
}

impl Config {
    /// A configuration with the defaults: 16 MiB messages, 60 s call time-out, 60 s
    /// keep-alive, reconnecting with 0.2 s..30 s back-off, batched worker calls.
    pub fn new(endpoint: Endpoint, auth: Auth) -> Config {
        Config {
            endpoint,
            auth,
            workername: None,
            max_frame: jc_proto::DEFAULT_MAX_FRAME,
            call_timeout: Duration::from_secs(60),
            keepalive: Duration::from_secs(60),
            reconnect: true,
            backoff: Backoff::default(),
            batched: true,
        }
    }

    /// The worker name to announce with.
    pub fn workername(&self) -> String {
        if let Some(n) = &self.workername {
            return n.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "localhost".into());
        let program = std::env::args()
            .next()
            .and_then(|a| {
                std::path::Path::new(&a)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "worker".into());
        format!(
            "{}@{host}:{program}:{}",
            self.auth.who(),
            std::process::id()
        )
    }
}
