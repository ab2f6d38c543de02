//! Helpers of the end-to-end tests: run the `jcc` binary against a test database, answer the
//! tasks of the corpus's actions like workers would, and run a job to its end.

#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use engine_tests::db;
use serde_json::{json, Value};
use tokio_postgres::Client;

pub use engine_tests::{count, log_states, setup, state};

/// The source files of a directory of the repository (`.jcl`, and the original's `.wf` and
/// `.ac`), sorted.
pub fn files(rel: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel);
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jcl" || e == "wf" || e == "ac")
        })
        .collect();
    v.sort();
    v.into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Runs the jcc binary with `args`, the database given by `--dsn`.
pub fn jcc(dsn: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jcc"))
        .arg("--dsn")
        .arg(dsn)
        .args(args)
        .env_remove("JC_DSN")
        .output()
        .expect("run jcc")
}

/// Runs jcc and asserts it succeeded; returns its stderr (the report).
pub fn jcc_ok(dsn: &str, args: &[&str]) -> String {
    let out = jcc(dsn, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "jcc {args:?} failed ({:?}):\n{err}",
        out.status
    );
    err
}

/// A test database with the jcc_double procedure and every file of `dirs` compiled by jcc;
/// the test's role holds the roles the examples declare, so it may start and serve them.
pub async fn compiled(dirs: &[&str]) -> (testkit::TestDb, Client) {
    let (tdb, c) = setup().await;
    c.batch_execute(
        "create function jcc_double(a jsonb) returns jsonb language sql as \
         $$ select jsonb_build_object('x', (a ->> 'x')::numeric * 2) $$; \
         insert into jobcenter.jc_roles select unnest(array[current_user::text, 'approvals', \
             'etl', 'hosting', 'monitoring']) on conflict do nothing; \
         insert into jobcenter.jc_role_members select current_user, unnest(array['workers', \
             'approvals', 'etl', 'hosting', 'monitoring'])",
    )
    .await
    .unwrap();
    let all: Vec<String> = dirs.iter().flat_map(|d| files(d)).collect();
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    jcc_ok(&tdb.dsn, &args);
    (tdb, c)
}

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f as i64))
        .unwrap_or(0)
}

/// What the test workers answer for a task of `action`.
pub fn answer(action: &str, i: &Value, env: Option<&Value>) -> Value {
    match action {
        "add" => json!({"counter": int(&i["counter"]) + int(&i["step"])}),
        "sub" => json!({"counter": int(&i["counter"]) - int(&i["step"])}),
        // the candidates of the original's adder.wf, told apart by their answers
        "a.add" => json!({"counter": int(&i["counter"]) + int(&i["step"])}),
        "b.add" => json!({"counter": int(&i["counter"]) + 2 * int(&i["step"])}),
        "c.add" => json!({"counter": int(&i["counter"]) - int(&i["step"])}),
        "square" => json!({"n": int(&i["n"]) * int(&i["n"])}),
        "div" => {
            let b = int(&i["b"]);
            if b == 0 {
                json!({"error": "division by zero"})
            } else {
                json!({"q": int(&i["a"]) / b})
            }
        }
        "greet" => {
            let lang = env.and_then(|e| e["lang"].as_str()).unwrap_or("en");
            let hello = if lang == "nl" { "hallo" } else { "hello" };
            json!({"greeting": format!("{hello} {}", i["name"].as_str().unwrap_or(""))})
        }
        "storage.allocate" => json!({"filer_ip": "10.0.0.7"}),
        "dns.configure" => {
            if i["domain"].as_str().unwrap_or("").starts_with("bad") {
                json!({"error": "no such zone"})
            } else {
                json!({"serial": 2026112301})
            }
        }
        "webserver.add_vhost" => json!({"id": format!("vh-{}", i["name"].as_str().unwrap_or(""))}),
        "mysql.create_database" => json!({"created": true}),
        "etl.extract" => match i["cursor"].as_i64() {
            None => json!({"rows": [1, 2, 3], "next_cursor": 1}),
            Some(1) => json!({"rows": [4, -5], "next_cursor": 2}),
            Some(_) => json!({"rows": []}),
        },
        "etl.transform" => {
            let rows: Vec<i64> = i["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_i64().unwrap())
                .collect();
            let good: Vec<i64> = rows.iter().filter(|r| **r > 0).map(|r| r * 10).collect();
            let bad: Vec<i64> = rows.iter().filter(|r| **r <= 0).copied().collect();
            json!({"good": good, "bad": bad})
        }
        "etl.load" => json!({"count": i["rows"].as_array().unwrap().len()}),
        "notify.approver" => json!({"sent": true}),
        "net.ping" => {
            if i["host"].as_str().unwrap_or("").starts_with("down") {
                json!({"latency": 5000})
            } else {
                json!({"latency": 12})
            }
        }
        other => panic!("no test worker for {other}"),
    }
}

/// Answers every ready task (of any job) until none is left; returns how many it answered.
pub async fn work(c: &Client) -> usize {
    let mut n = 0;
    let mut announced = BTreeSet::new();
    loop {
        let names: Vec<String> = c
            .query(
                "select distinct a.name from jobcenter.jobs j \
                 join jobcenter.tasks t on t.task_id = j.task_id \
                 join jobcenter.actions a on a.action_id = t.action_id \
                 where j.state = 'ready' order by 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        if names.is_empty() {
            return n;
        }
        let before = n;
        for name in names {
            if announced.insert(name.clone()) {
                db::announce(c, "testworker", &name, None, None)
                    .await
                    .unwrap();
            }
            while let Some(t) = db::get_task(c, "testworker", &name, None).await.unwrap() {
                let out = answer(&name, &t.inargs, t.env.as_ref());
                db::task_done(c, &t.cookie, &out).await.unwrap();
                n += 1;
            }
        }
        if n == before {
            return n;
        }
    }
}

/// Creates a job of `wf` and answers its (and its children's) tasks until it waits for
/// something else or has ended. Returns the job id and its status (`None` while it runs).
pub async fn run(c: &Client, wf: &str, args: Value) -> (i64, Option<Value>) {
    let job = db::create_job(c, wf, &args, Default::default())
        .await
        .unwrap_or_else(|e| panic!("create_job {wf}: {e}"));
    work(c).await;
    let status = db::get_job_status(c, job.job_id).await.unwrap();
    (job.job_id, status)
}

/// Runs a job that must finish; returns its output.
pub async fn output(c: &Client, wf: &str, args: Value) -> Value {
    let (id, status) = run(c, wf, args.clone()).await;
    assert_eq!(
        state(c, id).await,
        "finished",
        "{wf} {args}: {status:?}, steps {:?}",
        log_states(c, id).await
    );
    status.unwrap()
}

/// Runs a job that must end in error; returns its error object.
pub async fn error(c: &Client, wf: &str, args: Value) -> Value {
    let (id, status) = run(c, wf, args.clone()).await;
    assert_eq!(state(c, id).await, "error", "{wf} {args}: {status:?}");
    status.unwrap()["error"].clone()
}

/// Makes the job's timeout due now and fires it.
pub async fn fire_timeout(c: &Client, job_id: i64) {
    c.execute(
        "update jobcenter.jobs set timeout = now() where job_id = $1",
        &[&job_id],
    )
    .await
    .unwrap();
    assert!(db::do_timeout(c).await.unwrap() >= 1);
}
