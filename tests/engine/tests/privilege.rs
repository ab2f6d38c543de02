//! Privilege: procedure steps run as their workflow's owner, callers of the API get no table
//! access, events reach only the jobs their raiser may raise to, worker names and taken tasks
//! belong to their user (issue 8 items 12–14, issue 12 items 2, 3 and 9).
//!
//! Each test gives database roles what a direct caller of the API needs: membership of the
//! extension's group roles where they exist, else (release 0.1, which has none and whose
//! functions run with the caller's rights) usage of the schema and its tables.
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{o, vp};
use engine_tests::flow::Flow;
use engine_tests::{code_of, create, db, examples, load, output, setup, state};
use jcl::build::{path, set, var};
use jcl::Ns;
use serde_json::{json, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// Creates role `name` (cluster-wide, so every test uses its own names) with what `group`
/// gives a direct caller of the API.
async fn api_role(c: &Client, name: &str, group: &str) {
    c.batch_execute(&format!("create role {name} nologin"))
        .await
        .unwrap();
    let has_groups: bool = c
        .query_one(
            "select exists (select 1 from pg_roles where rolname = $1)",
            &[&group],
        )
        .await
        .unwrap()
        .get(0);
    let grants = if has_groups {
        format!("grant {group} to {name}")
    } else {
        format!(
            "grant usage on schema jobcenter to {name}; \
             grant all on all tables in schema jobcenter to {name}; \
             grant all on all sequences in schema jobcenter to {name}"
        )
    };
    c.batch_execute(&grants).await.unwrap();
}

/// A connection acting as database role `role`.
async fn connect_as(tdb: &testkit::TestDb, role: &str) -> Client {
    let c = tdb.connect().await.unwrap();
    c.batch_execute(&format!("set role {role}")).await.unwrap();
    c
}

/// A connection of the test's (superuser) role that passes `user` as the impersonated identity
/// of every call, the way a gateway acts for its users.
async fn connect_for(tdb: &testkit::TestDb, user: &str) -> Client {
    let c = tdb.connect().await.unwrap();
    c.query_one(
        "select set_config('jobcenter.impersonate', $1, false)",
        &[&user],
    )
    .await
    .unwrap();
    c
}

/// Jobcenter identities (gateway users) the test's role may impersonate.
async fn gateway_users(c: &Client, users: &[&str]) {
    for u in users {
        c.execute("insert into jobcenter.jc_roles values ($1)", &[u])
            .await
            .unwrap();
        c.execute(
            "insert into jobcenter.jc_impersonate_roles (rolename, impersonates) \
             values (current_user, $1)",
            &[u],
        )
        .await
        .unwrap();
    }
}

/// The approval example loaded, and connections of two client roles `PREFIX_alice` and
/// `PREFIX_bob`.
async fn approval_clients(tdb: &testkit::TestDb, c: &Client, prefix: &str) -> (Client, Client) {
    load(c, &[examples::approval()]).await;
    let alice = format!("{prefix}_alice");
    let bob = format!("{prefix}_bob");
    api_role(c, &alice, "jobcenter_client").await;
    api_role(c, &bob, "jobcenter_client").await;
    (connect_as(tdb, &alice).await, connect_as(tdb, &bob).await)
}

fn sqlstate(e: &tokio_postgres::Error) -> Option<&SqlState> {
    e.code()
}

/// Item 12: a procedure step loaded by a role that may compile workflows runs as that role,
/// whoever drives the job (here the superuser, as the maestro or a gateway would).
#[tokio::test]
async fn a_procedure_step_runs_as_the_role_that_loaded_the_workflow() {
    let (tdb, c) = setup().await;
    api_role(&c, "p12_dev", "jobcenter_compiler").await;
    c.batch_execute("grant create on schema public to p12_dev")
        .await
        .unwrap();
    let dev = connect_as(&tdb, "p12_dev").await;
    dev.batch_execute(
        "create function public.p12_peek(a jsonb) returns jsonb language plpgsql as $$
         declare
             v_file text;
         begin
             begin
                 perform pg_read_file('PG_VERSION');
                 v_file := 'read';
             exception when insufficient_privilege then
                 v_file := 'denied';
             end;
             return jsonb_build_object('who', current_user::text, 'file', v_file);
         end $$",
    )
    .await
    .unwrap();
    let peek = engine_tests::flow::procedure("public.p12_peek")
        .output("who", "string")
        .output("file", "string")
        .model();
    let mut f = Flow::workflow("p12_peeker")
        .output("who", "string")
        .output("file", "string");
    f.call(
        "public.p12_peek",
        vec![],
        vec![
            set(vp(&["who"]), o(&["who"])),
            set(vp(&["file"]), o(&["file"])),
        ],
    );
    let wf = f.end(vec![
        set(path(Ns::O, &["who"]), var(Ns::V, &["who"])),
        set(path(Ns::O, &["file"]), var(Ns::V, &["file"])),
    ]);
    load(&dev, &[peek, wf]).await;

    let job = create(&c, "p12_peeker", json!({})).await;
    assert_eq!(
        output(&c, job).await,
        json!({"who": "p12_dev", "file": "denied"}),
        "the step ran with the driving session's privileges"
    );
    // the step cannot switch back to the driving session's role either
    dev.batch_execute(
        "create function public.p12_escape(a jsonb) returns jsonb language plpgsql as $$
         begin
             reset role;
             return jsonb_build_object('who', current_user::text);
         end $$",
    )
    .await
    .unwrap();
    let escape = engine_tests::flow::procedure("public.p12_escape")
        .output("who", "string")
        .model();
    let mut f = Flow::workflow("p12_escaper").output("who", "string");
    f.call(
        "public.p12_escape",
        vec![],
        vec![set(vp(&["who"]), o(&["who"]))],
    );
    let wf = f.end(vec![set(path(Ns::O, &["who"]), var(Ns::V, &["who"]))]);
    load(&dev, &[escape, wf]).await;
    let job = create(&c, "p12_escaper", json!({})).await;
    assert_eq!(state(&c, job).await, "error");
    let out = output(&c, job).await;
    assert!(
        out["error"]["msg"]
            .as_str()
            .unwrap()
            .contains("security-definer"),
        "{out}"
    );
}

/// A procedure step calling the API does so as its owner: one that may only compile cannot
/// start jobs, though the session driving the job could.
#[tokio::test]
async fn a_procedure_steps_api_calls_are_its_owners() {
    let (tdb, c) = setup().await;
    api_role(&c, "p12b_dev", "jobcenter_compiler").await;
    c.batch_execute("grant create on schema public to p12b_dev")
        .await
        .unwrap();
    let dev = connect_as(&tdb, "p12b_dev").await;
    dev.batch_execute(
        "create function public.p12b_start(a jsonb) returns jsonb language plpgsql as $$
         begin
             perform jobcenter.create_job('calltest', '{\"input\": 1}');
             return '{}';
         end $$",
    )
    .await
    .unwrap();
    let start = engine_tests::flow::procedure("public.p12b_start").model();
    let mut f = Flow::workflow("p12b_starter");
    f.call("public.p12b_start", vec![], vec![]);
    let wf = f.end(vec![]);
    load(&c, &[examples::add(), examples::calltest()]).await;
    load(&dev, &[start, wf]).await;
    let job = create(&c, "p12b_starter", json!({})).await;
    let out = output(&c, job).await;
    assert!(
        out["error"]["msg"]
            .as_str()
            .is_some_and(|m| m.contains("permission denied for function create_job")),
        "the step started a job as the driving session: {out}"
    );
    let jobs: i64 = c
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "only the starter job exists");
}

