//! Test support for the gateway's end-to-end tests: a database with users and example
//! models, the real `jcapi` binary on port 0, TLS certificates made with rcgen, a minimal
//! JSON-RPC client over netstrings (TCP, TLS) and WebSocket, and a worker loop.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use jc_proto::{Frame, NetstringCodec};
use jcl::build::{path, set, var};
use jcl::{Model, Ns};
use serde_json::{json, Value};
use testkit::examples::{self, calls, counter_action};
use testkit::flow::{action, Flow};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::codec::FramedRead;

pub const ALICE_PW: &str = "alice-pw";
pub const ALICE_TOKEN: &str = "alice-token-0123456789";
pub const BOB_PW: &str = "bob-pw";

/// Loads action `rated` (counter + step, at most `limit` task starts per second) and
/// workflow `ratedtest`, which calls it.
pub async fn load_rated(env: &Env, limit: u32) {
    let rated = counter_action("rated")
        .config(|c| {
            c.rate = Some(jcl::RateConfig {
                limit,
                per: "1 second".into(),
            })
        })
        .model();
    for m in [rated, calls("ratedtest", "rated")] {
        jc_db::load_model(&env.db, &m, &[]).await.unwrap();
    }
}

/// The example models: `add` (counter + step) called by `calltest`; `flaky` (retryable,
/// 3 tries, 1 s apart) called by `flakytest`; `fragile` (not retryable) called by
/// `fragiletest`; `nothing` (ends at once); `approval` (waits for an event); `route`
/// (workers filter on `dest`) called by `routetest`.
pub fn models() -> Vec<Model> {
    let flaky = counter_action("flaky")
        .config(|c| {
            c.retryable = Some(true);
            c.retry = Some(jcl::model::RetryConfig {
                tries: 3,
                interval: "1 second".into(),
                backoff: Default::default(),
                max_interval: None,
                jitter: false,
            });
        })
        .model();
    let fragile = counter_action("fragile").model();
    let nothing = Flow::workflow("nothing")
        .input("input", "number")
        .output("output", "number")
        .end(vec![set(path(Ns::O, &["output"]), var(Ns::A, &["input"]))]);
    let route = action("route")
        .input("dest", "string")
        .input("n", "number")
        .output("n", "number")
        .config(|c| c.filter = Some(vec!["dest".into()]))
        .model();
    let mut routetest = Flow::workflow("routetest")
        .input("dest", "string")
        .input("n", "number")
        .output("n", "number");
    routetest.call(
        "route",
        vec![
            set(path(Ns::I, &["dest"]), var(Ns::A, &["dest"])),
            set(path(Ns::I, &["n"]), var(Ns::A, &["n"])),
        ],
        vec![set(path(Ns::V, &["n"]), var(Ns::O, &["n"]))],
    );
    let routetest = routetest.end(vec![set(path(Ns::O, &["n"]), var(Ns::V, &["n"]))]);
    vec![
        route,
        routetest,
        examples::add(),
        examples::calltest(),
        flaky,
        calls("flakytest", "flaky"),
        fragile,
        calls("fragiletest", "fragile"),
        nothing,
        examples::approval(),
    ]
}

/// A test database with the example models and the users alice, bob (workers) and carol,
/// whom the test's database role may impersonate; plus a users file.
pub struct Env {
    pub tdb: testkit::TestDb,
    pub db: tokio_postgres::Client,
    pub dir: tempfile::TempDir,
    pub users_file: PathBuf,
}

pub async fn env() -> Env {
    let tdb = testkit::Cluster::shared()
        .await
        .expect("cluster")
        .new_db()
        .await
        .expect("database");
    let db = tdb.connect().await.expect("connect");
    env_on(tdb, db).await
}

