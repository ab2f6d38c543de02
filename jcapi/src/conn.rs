//! One client or worker connection, whatever its transport.
//!
//! A connection is a task of its own reading [`Inbound`] messages, plus a writer task fed by
//! a bounded queue (so a slow peer delays only itself; the dispatcher never waits for it and
//! closes it when its queue is full). The conversation: `greetings`, then `hello`; after a
//! welcome the client and worker methods. Requests are answered in order, but for
//! `tasks_done`, answered once its results are applied (see [`crate::commit`]) while the
//! connection goes on. After the first
//! `announce` the server pings the worker every `ping_interval` and closes the connection
//! when an answer takes longer than `ping_timeout`. However a worker connection ends, the
//! engine is told (`disconnect`), so the tasks it held follow their action's `retryable`
//! policy.
//!
//! Before a successful `hello` a connection is held to the pre-auth limits: small messages
//! (a larger one closes it), a small write queue, and the pre-auth time-out. After it, a
//! client that is no worker, waits for no job and sends nothing for the idle time-out is
//! closed. A `task_done` for a task another connection here took is refused; one for a cookie
//! no connection here holds (a worker resending after its gateway died) goes to the engine.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use jc_proto::methods::{
    self, Announce, AnnounceResult, CreateJob, CreateJobResult, CreateSlotgroup, DoneOutcome,
    GetJobStatus, GetTask, GetTasks, GreetingsParams, Hello, HelloResult, JobRef, TaskDone,
    TaskDoneParams, TaskGiven, TasksDone, Withdraw,
};
use jc_proto::{
    ErrorKind, ErrorObject, Id, Message, Method, Notification, Notify, Request, Response,
};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Interval};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{self, ok};
use crate::commit::{self, Done, Pending};
use crate::config::{AuthMethod, Kind};
use crate::dispatch::{ConnHandle, Held, NameTaken, NotFinishing, QueueRx};
use crate::guard::{refused, shown, Login};
use crate::metrics::Metrics;
use crate::server::{action_channel, check_job, lock, wait_timeout, Shared};

/// What a transport delivers.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One message's bytes.
    Message(Bytes),
    /// A message over the size limit (skipped).
    TooLarge(u64),
    /// Broken framing (or a message too large to skip): answered with this error, then
    /// the connection closes since it cannot go on.
    Fatal(ErrorKind, String),
}

/// Who is on the other end.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub kind: Kind,
    pub auth: Vec<AuthMethod>,
    /// The names of the verified TLS client certificate.
    pub names: Vec<String>,
    /// The largest message the transport takes now (raised by a successful `hello`).
    pub limit: Arc<AtomicUsize>,
    /// Bytes the peer may still send before a successful `hello` (then `usize::MAX`).
    pub budget: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct Worker {
    name: String,
    id: i64,
}

/// What to do once a response is queued.
#[derive(Debug)]
enum After {
    Close,
    /// Send `job_done` when the job ends (a `create_job` time-out in seconds); the job's
    /// status is read at once when it may have ended before (always, for
    /// `get_job_status`: true), else only when its `job:finished` came already.
    WaitJob(i64, Option<f64>, bool),
    Sweep,
    /// Free the slot of a `get_task` that found nothing, once its empty answer is queued
    /// (an offer for the slot must not overtake the answer).
    Unhold(Held),
}

struct Conn {
    shared: Arc<Shared>,
    handle: ConnHandle,
    peer: Peer,
    who: Option<String>,
    worker: Option<Worker>,
    /// Announced actions: name -> action id.
    actions: HashMap<String, i32>,
    next_call: i64,
    /// The outstanding ping: its id and when it is too late.
    ping: Option<(i64, Instant)>,
    after: Vec<After>,
    closing: bool,
    /// Results of this connection not yet answered by the database.
    pending: Arc<Pending>,
}

fn error(kind: ErrorKind, msg: impl Into<String>) -> ErrorObject {
    ErrorObject::new(kind, msg)
}

