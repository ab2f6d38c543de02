//! Dispatch: which worker is offered which ready task.
//!
//! The database knows which tasks are ready; the gateway only knows which of its workers
//! have free slots. When `action:<id>:ready` says a task is ready, [`Dispatch::ready`] picks,
//! round-robin, a worker of that action with a free slot (and, for actions with filters, one
//! the notification names) and sends it `task_ready`; the slot counts as used from the offer
//! on. A worker that does not call `get_task` within the offer timeout loses the offer to the
//! next worker ([`Dispatch::expire`]). When no slot is free the action is marked *pending*:
//! as slots free up (`task_done`, a refused offer) the gateway offers *poll tokens* — a
//! `task_ready` whose `job_id` is a string; `get_task` with it takes the oldest ready task the
//! worker may have — until a poll finds nothing. A periodic sweep ([`Dispatch::sweep`]) counts
//! ready tasks in the database and offers polls for those no offer covers, so a lost
//! notification (NOTIFY is a hint) never leaves a task waiting forever.
//!
//! Everything here is synchronous and quick; it runs under one mutex. Messages to workers are
//! queued without waiting ([`ConnHandle::push`]): a worker too slow to read its queue is
//! closed rather than allowed to block dispatch for everyone.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use jc_proto::methods::{JobRef, TaskReady, TaskReadyParams};
use jc_proto::{Message, Notification};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

mod view;

pub(crate) type ConnId = u64;

/// A connection's queue accounting: the bytes queued and how many may be.
#[derive(Debug)]
struct QueueBytes {
    queued: AtomicUsize,
    max: AtomicUsize,
    /// How long the connection's own task waits for room, in milliseconds.
    wait_ms: AtomicU64,
}

/// The way to a connection's writer.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub id: ConnId,
    tx: mpsc::Sender<Bytes>,
    kill: CancellationToken,
    metrics: Arc<Metrics>,
    bytes: Arc<QueueBytes>,
}

/// The writer's end of a connection's queue; it counts the bytes back out.
#[derive(Debug)]
pub(crate) struct QueueRx {
    rx: mpsc::Receiver<Bytes>,
    bytes: Arc<QueueBytes>,
}

impl QueueRx {
    pub async fn recv(&mut self) -> Option<Bytes> {
        let b = self.rx.recv().await?;
        self.bytes.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }

    pub fn try_recv(&mut self) -> Option<Bytes> {
        let b = self.rx.try_recv().ok()?;
        self.bytes.queued.fetch_sub(b.len(), Ordering::Relaxed);
        Some(b)
    }
}

impl ConnHandle {
    pub fn new(
        id: ConnId,
        tx: mpsc::Sender<Bytes>,
        kill: CancellationToken,
        metrics: Arc<Metrics>,
    ) -> ConnHandle {
        ConnHandle {
            id,
            tx,
            kill,
            metrics,
            bytes: Arc::new(QueueBytes {
                queued: AtomicUsize::new(0),
                max: AtomicUsize::new(usize::MAX),
                wait_ms: AtomicU64::new(u64::MAX),
            }),
        }
    }

    /// The receiving end of `rx` (this handle's queue), counting bytes.
    pub fn queue_rx(&self, rx: mpsc::Receiver<Bytes>) -> QueueRx {
        QueueRx {
            rx,
            bytes: self.bytes.clone(),
        }
    }

    /// At most `max` bytes queued; the connection's own sends wait at most `wait` for room.
    pub fn set_limits(&self, max: usize, wait: Duration) {
        self.bytes.max.store(max, Ordering::Relaxed);
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.bytes.wait_ms.store(ms, Ordering::Relaxed);
    }

    /// Closes the connection: its peer does not read.
    fn not_reading(&self, why: &str) {
        if !self.kill.is_cancelled() {
            tracing::warn!(conn = self.id, why, "closing a client that does not read");
            Metrics::inc(&self.metrics.slow_clients);
            self.kill.cancel();
        }
    }

    /// Counts `len` bytes in; `false` (and the connection closed) when over the limit.
    fn reserve(&self, len: usize) -> bool {
        let max = self.bytes.max.load(Ordering::Relaxed);
        let before = self.bytes.queued.fetch_add(len, Ordering::Relaxed);
        if before.saturating_add(len) > max {
            self.bytes.queued.fetch_sub(len, Ordering::Relaxed);
            self.not_reading("too many bytes queued");
            return false;
        }
        true
    }

    fn unreserve(&self, len: usize) {
        self.bytes.queued.fetch_sub(len, Ordering::Relaxed);
    }

