//! Bad input through the real `jcapi` binary: malformed netstrings, non-JSON, invalid
//! JSON-RPC and oversized messages over TCP and WebSocket get JSON-RPC errors and never stop
//! the server; a slow reader does not hold up others; random frames and random calls
//! (a stable stand-in for the fuzz target in `jcapi/fuzz`) never crash it. Also JSON-RPC
//! over HTTP POST and `/metrics`.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn malformed_frames_get_a_parse_error_and_a_close() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    for raw in [
        &b"abc:xyz,"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"5:hello!",
        b"123456789012345678901234567890:",
    ] {
        let mut c = tcp(g.addr("tcp")).await;
        c.send_raw(raw);
        let e = c.recv(WAIT).await.expect("an answer");
        assert_eq!(
            e["error"]["code"],
            -32700,
            "{:?}: {e}",
            String::from_utf8_lossy(raw)
        );
        assert_eq!(e["id"], Value::Null);
        assert!(c.closed(WAIT).await, "still open after {raw:?}");
    }
    still_serving(&g).await;
}

#[tokio::test]
async fn bad_json_and_bad_requests_get_errors_and_the_connection_goes_on() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    for kind in ["tcp", "ws"] {
        let mut c = login(&g, kind, "alice", ALICE_PW).await;
        for (payload, code, id) in [
            (&b"hello"[..], -32700, Value::Null),
            (b"{\"jsonrpc\": \"2.0\", ", -32700, Value::Null),
            (
                br#"{"jsonrpc":"1.0","method":"ping","id":3}"#,
                -32600,
                json!(3),
            ),
            (
                br#"[{"jsonrpc":"2.0","method":"ping","id":4}]"#,
                -32600,
                Value::Null,
            ),
            (
                br#"{"jsonrpc":"2.0","method":7,"id":"x"}"#,
                -32600,
                json!("x"),
            ),
            (
                br#"{"jsonrpc":"2.0","method":"get_job","params":{"job_id":"one"},"id":5}"#,
                -32602,
                json!(5),
            ),
            (
                br#"{"jsonrpc":"2.0","method":"create_job","params":7,"id":6}"#,
                -32600,
                json!(6),
            ),
        ] {
            c.send_payload(payload);
            let e = c.recv(WAIT).await.expect("an answer");
            assert_eq!(
                e["error"]["code"],
                code,
                "{kind} {}: {e}",
                String::from_utf8_lossy(payload)
            );
            assert_eq!(e["id"], id, "{e}");
        }
        // Notifications never get an answer, even unknown or broken ones.
        c.notify("no_such_notification", json!({}));
        c.notify("task_done", json!({"cookie": "not a uuid", "outargs": {}}));
        c.notify("task_done", json!({"cookie": 5}));
        assert_eq!(c.call("ping", json!({})).await, json!("pong"));
        assert!(c.recv(Duration::from_millis(300)).await.is_none());
    }
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let env = env().await;
    let g = Gateway::start(&env, &["--max-message-size", "4096"]).await;
    let big = json!({"wfname": "nothing", "inargs": {"input": 1, "pad": "x".repeat(10_000)}});

    // TCP: the frame is skipped, answered with 1101, and the connection goes on.
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let e = c.call_raw_expect_error("create_job", big.clone()).await;
    assert_eq!(e["error"]["code"], 1101, "{e}");
    assert_eq!(e["id"], Value::Null);
    assert!(e["error"]["message"].as_str().unwrap().contains("4096"));
    let job = c.create_job("nothing", json!({"input": 1})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 1}));
    // A frame that only claims to be huge: answered at once, nothing is buffered.
    c.send_raw(b"99999999999999:");
    let e = c.recv(WAIT).await.unwrap();
    assert_eq!(e["error"]["code"], 1101);

    // WebSocket: the message is refused with 1101 and the connection closes.
    let mut w = login(&g, "ws", "alice", ALICE_PW).await;
    w.send(&json!({"jsonrpc": "2.0", "method": "create_job", "params": big, "id": 9}));
    let e = w.recv(WAIT).await.expect("an answer");
    assert_eq!(e["error"]["code"], 1101, "{e}");
    assert!(w.closed(WAIT).await);
    let n: i64 = env
        .db
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1, "no job from the oversized requests");
    still_serving(&g).await;
}

impl Rpc {
    /// Sends a request that the server cannot read, and returns what it answers.
    async fn call_raw_expect_error(&mut self, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 77}));
        self.recv(WAIT).await.expect("an answer")
    }
}