/// Serves one connection until it closes, the peer is too slow or the gateway stops.
/// `writer` consumes the outgoing queue (it owns the transport's write half).
pub(crate) async fn serve(
    shared: Arc<Shared>,
    peer: Peer,
    mut inbound: BoxStream<'static, Inbound>,
    writer: impl FnOnce(QueueRx) -> futures_util::future::BoxFuture<'static, ()>,
) {
    let (tx, rx) = mpsc::channel(shared.config.write_queue);
    let kill = CancellationToken::new();
    let id = shared.next_conn_id();
    let _registered = crate::admin::register(&shared, id, peer.addr, peer.kind);
    let limits = &shared.config.limits;
    let handle = ConnHandle::new(id, tx, kill.clone(), shared.metrics.clone());
    handle.set_limits(limits.pre_auth_write_queue_bytes, limits.write_timeout);
    let mut writer = tokio::spawn(writer(handle.queue_rx(rx)));
    // At shutdown a connection stuck writing to a peer that does not read is cut off too.
    let mut stopping = shared.stop.clone();
    let cut = kill.clone();
    let cutter = tokio::spawn(async move {
        let _ = stopping.changed().await;
        cut.cancel();
    });
    Metrics::inc(&shared.metrics.connections);
    shared
        .metrics
        .open_connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::debug!(conn = id, peer = %peer.addr, kind = peer.kind.name(), "connected");
    let mut stop = shared.stop.clone();
    let mut rejoin = shared.rejoin.subscribe();
    let mut conn = Conn {
        shared: shared.clone(),
        handle,
        peer,
        who: None,
        worker: None,
        actions: HashMap::new(),
        next_call: 0,
        ping: None,
        after: Vec::new(),
        closing: false,
        pending: Arc::default(),
    };
    let greetings = Notification::new::<methods::Greetings>(&GreetingsParams {
        who: "jcapi".into(),
        version: jc_proto::PROTOCOL_VERSION.into(),
    });
    if let Ok(g) = greetings {
        conn.send(g.into()).await;
    }
    let mut pinger: Option<Interval> = None;
    let pre_auth_until = Instant::now() + shared.config.limits.pre_auth_timeout;
    let idle = shared.config.limits.idle_timeout;
    let mut last_in = Instant::now();
    while !*stop.borrow() {
        let deadline = conn.ping.map(|(_, d)| d);
        let timer = if conn.who.is_none() {
            pre_auth_until
        } else {
            last_in + idle
        };
        tokio::select! {
            _ = kill.cancelled() => break,
            _ = stop.changed() => break,
            // The engine withdrew this gateway's workers: the worker announces again.
            _ = rejoin.changed(), if conn.worker.is_some() => break,
            item = inbound.next() => match item {
                None => break,
                Some(Inbound::Message(bytes)) => {
                    last_in = Instant::now();
                    conn.on_message(&bytes).await
                }
                Some(Inbound::TooLarge(len)) => {
                    last_in = Instant::now();
                    Metrics::inc(&shared.metrics.bad_messages);
                    let max = conn.peer.limit.load(Ordering::Relaxed);
                    conn.send(Response::error(None, error(ErrorKind::TooLarge,
                        format!("a message of {len} bytes is over the limit of {max}"))).into()).await;
                    if conn.who.is_none() {
                        break;
                    }
                }
                Some(Inbound::Fatal(kind, why)) => {
                    Metrics::inc(&shared.metrics.bad_messages);
                    conn.send(Response::error(None, error(kind, why)).into()).await;
                    break;
                }
            },
            _ = async { match pinger.as_mut() {
                Some(t) => { t.tick().await; }
                None => std::future::pending().await,
            } } => conn.send_ping().await,
            _ = async { match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            } } => {
                Metrics::inc(&shared.metrics.ping_timeouts);
                tracing::info!(conn = id, worker = conn.worker.as_ref().map(|w| w.name.as_str()),
                    "no answer to ping: disconnecting");
                break;
            }
            _ = tokio::time::sleep_until(timer) => {
                if conn.who.is_none() {
                    Metrics::inc(&shared.metrics.connections_refused);
                    refused!(shared.refusals, conn = id, peer = %conn.peer.addr,
                        "no hello in time: closing");
                    conn.send(Response::error(None, error(ErrorKind::NotAuthenticated,
                        "no hello in time")).into()).await;
                    break;
                }
                // Workers are pinged, and a client waiting for a job has reason to be quiet.
                let waits = lock(&shared.waiters).has_conn(id);
                if conn.worker.is_none() && !waits {
                    Metrics::inc(&shared.metrics.connections_refused);
                    tracing::info!(conn = id, "idle: closing");
                    break;
                }
                last_in = Instant::now();
            }
        }
        if conn.closing {
            break;
        }
        if pinger.is_none() && conn.worker.is_some() {
            let every = shared.config.ping_interval;
            pinger = Some(tokio::time::interval_at(Instant::now() + every, every));
        }
    }
    cutter.abort();
    conn.cleanup().await;
    shared
        .metrics
        .open_connections
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    let stopping = *shared.stop.borrow();
    let too_slow = kill.is_cancelled() && !stopping;
    drop(conn);
    // The writer ends once every handle is gone and the queue is written out; a peer too
    // slow to read gets nothing more.
    let flush = std::time::Duration::from_secs(if stopping { 1 } else { 5 });
    if too_slow || tokio::time::timeout(flush, &mut writer).await.is_err() {
        writer.abort();
    }
    tracing::debug!(conn = id, "closed");
}

