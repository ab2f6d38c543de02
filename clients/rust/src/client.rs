//! The client: one connection to jcapi at a time, opened lazily and again after a drop;
//! job creation, waiting for `job_done`, and the other client calls.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use jc_proto::methods::{
    CancelJob, CancelJobParams, CheckIfLockExists, CheckIfLockExistsParams, CreateJob,
    CreateJobParams, FindJobs, FindJobsParams, GetJob, GetJobParams, GetJobStatus,
    GetJobStatusParams, JobInfo, JobStatus, Ping, PingParams, RaiseEvent, RaiseEventParams,
    RetryJob, RetryJobParams,
};
use jc_proto::Method;
use serde_json::Value;
use tokio::sync::{oneshot, watch, Notify};

use crate::config::Config;
use crate::conn::{Conn, Event, EventFn};
use crate::error::{Error, Result};
use crate::worker::{self, ActionReg, Slots};

/// How many `job_done`s nobody waited for yet are kept.
const EARLY_ENDS: usize = 1024;

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A job to create: the workflow, its inputs and the optional settings of `create_job`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRequest {
    pub wfname: String,
    pub inargs: Value,
    /// Version tags to try in order (`a:b`).
    pub vtag: Option<String>,
    /// Seconds the server waits for the job before answering `job_done` with
    /// `{"error": "timeout"}` (the job goes on).
    pub timeout: Option<f64>,
    /// The client's environment, visible to the job.
    pub clenv: Option<Value>,
    /// Idempotency key: creating the same workflow again with the same key while the job
    /// lives (or within the server's `job_key_retention` after it ended) returns that job.
    pub key: Option<String>,
    /// The job's priority, -1000 to 1000 (default 0), served before lower ones with aging.
    pub priority: Option<i32>,
}

impl JobRequest {
    /// A request with no tags, time-out or environment.
    pub fn new(wfname: impl Into<String>, inargs: Value) -> JobRequest {
        JobRequest {
            wfname: wfname.into(),
            inargs,
            vtag: None,
            timeout: None,
            clenv: None,
            key: None,
            priority: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    /// The current connection; the async lock keeps two tasks from connecting at once.
    current: tokio::sync::Mutex<Option<Arc<Conn>>>,
    welcome: Mutex<Option<String>>,
    jobs: Mutex<HashMap<i64, Vec<oneshot::Sender<Value>>>>,
    /// Jobs created here, with the connection that created them: the gateway sends their
    /// `job_done` there unasked.
    created: Mutex<HashMap<i64, Weak<Conn>>>,
    /// `job_done`s that came before anyone waited (the newest [`EARLY_ENDS`]).
    ended: Mutex<VecDeque<(i64, Value)>>,
    pub(crate) actions: Mutex<BTreeMap<String, Arc<ActionReg>>>,
    pub(crate) slotgroups: Mutex<BTreeMap<String, Arc<Slots>>>,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) in_flight: AtomicUsize,
    pub(crate) idle: Notify,
    pub(crate) batching: worker::Batching,
    workername: String,
}

/// A connection to jcapi for clients and workers. Cheap to clone: clones share the
/// connection, the announced actions and the jobs waited for.
///
/// ```no_run
/// # async fn demo() -> jc_client::Result<()> {
/// use jc_client::{Auth, Client, Config, Endpoint};
/// let config = Config::new(
///     Endpoint::tcp("localhost", 6522),
///     Auth::Password { who: "alice".into(), password: "secret".into() },
/// );
/// let client = Client::connect(config).await?;
/// let out = client.call("calltest", serde_json::json!({"input": 1})).await?;
/// println!("{out}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.inner.config.endpoint)
            .field("who", &self.inner.config.auth.who())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client that connects on first use.
    pub fn new(config: Config) -> Client {
        let workername = config.workername();
        let batching = worker::Batching::new(config.batched);
        Client {
            inner: Arc::new(Inner {
                config,
                current: tokio::sync::Mutex::new(None),
                welcome: Mutex::new(None),
                jobs: Mutex::new(HashMap::new()),
                created: Mutex::new(HashMap::new()),
                ended: Mutex::new(VecDeque::new()),
                actions: Mutex::new(BTreeMap::new()),
                slotgroups: Mutex::new(BTreeMap::new()),
                stop: watch::Sender::new(false),
                in_flight: AtomicUsize::new(0),
                idle: Notify::new(),
                batching,
                workername,
            }),
        }
    }