    /// Queues a message without waiting. A full queue means the peer does not read: the
    /// connection is closed. Returns whether the message was queued.
    pub fn push(&self, msg: &Message) -> bool {
        let b = Bytes::from(msg.to_bytes());
        let len = b.len();
        if !self.reserve(len) {
            return false;
        }
        match self.tx.try_send(b) {
            Ok(()) => {
                Metrics::inc(&self.metrics.messages_out);
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.unreserve(len);
                self.not_reading("write queue full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.unreserve(len);
                false
            }
        }
    }

    /// Queues a message, waiting for room (only the connection's own task does this); gives
    /// up when the connection is being closed, and closes it when no room comes in time.
    pub async fn send(&self, msg: &Message) -> bool {
        let b = Bytes::from(msg.to_bytes());
        let len = b.len();
        if !self.reserve(len) {
            return false;
        }
        let wait = Duration::from_millis(self.bytes.wait_ms.load(Ordering::Relaxed));
        let ok = tokio::select! {
            sent = tokio::time::timeout(wait, self.tx.send(b)) => match sent {
                Ok(sent) => sent.is_ok(),
                Err(_) => {
                    self.not_reading("the write queue stayed full");
                    false
                }
            },
            _ = self.kill.cancelled() => false,
        };
        if ok {
            Metrics::inc(&self.metrics.messages_out);
        } else {
            self.unreserve(len);
        }
        ok
    }
}

#[derive(Debug)]
struct WorkerAction {
    handle: ConnHandle,
    workername: String,
    group: String,
}

#[derive(Debug)]
struct ActionEntry {
    name: String,
    workers: VecDeque<WorkerAction>,
    /// Tasks may be ready that no offer covers.
    pending: bool,
    /// Counts [`Dispatch::set_pending`] calls: a poll that found nothing clears `pending`
    /// only if no one set it again since the poll was claimed.
    generation: u64,
}

#[derive(Debug)]
struct SlotGroup {
    slots: u32,
    used: u32,
}

#[derive(Debug)]
struct Offer {
    action_id: i32,
    conn: ConnId,
    group: String,
    deadline: Instant,
    /// The worker names a filtered action's notification allowed.
    eligible: Option<Vec<String>>,
    /// Connections that let this offer expire.
    tried: Vec<ConnId>,
}

#[derive(Debug)]
struct Taken {
    conn: ConnId,
    /// The job whose task it is.
    job_id: i64,
    group: String,
    action_id: i32,
    /// Its result is on its way to the database (group commit).
    finishing: bool,
}

/// An offer a worker took up with `get_task`: what to tell [`Dispatch::taken`] or
/// [`Dispatch::not_taken`] after asking the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    pub action_id: i32,
    pub group: String,
    pub poll: bool,
    /// The action's pending generation when the poll was claimed.
    pub generation: u64,
}

/// The slot of a `get_task` that found nothing, still counted as used until the empty
/// answer is queued; then [`Dispatch::unhold`] frees it. Freeing it earlier could queue a
/// new offer for that slot ahead of the answer, while the worker still counts the slot as
/// busy (and ignores the offer until it expires).
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "the slot stays used until Dispatch::unhold"]
pub(crate) struct Held {
    conn: ConnId,
    group: String,
    action_id: i32,
    /// How many slots (more than one for a `get_tasks` that found fewer than it asked).
    count: u32,
}

/// A `get_tasks`: the offers of the action it took up and the free slots it uses, `count`
/// slots in all; tell [`Dispatch::taken_batch`] what the database gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchClaim {
    pub action_id: i32,
    pub group: String,
    pub count: u32,
    /// How many of them were offers (the rest free slots).
    pub offered: u32,
    /// The action's pending generation when the slots were claimed.
    pub generation: u64,
}

/// Why a result cannot be finished on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NotFinishing {
    /// Another connection of this gateway took the task.
    NotTaken,
    /// A result for it is being applied already.
    Finishing,
}

/// A worker name's owner on this gateway and the connection using it.
#[derive(Debug)]
struct NameUse {
    user: String,
    conn: Option<ConnId>,
}

/// Why a worker name cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameTaken {
    OtherUser,
    OtherConnection,
}