impl Conn {
    async fn send(&self, msg: Message) {
        self.handle.send(&msg).await;
    }

    async fn on_message(&mut self, bytes: &[u8]) {
        Metrics::inc(&self.shared.metrics.messages_in);
        // WebSocket frames come whole up to max_message_size: held to the pre-auth size here.
        let limit = self.peer.limit.load(Ordering::Relaxed);
        if bytes.len() > limit {
            Metrics::inc(&self.shared.metrics.bad_messages);
            let msg = format!(
                "a message of {} bytes is over the limit of {limit}",
                bytes.len()
            );
            self.send(Response::error(None, error(ErrorKind::TooLarge, msg)).into())
                .await;
            self.closing = self.who.is_none();
            return;
        }
        match Message::parse(bytes) {
            Err(e) => {
                Metrics::inc(&self.shared.metrics.bad_messages);
                self.send(e.response().into()).await;
            }
            Ok(Message::Request(r)) if r.method == TasksDone::NAME && self.who.is_some() => {
                self.tasks_done(r)
            }
            Ok(Message::Request(r)) => {
                let started = std::time::Instant::now();
                let outcome = self.request(&r).await;
                self.shared.metrics.requests.observe(started.elapsed());
                self.send(
                    Response {
                        id: Some(r.id),
                        outcome,
                    }
                    .into(),
                )
                .await;
                self.run_after().await;
            }
            Ok(Message::Notification(n)) => self.notification(n).await,
            Ok(Message::Response(r)) => self.response(r),
        }
    }

    async fn run_after(&mut self) {
        for a in std::mem::take(&mut self.after) {
            match a {
                After::Close => self.closing = true,
                After::Sweep => self.shared.sweep.notify_one(),
                After::Unhold(held) => lock(&self.shared.dispatch).unhold(held, Instant::now()),
                After::WaitJob(job_id, timeout, check) => {
                    let (wait, ended) = lock(&self.shared.waiters).add(job_id, self.handle.clone());
                    if let Some(secs) = timeout.filter(|s| *s > 0.0 && s.is_finite()) {
                        let after = std::time::Duration::from_secs_f64(secs.min(1e9));
                        wait_timeout(self.shared.clone(), job_id, wait, after);
                    }
                    // It may have ended already (steps without workers run inline); else
                    // its job:finished is still to come, and no status need be read now.
                    if check || ended {
                        check_job(&self.shared, job_id);
                    }
                }
            }
        }
    }

