//! The worker side: handlers, `announce` with slots, the `task_ready` → `get_tasks` →
//! handlers → `tasks_done` cycle, and `work()` with keep-alive and reconnection.
//!
//! An offer (`task_ready`) makes the worker ask for as many tasks of that action as it has
//! free slots (`get_tasks`); offers that come while it asks make it ask again afterwards.
//! Finished results are sent together: whatever is finished while a `tasks_done` is on its
//! way goes in the next one, and each result's answer is logged when it is refused. With a
//! gateway that lacks the batched calls (it answers "no method"), or with
//! [`Config::batched`](crate::Config) off, the worker uses the original calls: `get_task`
//! for each offer and the `task_done` notification.
//!
//! No finished result is dropped because the gateway went away: a `tasks_done` that got no
//! answer, a `task_done` notification that could not be written, and a result finished while
//! disconnected are kept and sent again on the next connection, after its announcements,
//! until the gateway answers (applied, or refused: a refusal, such as an unknown cookie, is
//! final and logged). A resend is harmless: a cookie finishes its task once. A `task_done`
//! notification that was written but lost with the gateway is not known to be lost (it has
//! no answer): use the batched calls where that matters.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jc_proto::methods::{
    Announce, AnnounceParams, CreateSlotgroup, CreateSlotgroupParams, GetTask, GetTaskParams,
    GetTasks, GetTasksParams, Ping, PingParams, TaskDone, TaskDoneParams, TaskGiven,
    TaskReadyParams, TasksDone, TasksDoneParams, Withdraw, WithdrawParams,
};
use jc_proto::{ErrorKind, Method};
use serde_json::{json, Map, Value};

use crate::client::{jitter, lock, Client};
use crate::conn::Conn;
use crate::error::{Error, Result};

/// A task handed to a handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub actionname: String,
    pub job_id: i64,
    /// The action's inputs (a JSON object).
    pub inargs: Value,
    /// The job's environment, when the action asked for it.
    pub env: Option<Value>,
}

/// Why a task failed. The class decides what the engine does: `normal` can be caught,
/// `soft` is retried when the action has a retry policy, `fatal` cannot be caught.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{msg} ({class})")]
pub struct TaskError {
    pub class: String,
    pub msg: String,
    /// More keys for the error object.
    pub extra: Map<String, Value>,
}

impl TaskError {
    /// A `normal` error.
    pub fn new(msg: impl Into<String>) -> TaskError {
        TaskError::with_class("normal", msg)
    }

    /// A `soft` error: retried under the action's retry policy.
    pub fn soft(msg: impl Into<String>) -> TaskError {
        TaskError::with_class("soft", msg)
    }

    /// A `fatal` error: not catchable.
    pub fn fatal(msg: impl Into<String>) -> TaskError {
        TaskError::with_class("fatal", msg)
    }

    /// An error of any class.
    pub fn with_class(class: impl Into<String>, msg: impl Into<String>) -> TaskError {
        TaskError {
            class: class.into(),
            msg: msg.into(),
            extra: Map::new(),
        }
    }

    /// The error object sent in `task_done`'s `outargs.error`.
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        m.insert("class".into(), Value::from(self.class.clone()));
        m.insert("msg".into(), Value::from(self.msg.clone()));
        Value::Object(m)
    }
}

impl From<String> for TaskError {
    fn from(msg: String) -> TaskError {
        TaskError::new(msg)
    }
}

impl From<&str> for TaskError {
    fn from(msg: &str) -> TaskError {
        TaskError::new(msg)
    }
}

/// What a handler returns: the outputs (a JSON object), or why the task failed.
pub type TaskResult = std::result::Result<Value, TaskError>;

type BoxFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// An action implemented as a type.
pub trait Action: Send + Sync + 'static {
    /// Performs one task.
    fn perform(&self, task: Task) -> impl Future<Output = TaskResult> + Send;
}

