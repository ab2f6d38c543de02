//! The gateway's shared state and its background loops.
//!
//! - [`Shared`]: the configuration, the database pool, the users, the dispatcher and the
//!   job waiters, shared by every connection;
//! - the LISTEN loop: one dedicated connection LISTENing on `job:finished` and on
//!   `action:<id>:ready` for every announced action, reconnecting with back-off; after every
//!   (re)connection it asks for a sweep, since notifications sent meanwhile are lost;
//! - the sweep loop: every `sweep_interval` (and on demand) it counts ready tasks of actions
//!   with free slots and offers polls for them, and sends `job_done` for waited jobs that
//!   have ended (NOTIFY is a hint, the database is the truth);
//! - the expiry loop: offers not taken in time go to the next worker;
//! - the end loop: reads the outputs of the waited jobs whose end was heard (`job:finished`,
//!   or a wait that finds its job ended), all that came meanwhile in one statement, and sends
//!   their `job_done` (unless the group commit that ended them sent it: `crate::commit`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use futures_util::StreamExt;
use jc_proto::methods::{JobDone, JobDoneParams};
use jc_proto::{ErrorKind, ErrorObject, Message, Notification};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_postgres::AsyncMessage;

use crate::dispatch::{ConnHandle, ConnId, Dispatch};
use crate::guard::{refused, Admitted, ConnLimits, Gate, RateLog};
use crate::metrics::Metrics;
use crate::Config;

/// Locks a mutex; a panic elsewhere while holding it leaves state that is still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What the connections ask of the LISTEN loop.
#[derive(Debug)]
pub(crate) enum ListenCmd {
    /// LISTEN on a channel; the sender is told once it is in effect.
    Listen(String, oneshot::Sender<()>),
    Unlisten(String),
}

/// The channel an action's ready tasks are notified on.
pub(crate) fn action_channel(action_id: i32) -> String {
    format!("action:{action_id}:ready")
}

/// How many of the latest `job:finished` notifications nobody waited for are remembered.
const RECENT_ENDS: usize = 4096;

/// Connections waiting for jobs to end (`job_done`).
#[derive(Debug, Default)]
pub(crate) struct Waiters {
    next: u64,
    by_job: HashMap<i64, Vec<(u64, ConnHandle)>>,
    /// Jobs whose `job:finished` came while nobody waited for them, newest last: a job can
    /// end in `create_job`'s own transaction, before its creator waits for it.
    recent: VecDeque<i64>,
    recent_set: HashSet<i64>,
    /// Waited jobs a group commit in flight reads the end of (see `crate::commit`), and
    /// whether their `job:finished` came meanwhile.
    reading: HashMap<i64, bool>,
}

impl Waiters {
    /// Registers a wait; returns its id (for a time-out) and whether the job's
    /// `job:finished` came already (then its status is to be read).
    pub fn add(&mut self, job_id: i64, handle: ConnHandle) -> (u64, bool) {
        self.next += 1;
        self.by_job
            .entry(job_id)
            .or_default()
            .push((self.next, handle));
        (self.next, self.recent_set.contains(&job_id))
    }

    /// `job:finished` for `job_id`: whether its status is to be read now, someone waiting for
    /// it; remembered if nobody does. Not while a group commit reads it: that one tells.
    fn ended(&mut self, job_id: i64) -> bool {
        if let Some(heard) = self.reading.get_mut(&job_id) {
            *heard = true;
            return false;
        }
        if self.by_job.contains_key(&job_id) {
            return true;
        }
        if self.recent_set.insert(job_id) {
            self.recent.push_back(job_id);
            if self.recent.len() > RECENT_ENDS {
                if let Some(old) = self.recent.pop_front() {
                    self.recent_set.remove(&old);
                }
            }
        }
        false
    }

    fn has(&self, job_id: i64) -> bool {
        self.by_job.contains_key(&job_id)
    }

    /// Of `job_ids`, the ones waited for, marked as read by a group commit from now on.
    pub fn start_reading(&mut self, job_ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
        let mut waited = Vec::new();
        for id in job_ids {
            if self.by_job.contains_key(&id) && !self.reading.contains_key(&id) {
                self.reading.insert(id, false);
                waited.push(id);
            }
        }
        waited
    }

