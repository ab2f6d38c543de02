//! What the console's tests share: a database with a few jobs (compiled from jcadm's
//! fixtures), a users file with an admin and a read-only user, the real `jcconsole` binary
//! on a free port, and a plain HTTP/1.1 client.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use engine_tests::{db, setup, state};
use serde_json::json;
use tokio_postgres::Client;

/// alice may act (password `alice-pw`, token `alice-token`); bob may only look (`bob-pw`).
pub const USERS: &str = r#"
[users.alice]
password = "$6$alicesalt$HFdxLk8wA2OrrIRe2fi88/dNWjVgW3Rgo//Lrtub09NaZ00EjCmK5ofIco9Wv57xiylXKDqqLmvAlfRMjg85W/"
tokens = ["TOKEN"]
console = "admin"

[users.bob]
password = "$6$bobsalt$rt.1WAPDQAm9w/bMx2NAc4Xf.JZ4.BiqVAcw2L1UeNjI8OkCzNXRPzkbFYvaOOnzK6liKZXUOSixQpLTF1l3K/"
console = "read"
"#;

/// The fixture's jobs.
#[derive(Debug)]
pub struct Jobs {
    /// An `opsdemo` job waiting at its `step` call.
    pub ready: i64,
    /// A `failer` job in error.
    pub error: i64,
    /// An `opsdemo` job that finished.
    pub finished: i64,
}