/// [`env`] on a private, durable cluster, for a test that crashes PostgreSQL: the crash keeps
/// what was committed (the shared cluster commits without flushing). The cluster is returned
/// to be crashed and started again; it must outlive the environment.
pub async fn durable_env() -> (testkit::Cluster, Env) {
    let cluster = testkit::Cluster::start(testkit::ClusterOptions { durable: true })
        .await
        .unwrap();
    let tdb = cluster.new_db().await.unwrap();
    let db = tdb.connect().await.unwrap();
    let env = env_on(tdb, db).await;
    (cluster, env)
}

/// [`env`] on a database of the caller's (reached with `tdb.dsn` through `db`).
pub async fn env_on(tdb: testkit::TestDb, db: tokio_postgres::Client) -> Env {
    for m in models() {
        jc_db::load_model(&db, &m, &[]).await.unwrap();
    }
    // The gateway acts for the users: they are jobcenter roles its role may impersonate.
    // alice and bob run workers (the default worker role); carol only calls.
    db.batch_execute(
        "insert into jobcenter.jc_roles values ('alice'), ('bob'), ('carol'); \
         insert into jobcenter.jc_impersonate_roles (rolename, impersonates) \
         select current_user, r from unnest(array['alice', 'bob', 'carol']) r; \
         insert into jobcenter.jc_role_members values ('alice', 'workers'), ('bob', 'workers')",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users.toml");
    // Cheap hashes: the gateway under test is a debug build.
    let alice = pwhash::sha512_crypt::hash_with("$6$rounds=1000$alicesalt", ALICE_PW).unwrap();
    let bob = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"bob's salt 16 by").unwrap();
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, None).unwrap(),
        )
        .hash_password(BOB_PW.as_bytes(), &salt)
        .unwrap()
        .to_string()
    };
    let carol = pwhash::sha512_crypt::hash_with("$6$rounds=1000$carolsalt", "carol-pw").unwrap();
    std::fs::write(
        &users_file,
        format!(
            "[users.alice]\npassword = {alice:?}\ntokens = [{:?}]\n\n\
             [users.bob]\npassword = {bob:?}\n\n\
             [users.carol]\npassword = {carol:?}\ncerts = [\"carol-laptop\"]\n",
            jcapi::token_digest(ALICE_TOKEN)
        ),
    )
    .unwrap();
    Env {
        tdb,
        db,
        dir,
        users_file,
    }
}

/// The `jcapi` binary, running.
pub struct Gateway {
    pub child: Child,
    pub addrs: HashMap<String, SocketAddr>,
    log: PathBuf,
}

