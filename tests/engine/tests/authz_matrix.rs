//! The authorization matrix (issue 11 item 3): every public procedure of the API (the name
//! lists of privileges.sql) called by each kind of caller, with the answer each cell must
//! give written in [`MATRIX`]. Every cell runs in a transaction that is rolled back, so all
//! cells see the same state: alice's approval job waiting for an event and holding a lock,
//! and alice's calltest job whose `add` task her worker `wa` has taken.
#![allow(clippy::unwrap_used)]

use engine_tests::{db, examples, load, setup};
use serde_json::json;
use tokio_postgres::Client;

/// The callers, in the order of each row's answers:
/// - `owner`: alice through the gateway's role (impersonated), a member of `workers`; she
///   created the jobs, announced `wa` and took the task;
/// - `other`: bob through the gateway's role, a member of `workers` too;
/// - `readonly`: a database role that may only read `jobcenter.my_jobs`;
/// - `norole`: carol through the gateway's role, in no role (a worker without the
///   action's role);
/// - `anon`: a database role with no grant at all (PUBLIC, unauthenticated);
/// - `forged`: a database role in `jobcenter_gateway` that may impersonate nobody, naming
///   alice in the `jobcenter.impersonate` setting (and in the arguments of the rows that
///   say so).
const CALLERS: [&str; 6] = ["owner", "other", "readonly", "norole", "anon", "forged"];

