//! The client and worker against a fake jcapi that follows spec section 5 (netstrings over
//! TCP and TLS, WebSocket): handshake, create_job/job_done, task_ready/get_task/task_done,
//! server pings, job errors, refused hello, reconnection with re-announce, client certs.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jc_client::{
    AnnounceOptions, Auth, Backoff, Client, Config, Endpoint, Error, Handler, TaskError, TlsOptions,
};
use jc_proto::{Frame, NetstringCodec};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc};
use tokio_rustls::rustls;
use tokio_util::codec::Framed;

#[derive(Debug, Default)]
struct Job {
    inargs: Value,
    outargs: Option<Value>,
    cookie: Option<String>,
    working: bool,
    watchers: Vec<usize>,
}

#[derive(Debug, Default)]
struct State {
    next_job: i64,
    jobs: HashMap<i64, Job>,
    peers: HashMap<usize, (mpsc::UnboundedSender<Value>, Vec<String>)>,
    next_peer: usize,
    /// Every message the server received, in order.
    received: Vec<Value>,
    /// Answers to the server's own calls (ping).
    answers: Vec<Value>,
    /// Whether the last TLS client showed a certificate.
    client_cert_seen: Vec<bool>,
    /// Whether the batched worker calls (`get_tasks`, `tasks_done`) exist; without them the
    /// fake answers them as unknown methods, as a gateway from before them.
    batched: bool,
}

