//! Load through the real `jcapi` binary: 50 concurrent clients (half over TCP, half over
//! WebSocket) run 2,000 jobs, each calling an action that 8 workers (2 slots each) perform;
//! every job ends once with the right output, no task is done twice, no `job_done` is lost
//! or repeated. Prints the throughput.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

const CLIENTS: i64 = 50;
const JOBS_PER_CLIENT: i64 = 40;
const WORKERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_and_eight_workers_run_two_thousand_jobs() {
    let env = env().await;
    let g = Gateway::start(&env, &["--pool-size", "16"]).await;
    let done = Done::default();
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let kind = if i % 2 == 0 { "tcp" } else { "ws" };
        let name: &'static str = Box::leak(format!("w{i}").into_boxed_str());
        let w = announced(&g, kind, name, "add", 2).await;
        workers.push(worker(w, "add", done.clone(), Duration::ZERO, add));
    }
    let started = Instant::now();
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let kind = if n % 2 == 0 { "tcp" } else { "ws" };
        let mut c = login(&g, kind, "alice", ALICE_PW).await;
        clients.push(tokio::spawn(async move {
            let mut jobs = HashMap::new();
            for i in 0..JOBS_PER_CLIENT {
                let input = n * 1000 + i;
                jobs.insert(
                    c.create_job("calltest", json!({"input": input})).await,
                    input,
                );
            }
            for (&job, &input) in &jobs {
                assert_eq!(
                    c.job_done(job).await,
                    json!({"output": input + 3}),
                    "job {job}"
                );
            }
            // Nothing more comes: each job_done was sent once.
            let extra = c.notification("job_done", Duration::from_millis(500)).await;
            assert!(extra.is_none(), "a second job_done: {extra:?}");
            jobs.len()
        }));
    }
    let mut total = 0;
    for c in clients {
        total += c.await.unwrap();
    }
    let elapsed = started.elapsed();
    let jobs = (CLIENTS * JOBS_PER_CLIENT) as usize;
    assert_eq!(total, jobs);
    {
        let done = done.lock().unwrap();
        assert_eq!(done.len(), jobs, "tasks done");
        let twice: Vec<_> = done.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "tasks done more than once: {twice:?}");
    }
    let row = env
        .db
        .query_one(
            "select count(*) filter (where state = 'finished'), count(*) from jobcenter.jobs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), jobs as i64);
    assert_eq!(row.get::<_, i64>(1), jobs as i64);
    let steps: i64 = env
        .db
        .query_one(
            "select count(*) from jobcenter.job_task_log l join jobcenter.tasks t using (task_id) \
             join jobcenter.actions a on a.action_id = t.action_id \
             where a.name = 'add' and l.state = 'done'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(steps, jobs as i64, "one add step per job");
    let metrics = metrics(g.addr("http")).await;
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert_eq!(value("jcapi_db_errors_total"), 0);
    assert_eq!(value("jcapi_job_done_sent_total"), jobs as u64);
    println!(
        "{jobs} jobs, {CLIENTS} clients, {WORKERS} workers: {:.1} s, {:.0} jobs/s; \
         {} offers, {} expired, {} taken",
        elapsed.as_secs_f64(),
        jobs as f64 / elapsed.as_secs_f64(),
        value("jcapi_tasks_offered_total"),
        value("jcapi_offers_expired_total"),
        value("jcapi_tasks_taken_total"),
    );
    for w in workers {
        w.abort();
    }
}

async fn metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