/// Item 13: a role that may call the API has no access to the tables: it cannot rewrite a
/// job or read another user's, and the API itself answers only for its own jobs.
#[tokio::test]
async fn an_api_caller_cannot_touch_the_tables_or_other_users_jobs() {
    let (tdb, c) = setup().await;
    let (alice, bob) = approval_clients(&tdb, &c, "p13").await;
    let job = create(&alice, "approval", json!({"id": 13})).await;
    assert_eq!(state(&c, job).await, "eventwait");

    let forged = bob
        .execute(
            "update jobcenter.jobs set out_args = '{\"forged\": true}', state = 'finished' \
             where job_id = $1",
            &[&job],
        )
        .await;
    assert_eq!(
        forged.as_ref().err().and_then(sqlstate),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "an API caller rewrote a job: {forged:?}"
    );
    let read = bob
        .query(
            "select arguments from jobcenter.jobs where job_id = $1",
            &[&job],
        )
        .await;
    assert_eq!(
        read.as_ref().err().and_then(sqlstate),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE)
    );
    let env = bob.query("select * from jobcenter.jc_env", &[]).await;
    assert_eq!(
        env.as_ref().err().and_then(sqlstate),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE)
    );
    // the engine's internal functions are not callable either
    let drive = bob
        .execute("select jobcenter.drive(array[$1::bigint])", &[&job])
        .await;
    assert_eq!(
        drive.as_ref().err().and_then(sqlstate),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE)
    );

    // the read view shows each caller its own jobs
    let ids = |rows: Vec<tokio_postgres::Row>| rows.iter().map(|r| r.get(0)).collect::<Vec<i64>>();
    let alices = alice
        .query("select job_id from jobcenter.my_jobs", &[])
        .await
        .unwrap();
    assert_eq!(ids(alices), vec![job]);
    let bobs = bob
        .query("select job_id from jobcenter.my_jobs", &[])
        .await
        .unwrap();
    assert_eq!(ids(bobs), Vec::<i64>::new());
    let steps: i64 = alice
        .query_one(
            "select count(*) from jobcenter.my_job_steps where job_id = $1",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert!(steps > 0);

    // and the API answers bob as if alice's job did not exist
    assert_eq!(db::get_job_status(&alice, job).await.unwrap(), None);
    let status = db::get_job_status(&bob, job).await.unwrap().unwrap();
    assert_eq!(status["error"]["msg"], json!(format!("no job {job}")));
    assert_eq!(
        db::find_jobs(&bob, &json!({"id": 13}), None).await.unwrap(),
        Vec::<i64>::new()
    );
    assert_eq!(
        db::find_jobs(&alice, &json!({"id": 13}), None)
            .await
            .unwrap(),
        vec![job]
    );
    assert_eq!(
        code_of(db::cancel_job(&bob, job, "mine now", true).await),
        db::ErrorCode::UnknownJob
    );
    assert_eq!(state(&c, job).await, "eventwait");
    db::cancel_job(&alice, job, "done with it", true)
        .await
        .unwrap();
    assert_eq!(state(&c, job).await, "error");
}

