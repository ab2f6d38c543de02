//! The `jcadm` binary against a real database: jobs in every resting state (made through the
//! engine's API and a worker's calls), each view's table and `--json`, the graph's DOT
//! (snapshot) and SVG, and the operations' effects and their refusal without `--yes` when
//! stdin is not a terminal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use engine_tests::{db, setup, state};
use serde_json::{json, Value};
use tokio_postgres::Client;

/// The fixtures' jobs, one per resting state.
#[derive(Debug)]
struct Jobs {
    ready: i64,
    working: i64,
    retrywait: i64,
    finished: i64,
    caught: i64,
    error: i64,
    sleeping: i64,
    eventwait: i64,
    holder: i64,
    lockwait: i64,
    childwait: i64,
    zombie: i64,
    child_ready: i64,
}

async fn create(c: &Client, wf: &str, args: Value) -> i64 {
    engine_tests::create(c, wf, args).await
}

/// Takes the `step` task of `job` as worker w1 (announcing first), answering with `answer`
/// unless it is `None` (the task stays with the worker).
async fn take(c: &Client, job: i64, answer: Option<Value>) {
    db::announce(c, "w1", "step", None, None).await.unwrap();
    let t = db::get_task(c, "w1", "step", Some(job))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no step task for job {job}"));
    if let Some(a) = answer {
        db::task_done(c, &t.cookie, &a).await.unwrap();
    }
}

/// A database with the fixtures compiled and a job in every resting state.
async fn fixture() -> (testkit::TestDb, Client, Jobs) {
    let (tdb, mut c) = setup().await;
    common::compile(
        &mut c,
        &[
            "step", "opsdemo", "failer", "napper", "waiter", "holder", "fanout",
        ],
        false,
    )
    .await;
    let ready = create(&c, "opsdemo", json!({"n": 1})).await;
    let working = create(&c, "opsdemo", json!({"n": 2})).await;
    take(&c, working, None).await;
    let retrywait = create(&c, "opsdemo", json!({"n": 3})).await;
    take(
        &c,
        retrywait,
        Some(json!({"error": {"class": "soft", "msg": "flaky"}})),
    )
    .await;
    let finished = create(&c, "opsdemo", json!({"n": 4})).await;
    take(&c, finished, Some(json!({"n": 4}))).await;
    let caught = create(&c, "opsdemo", json!({"n": 500})).await;
    take(&c, caught, Some(json!({"n": 500}))).await;
    let error = create(&c, "failer", json!({"why": "broken"})).await;
    let sleeping = create(&c, "napper", json!({})).await;
    let eventwait = create(&c, "waiter", json!({"id": 1})).await;
    db::raise_event(&c, &json!({"early": 1})).await.unwrap();
    let holder = create(&c, "holder", json!({"key": "k"})).await;
    let lockwait = create(&c, "holder", json!({"key": "k"})).await;
    let childwait = create(&c, "fanout", json!({"n": 10})).await;
    let kids = engine_tests::children(&c, childwait).await;
    assert_eq!(kids.len(), 2);
    take(&c, kids[0], Some(json!({"n": 10}))).await;
    let jobs = Jobs {
        ready,
        working,
        retrywait,
        finished,
        caught,
        error,
        sleeping,
        eventwait,
        holder,
        lockwait,
        childwait,
        zombie: kids[0],
        child_ready: kids[1],
    };
    for (id, s) in [
        (jobs.ready, "ready"),
        (jobs.working, "working"),
        (jobs.retrywait, "retrywait"),
        (jobs.finished, "finished"),
        (jobs.caught, "finished"),
        (jobs.error, "error"),
        (jobs.sleeping, "sleeping"),
        (jobs.eventwait, "eventwait"),
        (jobs.holder, "sleeping"),
        (jobs.lockwait, "lockwait"),
        (jobs.childwait, "childwait"),
        (jobs.zombie, "zombie"),
        (jobs.child_ready, "ready"),
    ] {
        assert_eq!(state(&c, id).await, s, "job {id}");
    }
    (tdb, c, jobs)
}

/// Runs jcadm on the test database with stdin not a terminal.
fn jcadm(dsn: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jcadm"))
        .arg("--dsn")
        .arg(dsn)
        .args(args)
        .env_remove("JC_DSN")
        .stdin(Stdio::null())
        .output()
        .expect("run jcadm")
}

