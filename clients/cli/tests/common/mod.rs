//! The end-to-end harness: a private database with models, users and roles, the real `jcapi`
//! binary on free ports (TCP and WebSocket), and a tiny HTTP server for http actions.
//!
//! Finding `jcapi`: cargo exposes `CARGO_BIN_EXE_<name>` only for the tested package's own
//! binaries (artifact dependencies are unstable), so the harness looks in the profile
//! directory of the running test (`target/<profile>/jcapi`). `cargo test --workspace` has
//! built it there before any test runs. When it is missing, or older than the sources of
//! jcapi, jc-proto or jc-db (a `cargo test -p jc-cli` after an edit), the harness runs
//! `cargo build -p jcapi` once for the profile and target directory in use.
#![allow(clippy::unwrap_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// A sha512-crypt hash of "alice-pw".
const ALICE_HASH: &str = "$6$rounds=5000$jcE2eSaltAlice$2D2ow2VmSj1WypvmeIYmM6YKA/vu2cS662S6hUgG5sJzm92mq2bA5ZTB2JadM3HBWzdGBUApaHfYtJIgVuK801";
/// A sha512-crypt hash of "worker-pw".
const WORKER_HASH: &str = "$6$rounds=5000$jcE2eSaltWorker$XTUH2nz3BC8cxz2mu/UHsvPd00j/JGYJR5S.pGv/4JoG5B7v4.MDBA4o1amRUdoEvmQmfUMEFD.STx7PYmoQ/0";
/// SHA-256 of "alice-token".
const ALICE_TOKEN_DIGEST: &str = "9c220f200955d76c0a38d308225e0ef10c5f971acaf2f8d1d8f732affa5bd1dc";

pub const ALICE: (&str, &str) = ("alice", "alice-pw");
pub const WORKER: (&str, &str) = ("worker", "worker-pw");
pub const ALICE_TOKEN: &str = "alice-token";

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_owned()
}

fn newest_source(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(m);
            }
        }
    }
    newest
}

/// The jcapi binary of this test's profile, built if missing or stale.
pub fn jcapi_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        // target/<profile>/deps/<test>
        let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
        let bin = profile_dir.join("jcapi");
        let root = workspace();
        let sources = ["jcapi", "crates/proto", "crates/db"]
            .iter()
            .map(|d| newest_source(&root.join(d).join("src")))
            .chain([newest_source(&root.join("jcapi/Cargo.toml"))])
            .max()
            .unwrap();
        let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
        if built.is_none_or(|b| b < sources) {
            let target_dir = profile_dir.parent().unwrap();
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") | None => "dev".to_owned(),
                Some(p) => p.to_owned(),
            };
            eprintln!("building jcapi ({profile}) in {}", target_dir.display());
            let status = Command::new(env!("CARGO"))
                .current_dir(&root)
                .args([
                    "build",
                    "-p",
                    "jcapi",
                    "--bin",
                    "jcapi",
                    "--profile",
                    &profile,
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .status()
                .expect("running cargo build -p jcapi");
            assert!(status.success(), "cargo build -p jcapi failed");
        }
        assert!(bin.exists(), "no jcapi binary at {}", bin.display());
        bin
    })
    .clone()
}

/// Test certificates: a CA, a server certificate for localhost and 127.0.0.1, and a client
/// certificate whose CN is alice, as PEM files in a directory.
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub alice_cert: PathBuf,
    pub alice_key: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "e2e CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let issue = |cn: &str, file: &str| {
            let mut p =
                CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                    .unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            let key = KeyPair::generate().unwrap();
            let cert = p.signed_by(&key, &issuer).unwrap();
            (
                write(&format!("{file}.pem"), cert.pem()),
                write(&format!("{file}.key"), key.serialize_pem()),
            )
        };
        let (server_cert, server_key) = issue("localhost", "server");
        let (alice_cert, alice_key) = issue("alice", "alice");
        Pki {
            ca: write("ca.pem", ca_cert.pem()),
            server_cert,
            server_key,
            alice_cert,
            alice_key,
        }
    }
}

/// A running gateway on a fresh database: TCP, WebSocket and TLS listeners (TLS accepts a
/// client certificate from the test CA but does not require one).
pub struct Gateway {
    pub db: testkit::TestDb,
    pub sql: tokio_postgres::Client,
    pub tcp: SocketAddr,
    pub ws: SocketAddr,
    pub tls: SocketAddr,
    pub pki: Pki,
    pub dir: tempfile::TempDir,
    child: Child,
    log: Arc<Mutex<String>>,
}

