//! Listeners and transports: TCP and TLS carry netstrings, WebSocket (plain or over TLS)
//! carries one JSON-RPC message per text (or binary) frame. Each accepted socket becomes a
//! stream of [`Inbound`] messages and a writer for the connection's outgoing queue; the
//! connection itself does not know which transport it runs on.
//!
//! A connection is admitted only within the listener's and the peer address's connection
//! limits; its TLS and WebSocket handshakes count against the pre-auth time-out, and it may
//! send only so many bytes before its `hello` succeeds; a WebSocket request from a browser
//! (an `Origin` header) needs an allowed origin.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, SinkExt, StreamExt};
use jc_proto::{CodecError, ErrorKind, Frame, NetstringCodec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message as WsMessage};
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::task::TaskTracker;

use crate::config::{Kind, Listener};
use crate::conn::{serve, Inbound, Peer};
use crate::dispatch::QueueRx;
use crate::guard::{refused, shown};
use crate::server::Shared;
use crate::tls::peer_names;

/// A bound listener, ready to accept.
pub(crate) struct Bound {
    pub config: Listener,
    pub socket: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Accepts connections until the gateway stops; each is served on `tracker`.
pub(crate) async fn accept_loop(shared: Arc<Shared>, bound: Bound, tracker: TaskTracker) {
    let mut stop = shared.stop.clone();
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            a = bound.socket.accept() => a,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((socket, addr)) => {
                let Some(admitted) = shared.admit(&open, addr) else {
                    continue;
                };
                let _ = socket.set_nodelay(true);
                let (shared, config, tls) =
                    (shared.clone(), bound.config.clone(), bound.tls.clone());
                tracker.spawn(async move {
                    if let Err(why) = handle(shared.clone(), socket, addr, config, tls).await {
                        refused!(shared.refusals, peer = %addr, why = %shown(&why),
                            "connection refused");
                    }
                    drop(admitted);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    socket: TcpStream,
    addr: SocketAddr,
    config: Listener,
    tls: Option<TlsAcceptor>,
) -> Result<(), String> {
    let max = shared.config.max_message_size;
    // Raised to max_message_size by a successful hello.
    let limit = Arc::new(AtomicUsize::new(shared.config.limits.pre_auth_max_message));
    let handshake = shared.config.limits.pre_auth_timeout;
    let origins = &shared.config.ws_origins;
    // Lifted by a successful hello.
    let budget = Arc::new(AtomicUsize::new(
        shared.config.limits.pre_auth_max_message * PRE_AUTH_BUDGET,
    ));
    let socket = Budget {
        inner: socket,
        left: budget.clone(),
    };
    let mut peer = Peer {
        addr,
        kind: config.kind,
        auth: config.auth.clone(),
        names: Vec::new(),
        limit: limit.clone(),
        budget,
    };
    match (config.kind, tls) {
        (Kind::Tcp, _) => {
            let (inbound, writer) = netstring(socket, limit);
            serve(shared, peer, inbound, writer).await;
        }
        (Kind::Ws, _) => {
            let (inbound, writer) = websocket(socket, max, handshake, origins).await?;
            serve(shared, peer, inbound, writer).await;
        }
        (Kind::Tls, Some(acceptor)) => {
            let stream = tls_accept(&acceptor, socket, handshake).await?;
            peer.names = peer_names(stream.get_ref().1);
            let (inbound, writer) = netstring(stream, limit);
            serve(shared, peer, inbound, writer).await;
        }
        (Kind::Wss, Some(acceptor)) => {
            let stream = tls_accept(&acceptor, socket, handshake).await?;
            peer.names = peer_names(stream.get_ref().1);
            let (inbound, writer) = websocket(stream, max, handshake, origins).await?;
            serve(shared, peer, inbound, writer).await;
        }
        (Kind::Tls | Kind::Wss, None) => return Err("TLS listener without TLS".into()),
    }
    Ok(())
}

/// Bytes a connection may send before its `hello` succeeds, in `pre_auth_max_message`s
/// (handshakes included): a WebSocket frame is read whole before it can be refused.
const PRE_AUTH_BUDGET: usize = 64;

/// A stream that fails its reads once `left` bytes are used up.
struct Budget<S> {
    inner: S,
    left: Arc<AtomicUsize>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Budget<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = buf.filled().len() - before;
            let left = self.left.load(Ordering::Relaxed);
            if left != usize::MAX {
                if n > left {
                    return Poll::Ready(Err(std::io::Error::other("too many bytes before hello")));
                }
                self.left.fetch_sub(n, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Budget<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

pub(crate) async fn tls_accept<S>(
    acceptor: &TlsAcceptor,
    socket: S,
    within: Duration,
) -> Result<tokio_rustls::server::TlsStream<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match tokio::time::timeout(within, acceptor.accept(socket)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}")),
        Err(_) => Err("TLS handshake timed out".into()),
    }
}

type Writer = Box<dyn FnOnce(QueueRx) -> BoxFuture<'static, ()> + Send>;

/// Netstring framing over a byte stream; frames up to `limit` bytes as it is at the time.
fn netstring<S>(stream: S, limit: Arc<AtomicUsize>) -> (BoxStream<'static, Inbound>, Writer)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let inbound = FramedRead::new(r, NetstringCodec::with_limit(limit))
        .filter_map(|item| async move {
            match item {
                Ok(Frame::Message(b)) => Some(Inbound::Message(b)),
                Ok(Frame::TooLarge { len }) => Some(Inbound::TooLarge(len)),
                Err(CodecError::Malformed(why)) => Some(Inbound::Fatal(ErrorKind::ParseError, why)),
                // The peer went away; the stream ends after an error.
                Err(CodecError::Io(_)) => None,
            }
        })
        .boxed();
    let writer: Writer = Box::new(move |mut rx: QueueRx| {
        async move {
            let mut sink = FramedWrite::new(w, NetstringCodec::default());
            while let Some(first) = rx.recv().await {
                if sink.feed(first).await.is_err() {
                    return;
                }
                // Write out whatever else is queued in one go.
                while let Some(more) = rx.try_recv() {
                    if sink.feed(more).await.is_err() {
                        return;
                    }
                }
                if SinkExt::<Bytes>::flush(&mut sink).await.is_err() {
                    return;
                }
            }
            let _ = SinkExt::<Bytes>::close(&mut sink).await;
        }
        .boxed()
    });
    (inbound, writer)
}

/// Whether a WebSocket request may go on: no `Origin` (not a browser) or an allowed one.
fn origin_allowed(req: &Request, allowed: &[String]) -> bool {
    match req.headers().get("origin") {
        None => true,
        Some(o) => o
            .to_str()
            .is_ok_and(|o| allowed.iter().any(|a| a.eq_ignore_ascii_case(o))),
    }
}

/// WebSocket: the handshake, then one message per frame.
async fn websocket<S>(
    stream: S,
    max: usize,
    within: Duration,
    origins: &[String],
) -> Result<(BoxStream<'static, Inbound>, Writer), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    // The callback's type is tungstenite's.
    #[allow(clippy::result_large_err)]
    let check = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        if origin_allowed(req, origins) {
            return Ok(resp);
        }
        let mut refusal = ErrorResponse::new(Some("origin not allowed".into()));
        *refusal.status_mut() = StatusCode::FORBIDDEN;
        Err(refusal)
    };
    let ws = tokio::time::timeout(
        within,
        tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)),
    )
    .await
    .map_err(|_| "WebSocket handshake timed out".to_owned())?
    .map_err(|e| format!("WebSocket handshake failed: {e}"))?;
    let (mut sink, stream) = ws.split();
    let inbound = stream
        .map(|item| match item {
            Ok(WsMessage::Text(t)) => Some(Some(Inbound::Message(Bytes::from(t)))),
            Ok(WsMessage::Binary(b)) => Some(Some(Inbound::Message(b))),
            Ok(WsMessage::Close(_)) => None,
            Ok(_) => Some(None),
            Err(tungstenite::Error::Capacity(e)) => Some(Some(Inbound::Fatal(
                ErrorKind::TooLarge,
                format!("message too large: {e}"),
            ))),
            Err(_) => None,
        })
        .take_while(|x| std::future::ready(x.is_some()))
        .filter_map(|x| std::future::ready(x.flatten()))
        .boxed();
    let writer: Writer = Box::new(move |mut rx: QueueRx| {
        async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                while let Some(more) = rx.try_recv() {
                    batch.push(more);
                }
                for b in batch {
                    let text = match tungstenite::Utf8Bytes::try_from(b) {
                        Ok(t) => WsMessage::Text(t),
                        Err(_) => continue,
                    };
                    if sink.feed(text).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            let _ = sink.close().await;
        }
        .boxed()
    });
    Ok((inbound, writer))
}
