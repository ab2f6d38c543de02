//! Flow control end to end through the real jcapi: idempotent submission with `jcclient call
//! --key` and the Rust library's `JobRequest::key` (one job per key; a keyed call of a job
//! that ended already gets its outputs at once), and priorities (`--priority`,
//! `JobRequest::priority`) ordering what a worker is offered.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{Gateway, ALICE, WORKER};
use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Handler, JobRequest};
use serde_json::{json, Value};
use testkit::examples;

fn jcclient(gw: &Gateway, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jcclient"))
        .args(["--host", "127.0.0.1", "--port"])
        .arg(gw.tcp.port().to_string())
        .args(["--user", ALICE.0, "--password", ALICE.1])
        .args(args)
        .env_remove("JC_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("running jcclient")
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

fn lib_config(gw: &Gateway, (who, password): (&str, &str)) -> Config {
    let mut c = Config::new(
        Endpoint::tcp("127.0.0.1", gw.tcp.port()),
        Auth::Password {
            who: who.into(),
            password: password.into(),
        },
    );
    c.call_timeout = Duration::from_secs(20);
    c
}

async fn jobs(gw: &Gateway) -> i64 {
    gw.sql
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_key_makes_repeated_calls_one_job() {
    let gw = Gateway::start(&[examples::add(), examples::calltest()]).await;

    // No worker yet: two keyed calls answer one job, a third without the key another.
    let o = jcclient(
        &gw,
        &[
            "call",
            "--no-wait",
            "--key",
            "k1",
            "calltest",
            r#"{"input": 1}"#,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let first = stdout_json(&o).as_i64().unwrap();
    let o = jcclient(
        &gw,
        &[
            "call",
            "--no-wait",
            "--key",
            "k1",
            "calltest",
            r#"{"input": 1}"#,
        ],
    );
    assert_eq!(stdout_json(&o).as_i64().unwrap(), first);
    let client = Client::connect(lib_config(&gw, ALICE)).await.unwrap();
    let mut req = JobRequest::new("calltest", json!({"input": 1}));
    req.key = Some("k1".into());
    assert_eq!(client.create_job(&req).await.unwrap(), first);
    assert_eq!(jobs(&gw).await, 1);
    let unkeyed = client
        .call_nb("calltest", json!({"input": 1}))
        .await
        .unwrap();
    assert_ne!(unkeyed, first);
    assert_eq!(jobs(&gw).await, 2);

    // A worker runs them; the keyed call waits for the first job's end.
    let worker = Client::connect(lib_config(&gw, WORKER)).await.unwrap();
    worker
        .announce(
            "add",
            Handler::new_sync(|t| {
                Ok(json!({"counter": t.inargs["counter"].as_i64().unwrap() + 3}))
            }),
            AnnounceOptions::default(),
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    assert_eq!(client.call_with(&req).await.unwrap(), json!({"output": 4}));

    // The job has ended: a keyed call answers its outputs at once and creates nothing.
    let o = jcclient(&gw, &["call", "--key", "k1", "calltest", r#"{"input": 1}"#]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout_json(&o), json!({"output": 4}));
    assert_eq!(client.call_with(&req).await.unwrap(), json!({"output": 4}));
    assert_eq!(jobs(&gw).await, 2);

    worker.close().await;
    work.abort();
}

#[tokio::test]
async fn a_priority_orders_the_tasks_through_the_gateway() {
    let gw = Gateway::start(&[examples::add(), examples::calltest()]).await;
    let o = jcclient(&gw, &["call", "--no-wait", "calltest", r#"{"input": 1}"#]);
    let low = stdout_json(&o).as_i64().unwrap();
    let o = jcclient(
        &gw,
        &[
            "call",
            "--no-wait",
            "--priority",
            "-3",
            "calltest",
            r#"{"input": 2}"#,
        ],
    );
    let lowest = stdout_json(&o).as_i64().unwrap();
    let client = Client::connect(lib_config(&gw, ALICE)).await.unwrap();
    let mut req = JobRequest::new("calltest", json!({"input": 3}));
    req.priority = Some(4);
    let high = client.create_job(&req).await.unwrap();
    let prio: Vec<i32> = gw
        .sql
        .query(
            "select priority from jobcenter.jobs where job_id = any($1) order by job_id",
            &[&vec![low, lowest, high]],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(prio, [0, -3, 4]);
    // a worker with one slot is offered them in priority order
    let order = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let seen = order.clone();
    let worker = Client::connect(lib_config(&gw, WORKER)).await.unwrap();
    worker
        .announce(
            "add",
            Handler::new_sync(move |t| {
                seen.lock().unwrap().push(t.job_id);
                Ok(json!({"counter": 0}))
            }),
            AnnounceOptions {
                slots: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let w = worker.clone();
    let work = tokio::spawn(async move { w.work().await });
    for j in [low, lowest, high] {
        client.wait_job(j).await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [high, low, lowest]);
    worker.close().await;
    work.abort();
}
