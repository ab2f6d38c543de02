//! The gateway's error type: what can stop it from starting or serving.

use std::path::PathBuf;

/// Errors of the gateway.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or wrong.
    #[error("configuration: {0}")]
    Config(String),
    #[error("cannot read {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ConfigSyntax {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// The connection string does not parse.
    #[error("bad connection string: {0}")]
    Dsn(jc_db::Error),
    /// The users file is unreadable or wrong.
    #[error("users file {path}: {msg}")]
    Users { path: PathBuf, msg: String },
    /// A TLS certificate, key or CA cannot be used.
    #[error("tls: {0}")]
    Tls(String),
    /// A listener cannot be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        source: std::io::Error,
    },
    /// The database pool cannot be built.
    #[error("database pool: {0}")]
    Pool(String),
    #[error(transparent)]
    Db(#[from] jc_db::Error),
    #[error(transparent)]
    Proto(#[from] jc_proto::Error),
}