/// Finishes the task holding `cookie` and tells the job's watchers; false for no task.
fn finish(st: &mut State, cookie: &str, out: Value) -> bool {
    let Some((job_id, job)) = st
        .jobs
        .iter_mut()
        .find(|(_, j)| j.cookie.as_deref() == Some(cookie) && j.outargs.is_none())
    else {
        return false;
    };
    let job_id = *job_id;
    job.outargs = Some(out.clone());
    let watchers = job.watchers.clone();
    for w in watchers {
        if let Some((tx, _)) = st.peers.get(&w) {
            let _ = tx.send(json!({"jsonrpc":"2.0","method":"job_done",
                "params":{"job_id": job_id, "outargs": out}}));
        }
    }
    true
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<State>>,
    drop_all: broadcast::Sender<()>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Netstring,
    WebSocket,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            state: Arc::new(Mutex::new(State {
                next_job: 100,
                ..Default::default()
            })),
            drop_all: broadcast::channel(4).0,
        }
    }

    fn st(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    async fn listen(&self, kind: Kind, tls: Option<Arc<rustls::ServerConfig>>) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let fake = self.clone();
        tokio::spawn(async move {
            loop {
                let (s, _) = l.accept().await.unwrap();
                let fake = fake.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(s).await else {
                                return;
                            };
                            let has_cert = s.get_ref().1.peer_certificates().is_some();
                            fake.st().client_cert_seen.push(has_cert);
                            fake.serve(kind, s).await;
                        }
                        None => fake.serve(kind, s).await,
                    }
                });
            }
        });
        port
    }

    async fn serve<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(&self, kind: Kind, s: S) {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Value>();
        let peer = {
            let mut st = self.st();
            st.next_peer += 1;
            let id = st.next_peer;
            st.peers.insert(id, (out_tx.clone(), vec![]));
            id
        };
        let _ = out_tx.send(
            json!({"jsonrpc":"2.0","method":"greetings","params":{"who":"jcapi","version":"1.1"}}),
        );
        let mut stop = self.drop_all.subscribe();
        match kind {
            Kind::Netstring => {
                let mut framed = Framed::new(s, NetstringCodec::default());
                loop {
                    tokio::select! {
                        Some(v) = out_rx.recv() => {
                            // an array is messages to write at once, in one flush
                            let batch = match v {
                                Value::Array(vs) => vs,
                                v => vec![v],
                            };
                            let mut failed = false;
                            for v in batch {
                                failed |= framed.feed(v.to_string().into_bytes()).await.is_err();
                            }
                            if failed || SinkExt::<Vec<u8>>::flush(&mut framed).await.is_err() { break }
                        }
                        m = framed.next() => match m {
                            Some(Ok(Frame::Message(b))) => {
                                let v: Value = serde_json::from_slice(&b).unwrap();
                                if !self.handle(peer, v, &out_tx) {
                                    while let Ok(v) = out_rx.try_recv() {
                                        let _ = framed.send(v.to_string().into_bytes()).await;
                                    }
                                    break;
                                }
                            }
                            _ => break,
                        },
                        _ = stop.recv() => break,
                    }
                }
            }
            Kind::WebSocket => {
                use tokio_tungstenite::tungstenite::Message as M;
                let mut ws = tokio_tungstenite::accept_async(s).await.unwrap();
                loop {
                    tokio::select! {
                        Some(v) = out_rx.recv() => {
                            if ws.send(M::text(v.to_string())).await.is_err() { break }
                        }
                        m = ws.next() => match m {
                            Some(Ok(M::Text(t))) => {
                                let v: Value = serde_json::from_str(&t).unwrap();
                                if !self.handle(peer, v, &out_tx) {
                                    while let Ok(v) = out_rx.try_recv() {
                                        let _ = ws.send(M::text(v.to_string())).await;
                                    }
                                    break;
                                }
                            }
                            Some(Ok(_)) => {}
                            _ => break,
                        },
                        _ = stop.recv() => break,
                    }
                }
            }
        }
        self.st().peers.remove(&peer);
    }

    /// Handles one message; false closes the connection.
    fn handle(&self, peer: usize, msg: Value, out: &mpsc::UnboundedSender<Value>) -> bool {
        let mut st = self.st();
        st.received.push(msg.clone());
        let Some(method) = msg["method"].as_str() else {
            st.answers.push(msg);
            return true;
        };
        let p = &msg["params"];
        let id = msg.get("id").cloned();
        let reply = |r: Value| {
            let _ = out.send(json!({"jsonrpc":"2.0","id":id.clone(),"result":r}));
        };
        match method {
            "hello" => {
                if p["who"] == "alice" && p["token"] == "secret" && p["method"] == "password"
                    || p["method"] == "clientcert"
                {
                    reply(json!([true, "welcome to the clientapi alice!"]));
                    // The server pings its clients.
                    let _ =
                        out.send(json!({"jsonrpc":"2.0","id":"s1","method":"ping","params":{}}));
                    let _ =
                        out.send(json!({"jsonrpc":"2.0","id":"s2","method":"nope","params":{}}));
                } else {
                    reply(json!([false, "wrong password"]));
                    return false;
                }
            }
            "create_job" if p["key"] == "done-already" => {
                // A key naming a job that ended already: as jcapi, the answer with the
                // job's job_done right behind it (here in the same write).
                let answer = json!({"jsonrpc":"2.0","id":id.clone(),"result":[7, null]});
                let done = json!({"jsonrpc":"2.0","method":"job_done",
                    "params":{"job_id": 7, "outargs": {"out": 14}}});
                let _ = out.send(json!([answer, done]));
            }
            "create_job" => {
                if p["wfname"] != "double" {
                    reply(json!([null, format!("no workflow {}", p["wfname"])]));
                    return true;
                }
                st.next_job += 1;
                let job_id = st.next_job;
                st.jobs.insert(
                    job_id,
                    Job {
                        inargs: p["inargs"].clone(),
                        watchers: vec![peer],
                        ..Default::default()
                    },
                );
                reply(json!([job_id, null]));
                offer(&st, job_id);
            }
            "get_job_status" => {
                let job_id = p["job_id"].as_i64().unwrap();
                let job = st.jobs.get_mut(&job_id).unwrap();
                if p["notify"] == true {
                    job.watchers.push(peer);
                }
                reply(json!([job_id, job.outargs]));
            }
            "announce" => {
                st.peers
                    .get_mut(&peer)
                    .unwrap()
                    .1
                    .push(p["actionname"].as_str().unwrap().into());
                reply(json!([true, "success"]));
                let ready: Vec<i64> = st
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.outargs.is_none() && !j.working)
                    .map(|(id, _)| *id)
                    .collect();
                for job_id in ready {
                    offer(&st, job_id);
                }
            }
            "get_task" => {
                let job_id = p["job_id"].as_i64().unwrap();
                let job = st.jobs.get_mut(&job_id).unwrap();
                if job.working || job.outargs.is_some() {
                    reply(Value::Null);
                } else {
                    job.working = true;
                    let cookie = format!("cookie-{job_id}");
                    job.cookie = Some(cookie.clone());
                    reply(json!([job_id, cookie, job.inargs, {"clenv": null}]));
                }
            }
            "task_done" => {
                assert!(id.is_none(), "task_done is a notification");
                let cookie = p["cookie"].as_str().unwrap().to_owned();
                assert!(finish(&mut st, &cookie, p["outargs"].clone()), "{cookie}");
            }
            "get_tasks" if st.batched => {
                let count = p["count"].as_u64().unwrap() as usize;
                let mut ready: Vec<i64> = st
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.outargs.is_none() && !j.working)
                    .map(|(id, _)| *id)
                    .collect();
                ready.sort_unstable();
                let mut given = Vec::new();
                for job_id in ready.into_iter().take(count) {
                    let job = st.jobs.get_mut(&job_id).unwrap();
                    job.working = true;
                    let cookie = format!("cookie-{job_id}");
                    job.cookie = Some(cookie.clone());
                    given.push(json!([job_id, cookie, job.inargs, null]));
                }
                reply(Value::Array(given));
            }
            "tasks_done" if st.batched => {
                let mut answers = Vec::new();
                for r in p["results"].as_array().unwrap() {
                    let cookie = r["cookie"].as_str().unwrap().to_owned();
                    answers.push(if finish(&mut st, &cookie, r["outargs"].clone()) {
                        json!({"cookie": cookie, "ok": true})
                    } else {
                        json!({"cookie": cookie, "ok": false,
                            "error": {"code": 1003, "message": "no task holds that cookie"}})
                    });
                }
                reply(Value::Array(answers));
                // As the gateway offers freed slots the work left.
                let ready: Vec<i64> = st
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.outargs.is_none() && !j.working)
                    .map(|(id, _)| *id)
                    .collect();
                for job_id in ready {
                    offer(&st, job_id);
                }
            }
            "ping" => reply(json!("pong")),
            "cancel_job" | "retry_job" => reply(json!(true)),
            "raise_event" => reply(json!(7)),
            "find_jobs" => reply(json!([101, 102])),
            _ => {
                let _ = out.send(json!({"jsonrpc":"2.0","id":id,
                    "error":{"code":-32601,"message":format!("no method {method}")}}));
            }
        }
        true
    }
}

