//! End to end against the real jcapi: jcworker serving shell and HTTP actions to jcclient
//! (TCP and WebSocket), job errors with the command's stderr, cancel/retry/status/events and
//! credentials through jcclient, the Rust library as client and worker with slots, and the
//! Python package's tests driven against the same gateway.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Gateway, HttpServer, ALICE, ALICE_TOKEN, WORKER};
use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Error, Handler, TaskError};
use jcl::build::{path, set, var};
use jcl::{Model, Ns};
use serde_json::{json, Value};
use testkit::examples;
use testkit::flow::{action, Flow};

/// `name(inputs) -> outputs` calling action `name` once: the workflow `<name>test`.
fn one_call(name: &str, inputs: &[(&str, &str)], outputs: &[(&str, &str)]) -> Vec<Model> {
    let mut a = action(name);
    for (i, t) in inputs {
        a = a.input(i, t);
    }
    for (o, t) in outputs {
        a = a.output(o, t);
    }
    let mut wf = Flow::workflow(&format!("{name}test"));
    for (i, t) in inputs {
        wf = wf.input(i, t);
    }
    for (o, t) in outputs {
        wf = wf.output(o, t);
    }
    let mut f = wf;
    f.call(
        name,
        inputs
            .iter()
            .map(|(i, _)| set(path(Ns::I, &[i]), var(Ns::A, &[i])))
            .collect(),
        outputs
            .iter()
            .map(|(o, _)| set(path(Ns::V, &[o]), var(Ns::O, &[o])))
            .collect(),
    );
    let wf = f.end(
        outputs
            .iter()
            .map(|(o, _)| set(path(Ns::O, &[o]), var(Ns::V, &[o])))
            .collect(),
    );
    vec![a.model(), wf]
}

fn models() -> Vec<Model> {
    let mut m = vec![examples::add(), examples::calltest()];
    m.extend(one_call("fetch", &[("x", "number")], &[("y", "number")]));
    m.extend(one_call("fail", &[("why", "string")], &[]));
    m.extend(one_call("slow", &[("n", "number")], &[]));
    m.push(examples::approval());
    m
}

/// jcclient with the gateway's TCP address and alice's password, then `args`.
fn jcclient(gw: &Gateway, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_jcclient"));
    c.args(["--host", "127.0.0.1", "--port"])
        .arg(gw.tcp.port().to_string())
        .args(["--user", ALICE.0, "--password", ALICE.1])
        .args(args)
        .env_remove("JC_TOKEN")
        .stdin(Stdio::null());
    c
}

fn run(mut c: impl std::borrow::BorrowMut<Command>) -> Output {
    c.borrow_mut().output().expect("running jcclient")
}

