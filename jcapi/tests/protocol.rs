//! The whole client and worker protocol through the real `jcapi` binary, over TCP netstrings
//! and WebSocket: greetings and hello (passwords with sha-crypt and argon2 hashes, API
//! tokens, wrong credentials closing the connection), every client method with the original
//! result shapes and per-user isolation, every worker method (slots, slot groups, offers
//! passed on after the offer time-out), and pings both ways.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn whole_protocol(kind: &str) {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, kind, "alice", ALICE_PW).await;
    let w = announced(&g, kind, "w1", "add", 1).await;
    let done = Done::default();
    let worker_task = worker(w, "add", done.clone(), Duration::ZERO, add);

    // create_job -> [job_id, null], then job_done with the output.
    let job = c.create_job("calltest", json!({"input": 1})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 4}));
    assert_eq!(done.lock().unwrap().get(&job), Some(&1));
    assert_eq!(
        c.call("get_job_status", json!({"job_id": job})).await,
        json!([job, {"output": 4}])
    );
    // get_job: the state, output and step log.
    let info = c.call("get_job", json!({"job_id": job})).await;
    assert_eq!(info["job_id"], job);
    assert_eq!(info["workflow"], "calltest");
    assert_eq!(info["state"], "finished");
    assert_eq!(info["output"], json!({"output": 4}));
    assert_eq!(info["arguments"], json!({"input": 1}));
    let steps = info["steps"].as_array().unwrap();
    let add_step = steps
        .iter()
        .find(|s| s["inargs"] == json!({"counter": 1, "step": 3}))
        .unwrap_or_else(|| panic!("no add step in {steps:?}"));
    assert_eq!(add_step["state"], "done");
    assert_eq!(add_step["outargs"], json!({"counter": 4}));
    assert_eq!(steps.last().unwrap()["state"], "finished");

    // The job is alice's: the engine recorded her as its client.
    let client: String = env
        .db
        .query_one(
            "select environment ->> 'jcclient' from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(client, "alice");
    assert_eq!(
        c.call("find_jobs", json!({"filter": {"input": 1}})).await,
        json!([job])
    );
    assert_eq!(
        c.call(
            "find_jobs",
            json!({"filter": {"input": 1}, "state": "error"})
        )
        .await,
        json!([])
    );

    // Bob reaches none of alice's jobs, and is told what no job at all would tell him.
    let mut bob = login(&g, kind, "bob", BOB_PW).await;
    for method in ["get_job_status", "get_job", "cancel_job", "retry_job"] {
        let e = bob.call_err(method, json!({"job_id": job})).await;
        let none = bob.call_err(method, json!({"job_id": 1i64 << 40})).await;
        assert_eq!(e["code"], 1005, "{method}: {e}");
        assert_eq!(e["code"], none["code"], "{method}");
        let msg = e["message"]
            .as_str()
            .unwrap()
            .replace(&job.to_string(), "N");
        let none_msg = none["message"]
            .as_str()
            .unwrap()
            .replace(&(1i64 << 40).to_string(), "N");
        assert_eq!(msg, none_msg, "{method}");
    }
    assert_eq!(
        bob.call("find_jobs", json!({"filter": {"input": 1}})).await,
        json!([])
    );
    let e = c
        .call_err("get_job_status", json!({"job_id": 999_999}))
        .await;
    assert_eq!(e["code"], 1005);

    // A job that ends inside create_job still gets its job_done.
    let quick = c.create_job("nothing", json!({"input": 7})).await;
    assert_eq!(c.job_done(quick).await, json!({"output": 7}));

    // The engine's refusals come back as [null, message].
    let r = c
        .call("create_job", json!({"wfname": "nosuch", "inargs": {}}))
        .await;
    assert!(r[0].is_null());
    assert!(
        r[1].as_str().unwrap().contains("no workflow named nosuch"),
        "{r}"
    );
    let r = c
        .call(
            "create_job",
            json!({"wfname": "calltest", "inargs": {"input": "x"}}),
        )
        .await;
    assert!(r[0].is_null() && r[1].is_string(), "{r}");
    let e = c.call_err("create_job", json!({"inargs": {}})).await;
    assert_eq!(e["code"], -32602, "no wfname: {e}");

    // Events, cancel, retry.
    let waiting = c.create_job("approval", json!({"id": 5})).await;
    let ev = c
        .call(
            "raise_event",
            json!({"event": {"type": "approval", "id": 5}}),
        )
        .await;
    assert!(ev.as_i64().unwrap() > 0);
    let out = c.job_done(waiting).await;
    assert_eq!(out["event"]["data"]["id"], 5, "{out}");
    assert_eq!(out["event"]["event_id"], ev, "{out}");
    let e = c.call_err("raise_event", json!({"event": [1]})).await;
    assert_eq!(e["code"], 1002);

    let cancelled = c.create_job("approval", json!({"id": 9})).await;
    assert_eq!(
        c.call("cancel_job", json!({"job_id": cancelled, "reason": "test"}))
            .await,
        json!(true)
    );
    let out = c.job_done(cancelled).await;
    assert_eq!(out["error"]["class"], "abort", "{out}");
    let e = c.call_err("cancel_job", json!({"job_id": cancelled})).await;
    assert_eq!(e["code"], 1007, "cancel an ended job: {e}");
    assert_eq!(
        c.call("retry_job", json!({"job_id": cancelled})).await,
        json!(true)
    );
    assert_eq!(
        c.call(
            "get_job_status",
            json!({"job_id": cancelled, "notify": true})
        )
        .await,
        json!([cancelled, null])
    );
    c.call(
        "raise_event",
        json!({"event": {"type": "approval", "id": 9}}),
    )
    .await;
    let out = c.job_done(cancelled).await;
    assert_eq!(out["event"]["data"]["id"], 9, "{out}");
    // notify on an ended job: job_done at once.
    c.call("get_job_status", json!({"job_id": job, "notify": true}))
        .await;
    assert_eq!(c.job_done(job).await, json!({"output": 4}));

    assert_eq!(
        c.call(
            "check_if_lock_exists",
            json!({"locktype": "x", "lockvalue": "y"})
        )
        .await,
        json!(false)
    );
    assert_eq!(c.call("ping", json!({})).await, json!("pong"));
    let e = c.call_err("no_such_method", json!({})).await;
    assert_eq!(e["code"], -32601);
    worker_task.abort();
}