    async fn request(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        match r.method.as_str() {
            Hello::NAME => return self.hello(r).await,
            methods::Ping::NAME => return ok::<methods::Ping>("pong".into()),
            _ => {}
        }
        let Some(who) = self.who.clone() else {
            return Err(if methods::NAMES.contains(&r.method.as_str()) {
                error(ErrorKind::NotAuthenticated, "call hello first")
            } else {
                error(ErrorKind::MethodNotFound, format!("no method {}", r.method))
            });
        };
        if let Some(result) = client::call(&self.shared, &who, r).await {
            self.after_client_call(r, &result);
            return result;
        }
        match r.method.as_str() {
            CreateSlotgroup::NAME => self.create_slotgroup(r),
            Announce::NAME => self.announce(&who, r).await,
            Withdraw::NAME => self.withdraw(r).await,
            GetTask::NAME => self.get_task(r).await,
            GetTasks::NAME => self.get_tasks(r).await,
            _ => Err(error(
                ErrorKind::MethodNotFound,
                format!("no method {}", r.method),
            )),
        }
    }

    /// `create_job` and `get_job_status` with `notify` wait for the job to end.
    fn after_client_call(&mut self, r: &Request, result: &Result<Value, ErrorObject>) {
        let Ok(value) = result else { return };
        match r.method.as_str() {
            CreateJob::NAME => {
                let created = serde_json::from_value::<CreateJobResult>(value.clone());
                if let (Ok(CreateJobResult(Some(job_id), _)), Ok(p)) =
                    (created, r.params::<CreateJob>())
                {
                    // a key may name a job that ended already
                    self.after
                        .push(After::WaitJob(job_id, p.timeout, p.key.is_some()));
                }
            }
            GetJobStatus::NAME => {
                if let Ok(p) = r.params::<GetJobStatus>() {
                    if p.notify == Some(true) {
                        self.after.push(After::WaitJob(p.job_id, None, true));
                    }
                }
            }
            _ => {}
        }
    }

    async fn hello(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<Hello>()?;
        if let Some(who) = &self.who {
            return Err(error(
                ErrorKind::Refused,
                format!("already authenticated as {who}"),
            ));
        }
        let login = Login {
            who: p.who.clone(),
            method: p.method.clone(),
            token: p.token.clone(),
            peer_names: self.peer.names.clone(),
        };
        let checked = self
            .shared
            .gate
            .check(self.peer.addr.ip(), login, &self.peer.auth)
            .await;
        match checked {
            Ok(()) => {
                tracing::info!(conn = self.handle.id, who = %shown(&p.who),
                    method = %shown(&p.method), peer = %self.peer.addr, "hello");
                let msg = format!("welcome to the clientapi {}!", p.who);
                crate::admin::hello(&self.shared, self.handle.id, &p.who);
                self.who = Some(p.who);
                let limits = &self.shared.config.limits;
                self.peer
                    .limit
                    .store(self.shared.config.max_message_size, Ordering::Relaxed);
                self.peer.budget.store(usize::MAX, Ordering::Relaxed);
                self.handle
                    .set_limits(limits.write_queue_bytes, limits.write_timeout);
                ok::<Hello>(HelloResult(true, msg))
            }
            Err(why) => {
                Metrics::inc(&self.shared.metrics.auth_failures);
                refused!(self.shared.refusals, conn = self.handle.id, who = %shown(&p.who),
                    method = %shown(&p.method), peer = %self.peer.addr, why = %shown(&why),
                    "hello refused");
                self.after.push(After::Close);
                ok::<Hello>(HelloResult(false, why))
            }
        }
    }

    fn create_slotgroup(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<CreateSlotgroup>()?;
        let max = self.shared.config.limits.max_slots;
        if p.slots == 0 || p.slots > max {
            return Err(error(
                ErrorKind::InvalidParams,
                format!("slots should be a number from 1 to {max}"),
            ));
        }
        if !lock(&self.shared.dispatch).create_group(self.handle.id, &p.name, p.slots) {
            return Err(error(
                ErrorKind::Refused,
                format!("slotgroup {} already exists", p.name),
            ));
        }
        ok::<CreateSlotgroup>(true)
    }

