//! jcapi: the gateway through which clients and workers in any language reach jobcenter.
//!
//! It speaks the original JobCenter protocol (JSON-RPC 2.0 in netstrings over TCP or TLS,
//! see `jc-proto`), the same over WebSocket, and JSON-RPC over HTTP POST for the
//! request/response calls. It holds no job state: every request becomes a call of the
//! extension's procedures, made *on behalf of* the authenticated user — the gateway's
//! database role passes the user as `impersonate`, so that role needs a row in
//! `jobcenter.jc_impersonate_roles` for every user (and each user is a `jobcenter.jc_roles`
//! row), and is itself a member of `jobcenter_gateway` (ARCHITECTURE.md, "Privileges"):
//!
//! ```sql
//! grant jobcenter_gateway to jcapi;
//! insert into jobcenter.jc_roles values ('alice');
//! insert into jobcenter.jc_impersonate_roles (rolename, impersonates) values ('jcapi', 'alice');
//! ```
//!
//! What it does keep is connection state: who is connected, which worker announced which
//! action with how many slots, and which task was offered to whom (see [`dispatch`]).
//!
//! [`run`] serves until its `shutdown` future completes, then stops accepting, closes every
//! connection (workers are disconnected in the engine, so their tasks follow their action's
//! retry policy) and returns.

mod admin;
mod auth;
mod client;
mod commit;
pub mod config;
mod conn;
mod create;
mod dispatch;
mod error;
mod group;
mod guard;
mod http;
mod liveness;
pub mod metrics;
mod server;
mod take;
mod tls;
mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

pub use auth::{hash_password, token_digest, Hello, Users};
pub use config::{
    redact, AuthMethod, Config, Kind, Layer, ListenLayer, Listener, LogFormat, ENV_VARS,
};
pub use error::Error;
pub use metrics::Metrics;

use crate::dispatch::Dispatch;
use crate::server::{Shared, Waiters};

/// How long connections get to close at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long the start waits for the gateway's registration before it serves anyway.
const REGISTER_WAIT: Duration = Duration::from_secs(5);

/// Where the gateway listens (useful with port 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub listeners: Vec<(Kind, SocketAddr)>,
    pub http: Option<SocketAddr>,
}

/// Runs the gateway until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    run_with(config, shutdown, Arc::new(Metrics::default()), |_| {}).await
}