/// Item 14 (and issue 12 item 2): one user's event does not complete another user's wait; the
/// event records who raised it. The workflow's own role lets its holders raise to it.
#[tokio::test]
async fn an_event_reaches_only_jobs_its_raiser_may_raise_to() {
    let (tdb, c) = setup().await;
    let (alice, bob) = approval_clients(&tdb, &c, "p14").await;
    let job = create(&alice, "approval", json!({"id": 14})).await;

    let ev = json!({"type": "approval", "id": 14, "by": "bob"});
    let bobs_event = db::raise_event(&bob, &ev).await.unwrap();
    assert_eq!(
        state(&c, job).await,
        "eventwait",
        "another user's event completed the wait"
    );
    let raised_by: Option<String> = c
        .query_one(
            "select raised_by from jobcenter.job_events where event_id = $1",
            &[&bobs_event],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(raised_by.as_deref(), Some("p14_bob"));

    let ev = json!({"type": "approval", "id": 14, "by": "alice"});
    db::raise_event(&alice, &ev).await.unwrap();
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(output(&c, job).await["event"]["data"], ev);

    // gateway users, through impersonation: the same rule, and a workflow's role lets its
    // holders raise to its jobs
    gateway_users(&c, &["p14_carol", "p14_dave", "p14_erin", "p14_approvers"]).await;
    c.batch_execute(
        "insert into jobcenter.jc_role_members values \
         ('p14_carol', 'p14_approvers'), ('p14_erin', 'p14_approvers')",
    )
    .await
    .unwrap();
    let mut approved = examples::approval();
    approved.name = "p14_approved".to_owned();
    approved.role = Some("p14_approvers".to_owned());
    load(&c, &[approved]).await;
    let carol = connect_for(&tdb, "p14_carol").await;
    let erin = connect_for(&tdb, "p14_erin").await;
    let job = create(&carol, "p14_approved", json!({"id": 41})).await;
    let ev = json!({"type": "approval", "id": 41});
    // (as a gateway raises for its user)
    db::raise_event_as(&c, &ev, "p14_dave").await.unwrap();
    assert_eq!(state(&c, job).await, "eventwait");
    db::raise_event(&erin, &ev).await.unwrap();
    assert_eq!(state(&c, job).await, "finished");
    let raised_by: Vec<Option<String>> = c
        .query(
            "select raised_by from jobcenter.job_events where eventdata = $1 order by event_id",
            &[&ev],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        raised_by,
        vec![Some("p14_dave".to_owned()), Some("p14_erin".to_owned())]
    );
}

/// Issue 12 items 3 and 9: a worker name belongs to the user who first announced it, and a
/// task is finished only by the user whose worker took it.
#[tokio::test]
async fn worker_names_and_taken_tasks_belong_to_their_user() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    gateway_users(&c, &["p3_alice", "p3_bob"]).await;
    c.batch_execute(
        "insert into jobcenter.jc_role_members values ('p3_alice', 'workers'), ('p3_bob', 'workers')",
    )
    .await
    .unwrap();
    let alice = connect_for(&tdb, "p3_alice").await;
    let bob = connect_for(&tdb, "p3_bob").await;
    db::announce(&alice, "p3_worker", "add", None, None)
        .await
        .unwrap();
    assert_eq!(
        code_of(db::announce(&bob, "p3_worker", "add", None, None).await),
        db::ErrorCode::NotAuthorized,
        "another user attached to a live worker"
    );
    assert_eq!(
        code_of(db::disconnect(&bob, "p3_worker").await),
        db::ErrorCode::NotAuthorized
    );
    assert_eq!(
        code_of(db::withdraw(&bob, "p3_worker", "add").await),
        db::ErrorCode::NotAuthorized
    );
    assert_eq!(
        code_of(db::get_task(&bob, "p3_worker", "add", None).await),
        db::ErrorCode::NotAuthorized
    );

    let job = create(&c, "calltest", json!({"input": 1})).await;
    let task = db::get_task(&alice, "p3_worker", "add", None)
        .await
        .unwrap()
        .unwrap();
    let forged = json!({"counter": 1000});
    assert_eq!(
        code_of(db::task_done(&bob, &task.cookie, &forged).await),
        db::ErrorCode::NotAuthorized
    );
    assert_eq!(state(&c, job).await, "working");
    let answer: Value = examples::add_answer(&task.inargs);
    db::task_done(&alice, &task.cookie, &answer).await.unwrap();
    assert_eq!(output(&c, job).await, json!({"output": 4}));

    // once the worker is gone the name is still alice's
    db::disconnect(&alice, "p3_worker").await.unwrap();
    assert_eq!(
        code_of(db::announce(&bob, "p3_worker", "add", None, None).await),
        db::ErrorCode::NotAuthorized
    );
    db::announce(&alice, "p3_worker", "add", None, None)
        .await
        .unwrap();
}