#[tokio::test]
async fn whole_protocol_over_tcp() {
    whole_protocol("tcp").await;
}

#[tokio::test]
async fn whole_protocol_over_websocket() {
    whole_protocol("ws").await;
}

#[tokio::test]
async fn hello_accepts_passwords_and_tokens_and_refuses_the_rest() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;

    // Nothing but hello and ping before a welcome.
    let mut c = tcp(g.addr("tcp")).await;
    let e = c
        .call_err(
            "create_job",
            json!({"wfname": "nothing", "inargs": {"input": 1}}),
        )
        .await;
    assert_eq!(e["code"], 1100);
    assert_eq!(c.call("ping", json!({})).await, json!("pong"));
    assert_eq!(
        c.hello("alice", "password", ALICE_PW).await,
        json!([true, "welcome to the clientapi alice!"])
    );
    let e = c
        .call_err(
            "hello",
            json!({"who": "alice", "method": "password", "token": ALICE_PW}),
        )
        .await;
    assert_eq!(e["code"], 1102, "a second hello");

    // Wrong credentials: a clear answer, then the connection closes.
    for (who, method, token) in [
        ("alice", "password", "wrong"),
        ("alice", "password", ALICE_TOKEN),
        ("mallory", "password", "x"),
        ("bob", "token", ALICE_TOKEN),
        ("alice", "clientcert", ""),
        ("alice", "magic", "x"),
    ] {
        for kind in ["tcp", "ws"] {
            let mut c = connect(&g, kind).await;
            let r = c.hello(who, method, token).await;
            assert_eq!(r[0], false, "{who} {method} over {kind}: {r}");
            assert!(r[1].as_str().unwrap().len() > 5, "a reason: {r}");
            assert!(c.closed(WAIT).await, "{who} {method}: still open");
        }
    }
    let mut c = tcp(g.addr("tcp")).await;
    let r = c.hello("alice", "password", "wrong").await;
    assert_eq!(
        r,
        json!([false, "authentication failed for alice"]),
        "no hint whether the user exists"
    );
    let mut c = tcp(g.addr("tcp")).await;
    let r = c.hello("alice", "clientcert", "").await;
    assert!(r[1].as_str().unwrap().contains("not accepted here"), "{r}");

    // API token (alice), argon2 hash (bob).
    let mut t = ws(g.addr("ws")).await;
    assert_eq!(t.hello("alice", "token", ALICE_TOKEN).await[0], true);
    let job = t.create_job("nothing", json!({"input": 2})).await;
    assert_eq!(t.job_done(job).await, json!({"output": 2}));
    let mut b = tcp(g.addr("tcp")).await;
    assert_eq!(b.hello("bob", "password", BOB_PW).await[0], true);

    let metrics = http_get(g.addr("http"), "/metrics").await;
    assert!(
        metrics.contains("jcapi_auth_failures_total 14"),
        "{metrics}"
    );
}

