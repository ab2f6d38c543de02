//! The HTTP listener, on axum and hyper: `GET /metrics` (Prometheus), `GET /admin/gateway`
//! (the admin view, `admin.rs`) and JSON-RPC over
//! `POST /` (or `/rpc`) for the request/response client methods (`create_job` without
//! `job_done`, `get_job_status`, `find_jobs`, `check_if_lock_exists`, `cancel_job`,
//! `retry_job`, `raise_event`, `get_job`, `ping`), authenticated per request with HTTP Basic
//! (user and password, or user and API token) by the methods of `http_auth`. Worker methods
//! need a connection and are refused.
//!
//! HTTP/1.1 with keep-alive and chunked bodies, optionally over TLS. Limits: the connection
//! limits of the stream listeners, a header buffer of [`MAX_HEAD`], the pre-auth time-out
//! for a request's head and between requests (hyper's header read time-out, which starts
//! again once a response is sent), and a body of at most
//! `max_message_size`, read only once the credentials are checked, within
//! [`BODY_TIMEOUT`].
//!
//! [`router`] is the one place routes are added.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use base64::Engine as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use jc_proto::{ErrorKind, ErrorObject, Message};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;
use tower::Service as _;

use crate::client;
use crate::config::AuthMethod;
use crate::guard::{refused, shown, Login};
use crate::metrics::Metrics;
use crate::server::Shared;
use crate::transport::tls_accept;

/// The most bytes of request line and headers (hyper's read buffer; at least 8 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// The most header fields of a request.
const MAX_HEADERS: usize = 64;
/// A request body must arrive within this.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer of an HTTP request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub SocketAddr);

/// The HTTP routes.
fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/admin/gateway", get(crate::admin::gateway))
        .route("/", post(rpc_post))
        .route("/rpc", post(rpc_post))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(shared)
}

/// Accepts HTTP connections until the gateway stops.
pub(crate) async fn http_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    tracker: TaskTracker,
) {
    let mut stop = shared.stop.clone();
    let open = Arc::new(AtomicUsize::new(0));
    let routes = router(shared.clone());
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((socket, addr)) => {
                let Some(admitted) = shared.admit(&open, addr) else {
                    continue;
                };
                let (shared, routes, tls) = (shared.clone(), routes.clone(), tls.clone());
                tracker.spawn(async move {
                    match tls {
                        None => serve(shared, socket, addr, routes).await,
                        Some(acceptor) => {
                            let within = shared.config.limits.pre_auth_timeout;
                            match tls_accept(&acceptor, socket, within).await {
                                Ok(stream) => serve(shared, stream, addr, routes).await,
                                Err(why) => refused!(shared.refusals, peer = %addr,
                                    why = %shown(&why), "http connection refused"),
                            }
                        }
                    }
                    drop(admitted);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one HTTP connection (keep-alive) until it closes, idles out or the gateway stops.
async fn serve<S>(shared: Arc<Shared>, io: S, addr: SocketAddr, routes: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(Peer(addr));
        let mut routes = routes.clone();
        async move { routes.call(req).await }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.limits.pre_auth_timeout)
        .max_buf_size(MAX_HEAD)
        .max_headers(MAX_HEADERS);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stop = shared.stop.clone();
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(peer = %addr, error = %shown(&e.to_string()), "http");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        shared.metrics.render(),
    )
        .into_response()
}

fn plain(status: StatusCode, body: &'static str) -> Response {
    (status, body).into_response()
}

/// JSON-RPC over POST: the credentials first, then (and only then) the body.
async fn rpc_post(
    State(shared): State<Arc<Shared>>,
    Extension(Peer(addr)): Extension<Peer>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let Some(who) = authenticate(&shared, addr, &parts.headers).await else {
        return unauthorized(&shared, addr);
    };
    let max = shared.config.max_message_size;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        Metrics::inc(&shared.metrics.bad_messages);
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "");
    }
    let body = match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, max)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            Metrics::inc(&shared.metrics.bad_messages);
            return plain(StatusCode::PAYLOAD_TOO_LARGE, "");
        }
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, ""),
    };
    match rpc(&shared, &who, &body).await {
        Some(msg) => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(msg.to_bytes()),
        )
            .into_response(),
        None => plain(StatusCode::NO_CONTENT, ""),
    }
}

/// The answer to a request whose credentials failed (counted and logged).
pub(crate) fn unauthorized(shared: &Shared, addr: SocketAddr) -> Response {
    Metrics::inc(&shared.metrics.auth_failures);
    refused!(shared.refusals, peer = %addr, "http: authentication failed");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Basic realm=\"jobcenter\"")],
        "authentication failed\n",
    )
        .into_response()
}

/// The user of a Basic `authorization` header, checked by the HTTP listener's methods
/// (password or API token).
pub(crate) async fn authenticate(
    shared: &Shared,
    addr: SocketAddr,
    headers: &HeaderMap,
) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (who, secret) = text.split_once(':')?;
    let accepted = &shared.config.http_auth;
    // A token is tried first (it is cheap); a request that fails counts as one failure.
    let methods: Vec<AuthMethod> = [AuthMethod::Token, AuthMethod::Password]
        .into_iter()
        .filter(|m| accepted.contains(m))
        .collect();
    for (i, method) in methods.iter().enumerate() {
        let login = Login {
            who: who.to_owned(),
            method: method.name().to_owned(),
            token: secret.to_owned(),
            peer_names: Vec::new(),
        };
        let checked = if i + 1 == methods.len() {
            shared.gate.check(addr.ip(), login, accepted).await
        } else {
            shared.gate.try_check(addr.ip(), login, accepted).await
        };
        if checked.is_ok() {
            return Some(who.to_owned());
        }
    }
    None
}

/// Answers one JSON-RPC message for `who`; `None` for a notification.
async fn rpc(shared: &Shared, who: &str, body: &[u8]) -> Option<Message> {
    Metrics::inc(&shared.metrics.messages_in);
    let r = match Message::parse(body) {
        Ok(Message::Request(r)) => r,
        Ok(_) => return None,
        Err(e) => {
            Metrics::inc(&shared.metrics.bad_messages);
            return Some(e.response().into());
        }
    };
    let started = std::time::Instant::now();
    let outcome = match r.method.as_str() {
        "ping" => Ok(Value::from("pong")),
        _ => match client::call(shared, who, &r).await {
            Some(result) => result,
            None => Err(ErrorObject::new(
                ErrorKind::MethodNotFound,
                format!("{} is not available over HTTP", r.method),
            )),
        },
    };
    shared.metrics.requests.observe(started.elapsed());
    Metrics::inc(&shared.metrics.messages_out);
    Some(
        jc_proto::Response {
            id: Some(r.id),
            outcome,
        }
        .into(),
    )
}