impl Gateway {
    /// Starts the gateway on `env`'s database with TCP, WebSocket and HTTP listeners on port
    /// 0 (unless `args` give `--listen`/`--config`), short ping and offer times, and `args`.
    pub async fn start(env: &Env, args: &[&str]) -> Gateway {
        let log = env.dir.path().join(format!("jcapi-{}.log", rand_suffix()));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jcapi"));
        cmd.arg("--dsn")
            .arg(&env.tdb.dsn)
            .arg("--users-file")
            .arg(&env.users_file)
            .args(["--http", "127.0.0.1:0"]);
        if !args.iter().any(|a| *a == "--listen" || *a == "--config") {
            cmd.args(["--listen", "tcp:127.0.0.1:0", "--listen", "ws:127.0.0.1:0"]);
        }
        for (flag, value) in [
            ("--offer-timeout", "2s"),
            ("--sweep-interval", "1s"),
            ("--ping-interval", "60s"),
        ] {
            if !args.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(args)
            .env_remove("JC_DSN")
            .env(
                "JC_LOG_LEVEL",
                std::env::var("JC_TEST_LOG").unwrap_or_else(|_| "jcapi=debug".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start jcapi");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut addrs = HashMap::new();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line == "ready" {
                    return true;
                }
                if let Some(rest) = line.strip_prefix("listening ") {
                    let (kind, addr) = rest.split_once(' ').unwrap();
                    addrs.insert(kind.to_owned(), addr.parse().unwrap());
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            panic!(
                "jcapi did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Gateway { child, addrs, log }
    }

    pub fn addr(&self, kind: &str) -> SocketAddr {
        *self
            .addrs
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} listener"))
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and waits for it to exit.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running");
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("jcapi stops")
            .unwrap()
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// What the test client writes.
#[derive(Debug)]
enum Out {
    /// A message (framed by the transport).
    Msg(Vec<u8>),
    /// Bytes as they are (for broken frames).
    Raw(Vec<u8>),
}

/// A minimal JSON-RPC peer for tests: it keeps every message it receives, answers the
/// server's pings (unless told not to), and lets the test wait for what it expects.
pub struct Rpc {
    out: mpsc::UnboundedSender<Out>,
    inbox: mpsc::UnboundedReceiver<Value>,
    backlog: VecDeque<Value>,
    next_id: i64,
    tasks: Vec<JoinHandle<()>>,
    /// How many pings the server sent.
    pub pings: Arc<Mutex<u32>>,
    /// Whether pings are answered.
    pub pong: Arc<AtomicBool>,
}

impl Drop for Rpc {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

pub const WAIT: Duration = Duration::from_secs(20);

fn spawn_reader<S>(
    stream: S,
    out: mpsc::UnboundedSender<Out>,
    inbox: mpsc::UnboundedSender<Value>,
    pong: Arc<AtomicBool>,
    pings: Arc<Mutex<u32>>,
) -> JoinHandle<()>
where
    S: futures_util::Stream<Item = Option<Bytes>> + Send + Unpin + 'static,
{
    let mut stream = stream;
    tokio::spawn(async move {
        while let Some(Some(bytes)) = stream.next().await {
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                panic!("the server sent non-JSON: {bytes:?}");
            };
            if v["method"] == "ping" && v.get("id").is_some() {
                *pings.lock().unwrap() += 1;
                if pong.load(Ordering::Relaxed) {
                    let answer = json!({"jsonrpc": "2.0", "result": "pong", "id": v["id"]});
                    let _ = out.send(Out::Msg(answer.to_string().into_bytes()));
                    continue;
                }
            }
            if inbox.send(v).is_err() {
                return;
            }
        }
    })
}

impl Rpc {
    fn netstring<S>(stream: S) -> Rpc
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (r, w) = tokio::io::split(stream);
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let frames = FramedRead::new(r, NetstringCodec::new(64 << 20)).map(|f| match f {
            Ok(Frame::Message(b)) => Some(b),
            _ => None,
        });
        let pings = Arc::new(Mutex::new(0));
        let pong = Arc::new(AtomicBool::new(true));
        let reader = spawn_reader(frames, out_tx.clone(), in_tx, pong.clone(), pings.clone());
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut w = w;
            while let Some(o) = out_rx.recv().await {
                let bytes = match o {
                    Out::Msg(m) => jc_proto::codec::encode(&m),
                    Out::Raw(raw) => raw,
                };
                if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
                    return;
                }
            }
        });
        Rpc {
            out: out_tx,
            inbox: in_rx,
            backlog: VecDeque::new(),
            next_id: 0,
            tasks: vec![reader, writer],
            pings,
            pong,
        }
    }
}

impl Rpc {
    /// A netstring connection over `stream`, not greeted.
    pub fn raw_netstring(stream: tokio::net::TcpStream) -> Rpc {
        Rpc::netstring(stream)
    }