/// jcapi's configuration file with the listeners on the given addresses.
fn jcapi_config(dir: &Path, pki: &Pki, addrs: [&str; 3]) -> PathBuf {
    let users = dir.join("users.toml");
    std::fs::write(
        &users,
        format!(
            "[users.alice]\npassword = {ALICE_HASH:?}\ntokens = [{ALICE_TOKEN_DIGEST:?}]\n\
             certs = [\"alice\"]\n\n\
             [users.worker]\npassword = {WORKER_HASH:?}\n"
        ),
    )
    .unwrap();
    let file = dir.join("jcapi.toml");
    std::fs::write(
        &file,
        format!(
            r#"users_file = {users:?}
log_level = "warn,jcapi::conn=debug,jcapi::commit=debug"

[[listen]]
kind = "tcp"
address = "{tcp}"
auth = ["password", "token"]

[[listen]]
kind = "ws"
address = "{ws}"
auth = ["password", "token"]

[[listen]]
kind = "tls"
address = "{tls}"
auth = ["password", "token", "clientcert"]
tls_cert = {cert:?}
tls_key = {key:?}
client_ca = {ca:?}
require_client_cert = false
"#,
            tcp = addrs[0],
            ws = addrs[1],
            tls = addrs[2],
            cert = pki.server_cert,
            key = pki.server_key,
            ca = pki.ca,
        ),
    )
    .unwrap();
    file
}

/// Starts jcapi; returns it, its log and its (tcp, ws, tls) addresses once it is ready.
fn spawn_jcapi(dsn: &str, config: &Path) -> (Child, Arc<Mutex<String>>, [SocketAddr; 3]) {
    let mut child = Command::new(jcapi_bin())
        .arg("--dsn")
        .arg(dsn)
        .arg("--config")
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting jcapi");
    let log = Arc::new(Mutex::new(String::new()));
    {
        let mut stderr = child.stderr.take().unwrap();
        let log = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut tcp, mut ws, mut tls) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            panic!("jcapi did not get ready: {}", log.lock().unwrap())
        };
        let parts: Vec<&str> = line.split_whitespace().collect();
        match parts.as_slice() {
            ["listening", "tcp", addr] => tcp = Some(addr.parse().unwrap()),
            ["listening", "ws", addr] => ws = Some(addr.parse().unwrap()),
            ["listening", "tls", addr] => tls = Some(addr.parse().unwrap()),
            ["ready"] => break,
            _ => {}
        }
    }
    let addrs = [
        tcp.expect("a tcp listener"),
        ws.expect("a ws listener"),
        tls.expect("a tls listener"),
    ];
    (child, log, addrs)
}

impl Gateway {
    /// Loads `models`, makes the users alice and worker, and starts jcapi.
    pub async fn start(models: &[jcl::Model]) -> Gateway {
        let db = testkit::Cluster::shared()
            .await
            .expect("cluster")
            .new_db()
            .await
            .expect("database");
        let sql = db.connect().await.expect("connect");
        for m in models {
            jc_db::load_model(&sql, m, &[])
                .await
                .unwrap_or_else(|e| panic!("loading {}: {e}", m.name));
        }
        sql.batch_execute(
            "insert into jobcenter.jc_roles values ('alice'), ('worker');
             insert into jobcenter.jc_impersonate_roles (rolename, impersonates)
                 values (current_user, 'alice'), (current_user, 'worker');
             insert into jobcenter.jc_role_members values ('alice', 'workers'), ('worker', 'workers');",
        )
        .await
        .expect("roles");
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        let any = "127.0.0.1:0";
        let config = jcapi_config(dir.path(), &pki, [any, any, any]);
        let (child, log, [tcp, ws, tls]) = spawn_jcapi(&db.dsn, &config);
        Gateway {
            db,
            sql,
            tcp,
            ws,
            tls,
            pki,
            dir,
            child,
            log,
        }
    }

    /// Stops jcapi (SIGKILL: connections drop without a goodbye).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts jcapi again on the same addresses.
    pub fn restart(&mut self) {
        self.kill();
        let addrs = [self.tcp, self.ws, self.tls].map(|a| a.to_string());
        let config = jcapi_config(
            self.dir.path(),
            &self.pki,
            [&addrs[0], &addrs[1], &addrs[2]],
        );
        let (child, log, _) = spawn_jcapi(&self.db.dsn, &config);
        self.child = child;
        self.log = log;
    }

    /// jcapi's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The WebSocket URL.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.ws)
    }

    /// A job's state in the database.
    pub async fn state(&self, job_id: i64) -> String {
        self.sql
            .query_one(
                "select state::text from jobcenter.jobs where job_id = $1
                 union all select state::text from jobcenter.jobs_archive where job_id = $1",
                &[&job_id],
            )
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request the HTTP server received.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// A tiny HTTP/1.1 server on 127.0.0.1: each request's JSON body goes to `respond`, which
/// returns the status and the response body.
pub struct HttpServer {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<HttpRequest>>>,
}

impl HttpServer {
    pub fn start(
        respond: impl Fn(&HttpRequest) -> (u16, String) + Send + Sync + 'static,
    ) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(vec![]));
        let reqs = requests.clone();
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let reqs = reqs.clone();
                let respond = respond.clone();
                std::thread::spawn(move || serve_http(stream, &reqs, &*respond));
            }
        });
        HttpServer { addr, requests }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn serve_http(
    stream: std::net::TcpStream,
    reqs: &Mutex<Vec<HttpRequest>>,
    respond: &dyn Fn(&HttpRequest) -> (u16, String),
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut headers = vec![];
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_owned());
                if k == "content-length" {
                    len = v.parse().unwrap_or(0);
                }
                headers.push((k, v));
            }
        }
        let mut body = vec![0u8; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let req = HttpRequest {
            path,
            headers,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        };
        let (status, text) = respond(&req);
        reqs.lock().unwrap().push(req);
        let reply = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}
