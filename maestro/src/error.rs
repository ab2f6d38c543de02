//! The maestro's error type.

use std::path::PathBuf;

/// Errors of the maestro library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file could not be read.
    #[error("could not read the configuration file {path}: {source}")]
    ConfigFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The configuration file is not valid TOML for the maestro.
    #[error("{path}: {source}")]
    ConfigSyntax {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// A configuration value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The connection string cannot be parsed.
    #[error("invalid connection string: {0}")]
    Dsn(jc_db::Error),
    /// The connection pool could not be built.
    #[error("could not build the connection pool: {0}")]
    Pool(String),
    /// A database call failed.
    #[error(transparent)]
    Db(#[from] jc_db::Error),
    /// A database connection failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The metrics address could not be bound.
    #[error("could not listen on {addr} for metrics: {source}")]
    Metrics {
        addr: String,
        source: std::io::Error,
    },
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Error {
        match e {
            deadpool_postgres::PoolError::Backend(e) => Error::Postgres(e),
            other => Error::Pool(other.to_string()),
        }
    }
}