/// Performs an action's tasks. Build one from an async closure, a blocking closure (run on
/// tokio's blocking pool) or an [`Action`].
#[derive(Clone)]
pub struct Handler(Arc<dyn Fn(Task) -> BoxFuture + Send + Sync>);

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Handler")
    }
}

impl Handler {
    /// An async handler.
    pub fn new_async<F, Fut>(f: F) -> Handler
    where
        F: Fn(Task) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        Handler(Arc::new(move |t| Box::pin(f(t))))
    }

    /// A blocking handler, run with `spawn_blocking`.
    pub fn new_sync<F>(f: F) -> Handler
    where
        F: Fn(Task) -> TaskResult + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        Handler(Arc::new(move |t| {
            let f = f.clone();
            Box::pin(async move {
                tokio::task::spawn_blocking(move || f(t))
                    .await
                    .unwrap_or_else(|e| Err(TaskError::new(format!("the handler failed: {e}"))))
            })
        }))
    }

    /// A handler performing an [`Action`].
    pub fn from_action<A: Action>(action: A) -> Handler {
        let a = Arc::new(action);
        Handler(Arc::new(move |t| {
            let a = a.clone();
            Box::pin(async move { a.perform(t).await })
        }))
    }

    /// Runs the handler on its own task, so that a panic fails the task, not the worker.
    async fn run(&self, task: Task) -> Value {
        let fut = (self.0)(task);
        let outcome = tokio::spawn(fut)
            .await
            .unwrap_or_else(|e| Err(TaskError::new(format!("the handler failed: {e}"))));
        match outcome {
            Ok(Value::Object(m)) => Value::Object(m),
            Ok(Value::Null) => json!({}),
            Ok(other) => json!({"error": TaskError::new(format!(
                "the handler returned {other}, not a JSON object"
            )).to_json()}),
            Err(e) => json!({ "error": e.to_json() }),
        }
    }
}

/// How an action is announced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnnounceOptions {
    /// Tasks performed at once (default 1). Ignored with a slot group.
    pub slots: Option<u32>,
    /// A slot group made with [`Client::create_slotgroup`], shared with other actions.
    pub slotgroup: Option<String>,
    /// Only tasks whose inputs contain this object.
    pub filter: Option<Value>,
}

/// Free and busy slots, of one action or of a slot group.
#[derive(Debug)]
pub(crate) struct Slots {
    limit: u32,
    busy: AtomicU32,
}

impl Slots {
    fn new(limit: u32) -> Slots {
        Slots {
            limit: limit.max(1),
            busy: AtomicU32::new(0),
        }
    }

    fn try_take(&self) -> bool {
        self.busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                (b < self.limit).then_some(b + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        let _ = self
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1));
    }
}

#[derive(Debug)]
pub(crate) struct ActionReg {
    handler: Handler,
    opts: AnnounceOptions,
    slots: Arc<Slots>,
    /// A `get_tasks` of this action is on its way.
    fetching: AtomicBool,
    /// An offer came meanwhile: ask again when it is answered.
    again: AtomicBool,
}

/// The most tasks asked for, or results sent, in one call (the gateway's bound).
const MAX_BATCH: usize = 1000;

/// A finished task's result, waiting to go out on the connection that took the task.
#[derive(Debug)]
struct Finished {
    conn: Arc<Conn>,
    job_id: i64,
    actionname: String,
    done: TaskDoneParams,
}

/// Whether the batched calls are used, the results waiting for the next `tasks_done`, and
/// those waiting for the next connection.
#[derive(Debug)]
pub(crate) struct Batching {
    on: AtomicBool,
    results: Mutex<Vec<Finished>>,
    sending: AtomicBool,
    /// Results not acknowledged because their connection went away.
    unsent: Mutex<Vec<Finished>>,
    /// The newest connection whose announcements are made: unsent results go there.
    announced: Mutex<std::sync::Weak<Conn>>,
}