#[tokio::test]
async fn a_client_that_does_not_read_does_not_hold_up_others() {
    let env = env().await;
    let mut g = Gateway::start(&env, &["--write-queue", "16"]).await;
    // A raw client that logs in, asks for many answers and never reads them.
    let mut slow = tokio::net::TcpStream::connect(g.addr("tcp")).await.unwrap();
    let hello = json!({"jsonrpc": "2.0", "method": "hello", "id": 0,
        "params": {"who": "alice", "method": "password", "token": ALICE_PW}});
    let mut burst = jc_proto::codec::encode(hello.to_string().as_bytes());
    // Each answer repeats the 5 kB method name: 20 MB of answers nobody reads.
    let method = "y".repeat(5000);
    for i in 1..=4000 {
        let m = json!({"jsonrpc": "2.0", "method": method, "id": i});
        burst.extend(jc_proto::codec::encode(m.to_string().as_bytes()));
    }
    let writer = tokio::spawn(async move {
        let _ = slow.write_all(&burst).await;
        slow
    });
    // Meanwhile others are served promptly.
    let started = std::time::Instant::now();
    let mut c = login(&g, "ws", "alice", ALICE_PW).await;
    for i in 0..20 {
        let job = c.create_job("nothing", json!({"input": i})).await;
        assert_eq!(c.job_done(job).await, json!({"output": i}));
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "others waited {:?}",
        started.elapsed()
    );
    // Shutdown does not wait for it either.
    let stopping = std::time::Instant::now();
    let status = g.stop().await;
    assert!(status.success(), "{}", g.log());
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    writer.abort();
}

async fn post(addr: SocketAddr, auth: Option<&str>, body: &str) -> (u16, String) {
    use base64::Engine as _;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = auth
        .map(|a| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(a)
            )
        })
        .unwrap_or_default();
    let req = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    (status, out.split_once("\r\n\r\n").unwrap().1.to_owned())
}

#[tokio::test]
async fn json_rpc_over_http_post_and_metrics() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let http = g.addr("http");
    let alice = format!("alice:{ALICE_PW}");
    let call = |m: &str, p: Value| {
        json!({"jsonrpc": "2.0", "method": m, "params": p, "id": 1}).to_string()
    };
    let (status, body) = post(
        http,
        Some(&alice),
        &call(
            "create_job",
            json!({"wfname": "nothing", "inargs": {"input": 5}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let r: Value = serde_json::from_str(&body).unwrap();
    let job = r["result"][0].as_i64().unwrap();
    let (_, body) = post(
        http,
        Some(&format!("alice:{ALICE_TOKEN}")),
        &call("get_job_status", json!({"job_id": job})),
    )
    .await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["result"], json!([job, {"output": 5}]));
    let (_, body) = post(
        http,
        Some(&format!("bob:{BOB_PW}")),
        &call("get_job_status", json!({"job_id": job})),
    )
    .await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["error"]["code"], 1005, "{r}");
    for auth in [None, Some("alice:wrong"), Some("nobody:x")] {
        let (status, _) = post(http, auth, &call("ping", json!({}))).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    let (_, body) = post(
        http,
        Some(&alice),
        &call("get_task", json!({"actionname": "add", "job_id": 1})),
    )
    .await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let (_, body) = post(http, Some(&alice), "{nope").await;
    let r: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["error"]["code"], -32700);

    let mut s = tokio::net::TcpStream::connect(http).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    for line in [
        "jcapi_jobs_created_total 1",
        "jcapi_auth_failures_total 3",
        "jcapi_bad_messages_total 1",
        "# TYPE jcapi_request_duration_seconds histogram",
    ] {
        assert!(out.contains(line), "{line} in\n{out}");
    }
}

/// A random message: bytes, JSON, or a call of a protocol method with random params.
fn message() -> impl Strategy<Value = Vec<u8>> {
    let json_value = proptest::arbitrary::any::<String>().prop_map(Value::from);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        json_value,
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::hash_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let method = prop_oneof![
        proptest::sample::select(jc_proto::methods::NAMES.to_vec()).prop_map(str::to_owned),
        "[a-z_]{0,12}",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        (method, value, any::<bool>()).prop_map(|(m, p, request)| {
            let mut msg = json!({"jsonrpc": "2.0", "method": m, "params": p});
            if request {
                msg["id"] = json!(1);
            }
            msg.to_string().into_bytes()
        }),
    ]
}

#[test]
fn random_frames_and_calls_never_crash_the_gateway() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (env, mut g) = rt.block_on(async {
        let env = env().await;
        let g = Gateway::start(&env, &[]).await;
        (env, g)
    });
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    });
    let addr = g.addr("tcp");
    runner
        .run(
            &(proptest::collection::vec(message(), 1..8), any::<bool>()),
            |(msgs, authenticated)| {
                rt.block_on(async {
                    let mut c = tcp(addr).await;
                    if authenticated {
                        c.login("alice", ALICE_PW).await;
                    }
                    for m in &msgs {
                        c.send_raw(&jc_proto::codec::encode(m));
                    }
                    // Whatever came before, the connection still answers, unless a hello
                    // was refused (which closes it).
                    c.send(&json!({"jsonrpc": "2.0", "method": "ping", "id": "last"}));
                    let mut seen = Vec::new();
                    loop {
                        match c.recv(WAIT).await {
                            Some(r) if r["id"] == "last" => {
                                assert_eq!(r["result"], "pong");
                                break;
                            }
                            Some(r) => seen.push(r),
                            None => {
                                assert!(
                                    seen.iter().any(|r| r["result"][0] == false),
                                    "closed without a refused hello: {seen:?}"
                                );
                                break;
                            }
                        }
                    }
                });
                Ok(())
            },
        )
        .unwrap();
    rt.block_on(async {
        still_serving(&g).await;
        let status = g.stop().await;
        assert!(status.success(), "{}", g.log());
        drop(env);
    });
}
