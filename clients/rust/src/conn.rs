//! One live connection: a writer task, a reader task that answers the server's `ping`,
//! routes responses to their callers and hands notifications to the client, and the
//! handshake (`greetings`, then `hello`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jc_proto::methods::{GreetingsParams, Hello, JobDoneParams, TaskReadyParams};
use jc_proto::{
    ErrorKind, ErrorObject, Id, Message, Method, Notification, Notify, Request, Response,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::transport;

/// What the server tells the client unasked.
#[derive(Debug)]
pub(crate) enum Event {
    JobDone(JobDoneParams),
    TaskReady(TaskReadyParams),
    /// The connection has closed.
    Closed,
}

pub(crate) type EventFn = Arc<dyn Fn(&Arc<Conn>, Event) + Send + Sync>;

type Pending = Mutex<HashMap<i64, oneshot::Sender<Result<Value, ErrorObject>>>>;

/// A connection after its handshake.
pub(crate) struct Conn {
    out: Mutex<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    pending: Pending,
    next_id: AtomicI64,
    closed: watch::Receiver<bool>,
    timeout: Duration,
    reader: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    /// Connects, waits for the greeting and says hello. Returns the connection and the
    /// server's welcome.
    pub(crate) async fn connect(config: &Config, on_event: EventFn) -> Result<(Arc<Conn>, String)> {
        let (mut sink, mut stream) = transport::open(&config.endpoint, config.max_frame).await?;
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let (closed_tx, closed_rx) = watch::channel(false);
        let closed_tx = Arc::new(closed_tx);
        let conn = Arc::new(Conn {
            out: Mutex::new(Some(out_tx)),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicI64::new(1),
            closed: closed_rx,
            timeout: config.call_timeout,
            reader: Mutex::new(None),
        });
        let (greet_tx, greet_rx) = oneshot::channel::<GreetingsParams>();

        let writer_closed = closed_tx.clone();
        tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if let Err(e) = sink.send(bytes).await {
                    tracing::debug!("write failed: {e}");
                    let _ = writer_closed.send(true);
                    return;
                }
            }
            let _ = sink.close().await;
        });

        let weak = Arc::downgrade(&conn);
        let reader = tokio::spawn(async move {
            let mut greet_tx = Some(greet_tx);
            while let Some(item) = stream.next().await {
                let Some(conn) = weak.upgrade() else { return };
                let bytes = match item {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::info!("connection lost: {e}");
                        break;
                    }
                };
                match Message::parse(&bytes) {
                    Ok(Message::Response(r)) => conn.resolve(r),
                    Ok(Message::Request(r)) => conn.answer(r),
                    Ok(Message::Notification(n)) => {
                        if n.method == jc_proto::methods::Greetings::NAME {
                            match (n.params::<jc_proto::methods::Greetings>(), greet_tx.take()) {
                                (Ok(g), Some(tx)) => {
                                    let _ = tx.send(g);
                                }
                                (Err(e), _) => tracing::warn!("bad greetings: {e}"),
                                (Ok(_), None) => {}
                            }
                        } else if let Some(ev) = event(&n) {
                            on_event(&conn, ev);
                        } else {
                            tracing::debug!("ignored notification {}", n.method);
                        }
                    }
                    Err(e) => {
                        tracing::warn!("bad message from the server: {e}");
                        let _ = conn.send(e.response().into());
                    }
                }
            }
            let _ = closed_tx.send(true);
            if let Some(conn) = weak.upgrade() {
                conn.fail_pending();
                on_event(&conn, Event::Closed);
            }
        });
        *lock(&conn.reader) = Some(reader);

        let greetings = match tokio::time::timeout(config.call_timeout, greet_rx).await {
            Ok(Ok(g)) => g,
            // A gateway stopping or starting may do that: connecting again may succeed.
            Ok(Err(_)) => {
                conn.close();
                return Err(Error::Disconnected);
            }
            Err(_) => {
                conn.close();
                return Err(Error::Timeout("waiting for greetings".into()));
            }
        };
        if greetings.who != "jcapi" {
            conn.close();
            return Err(Error::Protocol(format!(
                "greeted by {:?}, not jcapi",
                greetings.who
            )));
        }
        let hello = match conn.call::<Hello>(&config.auth.hello()).await {
            Ok(h) => h,
            Err(e) => {
                conn.close();
                return Err(match e {
                    Error::Remote { error, .. } => Error::Auth(error.message),
                    Error::Disconnected => Error::Auth("the server closed the connection".into()),
                    other => other,
                });
            }
        };
        if !hello.0 {
            conn.close();
            return Err(Error::Auth(hello.1));
        }
        Ok((conn, hello.1))
    }

    fn send(&self, msg: Message) -> Result<()> {
        // The writer may outlive the connection by a moment: what it takes then is lost.
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        match &*lock(&self.out) {
            Some(tx) => tx.send(msg.to_bytes()).map_err(|_| Error::Disconnected),
            None => Err(Error::Disconnected),
        }
    }

    fn resolve(&self, r: Response) {
        let Some(Id::Number(id)) = r.id else {
            if let Err(e) = r.outcome {
                tracing::warn!("the server reported an error: {e}");
            }
            return;
        };
        if let Some(tx) = lock(&self.pending).remove(&id) {
            let _ = tx.send(r.outcome);
        }
    }

    fn answer(&self, r: Request) {
        let outcome = if r.method == jc_proto::methods::Ping::NAME {
            Ok(Value::from("pong"))
        } else {
            Err(ErrorObject::new(
                ErrorKind::MethodNotFound,
                format!("no such method '{}'", r.method),
            ))
        };
        let _ = self.send(
            Response {
                id: Some(r.id),
                outcome,
            }
            .into(),
        );
    }

    fn fail_pending(&self) {
        lock(&self.pending).clear();
    }

    /// Whether the connection has closed.
    pub(crate) fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Resolves when the connection closes.
    pub(crate) async fn closed(&self) {
        let mut rx = self.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Calls a method and waits for its result.
    pub(crate) async fn call<M: Method>(&self, params: &M::Params) -> Result<M::Result> {
        let params = serde_json::to_value(params)
            .map_err(|e| Error::Protocol(format!("{} parameters: {e}", M::NAME)))?;
        let v = self.call_value(M::NAME, params).await?;
        serde_json::from_value(v)
            .map_err(|e| Error::Protocol(format!("unexpected {} result: {e}", M::NAME)))
    }

    /// Calls a method by name with raw JSON parameters.
    pub(crate) async fn call_value(&self, method: &str, params: Value) -> Result<Value> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if self.is_closed() {
            lock(&self.pending).remove(&id);
            return Err(Error::Disconnected);
        }
        let req = Request {
            id: Id::Number(id),
            method: method.to_owned(),
            params: Some(params),
        };
        if let Err(e) = self.send(req.into()) {
            lock(&self.pending).remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(error))) => Err(Error::Remote {
                method: method.to_owned(),
                error,
            }),
            Ok(Err(_)) => Err(Error::Disconnected),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(Error::Timeout(method.to_owned()))
            }
        }
    }

    /// Sends a notification.
    pub(crate) fn notify<N: Notify>(&self, params: &N::Params) -> Result<()> {
        let n = Notification::new::<N>(params)?;
        self.send(n.into())
    }

    /// Closes the connection: pending writes are flushed, then the stream is shut down.
    pub(crate) fn close(&self) {
        lock(&self.out).take();
        if let Some(reader) = lock(&self.reader).take() {
            let closed = self.closed.clone();
            tokio::spawn(async move {
                let mut closed = closed;
                // Give the writer a moment to flush and the server to hang up, then stop
                // reading whatever comes.
                let _ = tokio::time::timeout(Duration::from_secs(2), closed.wait_for(|c| *c)).await;
                reader.abort();
            });
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(reader) = lock(&self.reader).take() {
            reader.abort();
        }
    }
}

fn event(n: &Notification) -> Option<Event> {
    match n.method.as_str() {
        m if m == jc_proto::methods::JobDone::NAME => {
            match n.params::<jc_proto::methods::JobDone>() {
                Ok(p) => Some(Event::JobDone(p)),
                Err(e) => {
                    tracing::warn!("bad job_done: {e}");
                    None
                }
            }
        }
        m if m == jc_proto::methods::TaskReady::NAME => {
            match n.params::<jc_proto::methods::TaskReady>() {
                Ok(p) => Some(Event::TaskReady(p)),
                Err(e) => {
                    tracing::warn!("bad task_ready: {e}");
                    None
                }
            }
        }
        _ => None,
    }
}