impl Batching {
    pub(crate) fn new(on: bool) -> Batching {
        Batching {
            on: AtomicBool::new(on),
            results: Mutex::new(Vec::new()),
            sending: AtomicBool::new(false),
            unsent: Mutex::new(Vec::new()),
            announced: Mutex::new(std::sync::Weak::new()),
        }
    }

    /// How many finished results wait for a connection.
    pub(crate) fn unsent(&self) -> usize {
        lock(&self.unsent).len()
    }

    fn on(&self) -> bool {
        self.on.load(Ordering::SeqCst)
    }

    /// The gateway lacks the batched calls: use the original ones from now on.
    fn off(&self) {
        if self.on.swap(false, Ordering::SeqCst) {
            tracing::info!("the gateway has no get_tasks/tasks_done: using get_task and task_done");
        }
    }
}

fn no_method(e: &Error) -> bool {
    e.kind() == Some(ErrorKind::MethodNotFound)
}

fn announce_params(client: &Client, name: &str, opts: &AnnounceOptions) -> AnnounceParams {
    AnnounceParams {
        actionname: name.to_owned(),
        slots: if opts.slotgroup.is_some() {
            None
        } else {
            Some(opts.slots.unwrap_or(1).max(1))
        },
        slotgroup: opts.slotgroup.clone(),
        workername: Some(client.workername().to_owned()),
        filter: opts.filter.clone(),
    }
}

async fn announce_on(conn: &Conn, params: &AnnounceParams) -> Result<()> {
    let r = conn.call::<Announce>(params).await?;
    if r.0 {
        Ok(())
    } else {
        Err(Error::Refused {
            method: Announce::NAME.into(),
            reason: r.1,
        })
    }
}

/// On a new connection: the slot groups and announcements made before.
pub(crate) async fn announce_all(client: &Client, conn: &Conn) -> Result<()> {
    let groups: Vec<(String, u32)> = lock(&client.inner.slotgroups)
        .iter()
        .map(|(n, s)| (n.clone(), s.limit))
        .collect();
    for (name, slots) in groups {
        conn.call::<CreateSlotgroup>(&CreateSlotgroupParams { name, slots })
            .await?;
    }
    let actions: Vec<(String, AnnounceOptions)> = lock(&client.inner.actions)
        .iter()
        .map(|(n, a)| (n.clone(), a.opts.clone()))
        .collect();
    for (name, opts) in actions {
        announce_on(conn, &announce_params(client, &name, &opts)).await?;
    }
    Ok(())
}

/// A `task_ready` offer: ask for as many tasks as slots are free (or, with the original
/// calls, take the offered one when a slot is free); else the server offers it elsewhere
/// after 10 s, or again when a slot frees up.
pub(crate) fn task_ready(client: &Client, conn: &Arc<Conn>, p: TaskReadyParams) {
    let Some(action) = lock(&client.inner.actions).get(&p.actionname).cloned() else {
        tracing::info!("task_ready for {}, which is not announced", p.actionname);
        return;
    };
    if !client.inner.batching.on() {
        take_offer(client, conn, p, action);
        return;
    }
    if action.fetching.swap(true, Ordering::SeqCst) {
        action.again.store(true, Ordering::SeqCst);
        return;
    }
    tokio::spawn(fetch(client.clone(), conn.clone(), p, action));
}

