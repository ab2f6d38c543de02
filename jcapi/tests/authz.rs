//! The authorization matrix of the gateway (issue 11 item 3), through the real `jcapi`
//! binary: every method called by each kind of caller, with the answer each cell must give
//! written in [`MATRIX`], and impersonation forged in every argument that could carry it
//! (`clenv`, an extra `impersonate`, another user's worker name, job id or cookie).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{json, Value};

/// The callers, in the order of each row's answers, which is also the order they call in
/// (so the owner's call, which may change the state, comes last):
/// - `anon`: a connection that has not said `hello`;
/// - `norole`: carol, a user in no role (a client only, a worker without the action's role);
/// - `other`: bob, a user in `workers`, who owns none of the jobs;
/// - `owner`: alice, who created the jobs and whose worker `wa` took the task.
const CALLERS: [&str; 4] = ["anon", "norole", "other", "owner"];

/// One row: the method, its params (`{ja}` alice's approval job, `{jc}` her job to cancel
/// and retry, `{jt}` her calltest job, `{who}` the caller's name), and per caller the
/// answer: `ok` (any result), `=json` (that result), `~text` (a result containing it), an
/// error code (1100 not logged in, 1004 not authorized, 1005 unknown job, …), or `-` (not
/// called).
type Row = (&'static str, &'static str, [&'static str; 4]);

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    ("ping", "{}", ["=\"pong\"", "=\"pong\"", "=\"pong\"", "=\"pong\""]),
    ("get_job_status", r#"{"job_id": {ja}}"#, ["1100", "1005", "1005", "=[{ja},null]"]),
    ("get_job", r#"{"job_id": {ja}}"#, ["1100", "1005", "1005", "~\"approval\""]),
    ("get_job", r#"{"job_id": 999999}"#, ["1100", "1005", "1005", "1005"]),
    ("find_jobs", r#"{"filter": {}}"#, ["1100", "=[]", "=[]", "=[{ja},{jc},{jt}]"]),
    ("check_if_lock_exists", r#"{"locktype": "mxlock", "lockvalue": "1"}"#,
        ["1100", "=false", "=false", "=true"]),
    ("create_job", r#"{"wfname": "nothing", "inargs": {"input": 1}}"#,
        ["1100", "~null]", "~null]", "~null]"]),
    // forged: the identity in the environment and in an extra parameter is not taken
    ("create_job", r#"{"wfname": "nothing", "inargs": {"input": 2}, "impersonate": "bob",
                      "clenv": {"jcclient": "bob", "jcimpersonate": "bob"}}"#,
        ["1100", "~null]", "~null]", "~null]"]),
    ("cancel_job", r#"{"job_id": {jc}}"#, ["1100", "1005", "1005", "=true"]),
    ("retry_job", r#"{"job_id": {jc}}"#, ["1100", "1005", "1005", "=true"]),
    // an event reaches only the raiser's own jobs: alice's job still waits after these
    ("raise_event", r#"{"event": {"type": "approval", "id": 1}}"#, ["1100", "ok", "ok", "-"]),
    ("create_slotgroup", r#"{"name": "g", "slots": 2}"#, ["1100", "=true", "=true", "=true"]),
    // another user's live worker name
    ("announce", r#"{"actionname": "add", "workername": "wa"}"#,
        ["1100", "~false", "=[false,\"worker name wa belongs to another user\"]", "-"]),
    // the default rule: an action without role: is served by its owner and workers' members
    ("announce", r#"{"actionname": "add", "workername": "w_{who}"}"#,
        ["1100", "=[false,\"carol may not do action add\"]", "=[true,\"success\"]",
         "=[true,\"success\"]"]),
    // another user's task: bob announced add, but alice's worker holds it
    ("get_task", r#"{"actionname": "add", "job_id": {jt}}"#, ["1100", "1006", "=null", "=null"]),
    ("withdraw", r#"{"actionname": "add"}"#, ["1100", "1006", "=true", "=true"]),
];

/// The answer to a response: `ok:` and the result, or the error's code.
fn answer(r: &Value) -> String {
    match r.get("result") {
        Some(v) => format!("ok:{v}"),
        None => r["error"]["code"].to_string(),
    }
}

fn fits(expected: &str, got: &str) -> bool {
    if expected == "ok" {
        got.starts_with("ok:")
    } else if let Some(v) = expected.strip_prefix('=') {
        let want: Value = serde_json::from_str(v).unwrap();
        got.strip_prefix("ok:")
            .is_some_and(|g| serde_json::from_str::<Value>(g).unwrap() == want)
    } else if let Some(text) = expected.strip_prefix('~') {
        got.starts_with("ok:") && got.contains(text)
    } else {
        got == expected
    }
}

#[tokio::test]
async fn every_method_answers_every_caller_as_the_matrix_says() {
    let env = env().await;
    env.db
        .batch_execute("insert into jobcenter.locktypes values ('mxlock')")
        .await
        .unwrap();
    let g = Gateway::start(&env, &[]).await;
    let mut wa = announced(&g, "tcp", "wa", "add", 1).await;
    let mut alice = login(&g, "tcp", "alice", ALICE_PW).await;
    let ja = alice.create_job("approval", json!({"id": 1})).await;
    let jc = alice.create_job("approval", json!({"id": 2})).await;
    let jt = alice.create_job("calltest", json!({"input": 1})).await;
    env.db
        .execute(
            "insert into jobcenter.locks (locktype, lockvalue, job_id) values ('mxlock', '1', $1)",
            &[&ja],
        )
        .await
        .unwrap();
    let offer = wa.notification("task_ready", WAIT).await.expect("an offer");
    assert_eq!(offer["job_id"], jt);
    let task = wa
        .call("get_task", json!({"actionname": "add", "job_id": jt}))
        .await;
    let cookie = task[1].as_str().unwrap().to_owned();

    let mut carol = login(&g, "tcp", "carol", "carol-pw").await;
    let mut bob = login(&g, "tcp", "bob", BOB_PW).await;
    let fill = |s: &str, who: &str| {
        s.replace("{ja}", &ja.to_string())
            .replace("{jc}", &jc.to_string())
            .replace("{jt}", &jt.to_string())
            .replace("{who}", who)
    };
    let mut wrong = vec![];
    for (method, params, expected) in MATRIX {
        for (k, who) in ["anon", "carol", "bob", "alice"].into_iter().enumerate() {
            if expected[k] == "-" {
                continue;
            }
            let params: Value = serde_json::from_str(&fill(params, who)).unwrap();
            let r = match k {
                0 => {
                    connect(&g, "tcp")
                        .await
                        .call_raw(method, params.clone())
                        .await
                }
                1 => carol.call_raw(method, params.clone()).await,
                2 => bob.call_raw(method, params.clone()).await,
                _ => alice.call_raw(method, params.clone()).await,
            };
            let (want, got) = (fill(expected[k], who), answer(&r));
            if !fits(&want, &got) {
                wrong.push(format!(
                    "{method}({params}) as {}: expected {want}, got {got}",
                    CALLERS[k]
                ));
            }
        }
        if *method == "raise_event" {
            assert_eq!(
                job_state(&env.db, ja).await,
                "eventwait",
                "another user's event woke it"
            );
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Nobody became bob by naming him: each created its two jobs as itself.
    let clients: Vec<String> = env
        .db
        .query(
            "select environment ->> 'jcclient' from jobcenter.jobs j \
             join jobcenter.actions a on a.action_id = j.workflow_id \
             where a.name = 'nothing' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(clients, ["alice", "alice", "bob", "bob", "carol", "carol"]);

    // task_done with alice's cookie counts only from the connection that took the task.
    for (c, outargs) in [(&carol, 666), (&bob, 667), (&alice, 668)] {
        c.notify(
            "task_done",
            json!({"cookie": cookie, "outargs": {"counter": outargs}}),
        );
    }
    let anon = connect(&g, "tcp").await;
    anon.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": {"counter": 669}}),
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(job_state(&env.db, jt).await, "working");
    wa.notify(
        "task_done",
        json!({"cookie": cookie, "outargs": add(&task[2])}),
    );
    assert_eq!(alice.job_done(jt).await, json!({"output": 4}));

    // alice's own event wakes her job.
    alice
        .call(
            "raise_event",
            json!({"event": {"type": "approval", "id": 1}}),
        )
        .await;
    assert!(
        eventually(WAIT, || async {
            job_state(&env.db, ja).await == "finished"
        })
        .await,
        "alice's event"
    );
}
