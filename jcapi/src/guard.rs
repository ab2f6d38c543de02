//! What keeps hostile peers from costing the gateway more than the limits allow: the
//! connection count per listener and per peer address, the password checks in flight and
//! the failed logins per peer address (a token bucket), and log lines that a peer can
//! neither forge nor flood (peer strings escaped and cut, refusals before auth logged at a
//! bounded rate). The limits are [`crate::config::Limits`]; SECURITY.md says what each
//! protects.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::auth::{self, Users};
use crate::config::{AuthMethod, Limits};
use crate::server::lock;

/// The longest peer-supplied string in a log line; set once from the configuration.
static FIELD_MAX: AtomicUsize = AtomicUsize::new(200);

/// Sets the length [`shown`] cuts peer strings to.
pub(crate) fn set_field_max(n: usize) {
    FIELD_MAX.store(n, Ordering::Relaxed);
}

/// A peer-supplied string as it may go into a log line: control characters, quotes and
/// backslashes escaped (so it cannot start a line of its own or reach a terminal), cut
/// to the configured length.
pub(crate) fn shown(s: &str) -> String {
    let max = FIELD_MAX.load(Ordering::Relaxed);
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == max {
            out.push_str(&format!("…(+{} bytes)", s.len() - out.len()));
            break;
        }
        out.extend(c.escape_debug());
    }
    out
}

/// IPv6 peers are counted per /64 (one host usually has the whole prefix).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Log lines about refused peers, at most `rate` a second; the rest are counted and the
/// count is logged with the next line let through.
#[derive(Debug)]
pub(crate) struct RateLog {
    rate: u64,
    window: Mutex<(Instant, u64)>,
    dropped: AtomicU64,
}

impl RateLog {
    pub fn new(rate: usize) -> RateLog {
        RateLog {
            rate: rate as u64,
            window: Mutex::new((Instant::now(), 0)),
            dropped: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now; `Some(n)`: yes, and `n` were suppressed before it.
    pub fn allow(&self) -> Option<u64> {
        let mut w = lock(&self.window);
        let now = Instant::now();
        if now.duration_since(w.0) >= Duration::from_secs(1) {
            *w = (now, 0);
        }
        if w.1 >= self.rate {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        w.1 += 1;
        Some(self.dropped.swap(0, Ordering::Relaxed))
    }
}

/// Logs a refusal of a peer at `info`, rate-limited by `$log` (a [`RateLog`]).
macro_rules! refused {
    ($log:expr, $($arg:tt)+) => {
        if let Some(suppressed) = $log.allow() {
            tracing::info!(suppressed, $($arg)+);
        }
    };
}
pub(crate) use refused;

/// Open connections per listener and per peer address.
#[derive(Debug, Default)]
pub(crate) struct ConnLimits {
    peers: Mutex<HashMap<IpAddr, usize>>,
}

/// An admitted connection; dropping it gives its places back.
#[derive(Debug)]
pub(crate) struct Admitted {
    limits: Arc<ConnLimits>,
    listener: Arc<AtomicUsize>,
    peer: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.listener.fetch_sub(1, Ordering::Relaxed);
        let mut peers = lock(&self.limits.peers);
        if let Some(n) = peers.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                peers.remove(&self.peer);
            }
        }
    }
}

impl ConnLimits {
    /// Admits a connection from `ip` on a listener with `open` connections, or says why not.
    pub fn admit(
        self: &Arc<Self>,
        open: &Arc<AtomicUsize>,
        ip: IpAddr,
        limits: &Limits,
    ) -> Result<Admitted, &'static str> {
        let peer = peer_key(ip);
        let mut peers = lock(&self.peers);
        let n = peers.entry(peer).or_insert(0);
        if *n >= limits.max_connections_per_peer {
            return Err("too many connections from this address");
        }
        if open.fetch_add(1, Ordering::Relaxed) >= limits.max_connections {
            open.fetch_sub(1, Ordering::Relaxed);
            if *n == 0 {
                peers.remove(&peer);
            }
            return Err("too many connections on this listener");
        }
        *n += 1;
        Ok(Admitted {
            limits: self.clone(),
            listener: open.clone(),
            peer,
        })
    }
}

/// A peer's failed logins: a bucket of `login_failures` tokens, one back per refill time.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// More peers than this in the failure table and the full buckets are dropped.
const MAX_PEERS: usize = 10_000;

type Check = Box<dyn FnOnce() + Send>;

/// The threads that run password checks: a fixed few, so the memory each check takes (and
/// the allocator keeps per thread) is bounded by their number.
#[derive(Debug)]
struct Checkers {
    tx: Mutex<std::sync::mpsc::Sender<Check>>,
}

impl Checkers {
    fn new(n: usize) -> Checkers {
        let (tx, rx) = std::sync::mpsc::channel::<Check>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("jcapi-auth-{i}"))
                .spawn(move || loop {
                    let next = lock(&rx).recv();
                    match next {
                        Ok(check) => check(),
                        Err(_) => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password check thread");
            }
        }
        Checkers { tx: Mutex::new(tx) }
    }