/// One row: the procedure, the call (statements separated by ` ;; `, the last one's result
/// is the answer; `{ja}` alice's approval job, `{jt}` her calltest job,
/// `{cookie}` the task's cookie, `{wid}` her worker's id, `{wf}` calltest's id), and per
/// caller the answer: `ok` (any success), a SQLSTATE (`42501` permission denied, `JCnnn`
/// the engine's), or `~text`: success with `text` in the result (as JSON).
type Row = (&'static str, &'static str, [&'static str; 6]);

const D: &str = "42501";

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    // client procedures
    ("create_job", "select job_id from jobcenter.create_job('calltest', '{\"input\": 1}')",
        ["ok", "ok", D, "ok", D, "JC004"]),
    ("create_job", "select job_id from jobcenter.create_job('calltest', '{\"input\": 1}', null, 'alice')",
        ["ok", "ok", D, "ok", D, "JC004"]),
    ("get_job_status", "select * from jobcenter.get_job_status({ja})",
        ["~{\"a_job_id\":null,\"o_out_args\":null}", "~no job {ja}", D, "~no job {ja}", D, "JC004"]),
    ("find_jobs", "select jobcenter.find_jobs('{}')",
        ["~[{ja},{jt}]", "~{\"find_jobs\":[]}", D, "~{\"find_jobs\":[]}", D, "JC004"]),
    ("cancel_job", "select jobcenter.cancel_job({ja}, 'matrix')",
        ["ok", "JC005", D, "JC005", D, "JC004"]),
    ("retry_job", "select jobcenter.retry_job({ja}, 'matrix')",
        ["JC007", "JC005", D, "JC005", D, "JC004"]),
    // an event reaches only the raiser's own jobs (the approval workflow declares no role)
    ("raise_event", "select jobcenter.raise_event('{\"type\": \"approval\", \"id\": 1}') ;; \
                     select state from jobcenter.jobs where job_id = {ja}",
        ["~finished", "~eventwait", D, "~eventwait", D, "JC004"]),
    ("raise_event_id", "select jobcenter.raise_event_id('{\"type\": \"approval\", \"id\": 1}') ;; \
                        select state from jobcenter.jobs where job_id = {ja}",
        ["~finished", "~eventwait", D, "~eventwait", D, "JC004"]),
    ("get_workflow_info", "select jobcenter.get_workflow_info('calltest') ->> 'name'",
        ["~calltest", "~calltest", D, "~calltest", D, "~calltest"]),
    // a lock another user's job holds is no lock to the caller
    ("check_if_lock_exists", "select jobcenter.check_if_lock_exists('mxlock', '1')",
        ["~true", "~false", D, "~false", D, "JC004"]),
    // marking another user's (or an unknown) job's error as seen is refused alike
    ("error_seen", "select jobcenter.error_seen({ja}, 'matrix')",
        ["JC007", "JC005", D, "JC005", D, "JC004"]),
    // worker procedures
    ("announce", "select * from jobcenter.announce('w_new', 'add')",
        ["ok", "ok", D, "JC004", D, "JC004"]),
    ("announce", "select * from jobcenter.announce('w_new', 'add', 'alice')",
        ["ok", "ok", D, "ok", D, "JC004"]),
    ("announce", "select * from jobcenter.announce('wa', 'add')",
        ["ok", "JC004", D, "JC004", D, "JC004"]),
    ("withdraw", "select jobcenter.withdraw('wa', 'add')",
        ["~true", "JC004", D, "JC004", D, "JC004"]),
    ("disconnect", "select jobcenter.disconnect('wa')",
        ["~true", "JC004", D, "JC004", D, "JC004"]),
    ("ping", "select jobcenter.ping({wid})",
        ["~pong", "~{\"ping\":null}", D, "~{\"ping\":null}", D, "JC004"]),
    // another user's workers count as not given
    ("poll_tasks", "select count(*) from jobcenter.poll_tasks(array[{wid}]::bigint[])",
        ["ok", "ok", D, "ok", D, "JC004"]),
    ("get_task", "select * from jobcenter.get_task('wa', 'add')",
        ["~{\"o_job_id\":null", "JC004", D, "JC004", D, "JC004"]),
    ("get_tasks", "select * from jobcenter.get_tasks('wa', 'add', 10)",
        ["~[]", "JC004", D, "JC004", D, "JC004"]),
    ("task_done", "select jobcenter.task_done('{cookie}', '{\"counter\": 5}')",
        ["ok", "JC004", D, "JC004", D, "JC004"]),
    ("tasks_done", "select * from jobcenter.tasks_done('[{\"cookie\": \"{cookie}\", \"outargs\": {\"counter\": 5}}]')",
        ["~\"o_code\":null", "~JC004", D, "~JC004", D, "~JC004"]),
    ("task_failed", "select jobcenter.task_failed('{cookie}', 'matrix')",
        ["ok", "JC004", D, "JC004", D, "JC004"]),
    // the gateway's own: its registration (no user's), and recording a worker's gateway (a
    // worker the caller may not act for is left as it is)
    ("gateway_register", "select o_new from jobcenter.gateway_register(null, 'matrix')",
        ["ok", "ok", D, "ok", D, "ok"]),
    ("gateway_attach", "select jobcenter.gateway_attach({wid}, 0)",
        ["ok", "ok", D, "ok", D, "JC004"]),
    // compiler procedures: no gateway user loads definitions
    ("load_action", "select jobcenter.load_action('{}')", [D, D, D, D, D, D]),
    ("replace_action", "select jobcenter.replace_action({wf}, '{}')", [D, D, D, D, D, D]),
    ("create_schedule", "select jobcenter.create_schedule('s', 'calltest', '@daily')",
        [D, D, D, D, D, D]),
    ("drop_schedule", "select jobcenter.drop_schedule('s')", [D, D, D, D, D, D]),
    ("enable_schedule", "select jobcenter.enable_schedule('s', true)", [D, D, D, D, D, D]),
    ("get_stale_actions", "select * from jobcenter.get_stale_actions()", [D, D, D, D, D, D]),
    // the maestro's and the operator's procedures
    ("do_timeout", "select jobcenter.do_timeout()", [D, D, D, D, D, D]),
    ("next_timeout", "select jobcenter.next_timeout()", [D, D, D, D, D, D]),
    ("timer_horizon", "select jobcenter.timer_horizon()", [D, D, D, D, D, D]),
    ("do_crash_recovery", "select jobcenter.do_crash_recovery()", [D, D, D, D, D, D]),
    ("do_worker_check", "select jobcenter.do_worker_check()", [D, D, D, D, D, D]),
    ("do_gateway_check", "select jobcenter.do_gateway_check()", [D, D, D, D, D, D]),
    ("do_archival_and_cleanup", "select jobcenter.do_archival_and_cleanup()", [D, D, D, D, D, D]),
    ("do_schedules", "select jobcenter.do_schedules()", [D, D, D, D, D, D]),
    ("next_schedule", "select jobcenter.next_schedule()", [D, D, D, D, D, D]),
    ("retry_now", "select jobcenter.retry_now({ja})", [D, D, D, D, D, D]),
    ("set_disabled", "select jobcenter.set_disabled('calltest', true)", [D, D, D, D, D, D]),
    ("disable_action", "select jobcenter.disable_action({wf}, 'matrix')", [D, D, D, D, D, D]),
];

/// A connection as database role `role`, acting for `user` when given.
async fn caller(tdb: &testkit::TestDb, role: &str, user: Option<&str>) -> Client {
    let c = tdb.connect().await.unwrap();
    c.batch_execute(&format!("set role {role}")).await.unwrap();
    if let Some(u) = user {
        c.query_one(
            "select set_config('jobcenter.impersonate', $1, false)",
            &[&u],
        )
        .await
        .unwrap();
    }
    c
}

/// The answer of `sql` in a rolled-back transaction: `ok:` and the result as JSON, or the
/// SQLSTATE.
async fn answer(c: &Client, sql: &str) -> String {
    c.batch_execute("begin").await.unwrap();
    let (before, last) = sql.rsplit_once(" ;; ").unwrap_or(("", sql));
    let r = match c.batch_execute(before).await {
        Ok(()) => {
            c.query_one(
                &format!("select coalesce(json_agg(r), '[]')::text from ({last}) r"),
                &[],
            )
            .await
        }
        Err(e) => Err(e),
    };
    c.batch_execute("rollback").await.unwrap();
    match r {
        Ok(row) => format!("ok:{}", row.get::<_, String>(0)),
        Err(e) => e
            .code()
            .map_or_else(|| e.to_string(), |s| s.code().to_owned()),
    }
}

fn fits(expected: &str, got: &str) -> bool {
    match expected.strip_prefix('~') {
        Some(text) => got.starts_with("ok:") && got.contains(text),
        None if expected == "ok" => got.starts_with("ok:"),
        None => got == expected,
    }
}

#[tokio::test]
async fn every_procedure_answers_every_caller_as_the_matrix_says() {
    let (tdb, c) = setup().await;
    load(
        &c,
        &[examples::add(), examples::calltest(), examples::approval()],
    )
    .await;
    c.batch_execute(
        "create role mx_gw nologin; grant jobcenter_gateway to mx_gw;
         create role mx_forger nologin; grant jobcenter_gateway to mx_forger;
         create role mx_ro nologin; grant usage on schema jobcenter to mx_ro;
         grant select on jobcenter.my_jobs to mx_ro;
         create role mx_anon nologin;
         insert into jobcenter.jc_roles values ('alice'), ('bob'), ('carol');
         insert into jobcenter.jc_impersonate_roles
             select 'mx_gw', unnest(array['alice', 'bob', 'carol']);
         insert into jobcenter.jc_role_members values ('alice', 'workers'), ('bob', 'workers');
         insert into jobcenter.locktypes values ('mxlock');",
    )
    .await
    .unwrap();
    let alice = caller(&tdb, "mx_gw", Some("alice")).await;
    let ja = db::create_job(&alice, "approval", &json!({"id": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    c.execute(
        "insert into jobcenter.locks (locktype, lockvalue, job_id) values ('mxlock', '1', $1)",
        &[&ja],
    )
    .await
    .unwrap();
    let jt = db::create_job(&alice, "calltest", &json!({"input": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    let wid = db::announce(&alice, "wa", "add", None, None).await.unwrap();
    let task = db::get_task(&alice, "wa", "add", Some(jt))
        .await
        .unwrap()
        .expect("alice's task");
    let wf: i32 = c
        .query_one(
            "select action_id from jobcenter.actions where name = 'calltest'",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let callers = [
        alice,
        caller(&tdb, "mx_gw", Some("bob")).await,
        caller(&tdb, "mx_ro", None).await,
        caller(&tdb, "mx_gw", Some("carol")).await,
        caller(&tdb, "mx_anon", None).await,
        caller(&tdb, "mx_forger", Some("alice")).await,
    ];
    let fill = |s: &str| {
        s.replace("{ja}", &ja.to_string())
            .replace("{jt}", &jt.to_string())
            .replace("{cookie}", &task.cookie)
            .replace("{wid}", &wid.to_string())
            .replace("{wf}", &wf.to_string())
    };
    let mut wrong = vec![];
    let mut procedures = std::collections::BTreeSet::new();
    for (name, sql, expected) in MATRIX {
        procedures.insert(*name);
        let sql = fill(sql);
        for (k, conn) in callers.iter().enumerate() {
            let got = answer(conn, &sql).await;
            let want = fill(expected[k]);
            if !fits(&want, &got) {
                wrong.push(format!(
                    "{name} as {}: expected {want}, got {got}\n    {sql}",
                    CALLERS[k]
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} cells differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Every function the grants name has a row.
    let granted: Vec<String> = c
        .query(
            "select distinct p.proname::text from pg_proc p, aclexplode(p.proacl) a, pg_roles r
             where p.pronamespace = 'jobcenter'::regnamespace and r.oid = a.grantee
               and r.rolname in ('jobcenter_client', 'jobcenter_worker', 'jobcenter_compiler',
                                 'jobcenter_admin')
               -- the pure and identity functions every role may call
               and p.proname <> all (array['invoker', 'is_admin', 'step_owner', 'action_queue',
                   'cron_check', 'cron_next', 'cron_prev', 'jcl_ir_version', 'jcl_eval',
                   'jcl_truthy', 'jcl_tostring', 'check_value', 'check_model'])",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&String> = granted
        .iter()
        .filter(|g| !procedures.contains(g.as_str()))
        .collect();
    assert!(missing.is_empty(), "procedures without a row: {missing:?}");
}