fn offer(st: &State, job_id: i64) {
    if let Some((tx, _)) = st
        .peers
        .values()
        .find(|(_, a)| a.iter().any(|a| a == "double"))
    {
        let _ = tx.send(json!({"jsonrpc":"2.0","method":"task_ready",
            "params":{"actionname":"double","job_id":job_id}}));
    }
}

fn config(endpoint: Endpoint) -> Config {
    let mut c = Config::new(
        endpoint,
        Auth::Password {
            who: "alice".into(),
            password: "secret".into(),
        },
    );
    c.workername = Some("w1".into());
    c.call_timeout = Duration::from_secs(5);
    c.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    c
}

fn doubler() -> Handler {
    Handler::new_sync(|t| {
        let x = t.inargs["x"].as_i64().ok_or("x is not a number")?;
        Ok(json!({"out": x * 2}))
    })
}

async fn roundtrip(endpoint: Endpoint, fake: &Fake) {
    let worker = Client::connect(config(endpoint.clone())).await.unwrap();
    assert_eq!(
        worker.welcome().as_deref(),
        Some("welcome to the clientapi alice!")
    );
    worker
        .announce(
            "double",
            doubler(),
            AnnounceOptions {
                slots: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let client = Client::connect(config(endpoint)).await.unwrap();
    assert_eq!(
        client.call("double", json!({"x": 21})).await.unwrap(),
        json!({"out": 42})
    );
    worker.stop();
    work.await.unwrap().unwrap();

    let st = fake.st();
    let announce = st
        .received
        .iter()
        .find(|m| m["method"] == "announce")
        .unwrap();
    assert_eq!(
        announce["params"],
        json!({"actionname":"double","slots":3,"workername":"w1"})
    );
    // This gateway lacks the batched calls: the worker asked once, then used the originals.
    let asked: Vec<&Value> = st
        .received
        .iter()
        .filter(|m| m["method"] == "get_tasks" || m["method"] == "tasks_done")
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["method"], "get_tasks");
    assert!(st.received.iter().any(|m| m["method"] == "get_task"));
    let done = st
        .received
        .iter()
        .find(|m| m["method"] == "task_done")
        .unwrap();
    assert_eq!(done.get("id"), None, "task_done is a notification");
    assert_eq!(done["params"]["outargs"], json!({"out": 42}));
    let hello = st.received.iter().find(|m| m["method"] == "hello").unwrap();
    assert_eq!(
        hello["params"],
        json!({"who":"alice","method":"password","token":"secret"})
    );
    // The server's ping got "pong", an unknown method -32601.
    let pong = st.answers.iter().find(|m| m["id"] == "s1").unwrap();
    assert_eq!(pong["result"], "pong");
    let nope = st.answers.iter().find(|m| m["id"] == "s2").unwrap();
    assert_eq!(nope["error"]["code"], -32601);
}

#[tokio::test]
async fn a_worker_takes_and_finishes_tasks_in_batches() {
    let fake = Fake::new();
    fake.st().batched = true;
    let port = fake.listen(Kind::Netstring, None).await;
    let endpoint = Endpoint::tcp("127.0.0.1", port);
    let client = Client::connect(config(endpoint.clone())).await.unwrap();
    let worker = Client::connect(config(endpoint)).await.unwrap();
    worker
        .announce(
            "double",
            Handler::new_async(|t| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok(json!({"out": t.inargs["x"].as_i64().unwrap() * 2}))
            }),
            AnnounceOptions {
                slots: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let mut jobs = Vec::new();
    for x in 0..5 {
        jobs.push(client.call_nb("double", json!({ "x": x })).await.unwrap());
    }
    for (x, job) in jobs.iter().enumerate() {
        assert_eq!(
            client.wait_job(*job).await.unwrap(),
            json!({ "out": x * 2 })
        );
    }
    worker.stop();
    work.await.unwrap().unwrap();

    let st = fake.st();
    let methods: Vec<&str> = st
        .received
        .iter()
        .filter_map(|m| m["method"].as_str())
        .collect();
    assert!(
        !methods.contains(&"get_task") && !methods.contains(&"task_done"),
        "{methods:?}"
    );
    // The jobs' job_done came unasked to the connection that created them.
    assert!(!methods.contains(&"get_job_status"), "{methods:?}");
    // Three slots: the first ask is for three, and never more than are free.
    let asks: Vec<u64> = st
        .received
        .iter()
        .filter(|m| m["method"] == "get_tasks")
        .map(|m| m["params"]["count"].as_u64().unwrap())
        .collect();
    assert_eq!(asks[0], 3, "{asks:?}");
    assert!(asks.iter().all(|n| (1..=3).contains(n)), "{asks:?}");
    let results: usize = st
        .received
        .iter()
        .filter(|m| m["method"] == "tasks_done")
        .map(|m| {
            assert!(m.get("id").is_some(), "tasks_done is a call");
            m["params"]["results"].as_array().unwrap().len()
        })
        .sum();
    assert_eq!(results, 5);
}

#[tokio::test]
async fn call_served_by_a_worker_over_tcp() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    roundtrip(Endpoint::tcp("127.0.0.1", port), &fake).await;
}

/// A keyed call naming a job that ended already gets its job_done right behind the answer to
/// its create_job, so the client may read the job_done before create_job has noted the job
/// as its own: the call still returns the outputs (it waited for ever before).
#[tokio::test]
async fn a_job_done_right_behind_the_create_job_answer_is_not_lost() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let client = Client::connect(config(Endpoint::tcp("127.0.0.1", port)))
        .await
        .unwrap();
    let mut req = jc_client::JobRequest::new("double", json!({"x": 7}));
    req.key = Some("done-already".into());
    let out = tokio::time::timeout(Duration::from_secs(10), client.call_with(&req))
        .await
        .expect("the job_done that came with the answer was lost");
    assert_eq!(out.unwrap(), json!({"out": 14}));
    client.close().await;
}