/// `get_tasks` for the free slots of the action, again while offers came meanwhile.
async fn fetch(client: Client, conn: Arc<Conn>, p: TaskReadyParams, action: Arc<ActionReg>) {
    loop {
        action.again.store(false, Ordering::SeqCst);
        let mut count = 0;
        while count < MAX_BATCH && action.slots.try_take() {
            count += 1;
        }
        if count > 0 {
            let got = conn
                .call::<GetTasks>(&GetTasksParams {
                    actionname: p.actionname.clone(),
                    count: count as u32,
                })
                .await;
            match got {
                Ok(tasks) => {
                    for _ in tasks.len()..count {
                        action.slots.give_back();
                    }
                    for t in tasks {
                        client.inner.task_started();
                        tokio::spawn(run(
                            client.clone(),
                            conn.clone(),
                            p.actionname.clone(),
                            action.clone(),
                            t,
                        ));
                    }
                }
                Err(e) => {
                    for _ in 0..count {
                        action.slots.give_back();
                    }
                    if no_method(&e) {
                        client.inner.batching.off();
                        action.fetching.store(false, Ordering::SeqCst);
                        take_offer(&client, &conn, p, action);
                        return;
                    }
                    tracing::warn!("get_tasks {}: {e}", p.actionname);
                }
            }
        }
        action.fetching.store(false, Ordering::SeqCst);
        // An offer that came after the last look asks again (unless another fetch did).
        if !action.again.load(Ordering::SeqCst) || action.fetching.swap(true, Ordering::SeqCst) {
            return;
        }
    }
}

/// The original calls: `get_task` for the offered task when a slot is free.
fn take_offer(client: &Client, conn: &Arc<Conn>, p: TaskReadyParams, action: Arc<ActionReg>) {
    if !action.slots.try_take() {
        tracing::debug!("task_ready for {} while its slots are busy", p.actionname);
        return;
    }
    client.inner.task_started();
    let client = client.clone();
    let conn = conn.clone();
    tokio::spawn(async move {
        let given = conn
            .call::<GetTask>(&GetTaskParams {
                actionname: p.actionname.clone(),
                job_id: p.job_id.clone(),
            })
            .await;
        match given {
            Ok(Some(t)) => run(client, conn, p.actionname, action, t).await,
            // Another worker was faster.
            Ok(None) => {
                action.slots.give_back();
                client.inner.task_finished();
            }
            Err(e) => {
                tracing::warn!("get_task {} {:?}: {e}", p.actionname, p.job_id);
                action.slots.give_back();
                client.inner.task_finished();
            }
        }
    });
}

/// Runs the handler on a task taken (its slot taken and counted in flight), then sends
/// the result on.
async fn run(
    client: Client,
    conn: Arc<Conn>,
    actionname: String,
    action: Arc<ActionReg>,
    given: TaskGiven,
) {
    let TaskGiven(job_id, cookie, inargs, env) = given;
    let task = Task {
        actionname: actionname.clone(),
        job_id,
        inargs,
        env,
    };
    let outargs = action.handler.run(task).await;
    // The slot is free before the result leaves: the server may offer the next task as
    // soon as it has the result.
    action.slots.give_back();
    let f = Finished {
        conn,
        job_id,
        actionname,
        done: TaskDoneParams { cookie, outargs },
    };
    queue(&client, vec![f]);
}

/// Sends results on: with the batched calls through the next `tasks_done`, else each as a
/// `task_done` notification. Each counts in flight (it was counted by the caller) until it
/// is answered, refused, or kept for the next connection.
fn queue(client: &Client, results: Vec<Finished>) {
    let batching = &client.inner.batching;
    if !batching.on() {
        for f in results {
            notify_done(client, f);
            client.inner.task_finished();
        }
        return;
    }
    lock(&batching.results).extend(results);
    if !batching.sending.swap(true, Ordering::SeqCst) {
        tokio::spawn(send_results(client.clone()));
    }
}

fn notify_done(client: &Client, f: Finished) {
    if let Err(e) = f.conn.notify::<TaskDone>(&f.done) {
        tracing::warn!(
            "task_done for job {} ({}) not sent: {e}; kept for the next connection",
            f.job_id,
            f.actionname
        );
        keep(client, vec![f]);
    }
}