/// The dispatcher's state; see the module docs.
#[derive(Debug)]
pub(crate) struct Dispatch {
    actions: HashMap<i32, ActionEntry>,
    groups: HashMap<(ConnId, String), SlotGroup>,
    offers: HashMap<JobRef, Offer>,
    taken: HashMap<String, Taken>,
    names: HashMap<String, NameUse>,
    next_token: u64,
    offer_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Dispatch {
    pub fn new(offer_timeout: Duration, metrics: Arc<Metrics>) -> Dispatch {
        Dispatch {
            actions: HashMap::new(),
            groups: HashMap::new(),
            offers: HashMap::new(),
            taken: HashMap::new(),
            names: HashMap::new(),
            next_token: 0,
            offer_timeout,
            metrics,
        }
    }

    /// Reserves worker name `name` for `user`'s connection `conn`. A name belongs to the
    /// first user who announced it on this gateway (for as long as the gateway runs) and is
    /// used by one connection at a time.
    pub fn claim_name(&mut self, conn: ConnId, user: &str, name: &str) -> Result<(), NameTaken> {
        let entry = self
            .names
            .entry(name.to_owned())
            .or_insert_with(|| NameUse {
                user: user.to_owned(),
                conn: None,
            });
        if entry.user != user {
            return Err(NameTaken::OtherUser);
        }
        match entry.conn {
            Some(c) if c != conn => Err(NameTaken::OtherConnection),
            _ => {
                entry.conn = Some(conn);
                Ok(())
            }
        }
    }

    /// Gives up the worker name `conn` uses (it stays its user's).
    pub fn release_name(&mut self, conn: ConnId) {
        for n in self.names.values_mut() {
            if n.conn == Some(conn) {
                n.conn = None;
            }
        }
    }

    /// Marks the task with `cookie` as being finished by connection `conn`, which took it;
    /// its slot stays used until [`Dispatch::done`] (after the database has the result).
    /// A cookie no connection here holds passes (it uses no slot here: `false`): a worker
    /// resending, after a reconnection, the result of a task it took through a gateway that
    /// died; the engine checks the cookie and who took the task.
    pub fn finishing(&mut self, conn: ConnId, cookie: &str) -> Result<bool, NotFinishing> {
        match self.taken.get_mut(cookie) {
            Some(t) if t.conn == conn && t.finishing => Err(NotFinishing::Finishing),
            Some(t) if t.conn == conn => {
                t.finishing = true;
                Ok(true)
            }
            Some(_) => Err(NotFinishing::NotTaken),
            None => Ok(false),
        }
    }

    /// Creates a slot group; `false` when the connection has one of that name.
    pub fn create_group(&mut self, conn: ConnId, name: &str, slots: u32) -> bool {
        let key = (conn, name.to_owned());
        if self.groups.contains_key(&key) {
            return false;
        }
        self.groups.insert(key, SlotGroup { slots, used: 0 });
        true
    }

    pub fn has_group(&self, conn: ConnId, name: &str) -> bool {
        self.groups.contains_key(&(conn, name.to_owned()))
    }

    /// Adds a worker's announcement of `action_id`; `true` when the action is new here (it
    /// needs a LISTEN).
    pub fn announce(
        &mut self,
        handle: &ConnHandle,
        workername: &str,
        action_id: i32,
        actionname: &str,
        group: &str,
    ) -> bool {
        let mut new = false;
        let entry = self.actions.entry(action_id).or_insert_with(|| {
            new = true;
            ActionEntry {
                name: actionname.to_owned(),
                workers: VecDeque::new(),
                pending: false,
                generation: 0,
            }
        });
        entry.workers.retain(|w| w.handle.id != handle.id);
        entry.workers.push_back(WorkerAction {
            handle: handle.clone(),
            workername: workername.to_owned(),
            group: group.to_owned(),
        });
        new
    }

    /// Removes `conn`'s announcement of `action_id`; `true` when the action has no workers
    /// left here (it needs an UNLISTEN).
    pub fn withdraw(&mut self, conn: ConnId, action_id: i32, now: Instant) -> bool {
        let Some(entry) = self.actions.get_mut(&action_id) else {
            return false;
        };
        entry.workers.retain(|w| w.handle.id != conn);
        let keys: Vec<JobRef> = self
            .offers
            .iter()
            .filter(|(_, o)| o.conn == conn && o.action_id == action_id)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.reoffer(key, now);
        }
        self.drop_if_empty(action_id)
    }

    fn drop_if_empty(&mut self, action_id: i32) -> bool {
        if self
            .actions
            .get(&action_id)
            .is_some_and(|e| e.workers.is_empty())
        {
            self.actions.remove(&action_id);
            self.offers.retain(|_, o| o.action_id != action_id);
            return true;
        }
        false
    }

