//! Opening a connection: TCP or TLS with netstring frames, or WebSocket text frames. Either
//! way the rest of the client sees a sink and a stream of whole messages.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::{future, Sink, SinkExt, Stream, StreamExt};
use jc_proto::{Frame, NetstringCodec};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::config::{Endpoint, TlsOptions};
use crate::error::{Error, Result};

/// Outgoing messages (JSON text).
pub(crate) type MsgSink = Pin<Box<dyn Sink<Vec<u8>, Error = Error> + Send>>;
/// Incoming messages; the stream ends when the peer closes.
pub(crate) type MsgStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>>> + Send>>;

/// Opens the connection the endpoint names.
pub(crate) async fn open(endpoint: &Endpoint, max_frame: usize) -> Result<(MsgSink, MsgStream)> {
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let tcp = tcp(host, *port).await?;
            Ok(netstrings(tcp, max_frame))
        }
        Endpoint::Tls { host, port, tls } => {
            let tcp = tcp(host, *port).await?;
            let stream = tls_handshake(tcp, host, tls).await?;
            Ok(netstrings(stream, max_frame))
        }
        Endpoint::WebSocket { url, tls } => websocket(url, tls, max_frame).await,
    }
}

async fn tcp(host: &str, port: u16) -> Result<TcpStream> {
    let s = TcpStream::connect((host, port))
        .await
        .map_err(|source| Error::Connect {
            addr: format!("{host}:{port}"),
            source,
        })?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

fn netstrings<S>(stream: S, max_frame: usize) -> (MsgSink, MsgStream)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (r, w) = tokio::io::split(stream);
    let sink = SinkExt::<Vec<u8>>::sink_map_err(
        FramedWrite::new(w, NetstringCodec::new(max_frame)),
        |e| Error::Protocol(e.to_string()),
    );
    let stream = FramedRead::new(r, NetstringCodec::new(max_frame)).filter_map(|f| {
        future::ready(match f {
            Ok(Frame::Message(b)) => Some(Ok(b.to_vec())),
            Ok(Frame::TooLarge { len }) => {
                tracing::warn!("skipped a message of {len} bytes from the server: too large");
                None
            }
            Err(jc_proto::CodecError::Io(e)) => Some(Err(Error::Io(e))),
            Err(e) => Some(Err(Error::Protocol(e.to_string()))),
        })
    });
    (Box::pin(sink), Box::pin(stream))
}

/// A rustls client configuration: the CA file's certificates (or the system's roots) and
/// the client certificate when one is given.
pub(crate) fn client_config(tls: &TlsOptions) -> Result<ClientConfig> {
    let mut roots = RootCertStore::empty();
    if let Some(ca) = &tls.ca {
        let certs = CertificateDer::pem_file_iter(ca)
            .map_err(|e| Error::Config(format!("CA file {}: {e}", ca.display())))?;
        for cert in certs {
            let cert = cert.map_err(|e| Error::Config(format!("CA file {}: {e}", ca.display())))?;
            roots
                .add(cert)
                .map_err(|e| Error::Config(format!("CA file {}: {e}", ca.display())))?;
        }
        if roots.is_empty() {
            return Err(Error::Config(format!(
                "CA file {} holds no certificate",
                ca.display()
            )));
        }
    } else {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            let _ = roots.add(cert);
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| Error::Config(format!("certificate {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Config(format!("key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Tls(e.to_string()))
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        _ => Err(Error::Config(
            "a client certificate needs both the certificate and the key".into(),
        )),
    }
}

async fn tls_handshake<S>(
    stream: S,
    host: &str,
    tls: &TlsOptions,
) -> Result<tokio_rustls::client::TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = TlsConnector::from(Arc::new(client_config(tls)?));
    let name = tls.server_name.as_deref().unwrap_or(host);
    let name = ServerName::try_from(name.to_owned())
        .map_err(|e| Error::Config(format!("server name {name:?}: {e}")))?;
    connector
        .connect(name, stream)
        .await
        .map_err(|e| Error::Tls(e.to_string()))
}

async fn websocket(url: &str, tls: &TlsOptions, max_frame: usize) -> Result<(MsgSink, MsgStream)> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Error::Config(format!("WebSocket URL {url:?}: {e}")))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => {
            return Err(Error::Config(format!(
                "WebSocket URL {url:?}: the scheme must be ws or wss"
            )))
        }
    };
    let host = uri
        .host()
        .ok_or_else(|| Error::Config(format!("WebSocket URL {url:?} has no host")))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if secure { 443 } else { 80 });
    let tcp = tcp(&host, port).await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_frame))
        .max_frame_size(Some(max_frame));
    if secure {
        let stream = tls_handshake(tcp, &host, tls).await?;
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))?;
        Ok(ws_split(ws))
    } else {
        let (ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
            .await
            .map_err(|e| Error::WebSocket(e.to_string()))?;
        Ok(ws_split(ws))
    }
}

fn ws_split<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> (MsgSink, MsgStream)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let sink = sink
        .sink_map_err(|e| Error::WebSocket(e.to_string()))
        .with(|bytes: Vec<u8>| {
            future::ready(
                String::from_utf8(bytes)
                    .map(WsMessage::text)
                    .map_err(|e| Error::Protocol(e.to_string())),
            )
        });
    let stream = stream
        .take_while(|m| future::ready(!matches!(m, Ok(WsMessage::Close(_)))))
        .filter_map(|m| {
            future::ready(match m {
                Ok(WsMessage::Text(t)) => Some(Ok(t.as_bytes().to_vec())),
                Ok(WsMessage::Binary(b)) => Some(Ok(b.to_vec())),
                Ok(_) => None,
                Err(e) => Some(Err(Error::WebSocket(e.to_string()))),
            })
        });
    (Box::pin(sink), Box::pin(stream))
}
