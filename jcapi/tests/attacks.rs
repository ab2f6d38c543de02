//! The gateway under attack, through the real `jcapi` binary: each test runs one of the
//! attacks of SECURITY.md and checks that it is refused or bounded (in time, memory or
//! connections).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn hello_msg(who: &str, method: &str, token: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "hello",
           "params": {"who": who, "method": method, "token": token}})
}

/// The gateway's memory: (resident now, peak), in KiB.
fn memory(g: &Gateway) -> (u64, u64) {
    let pid = g.child.id().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Metrics text from the HTTP listener.
async fn metrics(g: &Gateway) -> String {
    http(
        g.addr("http"),
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
}

/// Sends a raw HTTP request and reads until the server closes.
async fn http(addr: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn basic(user: &str, secret: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"))
}

fn post(auth: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Basic {auth}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

const PING: &str = r#"{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {}}"#;

/// Whether a connection to `addr` is served (greeted) rather than closed at once.
async fn served(addr: SocketAddr) -> Option<Rpc> {
    let s = TcpStream::connect(addr).await.ok()?;
    let mut rpc = Rpc::raw_netstring(s);
    let g = rpc.recv(Duration::from_secs(2)).await?;
    (g["method"] == "greetings").then_some(rpc)
}

#[tokio::test]
async fn a_huge_password_before_hello_is_refused_fast() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let password = "p".repeat(64 * 1024);
    for kind in ["tcp", "ws"] {
        let mut c = connect(&g, kind).await;
        let started = Instant::now();
        c.send(&hello_msg("alice", "password", &password));
        let e = c.recv(WAIT).await.expect("an answer");
        assert_eq!(e["error"]["code"], 1101, "{kind}: {e}");
        assert!(c.closed(WAIT).await, "{kind}: still open");
        assert!(started.elapsed() < Duration::from_secs(1), "{kind}");
    }
    // With room for it in a frame, the password is still over max_password.
    let g = Gateway::start(&env, &["--pre-auth-max-message", "100000"]).await;
    let mut c = connect(&g, "tcp").await;
    let started = Instant::now();
    let r = c.hello("alice", "password", &password).await;
    assert_eq!(r[0], false);
    assert!(r[1].as_str().unwrap().contains("over the limit"), "{r}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // After hello, large messages are fine again.
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let big = "x".repeat(200_000);
    let r = c
        .call_raw(
            "create_job",
            json!({"wfname": "nothing", "inargs": {"input": big}}),
        )
        .await;
    assert!(r.get("result").is_some(), "{r}");
}

#[tokio::test]
async fn large_websocket_frames_before_hello_are_cut_off() {
    use futures_util::SinkExt as _;
    use tokio_tungstenite::tungstenite::Message as WsMessage;
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let (_, peak_before) = memory(&g);
    let frame = "x".repeat(4 << 20);
    let mut sends = Vec::new();
    for _ in 0..20 {
        let url = format!("ws://{}/", g.addr("ws"));
        let frame = frame.clone();
        sends.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            // Cut off part way: the send fails, or the stream ends.
            let _ = ws.send(WsMessage::text(frame)).await;
            let _ = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await;
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    let (_, peak_after) = memory(&g);
    // Buffered whole, the frames would take 80 MiB.
    assert!(
        peak_after < peak_before + 32 * 1024,
        "peak {peak_before} KiB, then {peak_after} KiB"
    );
    still_serving(&g).await;
}

#[tokio::test]
async fn connections_are_limited_per_peer_and_per_listener() {
    let env = env().await;
    let g = Gateway::start(&env, &["--max-connections-per-peer", "3"]).await;
    let tcp_addr = g.addr("tcp");
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(served(tcp_addr).await.expect("within the limit"));
    }
    assert!(
        served(tcp_addr).await.is_none(),
        "a fourth from one address"
    );
    held.pop();
    assert!(
        eventually(WAIT, || async { served(tcp_addr).await.is_some() }).await,
        "a place freed is given again"
    );
    drop(held);

    let g = Gateway::start(&env, &["--max-connections", "2"]).await;
    let a = served(g.addr("tcp")).await.unwrap();
    let b = served(g.addr("tcp")).await.unwrap();
    assert!(
        served(g.addr("tcp")).await.is_none(),
        "a third on the listener"
    );
    let _ws = ws(g.addr("ws")).await; // another listener has places of its own
    assert!(metrics(&g)
        .await
        .contains("jcapi_connections_refused_total 1"));
    drop((a, b));
}

#[tokio::test]
async fn silent_connections_are_closed() {
    let env = env().await;
    let g = Gateway::start(&env, &["--pre-auth-timeout", "1s", "--idle-timeout", "2s"]).await;
    for kind in ["tcp", "ws"] {
        let mut c = connect(&g, kind).await;
        let started = Instant::now();
        assert!(c.closed(Duration::from_secs(5)).await, "{kind}: no hello");
        assert!(started.elapsed() >= Duration::from_millis(900));
    }
    // A connection without a word (not even the WebSocket handshake), and an HTTP one
    // sending half a request head.
    for (kind, sent) in [("ws", ""), ("http", "POST / HTTP/1.1\r\nHost: x\r\n")] {
        let mut s = TcpStream::connect(g.addr(kind)).await.unwrap();
        s.write_all(sent.as_bytes()).await.unwrap();
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert_eq!(read, Ok(true), "{kind}: still open");
    }

    let worker = announced(&g, "tcp", "quiet", "add", 1).await;
    let mut idle = login(&g, "tcp", "alice", ALICE_PW).await;
    let started = Instant::now();
    assert!(idle.closed(Duration::from_secs(6)).await, "an idle client");
    assert!(started.elapsed() >= Duration::from_millis(1900));
    let mut worker = worker;
    assert_eq!(
        worker.call("ping", json!({})).await,
        json!("pong"),
        "workers stay"
    );
}

#[tokio::test]
async fn a_peer_that_never_reads_is_closed() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let (rss_before, _) = memory(&g);
    let mut s = TcpStream::connect(g.addr("tcp")).await.unwrap();
    // Pings are answered before hello; each echoes its 3 KiB id. The peer never reads.
    let id = "i".repeat(3000);
    let ping = json!({"jsonrpc": "2.0", "id": id, "method": "ping", "params": {}}).to_string();
    let frame = jc_proto::codec::encode(ping.as_bytes());
    let mut closed = false;
    for _ in 0..20_000 {
        match tokio::time::timeout(Duration::from_secs(5), s.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(closed, "60 MB of answers nobody reads: still open");
    let m = metrics(&g).await;
    assert!(m.contains("jcapi_slow_clients_total 1"), "{m}");
    let (rss_after, _) = memory(&g);
    assert!(
        rss_after < rss_before + 32 * 1024,
        "{rss_before} KiB, then {rss_after} KiB"
    );
}

#[tokio::test]
async fn http_reads_no_body_before_the_credentials_and_speaks_real_http() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let addr = g.addr("http");
    // 16 MB announced, none sent: refused at once without waiting for (or buffering) it.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
             Content-Length: 16000000\r\n\r\n",
            basic("alice", "wrong")
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("an answer before the body")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));

    // Over the size limit, with good credentials: 413 without reading it.
    let out = http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
             Content-Length: 999999999\r\n\r\n",
            basic("alice", ALICE_TOKEN)
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 413"), "{out}");

    // Two different Content-Lengths: a bad request.
    let out = http(
        addr,
        &format!(
            "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: 4\r\n\
             Content-Length: 60\r\n\r\n{PING}",
            basic("alice", ALICE_TOKEN)
        ),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");

    // A chunked body, then a second request on the same (kept-alive) connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let (a, b) = PING.split_at(20);
    let chunked = format!(
        "POST /rpc HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        basic("alice", ALICE_TOKEN),
        a.len(),
        b.len()
    );
    s.write_all(chunked.as_bytes()).await.unwrap();
    s.write_all(post(&basic("alice", ALICE_TOKEN), PING).as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(WAIT, s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 2, "{out}");
    assert_eq!(out.matches("\"pong\"").count(), 2, "{out}");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_peer() {
    let env = env().await;
    let g = Gateway::start(
        &env,
        &["--login-failures", "3", "--login-failure-refill", "2s"],
    )
    .await;
    for _ in 0..3 {
        let mut c = tcp(g.addr("tcp")).await;
        let r = c.hello("alice", "password", "guess").await;
        assert_eq!(r, json!([false, "authentication failed for alice"]));
    }
    // The bucket is empty: even the right password waits, over every transport and HTTP.
    let mut c = ws(g.addr("ws")).await;
    let r = c.hello("alice", "password", ALICE_PW).await;
    assert_eq!(r[0], false);
    assert!(
        r[1].as_str().unwrap().contains("too many failed logins"),
        "{r}"
    );
    let out = http(g.addr("http"), &post(&basic("alice", ALICE_PW), PING)).await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    login(&g, "tcp", "alice", ALICE_PW).await;
}

#[tokio::test]
async fn password_checks_in_flight_are_bounded() {
    let env = env().await;
    // An argon2 hash costing 8 MiB a check.
    let costly = {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::encode_b64(b"a salt of 16 byt").unwrap();
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"right", &salt)
        .unwrap()
        .to_string()
    };
    std::fs::write(
        &env.users_file,
        format!("[users.alice]\npassword = {costly:?}\n"),
    )
    .unwrap();
    let g = Gateway::start(
        &env,
        &["--password-checks", "2", "--login-failures", "1000"],
    )
    .await;
    let (_, peak_before) = memory(&g);
    let mut guesses = Vec::new();
    for i in 0..16 {
        let addr = g.addr("tcp");
        guesses.push(tokio::spawn(async move {
            let mut c = tcp(addr).await;
            c.hello("alice", "password", &format!("guess {i}")).await
        }));
    }
    for guess in guesses {
        assert_eq!(guess.await.unwrap()[0], false);
    }
    let (_, peak_after) = memory(&g);
    // Unbounded, 16 checks at once take 128 MiB; two at a time take 16 MiB.
    assert!(
        peak_after < peak_before + 64 * 1024,
        "peak {peak_before} KiB, then {peak_after} KiB"
    );
    login(&g, "tcp", "alice", "right").await;
}

#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let env = env().await;
    let hash = pwhash::sha512_crypt::hash_with("$6$rounds=40000$somesalt", "right").unwrap();
    std::fs::write(
        &env.users_file,
        format!("[users.alice]\npassword = {hash:?}\n"),
    )
    .unwrap();
    let g = Gateway::start(&env, &["--login-failures", "1000"]).await;
    let time = |who: &'static str| {
        let addr = g.addr("tcp");
        async move {
            let mut times = Vec::new();
            for _ in 0..5 {
                let mut c = tcp(addr).await;
                let started = Instant::now();
                let r = c.hello(who, "password", "wrong").await;
                times.push(started.elapsed());
                assert_eq!(
                    r,
                    json!([false, format!("authentication failed for {who}")])
                );
            }
            times.sort();
            times[2]
        }
    };
    let known = time("alice").await;
    let unknown = time("nobody").await;
    assert!(
        known > Duration::from_millis(5),
        "the hash is too cheap to tell: {known:?}"
    );
    assert!(
        unknown * 2 > known && known * 2 > unknown,
        "alice {known:?}, nobody {unknown:?}"
    );
}

#[tokio::test]
async fn http_takes_only_the_listeners_auth_methods() {
    let env = env().await;
    let config = env.dir.path().join("tokens.toml");
    std::fs::write(
        &config,
        "[[listen]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\nauth = [\"token\"]\n",
    )
    .unwrap();
    let g = Gateway::start(&env, &["--config", config.to_str().unwrap()]).await;
    let addr = g.addr("http");
    let out = http(addr, &post(&basic("alice", ALICE_PW), PING)).await;
    assert!(
        out.starts_with("HTTP/1.1 401"),
        "a password on a token-only gateway: {out}"
    );
    let out = http(addr, &post(&basic("alice", ALICE_TOKEN), PING)).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    // Given explicitly.
    let g = Gateway::start(&env, &["--http-auth", "token"]).await;
    let out = http(g.addr("http"), &post(&basic("alice", ALICE_PW), PING)).await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
}

#[tokio::test]
async fn task_done_counts_only_from_the_connection_that_took_the_task() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut w = announced(&g, "tcp", "honest", "add", 1).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let job = c.create_job("calltest", json!({"input": 1})).await;
    let offer = w.notification("task_ready", WAIT).await.expect("an offer");
    let task = w
        .call(
            "get_task",
            json!({"actionname": "add", "job_id": offer["job_id"]}),
        )
        .await;
    let cookie = task[1].clone();
    // Another user, and the same user on another connection: both ignored.
    let carol = login(&g, "tcp", "carol", "carol-pw").await;
    carol.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": {"counter": 666}}),
    );
    let other = login(&g, "ws", "alice", ALICE_PW).await;
    other.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": {"counter": 667}}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(job_state(&env.db, job).await, "working");
    w.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": add(&task[2])}),
    );
    assert_eq!(c.job_done(job).await, json!({"output": 4}));
}