    /// Forgets a closed connection (but for its worker name: [`Dispatch::release_name`]
    /// once the engine has ended the worker); returns the actions left without workers.
    pub fn remove_conn(&mut self, conn: ConnId, now: Instant) -> Vec<i32> {
        self.taken.retain(|_, t| t.conn != conn);
        for entry in self.actions.values_mut() {
            entry.workers.retain(|w| w.handle.id != conn);
        }
        let keys: Vec<JobRef> = self
            .offers
            .iter()
            .filter(|(_, o)| o.conn == conn)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.reoffer(key, now);
        }
        self.groups.retain(|(c, _), _| *c != conn);
        let empty: Vec<i32> = self
            .actions
            .iter()
            .filter(|(_, e)| e.workers.is_empty())
            .map(|(id, _)| *id)
            .collect();
        for id in &empty {
            self.drop_if_empty(*id);
        }
        empty
    }

    fn free(&self, w: &WorkerAction) -> bool {
        self.groups
            .get(&(w.handle.id, w.group.clone()))
            .is_some_and(|g| g.used < g.slots)
    }

    /// Offers `key` to the next free worker of `action_id` (round-robin) that is eligible
    /// and has not tried it yet; `false` when there is none.
    fn offer(
        &mut self,
        action_id: i32,
        key: JobRef,
        eligible: Option<Vec<String>>,
        tried: Vec<ConnId>,
        now: Instant,
    ) -> bool {
        let Some(entry) = self.actions.get(&action_id) else {
            return false;
        };
        let pick = entry.workers.iter().position(|w| {
            !tried.contains(&w.handle.id)
                && eligible
                    .as_ref()
                    .is_none_or(|names| names.contains(&w.workername))
                && self.free(w)
        });
        let Some(i) = pick else {
            return false;
        };
        let Some(entry) = self.actions.get_mut(&action_id) else {
            return false;
        };
        // The picked worker goes to the back: the next offer starts with the one after it.
        let Some(w) = entry.workers.remove(i) else {
            return false;
        };
        let (conn, group) = (w.handle.id, w.group.clone());
        let msg = Notification::new::<TaskReady>(&TaskReadyParams {
            actionname: entry.name.clone(),
            job_id: key.clone(),
        })
        .map(Message::from);
        let handle = w.handle.clone();
        entry.workers.push_back(w);
        if let Some(g) = self.groups.get_mut(&(conn, group.clone())) {
            g.used += 1;
        }
        self.offers.insert(
            key,
            Offer {
                action_id,
                conn,
                group,
                deadline: now + self.offer_timeout,
                eligible,
                tried,
            },
        );
        if let Ok(msg) = msg {
            handle.push(&msg);
        }
        Metrics::inc(&self.metrics.tasks_offered);
        true
    }

    fn poll_token(&mut self) -> JobRef {
        self.next_token += 1;
        JobRef::Token(format!("poll:{}", self.next_token))
    }

    fn release(&mut self, conn: ConnId, group: &str) {
        if let Some(g) = self.groups.get_mut(&(conn, group.to_owned())) {
            g.used = g.used.saturating_sub(1);
        }
    }

    /// `action:<id>:ready` said job `job_id` is ready (for the named workers, when the
    /// action has filters).
    pub fn ready(
        &mut self,
        action_id: i32,
        job_id: i64,
        eligible: Option<Vec<String>>,
        now: Instant,
    ) {
        let key = JobRef::Id(job_id);
        if self.offers.contains_key(&key) || !self.actions.contains_key(&action_id) {
            return;
        }
        if !self.offer(action_id, key, eligible, Vec::new(), now) {
            self.set_pending(action_id);
        }
    }

    fn set_pending(&mut self, action_id: i32) {
        if let Some(e) = self.actions.get_mut(&action_id) {
            e.pending = true;
            e.generation += 1;
        }
    }

    /// A look found no task: the action is not pending, unless a ready notification set it
    /// again since the look was claimed (at `generation`).
    fn clear_pending(&mut self, action_id: i32, generation: u64) {
        if let Some(e) = self.actions.get_mut(&action_id) {
            if e.generation == generation {
                e.pending = false;
            }
        }
    }

    /// While the action is pending, offers a poll to a free worker.
    fn fill(&mut self, action_id: i32, now: Instant) {
        if self.actions.get(&action_id).is_some_and(|e| e.pending) {
            let key = self.poll_token();
            self.offer(action_id, key, None, Vec::new(), now);
        }
    }

    /// `get_task` from `conn` for an offer `key`; `None` when the offer is not (or no
    /// longer) this connection's.
    pub fn claim(&mut self, conn: ConnId, key: &JobRef) -> Option<Claim> {
        if self.offers.get(key).is_none_or(|o| o.conn != conn) {
            return None;
        }
        let o = self.offers.remove(key)?;
        let generation = self.actions.get(&o.action_id).map_or(0, |e| e.generation);
        Some(Claim {
            action_id: o.action_id,
            group: o.group,
            poll: matches!(key, JobRef::Token(_)),
            generation,
        })
    }

    /// The worker got the task with `cookie` of job `job_id`: its slot stays used until
    /// `task_done`.
    pub fn taken(&mut self, conn: ConnId, cookie: String, job_id: i64, claim: Claim, now: Instant) {
        Metrics::inc(&self.metrics.tasks_taken);
        let action_id = claim.action_id;
        self.taken.insert(
            cookie,
            Taken {
                conn,
                job_id,
                group: claim.group,
                action_id,
                finishing: false,
            },
        );
        if claim.poll {
            // A poll found work: there may be more.
            self.fill(action_id, now);
        }
    }

    /// The database had no task for the claim. A poll that found nothing clears `pending`
    /// unless a ready notification set it again after the claim (its task may have become
    /// ready after the poll looked). The slot stays used until the empty answer is queued:
    /// pass the returned [`Held`] to [`Dispatch::unhold`] then.
    pub fn not_taken(&mut self, conn: ConnId, claim: Claim) -> Held {
        if claim.poll {
            self.clear_pending(claim.action_id, claim.generation);
        }
        Held {
            conn,
            group: claim.group,
            action_id: claim.action_id,
            count: 1,
        }
    }

    /// The empty answer to a `get_task` is queued: its slot is free again, for pending work
    /// too.
    pub fn unhold(&mut self, held: Held, now: Instant) {
        for _ in 0..held.count {
            self.release(held.conn, &held.group);
            self.fill(held.action_id, now);
        }
    }

    /// `get_tasks` from `conn` for up to `count` tasks of `action_id`: takes up the
    /// connection's offers of the action and as many free slots of its group as make
    /// `count`; `None` when that is no slot at all.
    pub fn claim_batch(&mut self, conn: ConnId, action_id: i32, count: u32) -> Option<BatchClaim> {
        let entry = self.actions.get(&action_id)?;
        let group = entry
            .workers
            .iter()
            .find(|w| w.handle.id == conn)?
            .group
            .clone();
        let generation = entry.generation;
        let g = self.groups.get(&(conn, group.clone()))?;
        let free = g.slots.saturating_sub(g.used);
        let mine: Vec<JobRef> = self
            .offers
            .iter()
            .filter(|(_, o)| o.conn == conn && o.action_id == action_id)
            .map(|(k, _)| k.clone())
            .take(count as usize)
            .collect();
        for key in &mine {
            self.offers.remove(key);
        }
        let offered = mine.len() as u32;
        let extra = (count - offered).min(free);
        if let Some(g) = self.groups.get_mut(&(conn, group.clone())) {
            g.used += extra;
        }
        let count = offered + extra;
        (count > 0).then_some(BatchClaim {
            action_id,
            group,
            count,
            offered,
            generation,
        })
    }

    /// The database gave `tasks` (cookie, job) for a [`BatchClaim`]: their slots stay used until
    /// `task_done`; the rest are held until the answer is queued ([`Dispatch::unhold`]).
    /// Fewer tasks than asked means none are left for this worker (unless a ready
    /// notification came since the claim); as many, beyond the offers, may mean more.
    pub fn taken_batch(
        &mut self,
        conn: ConnId,
        tasks: Vec<(String, i64)>,
        claim: BatchClaim,
        now: Instant,
    ) -> Held {
        let got = tasks.len() as u32;
        for (cookie, job_id) in tasks {
            Metrics::inc(&self.metrics.tasks_taken);
            self.taken.insert(
                cookie,
                Taken {
                    conn,
                    job_id,
                    group: claim.group.clone(),
                    action_id: claim.action_id,
                    finishing: false,
                },
            );
        }
        if got >= claim.count {
            // As many as asked beyond the offers taken up: there may be more. Offers alone,
            // all taken, say nothing of other tasks (their own notifications do), and a poll
            // after each would cost a worker with one slot an empty get_tasks per task.
            if claim.count > claim.offered {
                self.set_pending(claim.action_id);
            }
            self.fill(claim.action_id, now);
        } else {
            self.clear_pending(claim.action_id, claim.generation);
        }
        Held {
            conn,
            group: claim.group,
            action_id: claim.action_id,
            count: claim.count.saturating_sub(got),
        }
    }

    /// The job of the task a worker here holds with `cookie`.
    pub fn job_of(&self, cookie: &str) -> Option<i64> {
        self.taken.get(cookie).map(|t| t.job_id)
    }

    /// `task_done` for `cookie`: frees its slot and offers pending work.
    pub fn done(&mut self, cookie: &str, now: Instant) {
        if let Some(t) = self.taken.remove(cookie) {
            self.release(t.conn, &t.group);
            self.fill(t.action_id, now);
        }
    }

    fn reoffer(&mut self, key: JobRef, now: Instant) {
        let Some(mut o) = self.offers.remove(&key) else {
            return;
        };
        self.release(o.conn, &o.group);
        if matches!(key, JobRef::Token(_)) {
            self.set_pending(o.action_id);
            self.fill(o.action_id, now);
            return;
        }
        o.tried.push(o.conn);
        if !self.offer(o.action_id, key, o.eligible, o.tried, now) {
            self.set_pending(o.action_id);
        }
    }

    /// Offers not taken in time go to the next worker; returns when the next one is due.
    pub fn expire(&mut self, now: Instant) -> Option<Instant> {
        let due: Vec<JobRef> = self
            .offers
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            Metrics::inc(&self.metrics.offers_expired);
            self.reoffer(key, now);
        }
        self.offers.values().map(|o| o.deadline).min()
    }

    /// The actions that have a worker with a free slot (worth a sweep).
    pub fn sweepable(&self) -> Vec<i32> {
        self.actions
            .iter()
            .filter(|(_, e)| e.workers.iter().any(|w| self.free(w)))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The database counts `count` ready tasks of each action: offer polls for those no
    /// offer covers.
    pub fn sweep(&mut self, counts: &[(i32, i64)], now: Instant) {
        for &(action_id, count) in counts {
            let outstanding = self
                .offers
                .values()
                .filter(|o| o.action_id == action_id)
                .count() as i64;
            let mut missing = count - outstanding;
            while missing > 0 {
                let key = self.poll_token();
                if !self.offer(action_id, key, None, Vec::new(), now) {
                    self.set_pending(action_id);
                    break;
                }
                missing -= 1;
            }
        }
    }

    /// Slots (used, total) of a connection's group, for tests and status.
    #[cfg(test)]
    fn slots(&self, conn: ConnId, group: &str) -> (u32, u32) {
        self.groups
            .get(&(conn, group.to_owned()))
            .map(|g| (g.used, g.slots))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jc_proto::methods::Notify;

    struct Worker {
        handle: ConnHandle,
        rx: mpsc::Receiver<Bytes>,
    }

    fn worker(id: ConnId, queue: usize) -> Worker {
        let (tx, rx) = mpsc::channel(queue);
        Worker {
            handle: ConnHandle::new(
                id,
                tx,
                CancellationToken::new(),
                Arc::new(Metrics::default()),
            ),
            rx,
        }
    }

    impl Worker {
        fn offers(&mut self) -> Vec<JobRef> {
            let mut out = Vec::new();
            while let Ok(b) = self.rx.try_recv() {
                let Message::Notification(n) = Message::parse(&b).unwrap() else {
                    panic!("not a notification")
                };
                assert_eq!(n.method, TaskReady::NAME);
                out.push(n.params::<TaskReady>().unwrap().job_id);
            }
            out
        }
    }

    /// Tasks as get_tasks gives them: each cookie with a job id of its own (its index + 1).
    fn tasks(cookies: &[&str]) -> Vec<(String, i64)> {
        (1..)
            .zip(cookies)
            .map(|(i, c)| ((*c).to_owned(), i))
            .collect()
    }

    fn setup(workers: &[(ConnId, u32)]) -> (Dispatch, Vec<Worker>) {
        let mut d = Dispatch::new(Duration::from_secs(10), Arc::new(Metrics::default()));
        let mut ws = Vec::new();
        for &(id, slots) in workers {
            let w = worker(id, 100);
            d.create_group(id, "_a", slots);
            d.announce(&w.handle, &format!("w{id}"), 7, "a", "_a");
            ws.push(w);
        }
        (d, ws)
    }

    #[test]
    fn offers_go_round_robin_and_respect_slots() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 1), (2, 1)]);
        d.ready(7, 100, None, now);
        d.ready(7, 101, None, now);
        d.ready(7, 102, None, now);
        let a = ws[0].offers();
        let b = ws[1].offers();
        assert_eq!(a.len() + b.len(), 2, "one per free slot");
        assert_ne!(a, b);
        assert_eq!(d.slots(1, "_a"), (1, 1));
        // Job 102 found no slot: the action is pending; a task_done frees a slot and polls.
        let first = if a.is_empty() { 2 } else { 1 };
        let key = if first == 1 {
            a[0].clone()
        } else {
            b[0].clone()
        };
        let claim = d.claim(first, &key).unwrap();
        d.taken(first, "c1".into(), 100, claim, now);
        d.done("c1", now);
        let polls = ws[first as usize - 1].offers();
        assert!(matches!(polls.as_slice(), [JobRef::Token(_)]), "{polls:?}");
    }

    #[test]
    fn an_offer_not_taken_in_time_goes_to_the_next_worker() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 1), (2, 1)]);
        d.ready(7, 100, None, now);
        let (slow, other) = if ws[0].offers().is_empty() {
            (2, 1)
        } else {
            (1, 2)
        };
        ws[1].offers();
        assert!(d.expire(now + Duration::from_secs(5)).is_some());
        d.expire(now + Duration::from_secs(11));
        assert_eq!(d.slots(slow, "_a"), (0, 1), "the slot is freed");
        assert_eq!(ws[other as usize - 1].offers(), vec![JobRef::Id(100)]);
        assert!(d.claim(slow, &JobRef::Id(100)).is_none(), "too late");
        assert!(d.claim(other, &JobRef::Id(100)).is_some());
    }

    #[test]
    fn filters_pick_named_workers_and_disconnects_reoffer() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 2), (2, 2)]);
        d.ready(7, 100, Some(vec!["w2".into()]), now);
        assert!(ws[0].offers().is_empty());
        assert_eq!(ws[1].offers(), vec![JobRef::Id(100)]);
        d.ready(7, 101, None, now);
        let to1 = ws[0].offers();
        let to2 = ws[1].offers();
        assert_eq!(to1.len() + to2.len(), 1);
        // Worker 2 goes away with offer 100 (only w2 may have it: pending) and maybe 101.
        let empty = d.remove_conn(2, now);
        assert!(empty.is_empty());
        assert_eq!(d.slots(2, "_a"), (0, 0), "its groups are gone");
        if !to2.is_empty() {
            assert_eq!(ws[0].offers(), vec![JobRef::Id(101)]);
        }
        assert!(d.remove_conn(1, now).contains(&7), "no workers left");
        assert!(d.sweepable().is_empty());
    }

    #[test]
    fn sweep_offers_polls_for_uncovered_ready_tasks() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 3)]);
        d.ready(7, 100, None, now);
        assert_eq!(ws[0].offers().len(), 1);
        d.sweep(&[(7, 5)], now);
        let polls = ws[0].offers();
        assert_eq!(polls.len(), 2, "3 slots, 1 offered already");
        assert!(polls.iter().all(|p| matches!(p, JobRef::Token(_))));
        // A poll that finds nothing clears pending.
        let c = d.claim(1, &polls[0]).unwrap();
        let held = d.not_taken(1, c);
        d.unhold(held, now);
        assert_eq!(d.slots(1, "_a"), (2, 3));
        assert!(!d.actions[&7].pending);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Ready(i64, bool),
        GetTask(u64, usize, bool),
        /// `get_tasks` asking for .1 tasks; the database has .2.
        GetTasks(u64, u32, u32),
        /// The empty answer to a `get_task` is queued: its held slot is freed.
        Answer(usize),
        Done(usize),
        Expire(u64),
        Sweep(i64),
        Withdraw(u64),
        Disconnect(u64),
        Announce(u64, u32),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0i64..20, any::<bool>()).prop_map(|(j, f)| Op::Ready(j, f)),
            (1u64..5, 0usize..8, any::<bool>()).prop_map(|(c, i, t)| Op::GetTask(c, i, t)),
            (1u64..5, 0u32..4, 0u32..4).prop_map(|(c, n, k)| Op::GetTasks(c, n, k)),
            (0usize..8).prop_map(Op::Answer),
            (0usize..8).prop_map(Op::Done),
            (0u64..30).prop_map(Op::Expire),
            (0i64..6).prop_map(Op::Sweep),
            (1u64..5).prop_map(Op::Withdraw),
            (1u64..5).prop_map(Op::Disconnect),
            (1u64..5, 1u32..4).prop_map(|(c, s)| Op::Announce(c, s)),
        ]
    }

    proptest::proptest! {
        /// Any sequence of events keeps the books straight: no slot group is used beyond
        /// its slots, and every used slot is an outstanding offer, a taken task or held by
        /// a `get_task` that found nothing and whose answer is not yet queued.
        #[test]
        fn random_events_keep_slots_consistent(ops in proptest::collection::vec(op(), 1..80)) {
            let start = Instant::now();
            let mut d = Dispatch::new(Duration::from_secs(10), Arc::new(Metrics::default()));
            let mut workers: HashMap<ConnId, Worker> = HashMap::new();
            let mut cookies: Vec<String> = Vec::new();
            let mut next_cookie = 0u64;
            let mut held: Vec<Held> = Vec::new();
            let mut clock = 0u64;
            for op in ops {
                let now = start + Duration::from_secs(clock);
                match op {
                    Op::Announce(c, slots) => {
                        let w = workers.entry(c).or_insert_with(|| worker(c, 1000));
                        d.create_group(c, "_a", slots);
                        d.announce(&w.handle, &format!("w{c}"), 7, "a", "_a");
                    }
                    Op::Ready(job, filtered) => {
                        let names = filtered.then(|| vec!["w1".to_owned(), "w3".to_owned()]);
                        d.ready(7, job, names, now);
                    }
                    Op::GetTask(c, i, found) => {
                        let offers = workers.get_mut(&c).map(|w| w.offers()).unwrap_or_default();
                        if let Some(key) = offers.get(i % offers.len().max(1)) {
                            if let Some(claim) = d.claim(c, key) {
                                if found {
                                    next_cookie += 1;
                                    let cookie = format!("c{next_cookie}");
                                    cookies.push(cookie.clone());
                                    d.taken(c, cookie, next_cookie as i64, claim, now);
                                } else {
                                    held.push(d.not_taken(c, claim));
                                }
                            }
                        }
                    }
                    Op::GetTasks(c, count, have) => {
                        if let Some(claim) = d.claim_batch(c, 7, count) {
                            let got = have.min(claim.count);
                            let mut given = Vec::new();
                            for _ in 0..got {
                                next_cookie += 1;
                                given.push((format!("c{next_cookie}"), next_cookie as i64));
                            }
                            cookies.extend(given.iter().map(|(c, _)| c.clone()));
                            held.push(d.taken_batch(c, given, claim, now));
                        }
                    }
                    Op::Answer(i) => {
                        if !held.is_empty() {
                            let h = held.remove(i % held.len());
                            d.unhold(h, now);
                        }
                    }
                    Op::Done(i) => {
                        if !cookies.is_empty() {
                            let cookie = cookies.remove(i % cookies.len());
                            d.done(&cookie, now);
                        }
                    }
                    Op::Expire(secs) => {
                        clock += secs;
                        d.expire(start + Duration::from_secs(clock));
                    }
                    Op::Sweep(n) => d.sweep(&[(7, n)], now),
                    Op::Withdraw(c) => {
                        d.withdraw(c, 7, now);
                    }
                    Op::Disconnect(c) => {
                        // A connection answers (and unholds) before it is cleaned up.
                        for h in std::mem::take(&mut held) {
                            if h.conn == c {
                                d.unhold(h, now);
                            } else {
                                held.push(h);
                            }
                        }
                        d.remove_conn(c, now);
                        workers.remove(&c);
                    }
                }
                for ((conn, group), g) in &d.groups {
                    proptest::prop_assert!(g.used <= g.slots, "{conn}/{group}: {g:?}");
                    let offers = d.offers.values().filter(|o| o.conn == *conn).count() as u32;
                    let taken = d.taken.values().filter(|t| t.conn == *conn).count() as u32;
                    let holds: u32 = held.iter().filter(|h| h.conn == *conn).map(|h| h.count).sum();
                    proptest::prop_assert_eq!(g.used, offers + taken + holds, "{}/{}", conn, group);
                }
            }
        }
    }

    #[test]
    fn an_empty_get_task_answer_goes_out_before_a_new_offer_for_its_slot() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 1)]);
        d.ready(7, 100, None, now);
        assert_eq!(ws[0].offers(), vec![JobRef::Id(100)]);
        // No free slot for job 101: pending.
        d.ready(7, 101, None, now);
        assert!(ws[0].offers().is_empty());
        // Another gateway's worker got job 100 first: the get_task finds nothing.
        let claim = d.claim(1, &JobRef::Id(100)).unwrap();
        let held = d.not_taken(1, claim);
        // Until the empty answer is queued the slot stays used: nothing is queued for it.
        assert!(ws[0].offers().is_empty(), "an offer ahead of the answer");
        assert_eq!(d.slots(1, "_a"), (1, 1));
        d.ready(7, 102, None, now);
        assert!(ws[0].offers().is_empty(), "an offer ahead of the answer");
        // The answer is queued: now the worker is offered the pending work.
        d.unhold(held, now);
        let polls = ws[0].offers();
        assert!(matches!(polls.as_slice(), [JobRef::Token(_)]), "{polls:?}");
        assert_eq!(d.slots(1, "_a"), (1, 1));
    }

    #[test]
    fn a_poll_that_found_nothing_keeps_a_wakeup_that_came_after_its_claim() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 1), (2, 1)]);
        d.ready(7, 100, None, now);
        assert_eq!(ws[0].offers(), vec![JobRef::Id(100)]);
        d.sweep(&[(7, 2)], now);
        let polls = ws[1].offers();
        assert!(matches!(polls.as_slice(), [JobRef::Token(_)]), "{polls:?}");
        assert!(!d.actions[&7].pending);
        // Worker 2 claims the poll and asks the database...
        let claim = d.claim(2, &polls[0]).unwrap();
        // ...meanwhile job 101 becomes ready and finds no free slot...
        d.ready(7, 101, None, now);
        assert!(d.actions[&7].pending);
        // ...and the poll's query (which started before 101 was ready) finds nothing.
        let held = d.not_taken(2, claim);
        assert!(d.actions[&7].pending, "the wake-up for 101 is lost");
        d.unhold(held, now);
        let polls = ws[1].offers();
        assert!(matches!(polls.as_slice(), [JobRef::Token(_)]), "{polls:?}");
        // That poll finds nothing too, with no wake-up since its claim: pending is cleared.
        let claim = d.claim(2, &polls[0]).unwrap();
        let held = d.not_taken(2, claim);
        assert!(!d.actions[&7].pending);
        d.unhold(held, now);
        assert!(ws[1].offers().is_empty());
        assert_eq!(d.slots(2, "_a"), (0, 1));
    }

    #[test]
    fn get_tasks_takes_up_the_offers_and_free_slots_and_holds_what_it_did_not_get() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 4)]);
        d.ready(7, 100, None, now);
        assert_eq!(ws[0].offers(), vec![JobRef::Id(100)]);
        // One offer and three free slots: a worker asking for ten gets room for four.
        let claim = d.claim_batch(1, 7, 10).unwrap();
        assert_eq!(claim.count, 4);
        assert_eq!(d.slots(1, "_a"), (4, 4));
        assert!(d.offers.is_empty(), "the offer is part of the batch");
        assert!(d.claim_batch(1, 7, 1).is_none(), "no slot left");
        // The database had three: one slot is held until the answer is queued.
        let held = d.taken_batch(1, tasks(&["a", "b", "c"]), claim, now);
        assert_eq!(held.count, 1);
        assert!(!d.actions[&7].pending, "fewer than asked: nothing is left");
        d.unhold(held, now);
        assert_eq!(d.slots(1, "_a"), (3, 4));
        // Each task's job is known until its result is in (the group commit reads its end).
        assert_eq!(
            (d.job_of("a"), d.job_of("c"), d.job_of("x")),
            (Some(1), Some(3), None)
        );
        // Results being applied keep their slots; a second result for one is refused.
        assert_eq!(d.finishing(1, "a"), Ok(true));
        assert_eq!(d.finishing(1, "a"), Err(NotFinishing::Finishing));
        assert_eq!(d.finishing(2, "b"), Err(NotFinishing::NotTaken));
        // A cookie nobody here holds (a resend after a reconnection) passes, using no slot.
        assert_eq!(d.finishing(2, "elsewhere"), Ok(false));
        d.done("elsewhere", now);
        assert_eq!(d.slots(1, "_a"), (3, 4));
        d.done("a", now);
        assert_eq!(d.slots(1, "_a"), (2, 4));
        assert_eq!(d.job_of("a"), None);
        // As many as asked: there may be more, offered as slots free up.
        let claim = d.claim_batch(1, 7, 2).unwrap();
        let held = d.taken_batch(1, tasks(&["d", "e"]), claim, now);
        assert!(d.actions[&7].pending);
        d.unhold(held, now);
        d.done("b", now);
        assert!(matches!(ws[0].offers().as_slice(), [JobRef::Token(_)]));
    }

    #[test]
    fn a_batch_of_offers_alone_polls_for_nothing_more() {
        let now = Instant::now();
        let (mut d, mut ws) = setup(&[(1, 1)]);
        d.ready(7, 100, None, now);
        assert_eq!(ws[0].offers(), vec![JobRef::Id(100)]);
        let claim = d.claim_batch(1, 7, 1).unwrap();
        assert_eq!((claim.count, claim.offered), (1, 1));
        let held = d.taken_batch(1, tasks(&["a"]), claim, now);
        assert!(
            !d.actions[&7].pending,
            "the offer's task says nothing of others"
        );
        d.unhold(held, now);
        d.done("a", now);
        assert!(ws[0].offers().is_empty(), "no poll after the task");
        // A task made ready meanwhile is offered by its own notification.
        d.ready(7, 101, None, now);
        assert_eq!(ws[0].offers(), vec![JobRef::Id(101)]);
    }

    #[test]
    fn a_full_queue_closes_the_slow_worker() {
        let now = Instant::now();
        let mut d = Dispatch::new(Duration::from_secs(10), Arc::new(Metrics::default()));
        let w = worker(1, 1);
        d.create_group(1, "_a", 10);
        d.announce(&w.handle, "w1", 7, "a", "_a");
        d.ready(7, 1, None, now);
        assert!(!w.handle.kill.is_cancelled());
        d.ready(7, 2, None, now);
        assert!(w.handle.kill.is_cancelled());
    }
}