/// Compiles jcadm's fixture files `names` (with `force`, as new versions even when unchanged).
pub async fn compile_with(c: &mut Client, names: &[&str], force: bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jcadm/tests/fixtures");
    let sources = names
        .iter()
        .map(|n| {
            let path = dir.join(format!("{n}.jcl"));
            jcc::SourceFile::new(
                path.to_string_lossy(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    let (parsed, diags) = jcc::parse(sources);
    assert!(diags.is_empty(), "{diags:?}");
    let opts = jcc::db::WriteOptions {
        force,
        ..Default::default()
    };
    let (out, _) = jcc::db::compile_and_write(c, &parsed, &opts).await.unwrap();
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
}

async fn compile(c: &mut Client, names: &[&str]) {
    compile_with(c, names, false).await
}

/// A database with jcadm's fixture workflows and a ready, an error and a finished job.
pub async fn fixture() -> (testkit::TestDb, Client, Jobs) {
    let (tdb, mut c) = setup().await;
    compile(&mut c, &["step", "opsdemo", "failer"]).await;
    let ready = engine_tests::create(&c, "opsdemo", json!({"n": 1})).await;
    let error = engine_tests::create(&c, "failer", json!({"why": "broken"})).await;
    let finished = engine_tests::create(&c, "opsdemo", json!({"n": 4})).await;
    db::announce(&c, "w1", "step", None, None).await.unwrap();
    let t = db::get_task(&c, "w1", "step", Some(finished))
        .await
        .unwrap()
        .unwrap();
    db::task_done(&c, &t.cookie, &json!({"n": 4}))
        .await
        .unwrap();
    assert_eq!(state(&c, ready).await, "ready");
    assert_eq!(state(&c, error).await, "error");
    assert_eq!(state(&c, finished).await, "finished");
    (
        tdb,
        c,
        Jobs {
            ready,
            error,
            finished,
        },
    )
}

/// The jobs [`fixture_more`] adds.
#[derive(Debug)]
pub struct More {
    /// An `opsdemo` job whose `step` failed softly: it waits an hour to retry.
    pub retrywait: i64,
    /// A `holder` job that holds lock `res`/`k`.
    pub holder: i64,
    /// A `holder` job waiting for that lock.
    pub lockwait: i64,
    /// A `waiter` job subscribed to `early` (with one event queued) and waiting for `go`.
    pub eventwait: i64,
}

/// [`fixture`], plus a job in retrywait, a lock with its holder and a waiter, a job waiting
/// for an event with another one queued, and the enabled schedule `failer/nightly`.
pub async fn fixture_more() -> (testkit::TestDb, Client, Jobs, More) {
    let (tdb, mut c, j) = fixture().await;
    compile(&mut c, &["holder", "waiter"]).await;
    let retrywait = engine_tests::create(&c, "opsdemo", json!({"n": 3})).await;
    let t = db::get_task(&c, "w1", "step", Some(retrywait))
        .await
        .unwrap()
        .unwrap();
    db::task_done(
        &c,
        &t.cookie,
        &json!({"error": {"class": "soft", "msg": "flaky"}}),
    )
    .await
    .unwrap();
    let holder = engine_tests::create(&c, "holder", json!({"key": "k"})).await;
    let lockwait = engine_tests::create(&c, "holder", json!({"key": "k"})).await;
    let eventwait = engine_tests::create(&c, "waiter", json!({"id": 7})).await;
    db::raise_event(&c, &json!({"early": 7})).await.unwrap();
    let args = json!({"why": "nightly"});
    let s = db::Schedule::new("failer/nightly", "failer", "0 0 3 * * *", &args);
    db::create_schedule(&c, &s).await.unwrap();
    for (id, st) in [
        (retrywait, "retrywait"),
        (holder, "sleeping"),
        (lockwait, "lockwait"),
        (eventwait, "eventwait"),
    ] {
        assert_eq!(state(&c, id).await, st, "job {id}");
    }
    let more = More {
        retrywait,
        holder,
        lockwait,
        eventwait,
    };
    (tdb, c, j, more)
}

/// The running console; killed when dropped.
#[derive(Debug)]
pub struct Console {
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `jcconsole` on a free port against `dsn`.
pub fn start(dsn: &str) -> Console {
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(
        &users,
        USERS.replace("TOKEN", &jcapi::token_digest("alice-token")),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jcconsole"))
        .args(["--dsn", dsn, "--listen", "127.0.0.1:0", "--users-file"])
        .arg(&users)
        .env_remove("JC_DSN")
        .stdout(Stdio::piped())
        .spawn()
        .expect("run jcconsole");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening http://")
        .unwrap_or_else(|| panic!("first line: {line:?}"))
        .to_owned();
    Console {
        child,
        addr,
        _dir: dir,
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` header gives cookie `name`, and the whole header.
    pub fn cookie(&self, name: &str) -> Option<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .find_map(|(_, v)| {
                let value = v.split(';').next()?.strip_prefix(&format!("{name}="))?;
                Some((value.to_owned(), v.clone()))
            })
    }

    /// The first form token on the page.
    pub fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a form token")
            + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

/// One request on its own connection (`Connection: close`); `form` is a urlencoded body.
pub fn http(addr: &str, method: &str, path: &str, cookie: &str, form: Option<&str>) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !cookie.is_empty() {
        req.push_str(&format!("Cookie: {cookie}\r\n"));
    }
    if let Some(body) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    // Read to the end of the body its Content-Length gives, or to the end of the stream
    // (not every server closes at once, Chromium's DevTools one does not).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= end + 4 + n) {
                break;
            }
        }
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Percent-encodes a form value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Logs in through the form; returns the login's response (a session cookie on success).
pub fn try_login(addr: &str, user: &str, password: &str) -> Response {
    let form = http(addr, "GET", "/login", "", None);
    assert_eq!(form.status, 200);
    let (login, _) = form.cookie("jc_login").expect("a login cookie");
    http(
        addr,
        "POST",
        "/login",
        &format!("jc_login={login}"),
        Some(&format!(
            "user={}&password={}&csrf={}",
            enc(user),
            enc(password),
            form.csrf()
        )),
    )
}

/// Logs in; returns the `Cookie` header value of the session.
pub fn login(addr: &str, user: &str, password: &str) -> String {
    let r = try_login(addr, user, password);
    assert_eq!(r.status, 303, "{}", r.body);
    let (token, _) = r.cookie("jc_session").expect("a session cookie");
    format!("jc_session={token}")
}