    fn websocket<S>(ws: tokio_tungstenite::WebSocketStream<S>) -> Rpc
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (mut sink, stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let frames = stream
            .filter_map(|m| async move {
                match m {
                    Ok(WsMessage::Text(t)) => Some(Some(Bytes::from(t))),
                    Ok(WsMessage::Binary(b)) => Some(Some(b)),
                    Ok(WsMessage::Close(_)) | Err(_) => Some(None),
                    Ok(_) => None,
                }
            })
            .boxed();
        let pings = Arc::new(Mutex::new(0));
        let pong = Arc::new(AtomicBool::new(true));
        let reader = spawn_reader(frames, out_tx.clone(), in_tx, pong.clone(), pings.clone());
        let writer = tokio::spawn(async move {
            while let Some(o) = out_rx.recv().await {
                let (Out::Msg(m) | Out::Raw(m)) = o;
                let msg = match String::from_utf8(m) {
                    Ok(t) => WsMessage::text(t),
                    Err(e) => WsMessage::binary(e.into_bytes()),
                };
                if sink.send(msg).await.is_err() {
                    return;
                }
            }
        });
        Rpc {
            out: out_tx,
            inbox: in_rx,
            backlog: VecDeque::new(),
            next_id: 0,
            tasks: vec![reader, writer],
            pings,
            pong,
        }
    }

    /// Sends a message.
    pub fn send(&self, v: &Value) {
        let _ = self.out.send(Out::Msg(v.to_string().into_bytes()));
    }

    /// Sends any bytes as one message (a netstring over TCP, a frame over WebSocket).
    pub fn send_payload(&self, payload: &[u8]) {
        let _ = self.out.send(Out::Msg(payload.to_vec()));
    }

    /// Sends bytes as they are (TCP) or as one frame (WebSocket).
    pub fn send_raw(&self, raw: &[u8]) {
        let _ = self.out.send(Out::Raw(raw.to_vec()));
    }

    /// The next message, or `None` when the connection closed or nothing came in time.
    pub async fn recv(&mut self, within: Duration) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        tokio::time::timeout(within, self.inbox.recv())
            .await
            .ok()
            .flatten()
    }

    /// Whether the server closes the connection within `within` (messages before are kept).
    pub async fn closed(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(v)) => self.backlog.push_back(v),
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    }

    /// Sends a request and returns the whole response (other messages are kept).
    pub async fn call_raw(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params, "id": id}));
        self.response(json!(id)).await
    }

    /// Waits for the response with `id`.
    pub async fn response(&mut self, id: Value) -> Value {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|v| v["id"] == id && v.get("method").is_none())
        {
            return self.backlog.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(v)) if v["id"] == id && v.get("method").is_none() => return v,
                Ok(Some(v)) => self.backlog.push_back(v),
                Ok(None) => panic!("connection closed while waiting for response {id}"),
                Err(_) => panic!("no response {id} in {WAIT:?}"),
            }
        }
    }

    /// Calls `method` and returns its result; panics on an error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let r = self.call_raw(method, params.clone()).await;
        match r.get("result") {
            Some(v) => v.clone(),
            None => panic!("{method}({params}) failed: {r}"),
        }
    }

    /// Calls `method` and returns its error object; panics on success.
    pub async fn call_err(&mut self, method: &str, params: Value) -> Value {
        let r = self.call_raw(method, params.clone()).await;
        match r.get("error") {
            Some(e) => e.clone(),
            None => panic!("{method}({params}) did not fail: {r}"),
        }
    }

    /// Sends a notification.
    pub fn notify(&self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// The params of the next notification `method` (others are kept), or `None` in time.
    pub async fn notification(&mut self, method: &str, within: Duration) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(|v| v["method"] == method) {
            return self.backlog.remove(i).map(|v| v["params"].clone());
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(v)) if v["method"] == method => return Some(v["params"].clone()),
                Ok(Some(v)) => self.backlog.push_back(v),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The `job_done` of job `job_id`: its outargs.
    pub async fn job_done(&mut self, job_id: i64) -> Value {
        let i = self
            .backlog
            .iter()
            .position(|v| v["method"] == "job_done" && v["params"]["job_id"] == job_id);
        if let Some(i) = i {
            return self.backlog.remove(i).unwrap()["params"]["outargs"].clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(v)) if v["method"] == "job_done" && v["params"]["job_id"] == job_id => {
                    return v["params"]["outargs"].clone()
                }
                Ok(Some(v)) => self.backlog.push_back(v),
                Ok(None) => panic!("connection closed while waiting for job {job_id}"),
                Err(_) => panic!("no job_done for {job_id} in {WAIT:?}"),
            }
        }
    }

    /// `hello` with a password; returns the result (`[bool, msg]`).
    pub async fn hello(&mut self, who: &str, method: &str, token: &str) -> Value {
        self.call(
            "hello",
            json!({"who": who, "method": method, "token": token}),
        )
        .await
    }

    /// `hello` that must succeed.
    pub async fn login(&mut self, who: &str, password: &str) {
        let r = self.hello(who, "password", password).await;
        assert_eq!(r[0], true, "hello {who}: {r}");
    }

    /// Creates a job; returns its id.
    pub async fn create_job(&mut self, wfname: &str, inargs: Value) -> i64 {
        let r = self
            .call("create_job", json!({"wfname": wfname, "inargs": inargs}))
            .await;
        assert!(r[1].is_null(), "create_job {wfname}: {r}");
        r[0].as_i64().unwrap()
    }

    /// Drops the connection at once (like a killed process).
    pub fn kill(self) {
        drop(self)
    }
}