/// Keeps results whose connection went away for the next one (at once when it is there).
fn keep(client: &Client, results: Vec<Finished>) {
    let batching = &client.inner.batching;
    let from = results.first().map(|f| f.conn.clone());
    lock(&batching.unsent).extend(results);
    // A connection announced before these were kept would not take them: look again.
    let next = lock(&batching.announced).upgrade();
    let fresh = |c: &Arc<Conn>| !c.is_closed() && !from.as_ref().is_some_and(|f| Arc::ptr_eq(f, c));
    if let Some(conn) = next.filter(fresh) {
        resend(client, &conn);
    }
}

/// On a connection whose announcements are made: the results kept for it go out.
pub(crate) fn resend(client: &Client, conn: &Arc<Conn>) {
    let batching = &client.inner.batching;
    *lock(&batching.announced) = Arc::downgrade(conn);
    let mut kept = std::mem::take(&mut *lock(&batching.unsent));
    if kept.is_empty() {
        return;
    }
    tracing::info!("sending {} results again on the new connection", kept.len());
    for f in &mut kept {
        f.conn = conn.clone();
        client.inner.task_started();
    }
    queue(client, kept);
}

/// Sends the finished results, those of one connection in one `tasks_done`, until none
/// are left; results finished meanwhile go in the next call.
async fn send_results(client: Client) {
    let batching = &client.inner.batching;
    loop {
        let mut batch = std::mem::take(&mut *lock(&batching.results));
        if batch.is_empty() {
            batching.sending.store(false, Ordering::SeqCst);
            if lock(&batching.results).is_empty() || batching.sending.swap(true, Ordering::SeqCst) {
                return;
            }
            continue;
        }
        while !batch.is_empty() {
            let conn = batch[0].conn.clone();
            let (mine, rest): (Vec<Finished>, Vec<Finished>) =
                batch.into_iter().partition(|f| Arc::ptr_eq(&f.conn, &conn));
            batch = rest;
            let mut mine = mine.into_iter().peekable();
            while mine.peek().is_some() {
                let chunk: Vec<Finished> = mine.by_ref().take(MAX_BATCH).collect();
                send_batch(&client, &conn, chunk).await;
            }
        }
    }
}

async fn send_batch(client: &Client, conn: &Conn, batch: Vec<Finished>) {
    let n = batch.len();
    let params = TasksDoneParams {
        results: batch.iter().map(|f| f.done.clone()).collect(),
    };
    match conn.call::<TasksDone>(&params).await {
        Ok(outcomes) => {
            for (f, o) in batch.iter().zip(&outcomes) {
                if let Some(e) = o.error.as_ref().filter(|_| !o.ok) {
                    tracing::warn!(
                        "task_done for job {} ({}) refused: {}",
                        f.job_id,
                        f.actionname,
                        e.message
                    );
                }
            }
        }
        Err(e) if no_method(&e) => {
            client.inner.batching.off();
            for f in batch {
                notify_done(client, f);
            }
        }
        Err(e) if e.is_transient() => {
            let jobs: Vec<i64> = batch.iter().map(|f| f.job_id).collect();
            tracing::warn!(
                "tasks_done for jobs {jobs:?} not acknowledged: {e}; kept for the next connection"
            );
            keep(client, batch);
        }
        Err(e) => {
            let jobs: Vec<i64> = batch.iter().map(|f| f.job_id).collect();
            tracing::warn!("tasks_done for jobs {jobs:?} refused: {e}");
        }
    }
    for _ in 0..n {
        client.inner.task_finished();
    }
}

impl Client {
    /// Offers to perform `actionname` with `handler`. The announcement is repeated on every
    /// new connection.
    pub async fn announce(
        &self,
        actionname: &str,
        handler: Handler,
        opts: AnnounceOptions,
    ) -> Result<()> {
        if lock(&self.inner.actions).contains_key(actionname) {
            return Err(Error::Config(format!(
                "action {actionname} is already announced"
            )));
        }
        let slots = match &opts.slotgroup {
            Some(g) => lock(&self.inner.slotgroups)
                .get(g)
                .cloned()
                .ok_or_else(|| {
                    Error::Config(format!(
                        "no slot group {g}: create it with create_slotgroup first"
                    ))
                })?,
            None => Arc::new(Slots::new(opts.slots.unwrap_or(1))),
        };
        let conn = self.conn().await?;
        let params = announce_params(self, actionname, &opts);
        // Registered first: the server may offer a task before it answers.
        lock(&self.inner.actions).insert(
            actionname.to_owned(),
            Arc::new(ActionReg {
                handler,
                opts,
                slots,
                fetching: AtomicBool::new(false),
                again: AtomicBool::new(false),
            }),
        );
        let announced = announce_on(&conn, &params).await;
        if announced.is_err() {
            lock(&self.inner.actions).remove(actionname);
        }
        announced
    }