/// Runs jcadm and asserts it succeeded; returns stdout.
fn ok(dsn: &str, args: &[&str]) -> String {
    let out = jcadm(dsn, args);
    assert!(
        out.status.success(),
        "jcadm {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs jcadm with `--json` and parses its output.
fn ok_json(dsn: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(dsn, &all)).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_i64().unwrap())
        .collect()
}

/// The lines of a table whose first column is `first`.
fn row<'a>(table: &'a str, first: &str) -> Vec<&'a str> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(first))
        .unwrap_or_else(|| panic!("no row {first} in\n{table}"))
        .split_whitespace()
        .collect()
}

#[tokio::test]
async fn jobs_lists_every_state_newest_first_with_filters_and_pages() {
    let (tdb, _c, j) = fixture().await;
    let all = ok_json(&tdb.dsn, &["jobs"]);
    let listed = ids(&all["jobs"]);
    assert_eq!(listed.len(), 13);
    assert!(listed.windows(2).all(|w| w[0] > w[1]), "{listed:?}");
    assert_eq!(all["next_before"], Value::Null);
    let states: std::collections::BTreeSet<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["state"].as_str().unwrap())
        .collect();
    for s in [
        "ready",
        "working",
        "retrywait",
        "finished",
        "error",
        "sleeping",
        "eventwait",
        "lockwait",
        "childwait",
        "zombie",
    ] {
        assert!(states.contains(s), "no {s} in {states:?}");
    }

    let table = ok(&tdb.dsn, &["jobs"]);
    assert!(table.starts_with("JOB "), "{table}");
    let r = row(&table, &j.retrywait.to_string());
    assert_eq!(&r[1..5], ["opsdemo", "1", "retrywait", "step"]);

    let errors = ok_json(&tdb.dsn, &["jobs", "--state", "error", "--state", "zombie"]);
    assert_eq!(ids(&errors["jobs"]), vec![j.zombie, j.error]);
    let failer = ok_json(&tdb.dsn, &["jobs", "--workflow", "failer"]);
    assert_eq!(ids(&failer["jobs"]), vec![j.error]);

    // keyset pages: no job twice, none left out
    let first = ok_json(&tdb.dsn, &["jobs", "--limit", "5"]);
    assert_eq!(ids(&first["jobs"]).len(), 5);
    let before = first["next_before"].as_i64().unwrap();
    assert!(
        ok(&tdb.dsn, &["jobs", "--limit", "5"]).ends_with(&format!("more: --before {before}\n"))
    );
    let second = ok_json(
        &tdb.dsn,
        &["jobs", "--limit", "100", "--before", &before.to_string()],
    );
    let mut paged = ids(&first["jobs"]);
    paged.extend(ids(&second["jobs"]));
    assert_eq!(paged, listed);

    assert_eq!(
        ids(&ok_json(&tdb.dsn, &["jobs", "--since", "1h"])["jobs"]).len(),
        13
    );
    assert!(ids(&ok_json(&tdb.dsn, &["jobs", "--since", "2999-01-01"])["jobs"]).is_empty());
    let bad = jcadm(&tdb.dsn, &["jobs", "--since", "yesterdayish"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("JA104") && err.contains("--since yesterdayish"),
        "{err}"
    );
    let bad = jcadm(&tdb.dsn, &["jobs", "--state", "napping"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn errors_name_class_message_task_and_line() {
    let (tdb, _c, j) = fixture().await;
    let v = ok_json(&tdb.dsn, &["errors"]);
    assert_eq!(ids(&v), vec![j.error]);
    let e = &v[0];
    assert_eq!(
        (
            &e["workflow"],
            &e["class"],
            &e["msg"],
            &e["task"],
            &e["line"]
        ),
        (
            &json!("failer"),
            &json!("normal"),
            &json!("broken"),
            &json!("raise_error"),
            &json!(6)
        )
    );
    let table = ok(&tdb.dsn, &["errors"]);
    let r = row(&table, &j.error.to_string());
    assert_eq!(
        &r[1..7],
        ["failer", "1", "normal", "raise_error", "6", "broken"]
    );
    assert!(ids(&ok_json(&tdb.dsn, &["errors", "opsdemo"])).is_empty());
    assert_eq!(
        ids(&ok_json(&tdb.dsn, &["errors", "opsdemo", "failer"])),
        vec![j.error]
    );
}

#[tokio::test]
async fn locks_show_the_holder_and_its_waiter() {
    let (tdb, c, j) = fixture().await;
    let v = ok_json(&tdb.dsn, &["locks"]);
    assert_eq!(v["holders"].as_array().unwrap().len(), 1);
    let h = &v["holders"][0];
    assert_eq!(
        (&h["locktype"], &h["lockvalue"]),
        (&json!("res"), &json!("k"))
    );
    assert_eq!(h["job_id"], json!(j.holder));
    assert_eq!(h["inherit"], json!(false));
    // holders of the value against the lock type's limit, and the jobs waiting for it
    assert_eq!(h["held"], json!("1/1"));
    assert_eq!(h["waiting"], json!(1));
    let w = &v["waiters"][0];
    assert_eq!(
        (&w["job_id"], &w["holder"], &w["lockvalue"]),
        (&json!(j.lockwait), &json!(j.holder), &json!("k"))
    );
    let table = ok(&tdb.dsn, &["locks"]);
    let held = row(&table, "res");
    assert_eq!(
        &held[1..6],
        ["k", &j.holder.to_string(), "holder", "sleeping", "1/1"]
    );
    // FROM is empty: WAITING is the eighth word
    assert_eq!(held[7], "1", "WAITING: {table}");
    // a counted lock: two holders of three
    c.batch_execute("update jobcenter.locktypes set max_holders = 3 where locktype = 'res'")
        .await
        .unwrap();
    let second = create(&c, "holder", json!({"key": "k"})).await;
    let v = ok_json(&tdb.dsn, &["locks"]);
    let held: Vec<(&Value, &Value)> = v["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (&h["job_id"], &h["held"]))
        .collect();
    assert_eq!(
        held,
        [
            (&json!(j.holder), &json!("2/3")),
            (&json!(second), &json!("2/3"))
        ]
    );
    let table = ok(&tdb.dsn, &["locks"]);
    assert_eq!(table.matches(" 2/3 ").count(), 2, "{table}");
    let waiting = row(&table, &j.lockwait.to_string());
    assert_eq!(
        &waiting[1..5],
        ["holder", "res", "k", &j.holder.to_string()]
    );
}

#[tokio::test]
async fn workers_show_announcements_and_tasks_in_hand() {
    let (tdb, c, _j) = fixture().await;
    db::announce(&c, "w2", "step", None, None).await.unwrap();
    let v = ok_json(&tdb.dsn, &["workers"]);
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w1", "w2"]);
    assert_eq!(v[0]["working"], json!(1));
    assert_eq!(v[0]["actions"], json!([{"action": "step", "version": 1}]));
    assert_eq!(v[1]["working"], json!(0));
    let table = ok(&tdb.dsn, &["workers"]);
    let w1 = row(&table, &v[0]["worker_id"].to_string());
    assert_eq!(w1[1..3], ["w1", "1"]);
    assert!(table.contains("step v1"), "{table}");
}

#[tokio::test]
async fn stale_lists_a_workflow_calling_an_old_action_version() {
    let (tdb, mut c) = setup().await;
    common::compile(&mut c, &["step", "opsdemo"], false).await;
    assert_eq!(ok_json(&tdb.dsn, &["stale"]), json!([]));
    common::compile(&mut c, &["step"], true).await;
    let v = ok_json(&tdb.dsn, &["stale"]);
    assert_eq!(
        v,
        json!([{"workflow": "opsdemo", "version": 1, "callee": "step",
                "callee_version": 1, "newest": 2}])
    );
    let table = ok(&tdb.dsn, &["stale"]);
    assert_eq!(row(&table, "opsdemo"), ["opsdemo", "1", "step", "1", "2"]);
}

#[tokio::test]
async fn schedules_and_events_are_listed() {
    let (tdb, c, j) = fixture().await;
    let args = json!({"why": "nightly"});
    let mut s = db::Schedule::new("nightly", "failer", "0 0 3 * * *", &args);
    s.enabled = false;
    db::create_schedule(&c, &s).await.unwrap();
    let v = ok_json(&tdb.dsn, &["schedules"]);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(
        (
            &v[0]["name"],
            &v[0]["wfname"],
            &v[0]["cron"],
            &v[0]["enabled"]
        ),
        (
            &json!("nightly"),
            &json!("failer"),
            &json!("0 0 3 * * *"),
            &json!(false)
        )
    );
    let table = ok(&tdb.dsn, &["schedules"]);
    assert_eq!(row(&table, "nightly")[1..6], ["failer", "0", "0", "3", "*"]);

    let v = ok_json(&tdb.dsn, &["events"]);
    let subs = v["subscriptions"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert!(subs.iter().all(|s| s["job_id"] == json!(j.eventwait)));
    let early = subs.iter().find(|s| s["name"] == json!("early")).unwrap();
    assert_eq!(
        (&early["mask"], &early["queued"]),
        (&json!({"early": 1}), &json!(1))
    );
    let q = &v["queued"][0];
    assert_eq!(
        (&q["name"], &q["eventdata"]),
        (&json!("early"), &json!({"early": 1}))
    );
    let table = ok(&tdb.dsn, &["events"]);
    assert!(
        table.contains("subscriptions:\n") && table.contains("queued events:\n"),
        "{table}"
    );
    assert!(table.contains(r#"{"early":1}"#), "{table}");
}

#[tokio::test]
async fn job_shows_inputs_variables_outputs_and_the_timeline() {
    let (tdb, c, j) = fixture().await;
    let v = ok_json(&tdb.dsn, &["job", &j.caught.to_string()]);
    assert_eq!(v["state"], json!("finished"));
    assert_eq!(v["arguments"], json!({"n": 500}));
    assert_eq!(v["output"], json!({"out": "caught too big"}));
    let steps: Vec<(&str, &str)> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["task"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("start", "done"),
            ("step", "done"),
            ("branch", "done"),
            ("raise_error", "error"),
            ("eval", "done"),
            ("end", "finished")
        ]
    );
    let text = ok(&tdb.dsn, &["job", &j.caught.to_string()]);
    assert!(
        text.starts_with(&format!("job {}: opsdemo version 1, finished\n", j.caught)),
        "{text}"
    );
    assert!(text.contains("inputs: {\"n\":500}\n"), "{text}");
    assert!(
        text.contains("outputs: {\"out\":\"caught too big\"}\n"),
        "{text}"
    );
    assert!(text.contains("step               line 11"), "{text}");

    let v = ok_json(&tdb.dsn, &["job", &j.retrywait.to_string()]);
    assert_eq!(
        (&v["state"], &v["task"], &v["line"]),
        (&json!("retrywait"), &json!("step"), &json!(11))
    );
    assert_eq!(v["task_state"]["error"]["msg"], json!("flaky"));
    let text = ok(&tdb.dsn, &["job", &j.retrywait.to_string()]);
    assert!(
        text.contains("at task") && text.contains("step (line 11)"),
        "{text}"
    );
    assert!(text.contains("timeout: "), "{text}");

    // a job's priority and key
    let keyed = db::create_job(
        &c,
        "opsdemo",
        &json!({"n": 1}),
        db::CreateJob {
            key: Some("order-9"),
            priority: Some(3),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .job_id;
    let v = ok_json(&tdb.dsn, &["job", &keyed.to_string()]);
    assert_eq!((&v["priority"], &v["key"]), (&json!(3), &json!("order-9")));
    let text = ok(&tdb.dsn, &["job", &keyed.to_string()]);
    assert!(text.contains("\npriority: 3\nkey: order-9\n"), "{text}");
    let jobs = ok_json(&tdb.dsn, &["jobs"]);
    let listed = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["job_id"] == json!(keyed))
        .unwrap();
    assert_eq!(listed["priority"], json!(3));
    let missing = jcadm(&tdb.dsn, &["job", "999999"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("JA102: no job 999999"));
}

#[tokio::test]
async fn tree_shows_the_family_from_any_member() {
    let (tdb, _c, j) = fixture().await;
    let v = ok_json(&tdb.dsn, &["tree", &j.zombie.to_string()]);
    let got: Vec<(i64, u64, &str)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["job_id"].as_i64().unwrap(),
                r["depth"].as_u64().unwrap(),
                r["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (j.childwait, 0, "childwait"),
            (j.zombie, 1, "zombie"),
            (j.child_ready, 1, "ready")
        ]
    );
    let text = ok(&tdb.dsn, &["tree", &j.zombie.to_string()]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        format!("  {} fanout v1 childwait at wait_for_children", j.childwait)
    );
    assert_eq!(
        lines[1],
        format!("*   {} opsdemo v1 zombie at end", j.zombie)
    );
    assert_eq!(
        lines[2],
        format!("    {} opsdemo v1 ready at step", j.child_ready)
    );
}

#[tokio::test]
async fn source_marks_the_current_line() {
    let (tdb, _c, j) = fixture().await;
    let text = ok(&tdb.dsn, &["source", &j.ready.to_string()]);
    assert!(
        text.starts_with(&format!(
            "# job {} runs opsdemo version 1 (ready)\n",
            j.ready
        )),
        "{text}"
    );
    assert!(text.contains(">  11  \t\tcall step:\n"), "{text}");
    assert!(text.contains("    1  # An action call"), "{text}");
    let v = ok_json(&tdb.dsn, &["source", &j.ready.to_string()]);
    assert_eq!(v["line"], json!(11));
    let want = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/opsdemo.jcl"),
    )
    .unwrap();
    assert_eq!(v["src"].as_str().unwrap(), want);
}

#[tokio::test]
async fn graph_dot_of_a_known_workflow() {
    let (tdb, _c, j) = fixture().await;
    insta::assert_snapshot!("opsdemo_dot", ok(&tdb.dsn, &["graph", "opsdemo:1"]));
    // the job that was caught: its path through the catch block is drawn
    let dot = ok(
        &tdb.dsn,
        &["graph", "opsdemo", "--job", &j.caught.to_string()],
    );
    insta::assert_snapshot!(
        "opsdemo_dot_caught",
        dot.replace(&format!("job {} (", j.caught), "job JOB (")
    );
    let v = ok_json(
        &tdb.dsn,
        &["graph", "opsdemo", "--job", &j.ready.to_string()],
    );
    let current: Vec<&str> = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["current"] == json!(true))
        .map(|n| n["action"].as_str().unwrap())
        .collect();
    assert_eq!(current, ["step"]);
    assert_eq!(v["job"]["path"], json!([0, 1]));
    let wrong = jcadm(
        &tdb.dsn,
        &["graph", "failer", "--job", &j.ready.to_string()],
    );
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not run workflow failer"));
    let none = jcadm(&tdb.dsn, &["graph", "opsdemo:7"]);
    assert!(String::from_utf8_lossy(&none.stderr).contains("JA103: no workflow opsdemo:7"));
}

#[tokio::test]
async fn graph_svg_is_well_formed_and_marks_the_job() {
    let (tdb, _c, j) = fixture().await;
    for wf in ["opsdemo", "fanout", "waiter", "holder", "failer"] {
        let svg = ok(&tdb.dsn, &["graph", wf, "--format", "svg"]);
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{wf}: {e}\n{svg}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let tasks = doc
            .descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("task")))
            .count();
        let v = ok_json(&tdb.dsn, &["graph", wf]);
        assert_eq!(tasks, v["nodes"].as_array().unwrap().len(), "{wf}");
    }
    let svg = ok(
        &tdb.dsn,
        &[
            "graph",
            "opsdemo",
            "--job",
            &j.retrywait.to_string(),
            "--format",
            "svg",
        ],
    );
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let current: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("task current"))
        .filter_map(|n| n.attribute("data-task"))
        .collect();
    assert_eq!(current, ["1"]);
    assert!(doc
        .descendants()
        .any(|n| n.text().is_some_and(|t| t.contains("1: step (action v1)"))));
}

/// Whether the database has the admin procedures of 0.2.0.
async fn has_admin_procedures(c: &Client) -> bool {
    c.query_one(
        "select exists (select from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                        where n.nspname = 'jobcenter' and p.proname = 'retry_now')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn cancel_and_retry_need_yes_off_a_terminal_and_use_the_procedures() {
    let (tdb, c, j) = fixture().await;
    let id = j.ready.to_string();
    let refused = jcadm(&tdb.dsn, &["cancel", &id]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("JA105") && err.contains("pass --yes") && err.contains("opsdemo (ready)"),
        "{err}"
    );
    assert_eq!(state(&c, j.ready).await, "ready");

    assert_eq!(
        ok(&tdb.dsn, &["cancel", &id, "--yes"]),
        format!("job {id}: cancelled\n")
    );
    assert_eq!(state(&c, j.ready).await, "error");
    let v = ok_json(&tdb.dsn, &["errors", "opsdemo"]);
    assert_eq!(
        (&v[0]["job_id"], &v[0]["class"]),
        (&json!(j.ready), &json!("abort"))
    );
    assert_eq!(v[0]["msg"], json!("cancelled by jcadm"));

    // one refused of two: both reported, the command fails
    let out = jcadm(
        &tdb.dsn,
        &[
            "--json",
            "cancel",
            &j.finished.to_string(),
            &j.sleeping.to_string(),
            "--yes",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v[0]["ok"], &v[0]["code"]),
        (&json!(false), &json!("JC007"))
    );
    assert_eq!(v[1], json!({"job_id": j.sleeping, "ok": true}));
    assert!(String::from_utf8_lossy(&out.stderr).contains("JA108: 1 of 2 jobs were refused"));

    assert!(!jcadm(&tdb.dsn, &["retry", &id]).status.success());
    assert_eq!(state(&c, j.ready).await, "error");
    assert_eq!(
        ok(&tdb.dsn, &["retry", &id, "--yes"]),
        format!("job {id}: retried\n")
    );
    assert_eq!(state(&c, j.ready).await, "ready");
    let out = jcadm(&tdb.dsn, &["retry", &j.working.to_string(), "--yes"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("not retried: JC007"));
}

#[tokio::test]
async fn retry_now_makes_a_retrywait_job_ready() {
    let (tdb, c, j) = fixture().await;
    let id = j.retrywait.to_string();
    assert!(!jcadm(&tdb.dsn, &["retry-now", &id]).status.success());
    assert_eq!(state(&c, j.retrywait).await, "retrywait");
    if !has_admin_procedures(&c).await {
        let out = jcadm(&tdb.dsn, &["retry-now", &id, "--yes"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("JA101") && err.contains("jobcenter.retry_now"),
            "{err}"
        );
        return;
    }
    assert_eq!(
        ok(&tdb.dsn, &["retry-now", &id, "--yes"]),
        format!("job {id}: made ready\n")
    );
    assert_eq!(state(&c, j.retrywait).await, "ready");
    let tries: Value = c
        .query_one(
            "select task_state -> 'tries' from jobcenter.jobs where job_id = $1",
            &[&j.retrywait],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tries, json!(1), "the earlier try still counts");
    let out = jcadm(
        &tdb.dsn,
        &["--json", "retry-now", &j.ready.to_string(), "--yes"],
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["code"], json!("JC007"));
}

#[tokio::test]
async fn disable_stops_new_jobs_of_a_workflow_version_and_enable_restores_them() {
    let (tdb, c, _j) = fixture().await;
    assert!(!jcadm(&tdb.dsn, &["disable", "failer"]).status.success());
    if !has_admin_procedures(&c).await {
        let out = jcadm(&tdb.dsn, &["disable", "failer", "--yes"]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("JA101"));
        return;
    }
    assert_eq!(
        ok(&tdb.dsn, &["disable", "failer:1", "--yes"]),
        "workflow failer version 1 disabled\n"
    );
    let refused = db::create_job(&c, "failer", &json!({"why": "x"}), Default::default()).await;
    assert_eq!(refused.unwrap_err().code(), Some(db::ErrorCode::Disabled));
    assert!(ok(&tdb.dsn, &["graph", "failer"]).contains("failer version 1 (disabled)"));
    let v = ok_json(&tdb.dsn, &["enable", "failer", "--yes"]);
    assert_eq!(v["was"], json!(true));
    assert_eq!(v["disabled"], json!(false));
    db::create_job(&c, "failer", &json!({"why": "x"}), Default::default())
        .await
        .unwrap();
    let out = jcadm(&tdb.dsn, &["disable", "nosuch", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("JC001"));
    let out = jcadm(&tdb.dsn, &["disable", "step:9", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no version 9"));
    assert_eq!(
        ok(&tdb.dsn, &["disable", "step", "--kind", "action", "--yes"]),
        "action step version 1 disabled\n"
    );
    assert_eq!(
        ok(&tdb.dsn, &["disable", "step", "--yes"]),
        "action step version 1 disabled (it already was)\n"
    );
    let out = jcadm(
        &tdb.dsn,
        &["disable", "step", "--kind", "workflow", "--yes"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("JC001"));
    let out = jcadm(&tdb.dsn, &["disable", "start", "--yes"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("JC001"));
}

#[tokio::test]
async fn archive_moves_ended_trees_which_stay_visible() {
    let (tdb, c, j) = fixture().await;
    c.batch_execute(
        "update jobcenter.settings set value = '\"0 seconds\"'
         where name in ('archive_finished_after', 'archive_error_after')",
    )
    .await
    .unwrap();
    assert!(!jcadm(&tdb.dsn, &["archive"]).status.success());
    assert_eq!(engine_tests::count(&c, "jobs_archive").await, 0);
    assert_eq!(ok(&tdb.dsn, &["archive", "--yes"]), "archived 3 jobs\n");
    let live = ids(&ok_json(&tdb.dsn, &["jobs"])["jobs"]);
    assert!(!live.contains(&j.finished) && !live.contains(&j.error));
    let all = ok_json(
        &tdb.dsn,
        &[
            "jobs",
            "--archived",
            "--state",
            "finished",
            "--state",
            "error",
        ],
    );
    assert_eq!(ids(&all["jobs"]), vec![j.error, j.caught, j.finished]);
    assert!(all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["archived"] == json!(true)));
    let v = ok_json(&tdb.dsn, &["job", &j.finished.to_string()]);
    assert_eq!(
        (&v["archived"], &v["output"]),
        (&json!(true), &json!({"out": "got 4"}))
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 4);
    let tree = ok(&tdb.dsn, &["tree", &j.finished.to_string()]);
    assert_eq!(
        tree,
        format!("* {} opsdemo v1 finished (archived)\n", j.finished)
    );
    let dot = ok(
        &tdb.dsn,
        &["graph", "opsdemo", "--job", &j.finished.to_string()],
    );
    assert!(dot.contains("(finished)") && !dot.contains("gold"), "{dot}");
}

#[tokio::test]
async fn every_corpus_and_example_workflow_draws_as_dot_and_svg() {
    let (tdb, mut c) = setup().await;
    c.batch_execute(
        "create function jcc_double(a jsonb) returns jsonb language sql as \
         $$ select jsonb_build_object('x', (a ->> 'x')::numeric * 2) $$",
    )
    .await
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // one compile per directory: both have an `add` and a `calltest`
    for dir in ["workflows/tests/ok", "workflows/examples"] {
        let mut sources = vec![];
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "jcl") {
                let text = std::fs::read_to_string(&path).unwrap();
                sources.push(jcc::SourceFile::new(path.to_string_lossy(), text));
            }
        }
        let (parsed, diags) = jcc::parse(sources);
        assert!(diags.is_empty(), "{diags:?}");
        let (out, _) = jcc::db::compile_and_write(&mut c, &parsed, &Default::default())
            .await
            .unwrap();
        assert!(!out.has_errors(), "{dir}: {:?}", out.diagnostics);
    }
    let names: Vec<String> = c
        .query(
            "select distinct name from jobcenter.actions where type = 'workflow' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(names.len() > 20, "{names:?}");
    for wf in &names {
        let v = ok_json(&tdb.dsn, &["graph", wf]);
        let nodes = v["nodes"].as_array().unwrap().len();
        let dot = ok(&tdb.dsn, &["graph", wf]);
        let node_lines = dot
            .lines()
            .filter(|l| l.starts_with("  t") && !l.contains(" -> "))
            .count();
        assert_eq!(node_lines, nodes, "{wf}:\n{dot}");
        let svg = ok(&tdb.dsn, &["graph", wf, "--format", "svg"]);
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{wf}: {e}"));
        let tasks = doc
            .descendants()
            .filter(|n| n.attribute("class").is_some_and(|c| c.starts_with("task")))
            .count();
        assert_eq!(tasks, nodes, "{wf}");
    }
}

/// A connection whose plans are sent back as notices (auto_explain), with sequential scans
/// made a last resort: a plan that still has one has no index to use.
async fn explaining(dsn: &str) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use futures_util::StreamExt;
    let (client, mut conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .unwrap();
    let plans = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let sink = plans.clone();
    let mut stream = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(m)) = stream.next().await {
            if let tokio_postgres::AsyncMessage::Notice(n) = m {
                sink.lock().unwrap().push(n.message().to_owned());
            }
        }
    });
    client
        .batch_execute(
            "load 'auto_explain'; set auto_explain.log_min_duration = 0;
             set auto_explain.log_level = notice; set enable_seqscan = off",
        )
        .await
        .unwrap();
    (client, plans)
}

#[tokio::test]
async fn views_of_one_job_and_job_lists_scan_no_job_table() {
    let (tdb, c, j) = fixture().await;
    c.batch_execute(
        "update jobcenter.settings set value = '\"0 seconds\"' where name = 'archive_finished_after'",
    )
    .await
    .unwrap();
    db::do_archival_and_cleanup(&c).await.unwrap();
    let with_archive_index = has_admin_procedures(&c).await;
    let (x, plans) = explaining(&tdb.dsn).await;
    for id in [j.retrywait, j.finished, j.zombie] {
        jcadm::queries::job(&x, id).await.unwrap();
        jcadm::queries::tree(&x, id).await.unwrap();
        jcadm::queries::source(&x, id).await.unwrap();
        jcadm::graph::load(&x, "opsdemo", Some(id)).await.unwrap();
    }
    jcadm::queries::errors(&x, &[], 50).await.unwrap();
    jcadm::queries::locks(&x).await.unwrap();
    let filter = jcadm::queries::JobFilter {
        states: vec!["error", "ready"],
        limit: 5,
        archived: true,
        ..Default::default()
    };
    jcadm::queries::jobs(&x, &filter).await.unwrap();
    let filter = jcadm::queries::JobFilter {
        before: Some(j.childwait),
        limit: 5,
        ..Default::default()
    };
    jcadm::queries::jobs(&x, &filter).await.unwrap();
    let plans = plans.lock().unwrap();
    assert!(plans.len() >= 15, "auto_explain sent {} plans", plans.len());
    for p in plans.iter() {
        for table in ["jobs", "job_task_log"] {
            assert!(!p.contains(&format!("Seq Scan on {table} ")), "{p}");
        }
        if with_archive_index {
            assert!(!p.contains("Seq Scan on jobs_archive "), "{p}");
        }
    }
}

/// Runs jcadm on a terminal (a pseudo-terminal by `script`) whose keyboard types `input`.
fn on_terminal(dsn: &str, args: &str, input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("script")
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_jcadm")),
            "/dev/null",
        ])
        .env("JC_DSN", dsn)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn on_a_terminal_operations_ask_first() {
    let (tdb, c, j) = fixture().await;
    let id = j.ready.to_string();
    let no = on_terminal(&tdb.dsn, &format!("cancel {id}"), "n\n");
    let text = String::from_utf8_lossy(&no.stdout);
    assert_eq!(no.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!("cancel job {id} opsdemo (ready)? [y/N]")),
        "{text}"
    );
    assert!(text.contains("JA106"), "{text}");
    assert_eq!(state(&c, j.ready).await, "ready");
    let yes = on_terminal(&tdb.dsn, &format!("cancel {id}"), "y\n");
    let text = String::from_utf8_lossy(&yes.stdout);
    assert!(yes.status.success(), "{text}");
    assert!(text.contains(&format!("job {id}: cancelled")), "{text}");
    assert_eq!(state(&c, j.ready).await, "error");
}

#[test]
fn a_database_command_without_a_dsn_says_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_jcadm"))
        .arg("jobs")
        .env_remove("JC_DSN")
        .stdin(Stdio::null())
        .output()
        .expect("run jcadm");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("JA104") && err.contains("give --dsn or set JC_DSN"),
        "{err}"
    );
}

#[tokio::test]
async fn workers_show_an_actions_rate_and_concurrency_limits() {
    let (tdb, c) = setup().await;
    let mut add = testkit::examples::add();
    add.config.rate = serde_json::from_value(json!({"limit": 5, "per": "1 seconds"})).unwrap();
    add.config.concurrency = Some(3);
    db::load_model(&c, &add, &[]).await.unwrap();
    db::announce(&c, "w", "add", None, None).await.unwrap();
    let v = ok_json(&tdb.dsn, &["workers"]);
    assert_eq!(
        v[0]["actions"],
        json!([{"action": "add", "version": 1, "rate": {"limit": 5, "per": "1 seconds"},
                "concurrency": 3}])
    );
    let table = ok(&tdb.dsn, &["workers"]);
    assert!(
        table.contains("add v1 rate 5 per 1 seconds concurrency 3"),
        "{table}"
    );
}