    /// Connects and authenticates now: a wrong password is an [`Error::Auth`] here.
    pub async fn connect(config: Config) -> Result<Client> {
        let c = Client::new(config);
        c.conn().await?;
        Ok(c)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The name this client announces actions under.
    pub fn workername(&self) -> &str {
        &self.inner.workername
    }

    /// The server's welcome message from the last `hello`.
    pub fn welcome(&self) -> Option<String> {
        lock(&self.inner.welcome).clone()
    }

    /// The live connection, connecting (and announcing the registered actions) if there is
    /// none. Without `reconnect`, a dropped connection is an error.
    pub(crate) async fn conn(&self) -> Result<Arc<Conn>> {
        let mut current = self.inner.current.lock().await;
        if let Some(c) = &*current {
            if !c.is_closed() {
                return Ok(c.clone());
            }
            if !self.inner.config.reconnect {
                return Err(Error::Disconnected);
            }
        }
        let weak = Arc::downgrade(&self.inner);
        let on_event: EventFn = Arc::new(move |conn, ev| on_event(&weak, conn, ev));
        let (conn, welcome) = Conn::connect(&self.inner.config, on_event).await?;
        tracing::info!(
            "connected to {}: {welcome}",
            self.inner.config.endpoint.address()
        );
        *lock(&self.inner.welcome) = Some(welcome);
        if let Err(e) = worker::announce_all(self, &conn).await {
            conn.close();
            return Err(e);
        }
        *current = Some(conn.clone());
        drop(current);
        // After the announcements: the results the last connection could not deliver.
        worker::resend(self, &conn);
        Ok(conn)
    }

    /// Closes the connection. Announcements end with it; the next call connects again.
    pub async fn close(&self) {
        if let Some(c) = self.inner.current.lock().await.take() {
            c.close();
        }
    }

    /// Any call, typed by its [`Method`] (see `jc_proto::methods`).
    pub async fn request<M: Method>(&self, params: &M::Params) -> Result<M::Result> {
        self.conn().await?.call::<M>(params).await
    }

    /// Creates a job and returns its id without waiting.
    pub async fn call_nb(&self, wfname: &str, inargs: Value) -> Result<i64> {
        self.create_job(&JobRequest::new(wfname, inargs)).await
    }

    /// Creates a job from a full request and returns its id.
    pub async fn create_job(&self, req: &JobRequest) -> Result<i64> {
        let params = CreateJobParams {
            wfname: req.wfname.clone(),
            inargs: req.inargs.clone(),
            vtag: req.vtag.clone(),
            timeout: req.timeout,
            clenv: req.clenv.clone(),
            key: req.key.clone(),
            priority: req.priority,
        };
        let conn = self.conn().await?;
        match conn.call::<CreateJob>(&params).await? {
            jc_proto::methods::CreateJobResult(Some(job_id), _) => {
                let mut created = lock(&self.inner.created);
                created.retain(|_, c| c.strong_count() > 0);
                created.insert(job_id, Arc::downgrade(&conn));
                Ok(job_id)
            }
            jc_proto::methods::CreateJobResult(None, why) => Err(Error::Refused {
                method: CreateJob::NAME.into(),
                reason: why.unwrap_or_else(|| "no reason given".into()),
            }),
        }
    }

    /// Runs a workflow to its end: its outputs, or [`Error::Job`] when it ends in error.
    pub async fn call(&self, wfname: &str, inargs: Value) -> Result<Value> {
        self.call_with(&JobRequest::new(wfname, inargs)).await
    }

    /// [`Client::call`] with a full request.
    pub async fn call_with(&self, req: &JobRequest) -> Result<Value> {
        let job_id = self.create_job(req).await?;
        self.wait_job(job_id).await
    }

    /// Waits for a job to end: its outputs, or [`Error::Job`] when it ended in error.
    ///
    /// Waits for `job_done`: a job created by this client on the current connection gets
    /// it unasked; any other first asks `get_job_status` with `notify`. After a reconnect it
    /// asks, so a `job_done` lost with the connection is not waited for forever.
    pub async fn wait_job(&self, job_id: i64) -> Result<Value> {
        let backoff = self.inner.config.backoff;
        let mut delay = backoff.initial;
        loop {
            let attempt = async {
                let conn = self.conn().await?;
                let (tx, rx) = oneshot::channel();
                {
                    let mut jobs = lock(&self.inner.jobs);
                    let waiters = jobs.entry(job_id).or_default();
                    waiters.retain(|w| !w.is_closed());
                    waiters.push(tx);
                }
                let early = {
                    let mut ended = lock(&self.inner.ended);
                    let i = ended.iter().position(|(j, _)| *j == job_id);
                    i.and_then(|i| ended.remove(i)).map(|(_, out)| out)
                };
                if let Some(out) = early {
                    lock(&self.inner.created).remove(&job_id);
                    return Ok::<_, Error>(Some(out));
                }
                let unasked = lock(&self.inner.created)
                    .remove(&job_id)
                    .and_then(|c| c.upgrade())
                    .is_some_and(|c| Arc::ptr_eq(&c, &conn));
                if !unasked {
                    let status = conn
                        .call::<GetJobStatus>(&GetJobStatusParams {
                            job_id,
                            notify: Some(true),
                        })
                        .await?;
                    if let JobStatus(_, Some(out)) = status {
                        return Ok(Some(out));
                    }
                }
                tokio::select! {
                    r = rx => Ok(r.ok()),
                    () = conn.closed() => Ok(None),
                }
            };
            match attempt.await {
                Ok(Some(out)) => return job_result(job_id, out),
                Ok(None) => {}
                Err(e) if e.is_transient() && self.inner.config.reconnect => {
                    tracing::info!("waiting for job {job_id}: {e}; trying again");
                    tokio::time::sleep(jitter(delay)).await;
                    delay = (delay * 2).min(backoff.max);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The job's outputs once it has ended (`{"error": …}` for a job in error), `None`
    /// while it runs.
    pub async fn get_job_status(&self, job_id: i64) -> Result<Option<Value>> {
        let JobStatus(_, out) = self
            .request::<GetJobStatus>(&GetJobStatusParams {
                job_id,
                notify: None,
            })
            .await?;
        Ok(out)
    }

    /// The job's details: state, inputs, outputs and step log.
    pub async fn get_job(&self, job_id: i64) -> Result<JobInfo> {
        self.request::<GetJob>(&GetJobParams { job_id }).await
    }

    /// Cancels a live job (it ends in error, class `abort`).
    pub async fn cancel_job(&self, job_id: i64, reason: Option<&str>) -> Result<bool> {
        self.request::<CancelJob>(&CancelJobParams {
            job_id,
            reason: reason.map(str::to_owned),
        })
        .await
    }

    /// Restarts a job that ended in error.
    pub async fn retry_job(&self, job_id: i64, reason: Option<&str>) -> Result<bool> {
        self.request::<RetryJob>(&RetryJobParams {
            job_id,
            reason: reason.map(str::to_owned),
        })
        .await
    }

    /// Publishes an event (a JSON object); returns its id.
    pub async fn raise_event(&self, event: Value) -> Result<i64> {
        self.request::<RaiseEvent>(&RaiseEventParams { event })
            .await
    }

    /// The ids of the caller's jobs whose inputs contain `filter`, optionally in `state`.
    pub async fn find_jobs(&self, filter: Value, state: Option<&str>) -> Result<Vec<i64>> {
        self.request::<FindJobs>(&FindJobsParams {
            filter,
            state: state.map(str::to_owned),
        })
        .await
    }

    /// Whether a job holds the lock `(locktype, lockvalue)`.
    pub async fn check_if_lock_exists(&self, locktype: &str, lockvalue: &str) -> Result<bool> {
        self.request::<CheckIfLockExists>(&CheckIfLockExistsParams {
            locktype: locktype.into(),
            lockvalue: lockvalue.into(),
        })
        .await
    }

    /// Pings the server.
    pub async fn ping(&self) -> Result<()> {
        let pong = self.request::<Ping>(&PingParams {}).await?;
        if pong == "pong" {
            Ok(())
        } else {
            Err(Error::Protocol(format!("ping answered {pong:?}")))
        }
    }
}

/// A job's outputs, or its error: outputs that are exactly `{"error": …}`.
pub(crate) fn job_result(job_id: i64, out: Value) -> Result<Value> {
    match out {
        Value::Object(mut m) if m.len() == 1 && m.contains_key("error") => Err(Error::Job {
            job_id,
            error: m.remove("error").unwrap_or(Value::Null),
        }),
        out => Ok(out),
    }
}

fn on_event(inner: &Weak<Inner>, conn: &Arc<Conn>, ev: Event) {
    let Some(inner) = inner.upgrade() else { return };
    match ev {
        Event::JobDone(p) => {
            let waiters = lock(&inner.jobs).remove(&p.job_id).unwrap_or_default();
            let mut sent = false;
            for w in waiters {
                sent |= w.send(p.outargs.clone()).is_ok();
            }
            if !sent {
                // Not waited for yet: kept for the wait_job to come. Whether or not the job
                // is in `created` yet: the gateway answers a keyed create_job that names a
                // job that ended already with its job_done right behind the answer, and this
                // can run before create_job has put the id in `created`.
                lock(&inner.created).remove(&p.job_id);
                let mut ended = lock(&inner.ended);
                ended.retain(|(j, _)| *j != p.job_id);
                ended.push_back((p.job_id, p.outargs));
                if ended.len() > EARLY_ENDS {
                    ended.pop_front();
                }
            }
        }
        Event::TaskReady(p) => worker::task_ready(&Client { inner }, conn, p),
        Event::Closed => {
            // Waiters ask again on the next connection.
            lock(&inner.jobs).clear();
            lock(&inner.created).retain(|_, c| c.upgrade().is_some_and(|c| !c.is_closed()));
        }
    }
}

/// Between half and all of `d`.
pub(crate) fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let frac = 0.5 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(frac)
}

impl Inner {
    pub(crate) fn task_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn task_finished(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}