fn stdout_json(o: &Output) -> Value {
    let text = String::from_utf8_lossy(&o.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {text:?}; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn announced(gw: &Gateway, n: i64) {
    count_until(
        gw,
        "the worker's announcements",
        "select count(*) from jobcenter.worker_actions",
        |c| c >= n,
    )
    .await;
}

/// Polls the count that `sql` answers until `ok(count)` holds.
async fn count_until(gw: &Gateway, what: &str, sql: &str, ok: impl Fn(i64) -> bool) {
    eventually(what, || async {
        let n: i64 = gw.sql.query_one(sql, &[]).await.unwrap().get(0);
        ok(n)
    })
    .await;
}

/// A job's state, polled until `want`.
async fn reaches(gw: &Gateway, job_id: i64, want: &str) {
    eventually(&format!("job {job_id} to be {want}"), || async {
        gw.state(job_id).await == want
    })
    .await;
}

/// A jcworker process, stopped with SIGTERM.
struct Worker(std::process::Child);

impl Worker {
    fn start(gw: &Gateway, http: &HttpServer) -> Worker {
        Worker::with_actions(
            gw,
            "e2e-shell",
            &format!(
                r#"
[actions.add]
command = 'read -r _; echo "{{\"counter\": $((JC_IN_counter + JC_IN_step))}}"'
slots = 2

[actions.fetch]
http = "{url}"
headers = {{ X-Test = "yes" }}

[actions.fail]
command = 'echo "disk on fire: $JC_IN_why" >&2; exit 3'
"#,
                url = http.url("/fetch"),
            ),
        )
    }

    /// jcworker as `workername` on the gateway's TCP listener, serving `actions` (TOML).
    fn with_actions(gw: &Gateway, workername: &str, actions: &str) -> Worker {
        let file = gw.dir.path().join(format!("{workername}.toml"));
        std::fs::write(
            &file,
            format!(
                r#"
[connection]
host = "127.0.0.1"
port = {port}
user = "{user}"
password = "{password}"
workername = "{workername}"
{actions}"#,
                port = gw.tcp.port(),
                user = WORKER.0,
                password = WORKER.1,
            ),
        )
        .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_jcworker"))
            .arg("--config")
            .arg(&file)
            .env("JC_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("starting jcworker");
        Worker(child)
    }

    /// SIGTERM, then the exit status within 10 s.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.0.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "jcworker did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn fetch_server() -> HttpServer {
    HttpServer::start(|req| {
        let x = req.body["x"].as_i64().unwrap_or(0);
        if x < 0 {
            (500, r#"{"oops": "negative"}"#.into())
        } else {
            (200, json!({ "y": x * 10 }).to_string())
        }
    })
}

#[tokio::test]
async fn jcworker_serves_shell_and_http_actions_to_jcclient() {
    let gw = Gateway::start(&models()).await;
    let http = fetch_server();
    let worker = Worker::start(&gw, &http);
    announced(&gw, 3).await;

    // A shell action: inputs from the environment, outputs from stdout.
    let o = run(jcclient(&gw, &["call", "calltest", r#"{"input": 1}"#]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "{\"output\":4}\n");

    // The same over WebSocket.
    let mut c = Command::new(env!("CARGO_BIN_EXE_jcclient"));
    c.args([
        "--ws",
        &gw.ws_url(),
        "--user",
        ALICE.0,
        "--password",
        ALICE.1,
    ])
    .args(["call", "calltest", r#"{"input": 10}"#]);
    let o = run(c);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o), json!({"output": 13}));

    // An HTTP action: the inputs POSTed, the response body the outputs.
    let o = run(jcclient(&gw, &["call", "fetchtest", r#"{"x": 4}"#]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o), json!({"y": 40}));
    {
        let reqs = http.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].path, "/fetch");
        assert_eq!(reqs[0].body, json!({"x": 4}));
        let header = |k: &str| {
            reqs[0]
                .headers
                .iter()
                .find(|(h, _)| h == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("x-test").as_deref(), Some("yes"));
        assert_eq!(header("x-jc-action").as_deref(), Some("fetch"));
        assert!(header("x-jc-job-id").is_some());
    }

    // A command exiting non-zero: the job ends in error with its stderr; exit status 1.
    let o = run(jcclient(&gw, &["call", "failtest", r#"{"why": "test"}"#]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stdout_json(&o);
    assert_eq!(err["error"]["msg"], "disk on fire: test", "{err}");
    assert_eq!(err["error"]["class"], "normal", "{err}");

    // A non-2xx answer is an error too, with the status and the body.
    let o = run(jcclient(&gw, &["call", "fetchtest", r#"{"x": -1}"#]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let msg = stdout_json(&o)["error"]["msg"].as_str().unwrap().to_owned();
    assert!(
        msg.contains("HTTP 500") && msg.contains("negative"),
        "{msg}"
    );

    // call --no-wait, then status --wait and status of the ended job.
    let o = run(jcclient(
        &gw,
        &["call", "--no-wait", "failtest", r#"{"why": "later"}"#],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let job_id = stdout_json(&o).as_i64().unwrap();
    let o = run(jcclient(&gw, &["status", "--wait", &job_id.to_string()]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stdout_json(&o)["error"]["msg"], "disk on fire: later");
    let o = run(jcclient(&gw, &["status", &job_id.to_string()]));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout_json(&o)["error"]["msg"], "disk on fire: later");
    assert_eq!(gw.state(job_id).await, "error");

    // jcworker took its tasks and sent its results with the batched calls.
    let log = gw.log();
    assert!(
        log.contains("get_tasks") && log.contains("tasks_done request"),
        "{log}"
    );

    // SIGTERM: the worker stops cleanly and its announcements end.
    let status = worker.stop();
    assert!(status.success(), "jcworker exited with {status}");
    count_until(
        &gw,
        "the worker to be gone",
        "select count(*) from jobcenter.workers where name = 'e2e-shell' and stopped is null",
        |c| c == 0,
    )
    .await;
}

#[tokio::test]
async fn jcclient_cancel_retry_events_and_credentials() {
    let gw = Gateway::start(&models()).await;

    // No worker serves "slow": the job waits, status says so with exit status 3.
    let o = run(jcclient(
        &gw,
        &["call", "--no-wait", "slowtest", r#"{"n": 1}"#],
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    let job = stdout_json(&o).as_i64().unwrap().to_string();
    let o = run(jcclient(&gw, &["status", &job]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(stdout_json(&o), Value::Null);

    // Cancel: the job ends in error, class abort, with the reason.
    let o = run(jcclient(&gw, &["cancel", &job, "--reason", "not today"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o), json!(true));
    let o = run(jcclient(&gw, &["status", &job]));
    assert_eq!(o.status.code(), Some(1));
    let err = stdout_json(&o);
    assert_eq!(err["error"]["class"], "abort", "{err}");
    assert_eq!(err["error"]["msg"], "not today", "{err}");
    // Cancelling again is refused: exit status 2 and the reason on stderr.
    let o = run(jcclient(&gw, &["cancel", &job]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("already ended"), "{}", stderr(&o));

    // Retry: the job runs again from its start and waits for a worker once more.
    let o = run(jcclient(&gw, &["retry", &job, "--reason", "try again"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout_json(&o), json!(true));
    reaches(&gw, job.parse().unwrap(), "ready").await;
    // The job in detail: its state, workflow and step log.
    let o = run(jcclient(&gw, &["job", &job]));
    assert!(o.status.success(), "{}", stderr(&o));
    let info = stdout_json(&o);
    assert_eq!(info["state"], "ready", "{info}");
    assert_eq!(info["workflow"], "slowtest", "{info}");
    assert_eq!(info["arguments"], json!({"n": 1}), "{info}");
    let steps: Vec<&str> = info["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"error"),
        "the cancelled run is in the log: {info}"
    );

    // Events: a waiting call finishes when a matching event is raised.
    let mut waiting = jcclient(&gw, &["call", "approval", r#"{"id": 7}"#]);
    let waiting = waiting.stdout(Stdio::piped()).spawn().unwrap();
    count_until(
        &gw,
        "the approval job to wait",
        "select count(*) from jobcenter.jobs where state = 'eventwait'",
        |n| n == 1,
    )
    .await;
    let data = json!({"type": "approval", "id": 7, "by": "alice"});
    let o = run(jcclient(&gw, &["event", &data.to_string()]));
    assert!(o.status.success(), "{}", stderr(&o));
    let event_id = stdout_json(&o).as_i64().unwrap();
    let o = tokio::task::spawn_blocking(move || waiting.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout_json(&o);
    assert_eq!(out["event"]["data"], data, "{out}");
    assert_eq!(out["event"]["event_id"], event_id, "{out}");

    // An API token works as well as the password.
    let mut c = Command::new(env!("CARGO_BIN_EXE_jcclient"));
    c.args(["--port", &gw.tcp.port().to_string(), "--host", "127.0.0.1"])
        .env("JC_USER", ALICE.0)
        .env("JC_TOKEN", ALICE_TOKEN)
        .args(["status", &job]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // A wrong password: exit status 2 and a clear message, no job.
    let before: i64 = gw
        .sql
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0);
    let mut c = Command::new(env!("CARGO_BIN_EXE_jcclient"));
    c.args(["--port", &gw.tcp.port().to_string(), "--host", "127.0.0.1"])
        .args(["--user", "alice", "--password", "nope"])
        .args(["call", "calltest", r#"{"input": 1}"#]);
    let o = run(c);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("authentication"), "{}", stderr(&o));
    let after: i64 = gw
        .sql
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after);

    // Bad input: not JSON, and an unknown workflow.
    let o = run(jcclient(&gw, &["call", "calltest", "{nope"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not valid JSON"), "{}", stderr(&o));
    let o = run(jcclient(&gw, &["call", "nosuchflow", "{}"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nosuchflow"), "{}", stderr(&o));
}

fn lib_config(endpoint: Endpoint, (who, password): (&str, &str)) -> Config {
    let mut c = Config::new(
        endpoint,
        Auth::Password {
            who: who.into(),
            password: password.into(),
        },
    );
    c.call_timeout = Duration::from_secs(20);
    c
}

/// `c` reconnecting quickly, for the tests that restart the gateway.
fn fast(mut c: Config) -> Config {
    c.backoff = jc_client::Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(500),
    };
    c
}

/// `python -m pytest` on the client's end-to-end tests, with the gateway's addresses and
/// users in `JC_E2E_*`.
fn pytest(gw: &Gateway, python: &str) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(python);
    c.args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .env("JC_E2E_HOST", "127.0.0.1")
        .env("JC_E2E_PORT", gw.tcp.port().to_string())
        .env("JC_E2E_WS", gw.ws_url())
        .env("JC_E2E_USER", ALICE.0)
        .env("JC_E2E_PASSWORD", ALICE.1)
        .env("JC_E2E_WORKER", WORKER.0)
        .env("JC_E2E_WORKER_PASSWORD", WORKER.1)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    c
}

/// Announces `add` on `worker`, answering counter + `plus`, and runs its work loop.
async fn serve_add(worker: &Client, plus: i64) -> tokio::task::JoinHandle<Result<(), Error>> {
    worker
        .announce(
            "add",
            Handler::new_sync(move |t| {
                Ok(json!({"counter": t.inargs["counter"].as_i64().unwrap_or(0) + plus}))
            }),
            AnnounceOptions::default(),
        )
        .await
        .unwrap();
    let w = worker.clone();
    tokio::spawn(async move { w.work().await })
}

#[tokio::test]
async fn the_rust_library_as_client_and_worker_over_tcp_and_websocket() {
    let gw = Gateway::start(&models()).await;
    let busy = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (b, m) = (busy.clone(), most.clone());
    let worker = Client::connect(lib_config(Endpoint::websocket(gw.ws_url()), WORKER))
        .await
        .unwrap();
    worker
        .announce(
            "add",
            Handler::new_async(move |t| {
                let (b, m) = (b.clone(), m.clone());
                async move {
                    let now = b.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    b.fetch_sub(1, Ordering::SeqCst);
                    let c = t.inargs["counter"].as_i64().ok_or("no counter")?;
                    Ok(json!({"counter": c + t.inargs["step"].as_i64().unwrap_or(0)}))
                }
            }),
            AnnounceOptions {
                slots: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    worker
        .announce(
            "fail",
            Handler::new_sync(|t| Err(TaskError::new(format!("refused: {}", t.inargs["why"])))),
            AnnounceOptions::default(),
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });

    let client = Client::connect(lib_config(Endpoint::tcp("127.0.0.1", gw.tcp.port()), ALICE))
        .await
        .unwrap();
    assert_eq!(
        client.call("calltest", json!({"input": 1})).await.unwrap(),
        json!({"output": 4})
    );
    // Six jobs at once through two slots: all done, never more than two at a time.
    let jobs: Vec<i64> = {
        let mut v = vec![];
        for i in 0..6 {
            v.push(
                client
                    .call_nb("calltest", json!({ "input": i }))
                    .await
                    .unwrap(),
            );
        }
        v
    };
    let mut outs = HashSet::new();
    for j in &jobs {
        outs.insert(
            client.wait_job(*j).await.unwrap()["output"]
                .as_i64()
                .unwrap(),
        );
    }
    assert_eq!(outs, (3..9).collect());
    assert_eq!(
        most.load(Ordering::SeqCst),
        2,
        "slots bound the concurrency"
    );

    match client.call("failtest", json!({"why": "w"})).await {
        Err(Error::Job { job_id, error }) => {
            assert_eq!(error["msg"], "refused: \"w\"");
            assert_eq!(gw.state(job_id).await, "error");
            assert_eq!(
                client.get_job_status(job_id).await.unwrap(),
                Some(json!({ "error": error }))
            );
        }
        other => panic!("expected a job error, got {other:?}"),
    }
    // Unknown workflow: refused by create_job.
    let e = client.call("nosuchflow", json!({})).await.unwrap_err();
    assert!(e.to_string().contains("nosuchflow"), "{e}");
    client.ping().await.unwrap();
    // Tasks were taken and finished with the batched calls.
    let log = gw.log();
    assert!(
        log.contains("get_tasks") && log.contains("tasks_done request"),
        "{log}"
    );

    worker.stop();
    work.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_python_client_passes_its_tests_against_jcapi() {
    let gw = Gateway::start(&models()).await;
    let python = std::env::var("JC_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = common::workspace();
    // The restart tests need this harness's help: the next test runs them.
    let out = pytest(&gw, &python)
        .args(["-k", "not gateway_is_down"])
        .arg(root.join("clients/python/tests"))
        .env("JC_E2E_TOKEN", ALICE_TOKEN)
        .env("JC_E2E_TLS_PORT", gw.tls.port().to_string())
        .env("JC_E2E_CA", &gw.pki.ca)
        .env("JC_E2E_CERT", &gw.pki.alice_cert)
        .env("JC_E2E_KEY", &gw.pki.alice_key)
        .output()
        .await
        .unwrap_or_else(|e| panic!("running {python} -m pytest: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "pytest failed:\n{text}\njcapi log:\n{}",
        gw.log()
    );
    // The end-to-end tests ran, not only the unit tests: none skipped.
    assert!(text.contains(" passed"), "{text}");
    assert!(!text.contains("skipped"), "{text}");
}

#[tokio::test]
async fn clients_over_tls_with_a_password_and_with_a_client_certificate() {
    let gw = Gateway::start(&models()).await;
    let port = gw.tls.port().to_string();
    let ca = gw.pki.ca.to_str().unwrap().to_owned();
    let tls = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_jcclient"));
        c.args(["--host", "localhost", "--port", &port, "--tls"])
            .args(args)
            .stdin(Stdio::null());
        c
    };
    // A password over TLS, trusting the test CA.
    let o = run(
        tls(&["--ca", &ca, "--user", ALICE.0, "--password", ALICE.1]).args([
            "call",
            "--no-wait",
            "slowtest",
            r#"{"n": 1}"#,
        ]),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let job = stdout_json(&o).as_i64().unwrap().to_string();
    // The client certificate alone: its CN is alice, who may see her job.
    let (cert, key) = (
        gw.pki.alice_cert.to_str().unwrap(),
        gw.pki.alice_key.to_str().unwrap(),
    );
    let o = run(
        tls(&["--ca", &ca, "--cert", cert, "--key", key, "--user", "alice"]).args(["status", &job]),
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // alice's certificate does not make anyone else.
    let o = run(tls(&[
        "--ca", &ca, "--cert", cert, "--key", key, "--user", "worker",
    ])
    .args(["status", &job]));
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("authentication refused"),
        "{}",
        stderr(&o)
    );
    // Without the CA the server is not trusted.
    let o = run(tls(&["--user", ALICE.0, "--password", ALICE.1]).args(["status", &job]));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("TLS"), "{}", stderr(&o));

    // The library: a worker authenticated by certificate, a client by password, both TLS.
    let opts = |cert: bool| jc_client::TlsOptions {
        ca: Some(gw.pki.ca.clone()),
        cert: cert.then(|| gw.pki.alice_cert.clone()),
        key: cert.then(|| gw.pki.alice_key.clone()),
        server_name: None,
    };
    let mut wc = Config::new(
        Endpoint::tls("localhost", gw.tls.port(), opts(true)),
        Auth::ClientCert {
            who: "alice".into(),
        },
    );
    wc.workername = Some("tls-worker".into());
    let worker = Client::connect(wc).await.unwrap();
    let work = serve_add(&worker, 100).await;
    let client = Client::connect(lib_config(
        Endpoint::tls("localhost", gw.tls.port(), opts(false)),
        ALICE,
    ))
    .await
    .unwrap();
    assert_eq!(
        client.call("calltest", json!({"input": 1})).await.unwrap(),
        json!({"output": 101})
    );
    worker.stop();
    work.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_worker_and_a_waiting_client_survive_a_gateway_restart() {
    let mut gw = Gateway::start(&models()).await;
    let mut wc = fast(lib_config(
        Endpoint::tcp("127.0.0.1", gw.tcp.port()),
        WORKER,
    ));
    wc.workername = Some("phoenix".into());
    let worker = Client::new(wc);
    let work = serve_add(&worker, 1).await;
    let client = Client::new(fast(lib_config(Endpoint::websocket(gw.ws_url()), ALICE)));
    assert_eq!(
        client.call("calltest", json!({"input": 1})).await.unwrap(),
        json!({"output": 2})
    );
    // A job waiting for an event, and a client waiting for the job.
    let job = client.call_nb("approval", json!({"id": 9})).await.unwrap();
    reaches(&gw, job, "eventwait").await;
    let c = client.clone();
    let waiting = tokio::spawn(async move { c.wait_job(job).await });

    gw.restart();
    // The worker comes back by itself and announces again.
    count_until(
        &gw,
        "the worker to announce again",
        "select count(*) from jobcenter.workers w join jobcenter.worker_actions using (worker_id)
                 where w.name = 'phoenix' and w.stopped is null",
        |n| n == 1,
    )
    .await;
    assert_eq!(
        client.call("calltest", json!({"input": 5})).await.unwrap(),
        json!({"output": 6})
    );
    // The waiting client reconnected too and hears of the job's end.
    let other = Client::connect(lib_config(Endpoint::tcp("127.0.0.1", gw.tcp.port()), ALICE))
        .await
        .unwrap();
    other
        .raise_event(json!({"type": "approval", "id": 9}))
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting client got the job's end")
        .unwrap()
        .unwrap();
    assert_eq!(out["event"]["data"], json!({"type": "approval", "id": 9}));
    worker.stop();
    work.await.unwrap().unwrap();
}

/// A worker holds a task until the gateway is dead (SIGKILL), then finishes it while the
/// gateway is down; the gateway starts again on the same port. The result, not acknowledged
/// by the dead gateway, is sent again on the worker's next connection: the job finishes with
/// it, none ends in error. With the batched calls and with the original ones.
#[tokio::test]
async fn a_result_finished_while_the_gateway_is_down_is_sent_again_after_its_restart() {
    for batched in [true, false] {
        let mut gw = Gateway::start(&models()).await;
        let mut wc = fast(lib_config(
            Endpoint::tcp("127.0.0.1", gw.tcp.port()),
            WORKER,
        ));
        wc.workername = Some(format!("resender-{batched}"));
        wc.batched = batched;
        let worker = Client::new(wc);
        let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
        let (release, released) = tokio::sync::watch::channel(false);
        worker
            .announce(
                "add",
                Handler::new_async(move |t| {
                    let held = held_tx.clone();
                    let mut released = released.clone();
                    async move {
                        let _ = held.send(());
                        let _ = released.wait_for(|r| *r).await;
                        Ok(json!({"counter": t.inargs["counter"].as_i64().unwrap_or(0) + 1}))
                    }
                }),
                AnnounceOptions::default(),
            )
            .await
            .unwrap();
        let w = worker.clone();
        let work = tokio::spawn(async move { w.work().await });
        let client = Client::new(fast(lib_config(
            Endpoint::tcp("127.0.0.1", gw.tcp.port()),
            ALICE,
        )));
        let job = client
            .call_nb("calltest", json!({"input": 1}))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(20), held.recv())
            .await
            .expect("the worker took the task");
        gw.kill();
        // The worker has seen its connection close when the handler returns.
        tokio::time::sleep(Duration::from_millis(500)).await;
        release.send_replace(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        gw.restart();
        let Ok(out) = tokio::time::timeout(Duration::from_secs(30), client.wait_job(job)).await
        else {
            panic!(
                "the job did not end (batched {batched}): {}\njcapi log:\n{}",
                gw.state(job).await,
                gw.log()
            )
        };
        let out = out.unwrap();
        assert_eq!(out, json!({"output": 2}), "batched {batched}");
        assert_eq!(gw.state(job).await, "finished");
        count_until(
            &gw,
            "no job in error",
            "select count(*) from jobcenter.jobs where state = 'error'",
            |n| n == 0,
        )
        .await;
        worker.stop();
        work.await.unwrap().unwrap();
    }
}

/// jcworker (the library's worker loop under a shell action) across a gateway restart: the
/// action holds its task until the gateway is dead and answers while it is down; the result
/// is sent again once jcworker has reconnected and announced.
#[tokio::test]
async fn jcworker_sends_a_result_again_after_a_gateway_restart() {
    let mut gw = Gateway::start(&models()).await;
    let held = gw.dir.path().join("held");
    let release = gw.dir.path().join("release");
    let worker = Worker::with_actions(
        &gw,
        "e2e-resender",
        &format!(
            r#"
[actions.add]
command = 'read -r _; echo run >> {held}; while [ ! -e {release} ]; do sleep 0.05; done; echo "{{\"counter\": $((JC_IN_counter + 1))}}"'
"#,
            held = held.display(),
            release = release.display(),
        ),
    );
    announced(&gw, 1).await;
    let client = Client::new(fast(lib_config(
        Endpoint::tcp("127.0.0.1", gw.tcp.port()),
        ALICE,
    )));
    let job = client
        .call_nb("calltest", json!({"input": 1}))
        .await
        .unwrap();
    eventually("the action to hold the task", || async { held.exists() }).await;
    gw.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    std::fs::write(&release, "").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    gw.restart();
    let out = tokio::time::timeout(Duration::from_secs(40), client.wait_job(job))
        .await
        .expect("the job ends")
        .unwrap();
    assert_eq!(out, json!({"output": 2}));
    assert_eq!(gw.state(job).await, "finished");
    count_until(
        &gw,
        "no job in error",
        "select count(*) from jobcenter.jobs where state = 'error'",
        |n| n == 0,
    )
    .await;
    // The result was sent again, not the task done again.
    assert_eq!(std::fs::read_to_string(&held).unwrap(), "run\n");
    assert!(worker.stop().success());
}

/// The Python client's resend across a gateway restart (tests/test_e2e.py, the tests that
/// need `JC_E2E_RESTART_DIR`): its handler says it holds the task by a file, this test kills
/// the gateway, lets the handler return by another file, and starts the gateway again.
#[tokio::test]
async fn the_python_client_sends_a_result_again_after_a_gateway_restart() {
    let mut gw = Gateway::start(&models()).await;
    let python = std::env::var("JC_PYTHON").unwrap_or_else(|_| "python3".into());
    let root = common::workspace();
    let signals = tempfile::tempdir().unwrap();
    let run = pytest(&gw, &python)
        .args(["-k", "gateway_is_down"])
        .arg(root.join("clients/python/tests/test_e2e.py"))
        .env("JC_E2E_RESTART_DIR", signals.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("running {python} -m pytest: {e}"));
    for batched in ["True", "False"] {
        let held = signals.path().join(format!("held-{batched}"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !held.exists() {
            assert!(
                Instant::now() < deadline,
                "the Python worker did not take the task (batched {batched})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        gw.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        std::fs::write(signals.path().join(format!("release-{batched}")), "").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        gw.restart();
    }
    let out = tokio::time::timeout(Duration::from_secs(120), run.wait_with_output())
        .await
        .expect("pytest ends")
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("2 passed"),
        "pytest failed:\n{text}\njcapi log:\n{}",
        gw.log()
    );
    count_until(
        &gw,
        "both jobs finished",
        "select count(*) from jobcenter.jobs where state = 'finished' and workflow_id =
             (select action_id from jobcenter.actions where name = 'calltest' limit 1)",
        |n| n == 2,
    )
    .await;
    count_until(
        &gw,
        "no job in error",
        "select count(*) from jobcenter.jobs where state = 'error'",
        |n| n == 0,
    )
    .await;
}

#[tokio::test]
async fn a_slot_group_bounds_tasks_across_actions() {
    let gw = Gateway::start(&models()).await;
    let worker = Client::connect(lib_config(
        Endpoint::tcp("127.0.0.1", gw.tcp.port()),
        WORKER,
    ))
    .await
    .unwrap();
    worker.create_slotgroup("pair", 1).await.unwrap();
    let busy = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handler = |out: &'static str, input: &'static str| {
        let (b, m) = (busy.clone(), most.clone());
        Handler::new_async(move |t| {
            let (b, m) = (b.clone(), m.clone());
            async move {
                let now = b.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                b.fetch_sub(1, Ordering::SeqCst);
                Ok(json!({ out: t.inargs[input].as_i64().unwrap_or(0) }))
            }
        })
    };
    let group = AnnounceOptions {
        slotgroup: Some("pair".into()),
        ..Default::default()
    };
    worker
        .announce("add", handler("counter", "counter"), group.clone())
        .await
        .unwrap();
    worker
        .announce("fetch", handler("y", "x"), group)
        .await
        .unwrap();
    // Announcing with a group that does not exist is refused before it is sent.
    let e = worker
        .announce(
            "fail",
            handler("x", "x"),
            AnnounceOptions {
                slotgroup: Some("nope".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let client = Client::connect(lib_config(Endpoint::tcp("127.0.0.1", gw.tcp.port()), ALICE))
        .await
        .unwrap();
    let mut jobs = vec![];
    for i in 0..3 {
        jobs.push(
            client
                .call_nb("calltest", json!({ "input": i }))
                .await
                .unwrap(),
        );
        jobs.push(
            client
                .call_nb("fetchtest", json!({ "x": i }))
                .await
                .unwrap(),
        );
    }
    for j in jobs {
        client.wait_job(j).await.unwrap();
    }
    assert_eq!(
        most.load(Ordering::SeqCst),
        1,
        "one task at a time in the group"
    );
    worker.stop();
    work.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_rust_library_works_with_the_original_worker_calls() {
    let gw = Gateway::start(&models()).await;
    let tcp = Endpoint::tcp("127.0.0.1", gw.tcp.port());
    let mut config = lib_config(tcp.clone(), WORKER);
    config.batched = false;
    let worker = Client::connect(config).await.unwrap();
    let work = serve_add(&worker, 5).await;
    let client = Client::connect(lib_config(tcp, ALICE)).await.unwrap();
    for i in 0..3 {
        assert_eq!(
            client
                .call("calltest", json!({ "input": i }))
                .await
                .unwrap(),
            json!({ "output": i + 5 })
        );
    }
    let log = gw.log();
    assert!(
        !log.contains("get_tasks") && !log.contains("tasks_done request"),
        "{log}"
    );
    worker.stop();
    work.await.unwrap().unwrap();
}