#[tokio::test]
async fn slots_per_announce_are_bounded() {
    let env = env().await;
    let g = Gateway::start(&env, &["--max-slots", "50"]).await;
    let mut w = login(&g, "tcp", "alice", ALICE_PW).await;
    let r = w
        .call("announce", json!({"actionname": "add", "slots": 1_000_000}))
        .await;
    assert_eq!(r[0], false);
    assert!(r[1].as_str().unwrap().contains("from 1 to 50"), "{r}");
    let e = w
        .call_err("create_slotgroup", json!({"name": "g", "slots": 51}))
        .await;
    assert!(
        e["message"].as_str().unwrap().contains("from 1 to 50"),
        "{e}"
    );
    let r = w
        .call("announce", json!({"actionname": "add", "slots": 50}))
        .await;
    assert_eq!(r, json!([true, "success"]));
}

/// bob announces `add` as worker `payroll`; the answer.
async fn bob_as_payroll(g: &Gateway) -> Value {
    let mut bob = login(g, "tcp", "bob", BOB_PW).await;
    bob.call(
        "announce",
        json!({"actionname": "add", "workername": "payroll"}),
    )
    .await
}

#[tokio::test]
async fn worker_names_are_bound_to_their_user() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let victim = announced(&g, "tcp", "payroll", "add", 1).await;
    // bob's connection closes once he is refused.
    assert_eq!(
        bob_as_payroll(&g).await,
        json!([false, "worker name payroll belongs to another user"])
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = env
        .db
        .query_opt(
            "select 1 from jobcenter.workers where name = 'payroll' and stopped is not null",
            &[],
        )
        .await
        .unwrap();
    assert!(
        stopped.is_none(),
        "the attacker's disconnect stopped the victim"
    );
    let done = Done::default();
    let serving = worker(victim, "add", done.clone(), Duration::ZERO, add);
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let job = c.create_job("calltest", json!({"input": 2})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 5}));
    serving.abort();
    // The name stays alice's after her worker is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = bob_as_payroll(&g).await;
    assert_eq!(r[0], false, "{r}");
}