/// GET over a plain socket; returns the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out.split_once("\r\n\r\n").unwrap().1.to_owned()
}

#[tokio::test]
async fn an_offer_not_taken_goes_to_the_next_worker() {
    let env = env().await;
    let g = Gateway::start(&env, &["--offer-timeout", "2s"]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    // The first worker is offered the task but never takes it.
    let mut sleepy = announced(&g, "tcp", "sleepy", "add", 1).await;
    let job = c.create_job("calltest", json!({"input": 10})).await;
    let offer = sleepy
        .notification("task_ready", WAIT)
        .await
        .expect("an offer");
    assert_eq!(offer, json!({"actionname": "add", "job_id": job}));
    let offered = Instant::now();
    let done = Done::default();
    let w = announced(&g, "ws", "eager", "add", 1).await;
    let eager = worker(w, "add", done.clone(), Duration::ZERO, add);
    assert_eq!(c.job_done(job).await, json!({"output": 13}));
    let waited = offered.elapsed();
    assert!(
        waited >= Duration::from_millis(1900),
        "passed on after {waited:?}, before the offer time-out"
    );
    assert_eq!(done.lock().unwrap().get(&job), Some(&1));
    // Too late now.
    assert_eq!(
        sleepy
            .call("get_task", json!({"actionname": "add", "job_id": job}))
            .await,
        Value::Null
    );
    eager.abort();
}

#[tokio::test]
async fn slots_and_slot_groups_limit_offers() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = login(&g, "tcp", "alice", ALICE_PW).await;
    assert_eq!(
        w.call("create_slotgroup", json!({"name": "g", "slots": 2}))
            .await,
        json!(true)
    );
    let e = w
        .call_err("create_slotgroup", json!({"name": "g", "slots": 2}))
        .await;
    assert_eq!(e["code"], 1102);
    let r = w
        .call(
            "announce",
            json!({"actionname": "add", "slots": 2, "slotgroup": "g"}),
        )
        .await;
    assert_eq!(r[0], false, "{r}");
    let r = w
        .call(
            "announce",
            json!({"actionname": "add", "slotgroup": "nope"}),
        )
        .await;
    assert_eq!(r, json!([false, "slotgroup nope does not exist"]));
    let r = w
        .call(
            "announce",
            json!({"actionname": "nosuch", "workername": "wg"}),
        )
        .await;
    assert_eq!(r[0], false, "{r}");
    assert!(r[1].as_str().unwrap().contains("no action named nosuch"));
    let r = w
        .call(
            "announce",
            json!({"actionname": "add", "slotgroup": "g", "workername": "wg"}),
        )
        .await;
    assert_eq!(r, json!([true, "success"]));
    let r = w
        .call("announce", json!({"actionname": "flaky", "slotgroup": "g"}))
        .await;
    assert_eq!(r, json!([true, "success"]), "the same worker name goes on");
    // Another connection may not use that worker name.
    let mut other = login(&g, "tcp", "alice", ALICE_PW).await;
    let r = other
        .call("announce", json!({"actionname": "add", "workername": "wg"}))
        .await;
    assert_eq!(r[0], false, "{r}");

    // Three tasks, two slots shared by add and flaky: two offers, the third after a done.
    let jobs = [
        c.create_job("calltest", json!({"input": 1})).await,
        c.create_job("flakytest", json!({"input": 2})).await,
        c.create_job("calltest", json!({"input": 3})).await,
    ];
    let mut offers = Vec::new();
    while let Some(o) = w
        .notification("task_ready", Duration::from_millis(1500))
        .await
    {
        offers.push(o);
    }
    assert_eq!(offers.len(), 2, "{offers:?}");
    let mut cookies = Vec::new();
    for o in &offers {
        let t = w
            .call(
                "get_task",
                json!({"actionname": o["actionname"], "job_id": o["job_id"]}),
            )
            .await;
        assert_eq!(t[0], o["job_id"]);
        cookies.push((t[1].clone(), add(&t[2])));
    }
    assert!(w
        .notification("task_ready", Duration::from_millis(1500))
        .await
        .is_none());
    let (cookie, out) = cookies.pop().unwrap();
    w.notify("task_done", json!({"cookie": cookie, "outargs": out}));
    let third = w
        .notification("task_ready", WAIT)
        .await
        .expect("an offer once a slot is free");
    let t = w
        .call(
            "get_task",
            json!({"actionname": third["actionname"], "job_id": third["job_id"]}),
        )
        .await;
    let taken = t[0].as_i64().unwrap();
    assert!(jobs.contains(&taken));
    w.notify("task_done", json!({"cookie": t[1], "outargs": add(&t[2])}));
    let (cookie, out) = cookies.pop().unwrap();
    w.notify("task_done", json!({"cookie": cookie, "outargs": out}));
    let mut outputs = Vec::new();
    for j in jobs {
        outputs.push(c.job_done(j).await["output"].clone());
    }
    assert_eq!(outputs, [json!(4), json!(5), json!(6)]);
    // A task_done with a used cookie changes nothing.
    w.notify(
        "task_done",
        json!({"cookie": t[1], "outargs": {"counter": 0}}),
    );
    assert_eq!(
        w.call("withdraw", json!({"actionname": "add"})).await,
        json!(true)
    );
    let e = w.call_err("withdraw", json!({"actionname": "add"})).await;
    assert_eq!(e["code"], 1006);
    let e = w
        .call_err("get_task", json!({"actionname": "add", "job_id": 1}))
        .await;
    assert_eq!(e["code"], 1006, "withdrawn");
}

