//! The console in headless Chromium (Debian's `chromium`), driven over the DevTools protocol:
//! logging in through the form, the jobs list, a job's page with its graph and current task,
//! a cancel and a retry by clicking the buttons, and a read-only user who sees no buttons and
//! whose forged POST is refused; the overview updating itself (without a reload) as jobs are
//! created and fail, and a schedule disabled by its button. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/console-browser/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use engine_tests::state;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Headless Chromium with a DevTools connection to its page; killed when dropped.
struct Browser {
    child: Child,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next: u64,
    shots: PathBuf,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    async fn start(shots: PathBuf) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                "--window-size=1280,1400",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run chromium");
        // Chromium writes the port it picked to DevToolsActivePort in the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().map(str::to_owned))
                .filter(|p| !p.is_empty())
            {
                break p;
            }
            assert!(Instant::now() < deadline, "chromium did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let list = common::http(&format!("127.0.0.1:{port}"), "GET", "/json/list", "", None);
        let targets: Value = serde_json::from_str(&list.body).unwrap();
        let url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page")
            .to_owned();
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            child,
            ws,
            next: 0,
            shots,
            _profile: profile,
        }
    }

    /// One DevTools call; its whole answer (`result` or `error`).
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let m = self.ws.next().await.expect("devtools open").unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["id"] == json!(id) {
                    return v;
                }
            }
        }
    }

    /// Evaluates a script in the page; null when it threw or the page was changing.
    async fn eval(&mut self, expr: &str) -> Value {
        let v = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if v["result"]["exceptionDetails"].is_object() {
            return Value::Null;
        }
        v["result"]["result"]["value"].clone()
    }

    /// Waits until `expr` is true in the page.
    async fn wait(&mut self, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.eval(expr).await != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {expr}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `url` and waits until the page at `path` has loaded.
    async fn open(&mut self, url: &str, path: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
        self.loaded(path).await;
    }

    async fn loaded(&mut self, path: &str) {
        self.wait(&format!(
            "location.pathname === {path:?} && document.readyState === 'complete'"
        ))
        .await;
    }

    async fn screenshot(&mut self, name: &str) -> PathBuf {
        let v = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v["result"]["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let path = self.shots.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Logs in through the form, as a user would.
    async fn login(&mut self, base: &str, user: &str, password: &str) {
        self.open(&format!("{base}/jobs"), "/login").await;
        self.eval(&format!(
            "document.querySelector('#user').value = {user:?};
             document.querySelector('#password').value = {password:?};
             document.querySelector('#submit').click(); true"
        ))
        .await;
        self.loaded("/").await;
    }

    async fn text(&mut self, selector: &str) -> String {
        let v = self
            .eval(&format!(
                "(document.querySelector({selector:?}) || {{}}).textContent"
            ))
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }
}

#[tokio::test]
async fn login_jobs_graph_cancel_retry_and_read_only_in_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/install-deps installs it"
    );
    let (tdb, c, j) = common::fixture().await;
    let con = common::start(&tdb.dsn);
    let base = format!("http://{}", con.addr);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    let mut b = Browser::start(shots).await;

    b.login(&base, "alice", "alice-pw").await;
    assert_eq!(b.text("nav .user").await, "alice (admin)");
    b.screenshot("overview.png").await;

    b.open(&format!("{base}/jobs"), "/jobs").await;
    let ids = b
        .eval("[...document.querySelectorAll('table.jobs tbody tr td:first-child')].map(td => td.textContent)")
        .await;
    let want: Vec<String> = [j.finished, j.error, j.ready]
        .iter()
        .map(|i| i.to_string())
        .collect();
    assert_eq!(ids, json!(want), "newest first");
    b.screenshot("jobs.png").await;

    let page = format!("/jobs/{}", j.ready);
    b.open(&format!("{base}{page}"), &page).await;
    assert_eq!(b.text("table.summary .state").await, "ready");
    let current = b
        .eval("[...document.querySelectorAll('.graph svg .task.current')].map(g => g.getAttribute('data-task'))")
        .await;
    assert_eq!(
        current,
        json!(["1"]),
        "the call of step is the current task"
    );
    assert!(b.text(".graph svg").await.contains("1: step (action v1)"));
    b.screenshot("job-ready.png").await;

    b.eval("document.querySelector('#cancel').click(); true")
        .await;
    b.wait("(document.querySelector('table.summary .state') || {}).textContent === 'error'")
        .await;
    assert_eq!(state(&c, j.ready).await, "error");
    b.screenshot("job-cancelled.png").await;
    b.eval("document.querySelector('#retry').click(); true")
        .await;
    b.wait("(document.querySelector('table.summary .state') || {}).textContent === 'ready'")
        .await;
    assert_eq!(state(&c, j.ready).await, "ready");

    // log out, and in as the read-only user
    b.eval("document.querySelector('nav form button').click(); true")
        .await;
    b.loaded("/login").await;
    b.login(&base, "bob", "bob-pw").await;
    assert_eq!(b.text("nav .user").await, "bob (read-only)");
    b.open(&format!("{base}{page}"), &page).await;
    assert_eq!(
        b.eval("document.querySelectorAll('#cancel, #retry').length")
            .await,
        json!(0),
        "no buttons for a read-only user"
    );
    b.screenshot("job-read-only.png").await;
    let forged = format!(
        "fetch('{page}/cancel', {{method: 'POST', body: new URLSearchParams({{csrf: \
         document.querySelector('input[name=csrf]').value}})}}).then(r => r.status)"
    );
    assert_eq!(b.eval(&forged).await, json!(403));
    assert_eq!(state(&c, j.ready).await, "ready");
}

#[tokio::test]
async fn the_overview_updates_itself_and_a_schedule_is_toggled_in_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/install-deps installs it"
    );
    let (tdb, c, _j, _m) = common::fixture_more().await;
    let con = common::start(&tdb.dsn);
    let base = format!("http://{}", con.addr);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-browser");
    let mut b = Browser::start(shots).await;
    b.login(&base, "alice", "alice-pw").await;
    let count = "(document.querySelector('.count[data-state=error]') || {}).textContent";
    assert_eq!(b.eval(count).await, json!("1"));
    // A reload would lose this mark.
    b.eval("window.notReloaded = true; true").await;
    let before = b.text("#as-of").await;
    for why in ["one", "two"] {
        engine_tests::create(&c, "failer", json!({"why": why})).await;
    }
    b.wait(&format!("{count} === '3'")).await;
    assert_eq!(b.eval("window.notReloaded === true").await, json!(true));
    assert_ne!(
        b.text("#as-of").await,
        before,
        "the time of the figures moved on"
    );
    let errors = b
        .eval("[...document.querySelectorAll('table.errors tbody tr td:nth-child(4)')].map(td => td.textContent)")
        .await;
    assert_eq!(errors[0], json!("two"), "the newest error first: {errors}");
    let created =
        "document.querySelector('table.throughput tbody tr .rate[data-what=created]').textContent";
    assert_eq!(b.eval(created).await, json!("9"));
    b.screenshot("overview-live.png").await;

    b.open(&format!("{base}/schedules"), "/schedules").await;
    assert_eq!(b.text("table.schedules .enabled").await, "enabled");
    b.eval("document.querySelector('table.schedules button.toggle').click(); true")
        .await;
    b.wait("(document.querySelector('table.schedules .enabled') || {}).textContent === 'disabled'")
        .await;
    let enabled: bool = c
        .query_one("select enabled from jobcenter.schedules", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!enabled);
    assert_eq!(b.text("table.schedules button.toggle").await, "Enable");
    b.screenshot("schedules.png").await;
}