    /// The group commit that read `job_ids` is done (its ends sent): returns those whose
    /// `job:finished` came meanwhile, whose status is to be read if someone still waits.
    pub fn done_reading(&mut self, job_ids: &[i64]) -> Vec<i64> {
        job_ids
            .iter()
            .filter(|id| self.reading.remove(id) == Some(true))
            .copied()
            .collect()
    }

    fn take(&mut self, job_id: i64) -> Vec<ConnHandle> {
        self.by_job
            .remove(&job_id)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, h)| h)
            .collect()
    }

    /// Removes one wait; `None` when it was already served.
    pub fn take_one(&mut self, job_id: i64, id: u64) -> Option<ConnHandle> {
        let list = self.by_job.get_mut(&job_id)?;
        let i = list.iter().position(|(w, _)| *w == id)?;
        let (_, h) = list.remove(i);
        if list.is_empty() {
            self.by_job.remove(&job_id);
        }
        Some(h)
    }

    /// Whether `conn` waits for a job.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.by_job.values().flatten().any(|(_, h)| h.id == conn)
    }

    pub fn remove_conn(&mut self, conn: ConnId) {
        for list in self.by_job.values_mut() {
            list.retain(|(_, h)| h.id != conn);
        }
        self.by_job.retain(|_, l| !l.is_empty());
    }

    fn job_ids(&self) -> Vec<i64> {
        self.by_job.keys().copied().collect()
    }
}

/// State shared by the connections and loops.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: Config,
    pub pool: Pool,
    /// The users and the throttling of their logins.
    pub gate: Gate,
    pub conn_limits: Arc<ConnLimits>,
    /// Log lines about peers refused before auth.
    pub refusals: RateLog,
    pub metrics: Arc<Metrics>,
    pub dispatch: Mutex<Dispatch>,
    /// The open connections, for the admin view.
    pub admin: crate::admin::Registry,
    pub waiters: Mutex<Waiters>,
    pub listen: mpsc::UnboundedSender<ListenCmd>,
    /// Wakes the sweep loop.
    pub sweep: tokio::sync::Notify,
    /// Waited jobs whose end is to be read (the end loop's work), and its wake-up.
    pub ended: Mutex<Vec<i64>>,
    pub ended_wake: tokio::sync::Notify,
    /// The results on their way to the database (group commit).
    pub commits: mpsc::UnboundedSender<crate::commit::Done>,
    /// The `create_job` calls on their way to the database (group commit).
    pub creates: mpsc::UnboundedSender<crate::create::Create>,
    /// The workers' takes on their way to the database (group commit).
    pub takes: mpsc::UnboundedSender<crate::take::Take>,
    pub next_conn: AtomicU64,
    pub stop: watch::Receiver<bool>,
    /// The gateway's id in the engine (0 until it registered; see [`crate::liveness`]).
    pub gateway: watch::Sender<i32>,
    /// Bumped when the engine withdrew this gateway's workers: worker connections close.
    pub rejoin: watch::Sender<u64>,
    /// Workers announced while the gateway was not registered, to attach once it is.
    pub unattached: Mutex<Vec<i64>>,
}

impl Shared {
    /// A pooled database connection, or the error to answer with.
    pub async fn db(&self) -> Result<Object, ErrorObject> {
        self.pool.get().await.map_err(|e| {
            Metrics::inc(&self.metrics.db_errors);
            tracing::warn!(error = %e, "no database connection");
            ErrorObject::new(ErrorKind::InternalError, "the database is unavailable")
        })
    }

    /// A database error as the JSON-RPC error to answer with: the engine's refusals keep
    /// their code and words, anything else is an internal error.
    pub fn db_error(&self, e: jc_db::Error) -> ErrorObject {
        match &e {
            jc_db::Error::Api {
                code,
                message,
                detail,
                hint,
            } => {
                let kind =
                    ErrorKind::from_sqlstate(code.sqlstate()).unwrap_or(ErrorKind::InternalError);
                let mut data = serde_json::Map::new();
                data.insert("sqlstate".into(), Value::from(code.sqlstate()));
                if let Some(d) = detail {
                    data.insert("detail".into(), Value::from(d.clone()));
                }
                if let Some(h) = hint {
                    data.insert("hint".into(), Value::from(h.clone()));
                }
                ErrorObject::new(kind, message.clone()).with_data(Value::Object(data))
            }
            _ => {
                Metrics::inc(&self.metrics.db_errors);
                tracing::warn!(error = %e, "database call failed");
                ErrorObject::new(ErrorKind::InternalError, e.to_string())
            }
        }
    }