#[tokio::test]
async fn peer_strings_cannot_forge_or_flood_log_lines() {
    let env = env().await;
    let g = Gateway::start(&env, &["--pre-auth-log-rate", "5"]).await;
    let evil = format!("mallory\nFORGED LINE \u{1b}[31mred{}", "x".repeat(3000));
    let mut c = tcp(g.addr("tcp")).await;
    c.send(&hello_msg(&evil, "password", "x"));
    assert!(c.closed(WAIT).await);
    let started = Instant::now();
    for _ in 0..200 {
        let mut c = tcp(g.addr("tcp")).await;
        c.send(&hello_msg("flood", "magic", "x"));
        c.closed(WAIT).await;
    }
    let seconds = started.elapsed().as_secs() + 2;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = g.log();
    assert!(!log.contains("\nFORGED LINE"), "a forged line");
    assert!(!log.contains('\u{1b}'), "an escape reached the log");
    assert!(log.contains("mallory\\nFORGED LINE"), "escaped and kept");
    let longest = log.lines().map(str::len).max().unwrap();
    assert!(longest < 1500, "a log line of {longest} bytes");
    let refused = log.matches("hello refused").count() as u64;
    assert!(refused <= 5 * seconds + 5, "{refused} lines in {seconds} s");
    assert!(
        log.contains("suppressed="),
        "the suppressed lines are counted"
    );
}