#[tokio::test]
async fn call_served_by_a_worker_over_websocket() {
    let fake = Fake::new();
    let port = fake.listen(Kind::WebSocket, None).await;
    roundtrip(
        Endpoint::websocket(format!("ws://127.0.0.1:{port}/")),
        &fake,
    )
    .await;
}

#[tokio::test]
async fn job_errors_and_refusals_are_errors() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let ep = Endpoint::tcp("127.0.0.1", port);
    let worker = Client::connect(config(ep.clone())).await.unwrap();
    worker
        .announce(
            "double",
            Handler::new_async(|_t| async { Err(TaskError::soft("no doubling today")) }),
            AnnounceOptions::default(),
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let client = Client::connect(config(ep)).await.unwrap();
    match client.call("double", json!({"x": 1})).await {
        Err(Error::Job { job_id, error }) => {
            assert_eq!(job_id, 101);
            assert_eq!(error, json!({"class": "soft", "msg": "no doubling today"}));
        }
        other => panic!("expected a job error, got {other:?}"),
    }
    assert_eq!(
        client.get_job_status(101).await.unwrap(),
        Some(json!({"error": {"class": "soft", "msg": "no doubling today"}}))
    );
    match client.call_nb("nope", json!({})).await {
        Err(Error::Refused { method, reason }) => {
            assert_eq!(method, "create_job");
            assert_eq!(reason, "no workflow \"nope\"");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(client.raise_event(json!({"name": "e"})).await.unwrap(), 7);
    assert!(client.cancel_job(101, Some("why")).await.unwrap());
    assert_eq!(
        client.find_jobs(json!({}), None).await.unwrap(),
        vec![101, 102]
    );
    client.ping().await.unwrap();
    // get_job is not in the fake: a JSON-RPC error.
    let e = client.get_job(101).await.unwrap_err();
    assert_eq!(e.kind(), Some(jc_proto::ErrorKind::MethodNotFound), "{e}");
    worker.stop();
    work.await.unwrap().unwrap();
    let cancel = fake
        .st()
        .received
        .iter()
        .find(|m| m["method"] == "cancel_job")
        .cloned()
        .unwrap();
    assert_eq!(cancel["params"], json!({"job_id": 101, "reason": "why"}));
}

#[tokio::test]
async fn a_panicking_handler_fails_the_task_not_the_worker() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let ep = Endpoint::tcp("127.0.0.1", port);
    let worker = Client::connect(config(ep.clone())).await.unwrap();
    worker
        .announce(
            "double",
            Handler::new_sync(|t| {
                if t.inargs["x"] == 0 {
                    panic!("boom");
                }
                Ok(json!({"out": 1}))
            }),
            AnnounceOptions::default(),
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let client = Client::connect(config(ep)).await.unwrap();
    let e = client.call("double", json!({"x": 0})).await.unwrap_err();
    assert!(e.to_string().contains("panic"), "{e}");
    assert_eq!(
        client.call("double", json!({"x": 1})).await.unwrap(),
        json!({"out": 1})
    );
    worker.stop();
    work.await.unwrap().unwrap();
}

#[tokio::test]
async fn wrong_password_is_an_auth_error() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let mut c = config(Endpoint::tcp("127.0.0.1", port));
    c.auth = Auth::Password {
        who: "alice".into(),
        password: "wrong".into(),
    };
    match Client::connect(c.clone()).await {
        Err(Error::Auth(m)) => assert_eq!(m, "wrong password"),
        other => panic!("expected an auth error, got {other:?}"),
    }
    // work() gives up on a refused hello instead of retrying forever.
    let e = Client::new(c).work().await.unwrap_err();
    assert!(matches!(e, Error::Auth(_)), "{e}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = Client::connect(config(Endpoint::tcp("127.0.0.1", port)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Connect { .. }), "{e}");
    assert!(e.is_transient());
}

#[tokio::test]
async fn worker_reconnects_and_announces_again() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let ep = Endpoint::tcp("127.0.0.1", port);
    let worker = Client::new(config(ep.clone()));
    worker
        .announce("double", doubler(), AnnounceOptions::default())
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    let announces = || {
        fake.st()
            .received
            .iter()
            .filter(|m| m["method"] == "announce")
            .count()
    };
    assert_eq!(announces(), 1);
    fake.drop_all.send(()).unwrap();
    for _ in 0..100 {
        if announces() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        announces(),
        2,
        "the worker announced again after reconnecting"
    );
    let client = Client::connect(config(ep)).await.unwrap();
    assert_eq!(
        client.call("double", json!({"x": 4})).await.unwrap(),
        json!({"out": 8})
    );
    worker.stop();
    work.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_waiting_client_reads_the_status_again_after_reconnecting() {
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, None).await;
    let client = Client::connect(config(Endpoint::tcp("127.0.0.1", port)))
        .await
        .unwrap();
    let job_id = client.call_nb("double", json!({"x": 4})).await.unwrap();
    let c = client.clone();
    let waiting = tokio::spawn(async move { c.wait_job(job_id).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // The job ends while the connection is down: its job_done is never sent.
    fake.st().jobs.get_mut(&job_id).unwrap().outargs = Some(json!({"out": 8}));
    fake.drop_all.send(()).unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(out, json!({"out": 8}));
    let statuses = fake
        .st()
        .received
        .iter()
        .filter(|m| m["method"] == "get_job_status")
        .count();
    // Not on the connection that created the job (its job_done comes unasked), but after
    // the reconnect.
    assert_eq!(statuses, 1, "asked once, on the new connection");
}

struct Pki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A CA, a server certificate for localhost, a client certificate for alice, and a server
/// configuration that requires a client certificate from the CA.
fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert, key)
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()], "localhost");
    let (client_cert, client_key) = leaf(vec![], "alice");
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("client.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(server_key.serialize_der()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![server_cert.der().clone()], key)
        .unwrap();
    Pki {
        dir,
        server: Arc::new(server),
    }
}