/// The greetings every connection starts with.
async fn greeted(mut rpc: Rpc) -> Rpc {
    let g = rpc.recv(WAIT).await.expect("greetings");
    assert_eq!(
        g,
        json!({"jsonrpc": "2.0", "method": "greetings", "params": {"who": "jcapi", "version": "1.1"}})
    );
    rpc
}

/// A netstring connection over TCP, greeted.
pub async fn tcp(addr: SocketAddr) -> Rpc {
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    greeted(Rpc::netstring(s)).await
}

/// A WebSocket connection, greeted.
pub async fn ws(addr: SocketAddr) -> Rpc {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    greeted(Rpc::websocket(ws)).await
}

/// Connects over `kind` (`tcp` or `ws`), greeted.
pub async fn connect(g: &Gateway, kind: &str) -> Rpc {
    match kind {
        "tcp" => tcp(g.addr("tcp")).await,
        "ws" => ws(g.addr("ws")).await,
        _ => panic!("kind {kind}"),
    }
}

/// A connection (greeted) logged in as `who`.
pub async fn login(g: &Gateway, kind: &str, who: &str, password: &str) -> Rpc {
    let mut c = connect(g, kind).await;
    c.login(who, password).await;
    c
}

/// Checks that the gateway still logs in and answers.
pub async fn still_serving(g: &Gateway) {
    let mut c = login(g, "tcp", "alice", ALICE_PW).await;
    assert_eq!(c.call("ping", json!({})).await, json!("pong"));
}

/// A certificate authority and certificates it signs, as PEM files in `dir`.
pub struct Pki {
    pub ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &std::path::Path, name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = cert.pem();
        std::fs::write(dir.join(format!("{name}.pem")), &ca_pem).unwrap();
        Pki {
            ca_pem,
            issuer: rcgen::Issuer::new(params, key),
            dir: dir.to_owned(),
        }
    }

    pub fn ca_file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pem"))
    }

    /// A certificate for `cn` (valid for localhost and 127.0.0.1): (cert PEM, key PEM),
    /// also written to `<file>.pem` and `<file>.key`.
    pub fn issue(&self, cn: &str, file: &str) -> (String, String) {
        self.issue_with(cn, &[], 1, file)
    }

    /// [`Pki::issue`] with more DNS names (subject alternative names) and a serial number.
    pub fn issue_with(
        &self,
        cn: &str,
        names: &[&str],
        serial: u64,
        file: &str,
    ) -> (String, String) {
        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        sans.extend(names.iter().map(|n| n.to_string()));
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (cert.pem(), key.serialize_pem());
        std::fs::write(self.dir.join(format!("{file}.pem")), &c).unwrap();
        std::fs::write(self.dir.join(format!("{file}.key")), &k).unwrap();
        (c, k)
    }
}