#[tokio::test]
async fn no_secrets_or_parameters_in_logs_even_at_trace() {
    let env = env().await;
    let g = Gateway::start(&env, &["--log-level", "trace"]).await;
    let mut w = announced(&g, "tcp", "w", "add", 1).await;
    let mut t = tcp(g.addr("tcp")).await;
    assert_eq!(t.hello("alice", "token", ALICE_TOKEN).await[0], true);
    let job = t.create_job("calltest", json!({"input": 424242})).await;
    let offer = w.notification("task_ready", WAIT).await.unwrap();
    let task = w
        .call(
            "get_task",
            json!({"actionname": "add", "job_id": offer["job_id"]}),
        )
        .await;
    w.notify(
        "task_done",
        json!({"cookie": task[1], "outargs": {"counter": 31337}}),
    );
    assert_eq!(t.job_done(job).await, json!({"output": 31337}));
    let cookie = task[1].as_str().unwrap();
    let out = http(g.addr("http"), &post(&basic("alice", ALICE_PW), PING)).await;
    assert!(out.starts_with("HTTP/1.1 200"));
    // Failed logins: a wrong password (a user's typo is often a near miss of the real one)
    // and a wrong token, over a stream and over HTTP.
    let mut t = ws(g.addr("ws")).await;
    assert_eq!(
        t.hello("alice", "password", "wrong-pw-5150").await[0],
        false
    );
    let mut t = tcp(g.addr("tcp")).await;
    assert_eq!(
        t.hello("alice", "token", "wrong-token-8086").await[0],
        false
    );
    let out = http(
        g.addr("http"),
        &post(&basic("alice", "wrong-basic-6502"), PING),
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
    let log = g.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "a trace log"
    );
    for secret in [
        "424242",
        "31337",
        cookie,
        ALICE_PW,
        ALICE_TOKEN,
        "wrong-pw-5150",
        "wrong-token-8086",
        "wrong-basic-6502",
        &basic("alice", "wrong-basic-6502"),
    ] {
        assert!(
            !log.contains(secret),
            "{secret} in the log: {}",
            log.lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test]
async fn websocket_connections_from_other_origins_are_refused() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let env = env().await;
    let g = Gateway::start(&env, &["--ws-origin", "https://console.example"]).await;
    let url = format!("ws://{}/", g.addr("ws"));
    let with_origin = |origin: &str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    let refused = tokio_tungstenite::connect_async(with_origin("https://evil.example")).await;
    assert!(refused.is_err(), "another origin was let in");
    let (ok, _) = tokio_tungstenite::connect_async(with_origin("https://console.example"))
        .await
        .unwrap();
    drop(ok);
    ws(g.addr("ws")).await; // no Origin: not a browser
}