/// [`run`] with the caller's metrics, and `on_ready` told the bound addresses once every
/// listener accepts.
pub async fn run_with(
    config: Config,
    shutdown: impl Future<Output = ()>,
    metrics: Arc<Metrics>,
    on_ready: impl FnOnce(&Addresses),
) -> Result<(), Error> {
    let users = match &config.users_file {
        Some(path) => Users::load(path)?,
        None => {
            tracing::warn!("no users file: nobody can log in");
            Users::default()
        }
    };
    let pg = jc_db::connect_config(&config.dsn, "jcapi").map_err(Error::Dsn)?;
    let pool = jc_db::pool(&pg, config.pool_size).map_err(|e| Error::Pool(e.to_string()))?;

    let mut bound = Vec::new();
    let mut addresses = Addresses {
        listeners: Vec::new(),
        http: None,
    };
    for l in &config.listeners {
        let tls = match &l.tls {
            Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let socket = TcpListener::bind(&l.address)
            .await
            .map_err(|source| Error::Bind {
                address: l.address.clone(),
                source,
            })?;
        let addr = socket.local_addr().map_err(|source| Error::Bind {
            address: l.address.clone(),
            source,
        })?;
        tracing::info!(kind = l.kind.name(), %addr, auth = ?l.auth, "listening");
        addresses.listeners.push((l.kind, addr));
        bound.push(transport::Bound {
            config: l.clone(),
            socket,
            tls,
        });
    }
    let http_tls = match &config.http_tls {
        Some(t) => Some(TlsAcceptor::from(tls::server_config(t)?)),
        None => None,
    };
    let http = match &config.http {
        Some(a) => {
            let socket = TcpListener::bind(a).await.map_err(|source| Error::Bind {
                address: a.clone(),
                source,
            })?;
            let addr = socket.local_addr().map_err(|source| Error::Bind {
                address: a.clone(),
                source,
            })?;
            tracing::info!(%addr, tls = http_tls.is_some(), auth = ?config.http_auth,
                "http (/metrics, JSON-RPC over POST)");
            addresses.http = Some(addr);
            Some(socket)
        }
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let (listen_tx, listen_rx) = mpsc::unbounded_channel();
    let (commit_tx, commit_rx) = mpsc::unbounded_channel();
    let (create_tx, create_rx) = mpsc::unbounded_channel();
    let (take_tx, take_rx) = mpsc::unbounded_channel();
    guard::set_field_max(config.limits.log_field_max);
    let shared = Arc::new(Shared {
        dispatch: Mutex::new(Dispatch::new(config.offer_timeout, metrics.clone())),
        admin: admin::Registry::default(),
        gate: guard::Gate::new(users, config.limits.clone()),
        conn_limits: Arc::default(),
        refusals: guard::RateLog::new(config.limits.pre_auth_log_rate),
        config,
        pool,
        metrics,
        waiters: Mutex::new(Waiters::default()),
        listen: listen_tx,
        sweep: tokio::sync::Notify::new(),
        ended: Mutex::default(),
        ended_wake: tokio::sync::Notify::new(),
        commits: commit_tx,
        creates: create_tx,
        takes: take_tx,
        next_conn: AtomicU64::new(0),
        stop: stop_rx,
        gateway: watch::Sender::new(0),
        rejoin: watch::Sender::new(0),
        unattached: Mutex::default(),
    });
    let name = gateway_name(&addresses);
    let background = [
        tokio::spawn(liveness::gateway_loop(shared.clone(), pg.clone(), name)),
        tokio::spawn(server::listen_loop(shared.clone(), pg, listen_rx)),
        tokio::spawn(server::sweep_loop(shared.clone())),
        tokio::spawn(server::expiry_loop(shared.clone())),
        tokio::spawn(server::ended_loop(shared.clone())),
        tokio::spawn(commit::commit_loop(shared.clone(), commit_rx)),
        tokio::spawn(create::create_loop(shared.clone(), create_rx)),
        tokio::spawn(take::take_loop(shared.clone(), take_rx)),
        tokio::spawn(reload_loop(shared.clone())),
    ];
    let tracker = TaskTracker::new();
    let mut acceptors = Vec::new();
    for b in bound {
        acceptors.push(tokio::spawn(transport::accept_loop(
            shared.clone(),
            b,
            tracker.clone(),
        )));
    }
    if let Some(socket) = http {
        acceptors.push(tokio::spawn(http::http_loop(
            shared.clone(),
            socket,
            http_tls,
            tracker.clone(),
        )));
    }
    // Workers announced before the gateway registered would not be withdrawn with it.
    let mut registered = shared.gateway.subscribe();
    if tokio::time::timeout(REGISTER_WAIT, registered.wait_for(|g| *g != 0))
        .await
        .is_err()
    {
        tracing::warn!("serving unregistered: the database is unavailable");
    }
    on_ready(&addresses);

    shutdown.await;
    tracing::info!("shutting down: closing connections");
    let _ = stop_tx.send(true);
    for a in acceptors {
        let _ = a.await;
    }
    tracker.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
    for b in background {
        b.abort();
    }
    shared.pool.close();
    tracing::info!("stopped");
    Ok(())
}

/// The gateway's name in `jobcenter.gateways`: its process and first address.
fn gateway_name(addresses: &Addresses) -> String {
    let first = addresses
        .listeners
        .first()
        .map(|(_, a)| a.to_string())
        .or_else(|| addresses.http.map(|a| a.to_string()))
        .unwrap_or_default();
    format!("jcapi {first} pid {}", std::process::id())
}

/// Reloads the users file on SIGHUP; a file that does not load leaves the users as they were.
async fn reload_loop(shared: Arc<Shared>) {
    let Some(path) = shared.config.users_file.clone() else {
        return;
    };
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot catch SIGHUP: the users file is not reloaded");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match Users::load(&path) {
            Ok(users) => {
                shared.gate.set_users(users);
                tracing::info!(path = %path.display(), "users file reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "users file not reloaded"),
        }
    }
}
