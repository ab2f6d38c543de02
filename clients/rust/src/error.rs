//! The client's one error type.

use serde_json::Value;

/// Everything that can go wrong talking to jcapi.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable (bad URL, unreadable certificate, …).
    #[error("configuration: {0}")]
    Config(String),
    /// The server could not be reached.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    /// The TLS handshake or set-up failed.
    #[error("TLS: {0}")]
    Tls(String),
    /// The WebSocket handshake or framing failed.
    #[error("WebSocket: {0}")]
    WebSocket(String),
    /// Reading or writing the connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server broke the protocol (framing, JSON-RPC, handshake).
    #[error("protocol: {0}")]
    Protocol(String),
    /// `hello` was refused (wrong user, password, token or certificate).
    #[error("authentication refused: {0}")]
    Auth(String),
    /// The server answered a call with a JSON-RPC error.
    #[error("{method}: {error}")]
    Remote {
        method: String,
        error: jc_proto::ErrorObject,
    },
    /// The server refused a request in the protocol's own way (`[null, why]`, `[false, why]`).
    #[error("{method} refused: {reason}")]
    Refused { method: String, reason: String },
    /// A job ended in error; `error` is its error object (`{class, msg, …}`).
    #[error("job {job_id} failed: {}", error_msg(.error))]
    Job { job_id: i64, error: Value },
    /// The connection closed while waiting for an answer.
    #[error("connection closed")]
    Disconnected,
    /// No answer in time.
    #[error("{0}: timed out")]
    Timeout(String),
}

impl Error {
    /// The JSON-RPC error kind when the server answered with an error of the protocol.
    pub fn kind(&self) -> Option<jc_proto::ErrorKind> {
        match self {
            Error::Remote { error, .. } => error.kind(),
            _ => None,
        }
    }

    /// Whether trying again on a new connection may help.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. }
                | Error::Io(_)
                | Error::Disconnected
                | Error::Timeout(_)
                | Error::Tls(_)
                | Error::WebSocket(_)
        )
    }
}

impl From<jc_proto::Error> for Error {
    fn from(e: jc_proto::Error) -> Error {
        match e {
            jc_proto::Error::Remote { method, error } => Error::Remote { method, error },
            other => Error::Protocol(other.to_string()),
        }
    }
}

/// The `msg` of an error object, or the whole value.
pub(crate) fn error_msg(error: &Value) -> String {
    match error.get("msg").and_then(Value::as_str) {
        Some(m) => match error.get("class").and_then(Value::as_str) {
            Some(c) => format!("{m} ({c})"),
            None => m.to_owned(),
        },
        None => match error.as_str() {
            Some(s) => s.to_owned(),
            None => error.to_string(),
        },
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