#[tokio::test]
async fn workers_are_pinged_and_silent_ones_disconnected() {
    let env = env().await;
    let g = Gateway::start(&env, &["--ping-interval", "500ms", "--ping-timeout", "1s"]).await;
    let alive = announced(&g, "tcp", "alive", "add", 1).await;
    let mut silent = announced(&g, "ws", "silent", "add", 1).await;
    silent
        .pong
        .store(false, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    assert!(silent.closed(Duration::from_secs(10)).await, "still open");
    let after = started.elapsed();
    assert!(
        after >= Duration::from_millis(1400),
        "closed after {after:?}: before a ping was due and unanswered"
    );
    assert!(*silent.pings.lock().unwrap() >= 1);
    let stopped = |name: &'static str| {
        let db = &env.db;
        async move {
            db.query_one(
                "select stopped is not null from jobcenter.workers where name = $1",
                &[&name],
            )
            .await
            .unwrap()
            .get::<_, bool>(0)
        }
    };
    assert!(eventually(WAIT, || stopped("silent")).await);
    assert!(!stopped("alive").await);
    assert!(*alive.pings.lock().unwrap() >= 2);
    // Its answers reach the database.
    let fresh: bool = env
        .db
        .query_one(
            "select last_ping > now() - interval '2 seconds' from jobcenter.workers \
             where name = 'alive'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(fresh);
}

#[tokio::test]
async fn filtered_workers_get_only_their_tasks() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut ws = Vec::new();
    let mut dones = Vec::new();
    for (name, dest) in [("ra", "a"), ("rb", "b")] {
        let mut w = login(&g, "tcp", "alice", ALICE_PW).await;
        let r = w
            .call(
                "announce",
                json!({"actionname": "route", "workername": name, "filter": {"dest": dest}}),
            )
            .await;
        assert_eq!(r, json!([true, "success"]));
        let done = Done::default();
        ws.push(worker(
            w,
            "route",
            done.clone(),
            Duration::ZERO,
            |i| json!({"n": i["n"]}),
        ));
        dones.push(done);
    }
    let mut w = login(&g, "tcp", "alice", ALICE_PW).await;
    let r = w
        .call(
            "announce",
            json!({"actionname": "route", "workername": "rc", "filter": {"n": 1}}),
        )
        .await;
    assert_eq!(r[0], false);
    assert!(
        r[1].as_str().unwrap().contains("cannot be filtered on n"),
        "{r}"
    );
    let mut by_dest: [Vec<i64>; 2] = Default::default();
    for n in 0..6 {
        let dest = if n % 2 == 0 { "a" } else { "b" };
        let job = c
            .create_job("routetest", json!({"dest": dest, "n": n}))
            .await;
        by_dest[n as usize % 2].push(job);
    }
    for (i, jobs) in by_dest.iter().enumerate() {
        for (k, job) in jobs.iter().enumerate() {
            assert_eq!(c.job_done(*job).await, json!({"n": 2 * k + i}));
        }
        let mut got: Vec<i64> = dones[i].lock().unwrap().keys().copied().collect();
        got.sort();
        assert_eq!(&got, jobs, "worker {i} did only its own tasks");
    }
    for w in ws {
        w.abort();
    }
}