    /// Admits a connection from `addr` to a listener with `open` connections, or counts and
    /// logs its refusal.
    pub fn admit(&self, open: &Arc<AtomicUsize>, addr: SocketAddr) -> Option<Admitted> {
        match self.conn_limits.admit(open, addr.ip(), &self.config.limits) {
            Ok(a) => Some(a),
            Err(why) => {
                Metrics::inc(&self.metrics.connections_refused);
                refused!(self.refusals, peer = %addr, why, "connection refused");
                None
            }
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// LISTENs on `channel` and waits (a little) until it is in effect.
    pub async fn listen_on(&self, channel: String) {
        let (tx, rx) = oneshot::channel();
        if self.listen.send(ListenCmd::Listen(channel, tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
        }
    }

    pub fn unlisten(&self, channel: String) {
        let _ = self.listen.send(ListenCmd::Unlisten(channel));
    }
}

fn job_done(job_id: i64, outargs: Value) -> Option<Message> {
    Notification::new::<JobDone>(&JobDoneParams { job_id, outargs })
        .ok()
        .map(Message::from)
}

pub(crate) fn deliver(shared: &Shared, job_id: i64, outargs: Value) {
    let handles = lock(&shared.waiters).take(job_id);
    if handles.is_empty() {
        return;
    }
    if let Some(msg) = job_done(job_id, outargs) {
        for h in handles {
            if h.push(&msg) {
                Metrics::inc(&shared.metrics.jobs_done_sent);
            }
        }
    }
}

/// Sends `job_done` to whoever waits for `job_id` if it has ended: the end loop reads it,
/// with the others asked for meanwhile.
pub(crate) fn check_job(shared: &Shared, job_id: i64) {
    check_jobs(shared, [job_id]);
}

/// [`check_job`] for each of `job_ids`.
pub(crate) fn check_jobs(shared: &Shared, job_ids: impl IntoIterator<Item = i64>) {
    lock(&shared.ended).extend(job_ids);
    shared.ended_wake.notify_one();
}

/// The end loop; see the module docs. One read at a time: the ends heard while it runs wait
/// for the next, so under load one statement (and one transaction) serves many jobs, and an
/// idle gateway reads an end as soon as it hears it.
pub(crate) async fn ended_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    loop {
        tokio::select! {
            _ = shared.ended_wake.notified() => {}
            _ = stop.changed() => return,
        }
        let mut ids = std::mem::take(&mut *lock(&shared.ended));
        {
            let waiters = lock(&shared.waiters);
            ids.retain(|id| waiters.has(*id));
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let Ok(db) = shared.db().await else { continue };
        Metrics::inc(&shared.metrics.end_reads);
        match jc_db::pooled::ended_jobs(&db, &ids).await {
            Ok(ended) => {
                for (job_id, out) in ended {
                    deliver(&shared, job_id, out);
                }
            }
            Err(e) => {
                shared.db_error(e);
            }
        }
    }
}

/// Sends `job_done` for every waited job that has ended (the end loop reads them).
fn check_waited(shared: &Shared) {
    let ids = lock(&shared.waiters).job_ids();
    if !ids.is_empty() {
        check_jobs(shared, ids);
    }
}

/// A time-out of a `create_job` wait: `job_done` with `{"error": "timeout"}`.
pub(crate) fn wait_timeout(shared: Arc<Shared>, job_id: i64, wait: u64, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let handle = lock(&shared.waiters).take_one(job_id, wait);
        if let (Some(h), Some(msg)) = (handle, job_done(job_id, json!({"error": "timeout"}))) {
            h.push(&msg);
        }
    });
}

fn route(shared: &Arc<Shared>, channel: &str, payload: &str) {
    if channel == "job:finished" {
        if let Ok(job_id) = payload.trim().parse::<i64>() {
            if lock(&shared.waiters).ended(job_id) {
                check_job(shared, job_id);
            }
        }
        return;
    }
    let Some(action_id) = channel
        .strip_prefix("action:")
        .and_then(|r| r.strip_suffix(":ready"))
        .and_then(|id| id.parse::<i32>().ok())
    else {
        return;
    };
    let Ok(v) = serde_json::from_str::<Value>(payload) else {
        tracing::warn!(channel, payload, "unreadable ready notification");
        return;
    };
    let Some(job_id) = v.get("job_id").and_then(Value::as_i64) else {
        return;
    };
    let eligible = v.get("workers").and_then(Value::as_array).map(|names| {
        names
            .iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    });
    lock(&shared.dispatch).ready(action_id, job_id, eligible, Instant::now());
}

fn quote(channel: &str) -> String {
    format!("\"{}\"", channel.replace('"', "\"\""))
}

/// The LISTEN loop; see the module docs.
pub(crate) async fn listen_loop(
    shared: Arc<Shared>,
    pg: jc_db::Pg,
    mut cmds: mpsc::UnboundedReceiver<ListenCmd>,
) {
    let mut stop = shared.stop.clone();
    let mut channels: HashSet<String> = HashSet::from(["job:finished".to_owned()]);
    let mut backoff = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        let (client, mut connection) = match pg.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                // Meanwhile keep the channel set current and let announcers go on.
                let until = Instant::now() + backoff;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => break,
                        _ = stop.changed() => return,
                        cmd = cmds.recv() => match cmd {
                            None => return,
                            Some(ListenCmd::Listen(ch, ack)) => {
                                channels.insert(ch);
                                let _ = ack.send(());
                            }
                            Some(ListenCmd::Unlisten(ch)) => {
                                channels.remove(&ch);
                            }
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (ntx, mut nrx) = mpsc::unbounded_channel();
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) => {
                        if ntx
                            .send((n.channel().to_owned(), n.payload().to_owned()))
                            .is_err()
                        {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        return;
                    }
                }
            }
        });
        let all: Vec<String> = channels
            .iter()
            .map(|c| format!("LISTEN {};", quote(c)))
            .collect();
        if let Err(e) = client.batch_execute(&all.join(" ")).await {
            tracing::warn!(error = %e, "LISTEN failed; reconnecting");
            driver.abort();
            tokio::time::sleep(backoff).await;
            continue;
        }
        backoff = Duration::from_millis(100);
        Metrics::inc(&shared.metrics.listen_connects);
        tracing::debug!(channels = channels.len(), "listening");
        // Whatever was notified while we were away is found by a sweep.
        shared.sweep.notify_one();
        loop {
            tokio::select! {
                _ = stop.changed() => {
                    driver.abort();
                    return;
                }
                cmd = cmds.recv() => match cmd {
                    None => {
                        driver.abort();
                        return;
                    }
                    Some(ListenCmd::Listen(ch, ack)) => {
                        let r = client.batch_execute(&format!("LISTEN {}", quote(&ch))).await;
                        channels.insert(ch);
                        if r.is_err() {
                            // Acknowledged after the reconnection LISTENs again.
                            drop(ack);
                            break;
                        }
                        let _ = ack.send(());
                    }
                    Some(ListenCmd::Unlisten(ch)) => {
                        channels.remove(&ch);
                        if client.batch_execute(&format!("UNLISTEN {}", quote(&ch))).await.is_err() {
                            break;
                        }
                    }
                },
                n = nrx.recv() => match n {
                    Some((channel, payload)) => route(&shared, &channel, &payload),
                    None => break,
                },
            }
        }
        driver.abort();
        tokio::time::sleep(backoff).await;
    }
}

/// The sweep loop; see the module docs.
pub(crate) async fn sweep_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let interval = shared.config.sweep_interval;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shared.sweep.notified() => {}
            _ = stop.changed() => return,
        }
        let ids = lock(&shared.dispatch).sweepable();
        if !ids.is_empty() {
            if let Ok(db) = shared.db().await {
                match jc_db::ready_counts(&**db, &ids).await {
                    Ok(counts) => lock(&shared.dispatch).sweep(&counts, Instant::now()),
                    Err(e) => {
                        shared.db_error(e);
                    }
                }
            }
        }
        check_waited(&shared);
    }
}

/// The expiry loop; see the module docs.
pub(crate) async fn expiry_loop(shared: Arc<Shared>) {
    let mut stop = shared.stop.clone();
    let tick = (shared.config.offer_timeout / 4).min(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = stop.changed() => return,
        }
        lock(&shared.dispatch).expire(Instant::now());
    }
}
