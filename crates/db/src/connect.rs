//! Connecting the daemons and tools to the database: one way to read a connection string
//! (with libpq's TLS parameters, see [`crate::tls`]), build the call pool and print a
//! connection string without its password.

use std::time::Duration;

use deadpool_postgres::{BuildError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::tls::TlsStream;
use tokio_postgres::{Client, Connection, Socket};

use crate::tls::{self, Tls};
use crate::Error;

/// Where and how to connect: the parsed connection string and the TLS connector its
/// `sslmode`, `sslrootcert`, `sslcert` and `sslkey` describe.
#[derive(Clone)]
pub struct Pg {
    pub config: tokio_postgres::Config,
    pub tls: Tls,
}

impl std::fmt::Debug for Pg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pg")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Pg {
    /// Opens one connection; the caller drives the returned connection.
    pub async fn connect(
        &self,
    ) -> Result<
        (
            Client,
            Connection<Socket, impl TlsStream + Unpin + Send + 'static>,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

/// Parses a libpq connection string (key-value or URL) with the daemons' defaults: a 5 s
/// connect timeout and `application_name` unless the string sets them, and TCP keepalives,
/// since a LISTEN connection that silently died would never say so without them.
pub fn connect_config(dsn: &str, application_name: &str) -> Result<Pg, Error> {
    let (rest, params) = tls::split(dsn)?;
    let mut pg: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| Error::Dsn(format!("connection string: {e}")))?;
    let tls = tls::connector(&params, &mut pg)?;
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(5));
    }
    if pg.get_application_name().is_none() {
        pg.application_name(application_name);
    }
    pg.keepalives(true).keepalives_idle(Duration::from_secs(30));
    Ok(Pg { config: pg, tls })
}

/// A pool of `size` connections for the calls, with bounded waits for a connection.
pub fn pool(pg: &Pg, size: usize) -> Result<Pool, BuildError> {
    let manager = Manager::from_config(
        pg.config.clone(),
        pg.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
}

/// A connection string with its password replaced by `***` (key-value and URL forms).
pub fn redact(dsn: &str) -> String {
    if let Some((scheme, rest)) = dsn.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
        return dsn.to_owned();
    }
    dsn.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_owned()
            } else {
                kv.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