#[tokio::test]
async fn tls_with_and_without_a_client_certificate() {
    let pki = pki();
    let fake = Fake::new();
    let port = fake.listen(Kind::Netstring, Some(pki.server.clone())).await;
    let tls = TlsOptions {
        ca: Some(pki.path("ca.pem")),
        ..Default::default()
    };
    let c = Client::connect(config(Endpoint::tls("localhost", port, tls.clone())))
        .await
        .unwrap();
    c.ping().await.unwrap();

    let with_cert = TlsOptions {
        cert: Some(pki.path("client.pem")),
        key: Some(pki.path("client.key")),
        ..tls.clone()
    };
    let mut cfg = config(Endpoint::tls("localhost", port, with_cert));
    cfg.auth = Auth::ClientCert {
        who: "alice".into(),
    };
    let c2 = Client::connect(cfg).await.unwrap();
    c2.ping().await.unwrap();
    assert_eq!(fake.st().client_cert_seen, vec![false, true]);

    // Without the CA the server's certificate is not trusted.
    let e = Client::connect(config(Endpoint::tls(
        "localhost",
        port,
        TlsOptions::default(),
    )))
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Tls(_)), "{e}");
    // A certificate without its key is a configuration error.
    let half = TlsOptions {
        cert: Some(pki.path("client.pem")),
        ..tls
    };
    let e = Client::connect(config(Endpoint::tls("localhost", port, half)))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Config(_)), "{e}");
}