impl Pki {
    /// A revocation list of this CA revoking the `serials`, written to `<file>.pem`.
    pub fn crl(&self, serials: &[u64], file: &str) -> PathBuf {
        let now = time::OffsetDateTime::now_utc();
        let params = rcgen::CertificateRevocationListParams {
            this_update: now - time::Duration::hours(1),
            next_update: now + time::Duration::days(30),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: serials
                .iter()
                .map(|s| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(*s),
                    revocation_time: now - time::Duration::minutes(30),
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let path = self.dir.join(format!("{file}.pem"));
        std::fs::write(
            &path,
            params.signed_by(&self.issuer).unwrap().pem().unwrap(),
        )
        .unwrap();
        path
    }
}

/// A TLS connection trusting `ca_pem`, with a client certificate when given; not greeted
/// (the server may refuse it).
pub async fn tls_raw(
    addr: SocketAddr,
    ca_pem: &str,
    client: Option<(&str, &str)>,
) -> std::io::Result<Rpc> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => {
            let chain: Vec<_> = CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let stream = connector.connect(name, tcp).await?;
    Ok(Rpc::netstring(stream))
}

/// A TLS connection, greeted.
pub async fn tls(addr: SocketAddr, ca_pem: &str, client: Option<(&str, &str)>) -> Rpc {
    greeted(tls_raw(addr, ca_pem, client).await.unwrap()).await
}

/// How often each job's task was done by the test workers.
pub type Done = Arc<Mutex<HashMap<i64, u32>>>;

/// A worker: takes every task offered to it, answers with `handler(inargs)` (after
/// `delay`), and counts in `done`. Runs until aborted.
pub fn worker(
    mut rpc: Rpc,
    action: &'static str,
    done: Done,
    delay: Duration,
    handler: fn(&Value) -> Value,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let Some(offer) = rpc
                .notification("task_ready", Duration::from_secs(3600))
                .await
            else {
                return;
            };
            assert_eq!(offer["actionname"], action);
            let task = rpc
                .call(
                    "get_task",
                    json!({"actionname": action, "job_id": offer["job_id"]}),
                )
                .await;
            if task.is_null() {
                continue;
            }
            let job_id = task[0].as_i64().unwrap();
            *done.lock().unwrap().entry(job_id).or_default() += 1;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let out = handler(&task[2]);
            rpc.notify("task_done", json!({"cookie": task[1], "outargs": out}));
        }
    })
}

/// The `add` action's answer.
pub fn add(i: &Value) -> Value {
    examples::add_answer(i)
}

/// A logged-in worker connection that announced `action`.
pub async fn announced(g: &Gateway, kind: &str, workername: &str, action: &str, slots: u32) -> Rpc {
    let mut w = login(g, kind, "alice", ALICE_PW).await;
    let r = w
        .call(
            "announce",
            json!({"actionname": action, "workername": workername, "slots": slots}),
        )
        .await;
    assert_eq!(r, json!([true, "success"]), "announce {action}");
    w
}

/// The job's state in the database.
pub async fn job_state(db: &tokio_postgres::Client, job_id: i64) -> String {
    db.query_one(
        "select state::text from jobcenter.jobs where job_id = $1",
        &[&job_id],
    )
    .await
    .unwrap()
    .get(0)
}

/// Polls `f` until it is true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The maestro's timer part, as a task: `do_timeout` every 100 ms on a connection of its own
/// (fires what is due, offers again the tasks a limit held back). Abort it when done.
pub async fn timer(env: &Env) -> tokio::task::JoinHandle<()> {
    let db = env.tdb.connect().await.unwrap();
    tokio::spawn(async move {
        loop {
            db.query_one("select jobcenter.do_timeout()", &[])
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
}