/// The daemons as the roles they log in with, not superusers: a gateway in
/// `jobcenter_gateway` acting for its users, and a maestro in `jobcenter_admin`; each of the
/// queries they make works, and a user's task goes through the gateway's calls.
#[tokio::test]
async fn the_gateway_and_the_maestro_work_as_their_roles() {
    let (tdb, c) = setup().await;
    load(&c, &[examples::add(), examples::calltest()]).await;
    api_role(&c, "pd_gateway", "jobcenter_gateway").await;
    api_role(&c, "pd_maestro", "jobcenter_admin").await;
    c.batch_execute(
        "insert into jobcenter.jc_roles values ('pd_alice'); \
         insert into jobcenter.jc_role_members values ('pd_alice', 'workers'); \
         insert into jobcenter.jc_impersonate_roles (rolename, impersonates) \
         values ('pd_gateway', 'pd_alice'), ('pd_maestro', 'pd_alice')",
    )
    .await
    .unwrap();
    let gw = connect_as(&tdb, "pd_gateway").await;
    let opts = db::CreateJob {
        impersonate: Some("pd_alice"),
        ..Default::default()
    };
    let job = db::create_job(&gw, "calltest", &json!({"input": 2}), opts)
        .await
        .unwrap()
        .job_id;
    let worker_id = db::announce(&gw, "pd_worker", "add", Some("pd_alice"), None)
        .await
        .unwrap();
    let action_id = db::announced_action(&gw, worker_id, "add")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db::ready_counts(&gw, &[action_id]).await.unwrap(),
        vec![(action_id, 1)]
    );
    let task = db::get_task(&gw, "pd_worker", "add", None)
        .await
        .unwrap()
        .unwrap();
    db::task_done(&gw, &task.cookie, &examples::add_answer(&task.inargs))
        .await
        .unwrap();
    assert_eq!(
        db::job_client(&gw, job).await.unwrap().as_deref(),
        Some("pd_alice")
    );
    assert_eq!(
        db::find_client_jobs(&gw, &json!({}), None, "pd_alice")
            .await
            .unwrap(),
        vec![job]
    );
    let info = db::job_info(&gw, job).await.unwrap().unwrap();
    assert_eq!(info["output"], json!({"output": 5}));
    assert_eq!(
        db::ended_jobs(&gw, &[job]).await.unwrap(),
        vec![(job, json!({"output": 5}))]
    );
    db::raise_event_as(&gw, &json!({"type": "x"}), "pd_alice")
        .await
        .unwrap();
    db::disconnect(&gw, "pd_worker").await.unwrap();

    let maestro = connect_as(&tdb, "pd_maestro").await;
    maestro
        .batch_execute(
            "insert into jobcenter.settings (name, value) values ('worker_timeout', '\"1 minute\"') \
             on conflict (name) do update set value = excluded.value",
        )
        .await
        .unwrap();
    db::do_timeout(&maestro).await.unwrap();
    db::do_crash_recovery(&maestro).await.unwrap();
    db::do_worker_check(&maestro).await.unwrap();
    db::do_archival_and_cleanup(&maestro).await.unwrap();
    db::do_schedules(&maestro).await.unwrap();
    db::next_timeout(&maestro).await.unwrap();
    db::next_schedule(&maestro).await.unwrap();
}