    async fn announce(&mut self, who: &str, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<Announce>()?;
        let refuse = |msg: String| ok::<Announce>(AnnounceResult(false, msg));
        let conn = self.handle.id;
        if p.slots.is_some() && p.slotgroup.is_some() {
            return refuse("cannot provide both slotgroup and slots".into());
        }
        if let Some(sg) = &p.slotgroup {
            if !lock(&self.shared.dispatch).has_group(conn, sg) {
                return refuse(format!("slotgroup {sg} does not exist"));
            }
        }
        let slots = p.slots.unwrap_or(1);
        let max = self.shared.config.limits.max_slots;
        if slots == 0 || slots > max {
            return refuse(format!("slots should be a number from 1 to {max}"));
        }
        if p.filter.as_ref().is_some_and(|f| !f.is_object()) {
            return refuse("filter must be a JSON object".into());
        }
        let name = p
            .workername
            .clone()
            .or_else(|| self.worker.as_ref().map(|w| w.name.clone()))
            .unwrap_or_else(|| who.to_owned());
        if let Some(w) = &self.worker {
            if w.name != name {
                return refuse(format!("this connection is worker {}", w.name));
            }
        }
        if self.actions.contains_key(&p.actionname) {
            return refuse(format!("{} is already announced", p.actionname));
        }
        match lock(&self.shared.dispatch).claim_name(conn, who, &name) {
            Ok(()) => {}
            Err(NameTaken::OtherUser) => {
                return refuse(format!("worker name {name} belongs to another user"))
            }
            Err(NameTaken::OtherConnection) => {
                return refuse(format!(
                    "worker name {name} is in use by another connection"
                ))
            }
        }
        let announced = async {
            let db = self.shared.db().await?;
            let gateway = *self.shared.gateway.borrow();
            let worker_id = if gateway == 0 {
                jc_db::announce(&**db, &name, &p.actionname, Some(who), p.filter.as_ref()).await
            } else {
                jc_db::announce_via(
                    &**db,
                    gateway,
                    &name,
                    &p.actionname,
                    Some(who),
                    p.filter.as_ref(),
                )
                .await
            }
            .map_err(|e| self.shared.db_error(e))?;
            if gateway == 0 {
                // Attached when the gateway registers, or now if it did meanwhile.
                lock(&self.shared.unattached).push(worker_id);
                let now = *self.shared.gateway.borrow();
                if now != 0 {
                    jc_db::gateway_attach(&**db, worker_id, now)
                        .await
                        .map_err(|e| self.shared.db_error(e))?;
                }
            }
            let action_id = jc_db::announced_action(&**db, worker_id, &p.actionname)
                .await
                .map_err(|e| self.shared.db_error(e))?
                .ok_or_else(|| error(ErrorKind::UnknownWorkflow, "the announcement is gone"))?;
            Ok::<_, ErrorObject>((worker_id, action_id))
        }
        .await;
        let (worker_id, action_id) = match announced {
            Ok(ids) => ids,
            Err(e) => {
                if self.worker.is_none() {
                    lock(&self.shared.dispatch).release_name(conn);
                }
                return refuse(e.message);
            }
        };
        let group = p
            .slotgroup
            .clone()
            .unwrap_or_else(|| format!("_{}", p.actionname));
        let new = {
            let mut d = lock(&self.shared.dispatch);
            if p.slotgroup.is_none() {
                d.create_group(conn, &group, slots);
            }
            d.announce(&self.handle, &name, action_id, &p.actionname, &group)
        };
        if self.worker.is_none() {
            self.shared
                .metrics
                .workers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.worker = Some(Worker {
            name: name.clone(),
            id: worker_id,
        });
        self.actions.insert(p.actionname.clone(), action_id);
        if new {
            self.shared.listen_on(action_channel(action_id)).await;
        }
        tracing::info!(conn, worker = %shown(&name), action = %shown(&p.actionname), action_id,
            slots, "announce");
        self.after.push(After::Sweep);
        ok::<Announce>(AnnounceResult(true, "success".into()))
    }

    async fn withdraw(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<Withdraw>()?;
        let (Some(w), Some(action_id)) = (&self.worker, self.actions.remove(&p.actionname)) else {
            return Err(error(
                ErrorKind::UnknownWorker,
                format!("{} was not announced on this connection", p.actionname),
            ));
        };
        if lock(&self.shared.dispatch).withdraw(self.handle.id, action_id, Instant::now()) {
            self.shared.unlisten(action_channel(action_id));
        }
        let db = self.shared.db().await?;
        jc_db::withdraw(&**db, &w.name, &p.actionname)
            .await
            .map_err(|e| self.shared.db_error(e))?;
        ok::<Withdraw>(true)
    }

    async fn get_task(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<GetTask>()?;
        let Some(w) = &self.worker else {
            return Err(error(ErrorKind::UnknownWorker, "announce an action first"));
        };
        if !self.actions.contains_key(&p.actionname) {
            return Err(error(
                ErrorKind::UnknownWorker,
                format!("{} was not announced on this connection", p.actionname),
            ));
        }
        let Some(claim) = lock(&self.shared.dispatch).claim(self.handle.id, &p.job_id) else {
            // Not offered to this worker (or no longer): nothing to take.
            return ok::<GetTask>(None);
        };
        let job_id = match p.job_id {
            JobRef::Id(n) => Some(n),
            JobRef::Token(_) => None,
        };
        let conn = self.handle.id;
        let taken = crate::take::take(
            &self.shared,
            &w.name,
            &p.actionname,
            jc_db::TakeWhat::Job(job_id),
        )
        .await
        .map(|tasks| tasks.into_iter().next());
        let now = Instant::now();
        match taken {
            Ok(Some(task)) => {
                lock(&self.shared.dispatch).taken(
                    conn,
                    task.cookie.clone(),
                    task.job_id,
                    claim,
                    now,
                );
                ok::<GetTask>(Some(TaskGiven(
                    task.job_id,
                    task.cookie,
                    task.inargs,
                    task.env,
                )))
            }
            Ok(None) => {
                let held = lock(&self.shared.dispatch).not_taken(conn, claim);
                self.after.push(After::Unhold(held));
                ok::<GetTask>(None)
            }
            Err(e) => {
                let held = lock(&self.shared.dispatch).not_taken(conn, claim);
                self.after.push(After::Unhold(held));
                Err(e)
            }
        }
    }

    /// `get_tasks`: as many ready tasks as asked for, the worker's offers of the action and
    /// its free slots allow, in one call of the database.
    async fn get_tasks(&mut self, r: &Request) -> Result<Value, ErrorObject> {
        let p = r.params::<GetTasks>()?;
        let Some(w) = &self.worker else {
            return Err(error(ErrorKind::UnknownWorker, "announce an action first"));
        };
        let Some(&action_id) = self.actions.get(&p.actionname) else {
            return Err(error(
                ErrorKind::UnknownWorker,
                format!("{} was not announced on this connection", p.actionname),
            ));
        };
        let conn = self.handle.id;
        let count = p.count.min(commit::MAX_BATCH as u32);
        let Some(claim) = lock(&self.shared.dispatch).claim_batch(conn, action_id, count) else {
            return ok::<GetTasks>(Vec::new());
        };
        let limit = i32::try_from(claim.count).unwrap_or(i32::MAX);
        let taken = crate::take::take(
            &self.shared,
            &w.name,
            &p.actionname,
            jc_db::TakeWhat::Up(limit),
        )
        .await;
        let now = Instant::now();
        // An error counts as nothing found: the sweep finds the ready tasks again.
        let tasks = match &taken {
            Ok(tasks) => tasks.iter().map(|t| (t.cookie.clone(), t.job_id)).collect(),
            Err(_) => Vec::new(),
        };
        tracing::debug!(conn, action = %shown(&p.actionname), asked = p.count,
            given = tasks.len(), "get_tasks");
        let held = lock(&self.shared.dispatch).taken_batch(conn, tasks, claim, now);
        self.after.push(After::Unhold(held));
        let given = taken?
            .into_iter()
            .map(|t| TaskGiven(t.job_id, t.cookie, t.inargs, t.env))
            .collect();
        ok::<GetTasks>(given)
    }

    async fn notification(&mut self, n: Notification) {
        if n.method != TaskDone::NAME {
            tracing::debug!(conn = self.handle.id, method = %shown(&n.method),
                "notification ignored");
            return;
        }
        if self.who.is_none() {
            tracing::info!(conn = self.handle.id, "task_done before hello ignored");
            return;
        }
        let p = match n.params::<TaskDone>() {
            Ok(p) => p,
            // The error would quote the params (outargs): not logged.
            Err(_) => {
                Metrics::inc(&self.shared.metrics.bad_messages);
                tracing::warn!(conn = self.handle.id, "bad task_done");
                return;
            }
        };
        if let Err(e) = self.finish(p, None) {
            Metrics::inc(&self.shared.metrics.bad_messages);
            tracing::info!(conn = self.handle.id, error = %e.message, "task_done refused");
        }
    }

    /// Sends a result on to the group commit ([`commit`]) if this connection took its
    /// task; `reply` is told what became of it.
    fn finish(
        &self,
        p: TaskDoneParams,
        reply: Option<oneshot::Sender<commit::Outcome>>,
    ) -> Result<(), ErrorObject> {
        if Uuid::parse_str(&p.cookie).is_err() {
            return Err(error(ErrorKind::UnknownCookie, "not a cookie"));
        }
        let finishing = lock(&self.shared.dispatch).finishing(self.handle.id, &p.cookie);
        match finishing {
            Ok(true) => {}
            // A resend uses no slot: bounded apart, so the queue stays bounded (a whole
            // batch of resends fits beside every slot's result).
            Ok(false)
                if self.pending.len()
                    >= self.shared.config.limits.max_slots as usize + commit::MAX_BATCH =>
            {
                return Err(error(
                    ErrorKind::Refused,
                    "too many results of tasks taken elsewhere on their way: send again later",
                ))
            }
            Ok(false) => {}
            Err(NotFinishing::NotTaken) => {
                return Err(error(
                    ErrorKind::UnknownCookie,
                    "the task was taken on another connection",
                ))
            }
            Err(NotFinishing::Finishing) => {
                return Err(error(
                    ErrorKind::Refused,
                    "a result for this task is being applied",
                ))
            }
        }
        Metrics::inc(&self.shared.metrics.tasks_done);
        let done = Done::new(p.cookie, p.outargs, &self.pending, reply);
        if self.shared.commits.send(done).is_err() {
            return Err(error(ErrorKind::InternalError, "the gateway is stopping"));
        }
        Ok(())
    }

    /// `tasks_done`: every result goes to the group commit (or is refused at once); the
    /// answer is sent when the database has answered for all of them, so the connection
    /// goes on reading meanwhile (its pings, its next `get_tasks`).
    fn tasks_done(&mut self, r: Request) {
        let started = std::time::Instant::now();
        let handle = self.handle.clone();
        let shared = self.shared.clone();
        let id = r.id.clone();
        let answer = move |outcome: Result<Value, ErrorObject>| {
            Message::from(Response {
                id: Some(id.clone()),
                outcome,
            })
        };
        let p = match r.params::<TasksDone>() {
            Ok(_) if self.worker.is_none() => {
                let e = error(ErrorKind::UnknownWorker, "announce an action first");
                handle.push(&answer(Err(e)));
                return;
            }
            Ok(p) if p.results.len() > commit::MAX_BATCH => {
                let e = error(
                    ErrorKind::InvalidParams,
                    format!("tasks_done takes at most {} results", commit::MAX_BATCH),
                );
                handle.push(&answer(Err(e)));
                return;
            }
            Ok(p) => p,
            Err(e) => {
                handle.push(&answer(Err(e)));
                return;
            }
        };
        tracing::debug!(
            conn = self.handle.id,
            results = p.results.len(),
            "tasks_done request"
        );
        let mut waits = Vec::with_capacity(p.results.len());
        for result in p.results {
            let cookie = result.cookie.clone();
            let sent = if result.outargs.is_object() {
                let (tx, rx) = oneshot::channel();
                self.finish(result, Some(tx)).map(|()| rx)
            } else {
                Err(error(
                    ErrorKind::InvalidParams,
                    "outargs must be a JSON object",
                ))
            };
            waits.push((cookie, sent));
        }
        tokio::spawn(async move {
            let mut outcomes = Vec::with_capacity(waits.len());
            for (cookie, sent) in waits {
                let outcome = match sent {
                    Ok(rx) => rx.await.unwrap_or_else(|_| {
                        Err(error(ErrorKind::InternalError, "the gateway is stopping"))
                    }),
                    Err(e) => Err(e),
                };
                outcomes.push(DoneOutcome {
                    cookie,
                    ok: outcome.is_ok(),
                    error: outcome.err(),
                });
            }
            let value = ok::<TasksDone>(outcomes);
            handle.send(&answer(value)).await;
            shared.metrics.requests.observe(started.elapsed());
        });
    }

    fn response(&mut self, r: Response) {
        let Some((id, _)) = self.ping else { return };
        if r.id != Some(Id::Number(id)) {
            return;
        }
        self.ping = None;
        // Any answer, even an error, shows the worker is alive.
        if let Some(w) = &self.worker {
            let (shared, worker_id) = (self.shared.clone(), w.id);
            tokio::spawn(async move {
                if let Ok(db) = shared.db().await {
                    match jc_db::ping(&**db, worker_id).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(worker_id, "ping: the worker is no longer live")
                        }
                        Err(e) => {
                            shared.db_error(e);
                        }
                    }
                }
            });
        }
    }

    async fn send_ping(&mut self) {
        if self.ping.is_some() {
            return;
        }
        self.next_call += 1;
        let id = self.next_call;
        if let Ok(r) = Request::new::<methods::Ping>(id, &methods::PingParams {}) {
            self.ping = Some((id, Instant::now() + self.shared.config.ping_timeout));
            self.send(r.into()).await;
        }
    }

    /// Ends the worker in the engine, so its tasks follow their action's policy now rather
    /// than at the maestro's next worker check; tried again while the database is away.
    async fn disconnect(&self, name: &str) {
        let conn = self.handle.id;
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let done = match self.shared.pool.get().await {
                Ok(db) => jc_db::disconnect(&**db, name).await.map_err(Some),
                Err(_) => Err(None),
            };
            match done {
                Ok(true) => return,
                Ok(false) => {
                    tracing::info!(conn, worker = %shown(name), "disconnect: already gone");
                    return;
                }
                Err(Some(e)) if !commit::transient(&e) => {
                    let e = self.shared.db_error(e);
                    tracing::info!(conn, worker = %shown(name), error = %e, "disconnect");
                    return;
                }
                Err(_) if self.shared.pool.is_closed() || *self.shared.stop.borrow() => {
                    tracing::warn!(conn, worker = %shown(name),
                        "disconnect lost: the maestro's worker check ends the worker");
                    return;
                }
                Err(_) => {
                    Metrics::inc(&self.shared.metrics.db_errors);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    async fn cleanup(&mut self) {
        let conn = self.handle.id;
        let empty = lock(&self.shared.dispatch).remove_conn(conn, Instant::now());
        for action_id in empty {
            self.shared.unlisten(action_channel(action_id));
        }
        lock(&self.shared.waiters).remove_conn(conn);
        if let Some(w) = self.worker.take() {
            self.shared
                .metrics
                .workers
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            tracing::info!(conn, worker = %shown(&w.name), "worker gone: disconnect");
            // Its results on their way go first: the disconnect would fail their tasks.
            self.pending.idle().await;
            self.disconnect(&w.name).await;
        }
        // Only now may another connection use the name: a disconnect after its announce
        // would end the new worker.
        lock(&self.shared.dispatch).release_name(conn);
    }
}