    /// Runs `f` on a check thread.
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let check: Check = Box::new(move || {
            let _ = tx.send(f());
        });
        lock(&self.tx).send(check).ok()?;
        rx.await.ok()
    }
}

/// The checks behind `hello` and HTTP Basic: the users (reloadable), the password checks
/// in flight, and the failed logins per peer.
#[derive(Debug)]
pub(crate) struct Gate {
    users: RwLock<Arc<Users>>,
    /// Places for checks in flight or waiting for a check thread.
    checks: Arc<Semaphore>,
    checkers: Checkers,
    failures: Mutex<HashMap<IpAddr, Bucket>>,
    limits: Limits,
}

/// What a login presented (owned: the check runs on a blocking thread).
#[derive(Debug, Clone)]
pub(crate) struct Login {
    pub who: String,
    pub method: String,
    pub token: String,
    pub peer_names: Vec<String>,
}

impl Gate {
    pub fn new(users: Users, limits: Limits) -> Gate {
        Gate {
            users: RwLock::new(Arc::new(users)),
            checks: Arc::new(Semaphore::new(limits.password_checks)),
            checkers: Checkers::new(limits.password_checks),
            failures: Mutex::new(HashMap::new()),
            limits,
        }
    }

    /// Replaces the users (a reloaded users file).
    pub fn set_users(&self, users: Users) {
        *self.users.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(users);
    }

    pub fn users(&self) -> Arc<Users> {
        self.users.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn bucket(&self, b: &mut Bucket, now: Instant) {
        let refill = self.limits.login_failure_refill.as_secs_f64();
        let gained = now.duration_since(b.at).as_secs_f64() / refill;
        b.tokens = (b.tokens + gained).min(self.limits.login_failures as f64);
        b.at = now;
    }

    /// `Err(seconds)` while `peer` has used up its failed logins.
    fn blocked(&self, peer: IpAddr) -> Result<(), u64> {
        let mut f = lock(&self.failures);
        let Some(b) = f.get_mut(&peer) else {
            return Ok(());
        };
        self.bucket(b, Instant::now());
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let wait = (1.0 - b.tokens) * self.limits.login_failure_refill.as_secs_f64();
        Err(wait.ceil() as u64)
    }

    fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut f = lock(&self.failures);
        if f.len() >= MAX_PEERS && !f.contains_key(&peer) {
            let full = self.limits.login_failures as f64;
            let mut all: Vec<_> = f.drain().collect();
            all.retain_mut(|(_, b)| {
                self.bucket(b, now);
                b.tokens < full
            });
            f.extend(all);
        }
        let b = f.entry(peer).or_insert(Bucket {
            tokens: self.limits.login_failures as f64,
            at: now,
        });
        self.bucket(b, now);
        b.tokens = (b.tokens - 1.0).max(0.0);
    }

    /// Checks a login from `peer` on a listener accepting `accepted`; the error is the
    /// reason to give. Password checks wait for a place among those in flight.
    pub async fn check(
        &self,
        peer: IpAddr,
        login: Login,
        accepted: &[AuthMethod],
    ) -> Result<(), String> {
        self.run(peer, login, accepted, true).await
    }

    /// [`Gate::check`] whose failure is not counted against the peer (for a first of
    /// several tries of one request).
    pub async fn try_check(
        &self,
        peer: IpAddr,
        login: Login,
        accepted: &[AuthMethod],
    ) -> Result<(), String> {
        self.run(peer, login, accepted, false).await
    }

    async fn run(
        &self,
        peer: IpAddr,
        login: Login,
        accepted: &[AuthMethod],
        count: bool,
    ) -> Result<(), String> {
        let peer = peer_key(peer);
        let method = AuthMethod::parse(&login.method);
        let secret = matches!(method, Some(AuthMethod::Password | AuthMethod::Token))
            && method.is_some_and(|m| accepted.contains(&m));
        let count = count && secret;
        if secret {
            if let Err(secs) = self.blocked(peer) {
                return Err(format!(
                    "too many failed logins from this address: try again in {secs}s"
                ));
            }
            if login.token.len() > self.limits.max_password {
                if count {
                    self.failed(peer);
                }
                return Err(format!(
                    "the secret is over the limit of {} bytes",
                    self.limits.max_password
                ));
            }
        }
        let users = self.users();
        let accepted = accepted.to_vec();
        let run = move || {
            users.check(
                auth::Hello {
                    who: &login.who,
                    method: &login.method,
                    token: &login.token,
                    peer_names: &login.peer_names,
                },
                &accepted,
            )
        };
        let result = if method == Some(AuthMethod::Password) {
            let permit = tokio::time::timeout(
                self.limits.pre_auth_timeout,
                self.checks.clone().acquire_owned(),
            )
            .await;
            let Ok(Ok(permit)) = permit else {
                return Err("the gateway is busy: try again".into());
            };
            let r = self.checkers.run(run).await;
            drop(permit);
            r.unwrap_or_else(|| Err("authentication failed: no check thread".into()))
        } else {
            run()
        };
        if result.is_err() && count {
            self.failed(peer);
        }
        result
    }
}