    /// Stops offering `actionname`.
    pub async fn withdraw(&self, actionname: &str) -> Result<()> {
        lock(&self.inner.actions).remove(actionname);
        self.request::<Withdraw>(&WithdrawParams {
            actionname: actionname.into(),
        })
        .await
        .map(|_| ())
    }

    /// A slot group: actions announced with it share `slots` tasks at once.
    pub async fn create_slotgroup(&self, name: &str, slots: u32) -> Result<()> {
        self.request::<CreateSlotgroup>(&CreateSlotgroupParams {
            name: name.into(),
            slots,
        })
        .await?;
        lock(&self.inner.slotgroups).insert(name.into(), Arc::new(Slots::new(slots)));
        Ok(())
    }

    /// Serves the announced actions until [`Client::stop`]: takes offered tasks, pings the
    /// server every `keepalive`, and reconnects with back-off (announcing again) when the
    /// connection drops. Returns after the tasks in hand are done. A refused `hello` ends
    /// it with [`Error::Auth`].
    pub async fn work(&self) -> Result<()> {
        let config = &self.inner.config;
        let mut stop = self.inner.stop.subscribe();
        let mut delay = config.backoff.initial;
        let outcome = 'outer: loop {
            let stop_now = *stop.borrow_and_update();
            if stop_now {
                break Ok(());
            }
            let conn = match self.conn().await {
                Ok(c) => {
                    delay = config.backoff.initial;
                    c
                }
                Err(e) if e.is_transient() && config.reconnect => {
                    tracing::warn!("connecting: {e}; again in {delay:?}");
                    tokio::select! {
                        () = tokio::time::sleep(jitter(delay)) => {}
                        _ = stop.changed() => {}
                    }
                    delay = (delay * 2).min(config.backoff.max);
                    continue;
                }
                Err(e) => break Err(e),
            };
            loop {
                let keepalive = if config.keepalive.is_zero() {
                    Duration::from_secs(u64::from(u32::MAX))
                } else {
                    config.keepalive
                };
                tokio::select! {
                    () = stopped(&mut stop) => break 'outer Ok(()),
                    () = conn.closed() => {
                        if !config.reconnect {
                            break 'outer Err(Error::Disconnected);
                        }
                        tracing::info!("connection lost; reconnecting");
                        break;
                    }
                    () = tokio::time::sleep(keepalive) => {
                        let ping = tokio::time::timeout(
                            Duration::from_secs(30),
                            conn.call::<Ping>(&PingParams {}),
                        )
                        .await;
                        if !matches!(ping, Ok(Ok(_))) {
                            tracing::warn!("the server did not answer a ping; reconnecting");
                            conn.close();
                            break;
                        }
                    }
                }
            }
        };
        // Let the tasks in hand finish and report.
        loop {
            let idle = self.inner.idle.notified();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                break;
            }
            idle.await;
        }
        let unsent = self.inner.batching.unsent();
        if unsent > 0 {
            tracing::warn!(
                "{unsent} finished results wait for a connection: they go out when this client connects again"
            );
        }
        self.inner.stop.send_replace(false);
        outcome
    }

    /// Makes [`Client::work`] return once the tasks in hand are done.
    pub fn stop(&self) {
        self.inner.stop.send_replace(true);
    }
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
