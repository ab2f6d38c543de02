//! The HTTP listener: `GET /metrics` (Prometheus) and JSON-RPC over `POST /` for the
//! request/response client methods (`create_job` without `job_done`, `get_job_status`,
//! `find_jobs`, `check_if_lock_exists`, `cancel_job`, `retry_job`, `raise_event`, `get_job`,
//! `ping`), authenticated per request with HTTP Basic (user and password, or user and API
//! token). Worker methods need a connection and are refused.
//!
//! A small HTTP/1.1 responder: one request per connection, `Content-Length` bodies only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use jc_proto::{ErrorKind, ErrorObject, Message, Response};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::auth;
use crate::client;
use crate::config::AuthMethod;
use crate::metrics::Metrics;
use crate::server::Shared;

const MAX_HEAD: usize = 16 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts HTTP connections until the gateway stops.
pub(crate) async fn http_loop(shared: Arc<Shared>, listener: TcpListener, tracker: TaskTracker) {
    let mut stop = shared.stop.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((socket, addr)) => {
                let shared = shared.clone();
                tracker.spawn(async move {
                    let served = tokio::time::timeout(REQUEST_TIMEOUT, serve(shared, socket, addr));
                    if let Ok(Err(e)) = served.await {
                        tracing::debug!(peer = %addr, error = %e, "http");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Head {
    method: String,
    path: String,
    content_length: usize,
    authorization: Option<String>,
}

fn parse_head(head: &str) -> Option<Head> {
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let mut content_length = 0;
    let mut authorization = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value.to_owned());
        }
    }
    Some(Head {
        method,
        path,
        content_length,
        authorization,
    })
}

async fn reply(
    socket: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n",
        body.len()
    );
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.shutdown().await
}

async fn serve(
    shared: Arc<Shared>,
    mut socket: TcpStream,
    addr: SocketAddr,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return reply(
                &mut socket,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
                b"",
            )
            .await;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Some(head) = std::str::from_utf8(&buf[..end]).ok().and_then(parse_head) else {
        return reply(
            &mut socket,
            "400 Bad Request",
            "text/plain",
            "",
            b"bad request\n",
        )
        .await;
    };
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/metrics") => {
            let body = shared.metrics.render();
            reply(
                &mut socket,
                "200 OK",
                "text/plain; version=0.0.4",
                "",
                body.as_bytes(),
            )
            .await
        }
        ("POST", "/" | "/rpc") => {
            let max = shared.config.max_message_size;
            if head.content_length > max {
                Metrics::inc(&shared.metrics.bad_messages);
                return reply(&mut socket, "413 Payload Too Large", "text/plain", "", b"").await;
            }
            let mut body = buf[end + 4..].to_vec();
            while body.len() < head.content_length {
                let mut chunk = vec![0u8; (head.content_length - body.len()).min(65536)];
                let n = socket.read(&mut chunk).await?;
                if n == 0 {
                    return Ok(());
                }
                body.extend_from_slice(&chunk[..n]);
            }
            body.truncate(head.content_length);
            let Some(who) = authenticate(&shared, head.authorization.as_deref()).await else {
                Metrics::inc(&shared.metrics.auth_failures);
                tracing::info!(peer = %addr, "http: authentication failed");
                return reply(
                    &mut socket,
                    "401 Unauthorized",
                    "text/plain",
                    "WWW-Authenticate: Basic realm=\"jobcenter\"\r\n",
                    b"authentication failed\n",
                )
                .await;
            };
            match rpc(&shared, &who, &body).await {
                Some(msg) => {
                    reply(
                        &mut socket,
                        "200 OK",
                        "application/json",
                        "",
                        &msg.to_bytes(),
                    )
                    .await
                }
                None => reply(&mut socket, "204 No Content", "text/plain", "", b"").await,
            }
        }
        _ => {
            reply(
                &mut socket,
                "404 Not Found",
                "text/plain",
                "",
                b"not found\n",
            )
            .await
        }
    }
}

/// The user of a Basic `authorization` header (password or API token).
async fn authenticate(shared: &Shared, authorization: Option<&str>) -> Option<String> {
    let encoded = authorization?.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (who, secret) = text.split_once(':')?;
    let (who, secret) = (who.to_owned(), secret.to_owned());
    let users = shared.users.clone();
    tokio::task::spawn_blocking(move || {
        let accepted = [AuthMethod::Password, AuthMethod::Token];
        let check = |method| {
            users.check(
                auth::Hello {
                    who: &who,
                    method,
                    token: &secret,
                    peer_cn: None,
                },
                &accepted,
            )
        };
        (check("token").is_ok() || check("password").is_ok()).then_some(who)
    })
    .await
    .ok()
    .flatten()
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
        Response {
            id: Some(r.id),
            outcome,
        }
        .into(),
    )
}
