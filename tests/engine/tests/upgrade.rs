//! `ALTER EXTENSION jobcenter UPDATE` from each released version (0.1.0, 0.2.0, 0.3.0, 0.4.0, 0.5.0, 0.6.0, 0.7.0, 0.8.0, 0.9.0, 0.10.0, 0.11.0, 0.12.0) with jobs in
//! flight: jobs started with the old API wait in every waiting state, the upgrade runs, and the
//! current API finishes them all with the right answers. The upgraded schema must equal a fresh `CREATE EXTENSION`
//! (functions with their bodies and settings, columns, indexes, constraints, enum values,
//! views, grants, extension membership, the system rows), so a missing upgrade fragment or a
//! stale `jobcenter--0.12.0--0.13.0.sql` fails here. Needs the released install scripts installed
//! (`scripts/install-extension`).
#![allow(clippy::unwrap_used)]

use engine_tests::expr::{a, ip, o, v, vp};
use engine_tests::flow::Flow;
use engine_tests::{db, examples, make_due, output, state, work_job};
use jcl::build::{lit, path, set};
use jcl::{Backoff, Model, Ns, RetryConfig, SystemAction};
use serde_json::{json, Value};
use tokio_postgres::Client;

const NEW: &str = "0.13.0";

/// flaky: the add action retried after soft errors; flaky_wf calls it.
fn flaky() -> Vec<Model> {
    let action = examples::counter_action("flaky")
        .config(|cfg| {
            cfg.retry = Some(RetryConfig {
                tries: 3,
                interval: "1 hour".into(),
                backoff: Backoff::default(),
                max_interval: None,
                jitter: false,
            })
        })
        .model();
    vec![action, examples::calls("flaky_wf", "flaky")]
}

/// sleeper(t): sleeps t seconds, outputs slept = true.
fn sleeper() -> Model {
    let mut f = Flow::workflow("sleeper")
        .input("t", "json")
        .output("slept", "boolean");
    f.system(SystemAction::Sleep, vec![set(ip(&["timeout"]), a(&["t"]))]);
    f.end(vec![set(path(Ns::O, &["slept"]), lit(true))])
}

/// locker(zone): takes lock zone/<zone>, sleeps an hour holding it, outputs done = true.
fn locker() -> Model {
    let mut f = Flow::workflow("locker")
        .input("zone", "number")
        .output("done", "boolean")
        .lock_decl("zone", None, true, false);
    f.system(
        SystemAction::Lock,
        vec![
            set(ip(&["type"]), lit("zone")),
            set(ip(&["value"]), a(&["zone"])),
        ],
    );
    f.system(SystemAction::Sleep, vec![set(ip(&["timeout"]), lit(3600))]);
    f.end(vec![set(path(Ns::O, &["done"]), lit(true))])
}

/// parent(input): calls calltest (a child job), outputs its output.
fn parent() -> Model {
    let mut f = Flow::workflow("parent")
        .input("input", "number")
        .output("output", "number");
    f.call(
        "calltest",
        vec![set(ip(&["input"]), a(&["input"]))],
        vec![set(vp(&["r"]), o(&["output"]))],
    );
    f.end(vec![set(path(Ns::O, &["output"]), v(&["r"]))])
}

/// A job created with the API of `old` (0.1.0's OUT column was `o_job_id`).
async fn create_old(old: &str, c: &Client, wf: &str, args: Value) -> i64 {
    let sql = if old == "0.1.0" {
        "select o_job_id from jobcenter.create_job($1, $2)"
    } else {
        "select job_id from jobcenter.create_job($1, $2)"
    };
    c.query_one(sql, &[&wf, &args])
        .await
        .unwrap_or_else(|e| panic!("{old} create_job {wf}: {e}"))
        .get(0)
}

/// A task taken with the API of `old`: (job id, cookie, inargs). 0.1.0 answered a uuid
/// cookie in `o_cookie`, 0.2.0 text in `o_job_cookie`.
async fn take_old(
    old: &str,
    c: &Client,
    worker: &str,
    action: &str,
    job: i64,
) -> (i64, String, Value) {
    if old == "0.1.0" {
        let r = c
            .query_one(
                "select o_job_id, o_cookie, o_in_args from jobcenter.get_task($1, $2, $3)",
                &[&worker, &action, &job],
            )
            .await
            .unwrap();
        return (r.get(0), r.get::<_, uuid::Uuid>(1).to_string(), r.get(2));
    }
    let r = c
        .query_one(
            "select o_job_id, o_job_cookie, o_in_args from jobcenter.get_task($1, $2, $3)",
            &[&worker, &action, &job],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2))
}

async fn version(c: &Client) -> String {
    c.query_one(
        "select extversion from pg_extension where extname = 'jobcenter'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_1_0() {
    upgrade_with_jobs_in_flight("0.1.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_2_0() {
    upgrade_with_jobs_in_flight("0.2.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_3_0() {
    upgrade_with_jobs_in_flight("0.3.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_4_0() {
    upgrade_with_jobs_in_flight("0.4.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_5_0() {
    upgrade_with_jobs_in_flight("0.5.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_6_0() {
    upgrade_with_jobs_in_flight("0.6.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_7_0() {
    upgrade_with_jobs_in_flight("0.7.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_8_0() {
    upgrade_with_jobs_in_flight("0.8.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_9_0() {
    upgrade_with_jobs_in_flight("0.9.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_10_0() {
    upgrade_with_jobs_in_flight("0.10.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_11_0() {
    upgrade_with_jobs_in_flight("0.11.0").await;
}

#[tokio::test]
async fn jobs_in_flight_survive_the_upgrade_from_0_12_0() {
    upgrade_with_jobs_in_flight("0.12.0").await;
}

/// The upgrades of this file, one at a time: an upgrade re-runs privileges.sql, whose role
/// grants are cluster-wide, and two of them at once in one cluster may fail with "tuple
/// concurrently updated".
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Installs `old`, leaves jobs waiting in every waiting state, upgrades to NEW and finishes
/// them; the upgraded schema must be the fresh one.
async fn upgrade_with_jobs_in_flight(old: &str) {
    let _one = ONE_AT_A_TIME.lock().await;
    let cluster = testkit::Cluster::shared().await.unwrap();
    let old_db = cluster.new_empty_db().await.unwrap();
    let c = old_db.connect().await.unwrap();
    let available: bool = c
        .query_one(
            "select exists (select from pg_available_extension_versions
                            where name = 'jobcenter' and version = $1)",
            &[&old],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        available,
        "the released jobcenter {old} install script is not installed: run scripts/install-extension"
    );
    c.batch_execute(&format!("create extension jobcenter version '{old}'"))
        .await
        .unwrap();
    assert_eq!(version(&c).await, old);

    let mut models = vec![examples::add(), examples::calltest(), examples::approval()];
    models.extend(flaky());
    models.extend([sleeper(), locker(), parent()]);
    for m in &models {
        db::load_model(&c, m, &[]).await.unwrap();
    }

    // (0.1.0's announce returned the worker id, 0.2.0's a record: neither is read)
    for action in ["add", "flaky"] {
        c.execute("select jobcenter.announce('w1', $1)", &[&action])
            .await
            .unwrap();
    }
    let ready = create_old(old, &c, "calltest", json!({"input": 1})).await;
    let working = create_old(old, &c, "calltest", json!({"input": 10})).await;
    let (_, working_cookie, working_in) = take_old(old, &c, "w1", "add", working).await;
    let retrying = create_old(old, &c, "flaky_wf", json!({"input": 20})).await;
    let (_, cookie, _) = take_old(old, &c, "w1", "flaky", retrying).await;
    // 0.1.0's task_done took the cookie as a uuid
    let cookie_type = if old == "0.1.0" { "uuid" } else { "text" };
    c.execute(
        &format!(
            "select jobcenter.task_done($1::text::{cookie_type}, \
             '{{\"error\": {{\"class\": \"soft\", \"msg\": \"later\"}}}}')"
        ),
        &[&cookie],
    )
    .await
    .unwrap();
    let sleeping = create_old(old, &c, "sleeper", json!({"t": 3600})).await;
    let waiting = create_old(old, &c, "approval", json!({"id": 7})).await;
    let holder = create_old(old, &c, "locker", json!({"zone": 1})).await;
    let blocked = create_old(old, &c, "locker", json!({"zone": 1})).await;
    let parent_job = create_old(old, &c, "parent", json!({"input": 30})).await;
    let child: i64 = c
        .query_one(
            "select job_id from jobcenter.jobs where parentjob_id = $1",
            &[&parent_job],
        )
        .await
        .unwrap()
        .get(0);
    let expect = [
        (ready, "ready"),
        (working, "working"),
        (retrying, "retrywait"),
        (sleeping, "sleeping"),
        (waiting, "eventwait"),
        (holder, "sleeping"),
        (blocked, "lockwait"),
        (parent_job, "childwait"),
        (child, "ready"),
    ];
    for (job, st) in expect {
        assert_eq!(state(&c, job).await, st, "job {job} before the upgrade");
    }

    c.batch_execute(&format!("alter extension jobcenter update to '{NEW}'"))
        .await
        .unwrap();
    assert_eq!(version(&c).await, NEW);
    for (job, st) in expect {
        assert_eq!(state(&c, job).await, st, "job {job} after the upgrade");
    }

    // The current API finishes them all.
    db::task_done(&c, &working_cookie, &examples::add_answer(&working_in))
        .await
        .unwrap();
    assert_eq!(output(&c, working).await, json!({"output": 13}));
    work_job(&c, "add", ready, examples::add_answer).await;
    assert_eq!(output(&c, ready).await, json!({"output": 4}));
    work_job(&c, "add", child, examples::add_answer).await;
    assert_eq!(output(&c, child).await, json!({"output": 33}));
    assert_eq!(output(&c, parent_job).await, json!({"output": 33}));

    make_due(&c, retrying).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    work_job(&c, "flaky", retrying, examples::add_answer).await;
    assert_eq!(output(&c, retrying).await, json!({"output": 23}));

    make_due(&c, sleeping).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(output(&c, sleeping).await, json!({"slept": true}));

    let raised: bool = c
        .query_one(
            "select jobcenter.raise_event('{\"type\": \"approval\", \"id\": 7}')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(raised);
    let out = output(&c, waiting).await;
    assert_eq!(out["event"]["data"]["id"], json!(7), "{out}");

    // the holder ends, the lock passes to the blocked job, which then sleeps holding it
    make_due(&c, holder).await;
    db::do_timeout(&c).await.unwrap();
    assert_eq!(output(&c, holder).await, json!({"done": true}));
    assert_eq!(state(&c, blocked).await, "sleeping");
    make_due(&c, blocked).await;
    db::do_timeout(&c).await.unwrap();
    assert_eq!(output(&c, blocked).await, json!({"done": true}));
    let live: i64 = c
        .query_one(
            "select count(*) from jobcenter.jobs where state not in ('finished', 'error')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);

    // The upgraded schema is the fresh one.
    let fresh = cluster.new_db().await.unwrap().connect().await.unwrap();
    assert_eq!(version(&fresh).await, NEW);
    let (got, want) = (catalog(&c).await, catalog(&fresh).await);
    let missing: Vec<_> = want.iter().filter(|x| !got.contains(x)).collect();
    let extra: Vec<_> = got.iter().filter(|x| !want.contains(x)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the upgraded schema differs from a fresh install (run scripts/make-upgrade, or add \
         a fragment in pg_extension/sql/upgrade/{NEW}/)\nonly fresh: {missing:#?}\nonly \
         upgraded: {extra:#?}"
    );
}

/// What the extension makes in the `jobcenter` schema, one line per item, sorted.
async fn catalog(c: &Client) -> Vec<String> {
    let queries = [
        // functions: signature, result, body, language, volatility, security, settings, ACL
        "select format('function %s(%s) -> %s [%s %s secdef=%s strict=%s config=%s acl=%s] md5=%s',
             p.proname, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid),
             l.lanname, p.provolatile, p.prosecdef, p.proisstrict, p.proconfig, p.proacl,
             md5(p.prosrc))
         from pg_proc p join pg_namespace n on n.oid = p.pronamespace
         join pg_language l on l.oid = p.prolang where n.nspname = 'jobcenter'",
        // columns of tables and views
        "select format('column %s.%s %s notnull=%s default=%s', c.relname, a.attname,
             format_type(a.atttypid, a.atttypmod), a.attnotnull,
             pg_get_expr(d.adbin, d.adrelid))
         from pg_attribute a join pg_class c on c.oid = a.attrelid
         join pg_namespace n on n.oid = c.relnamespace
         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
         where n.nspname = 'jobcenter' and a.attnum > 0 and not a.attisdropped
           and c.relkind in ('r', 'v', 'm', 'p')",
        // relations: kind, ACL, row security
        "select format('relation %s kind=%s acl=%s rls=%s', c.relname, c.relkind, c.relacl,
             c.relrowsecurity)
         from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where n.nspname = 'jobcenter' and c.relkind <> 'S' and c.relkind <> 'i'",
        "select 'index ' || indexdef from pg_indexes where schemaname = 'jobcenter'",
        "select format('constraint %s on %s: %s', conname, conrelid::regclass,
             pg_get_constraintdef(oid))
         from pg_constraint where connamespace = 'jobcenter'::regnamespace",
        "select format('enum %s: %s', t.typname,
             string_agg(e.enumlabel, ', ' order by e.enumsortorder))
         from pg_type t join pg_enum e on e.enumtypid = t.oid
         where t.typnamespace = 'jobcenter'::regnamespace group by t.typname",
        "select format('view %s: %s', viewname, definition) from pg_views
         where schemaname = 'jobcenter'",
        "select format('policy %s on %s: %s %s', policyname, tablename, cmd, qual)
         from pg_policies where schemaname = 'jobcenter'",
        "select format('trigger %s on %s', tgname, tgrelid::regclass) from pg_trigger t
         join pg_class c on c.oid = t.tgrelid
         where c.relnamespace = 'jobcenter'::regnamespace and not t.tgisinternal",
        // every object the extension owns
        "select 'member ' || pg_describe_object(classid, objid, objsubid) from pg_depend
         where refclassid = 'pg_extension'::regclass and deptype = 'e'
           and refobjid = (select oid from pg_extension where extname = 'jobcenter')",
        // the rows the extension ships
        "select 'setting ' || name || ' = ' || value::text from jobcenter.settings",
        "select format('json_schema %s base=%s %s', type, base, schema)
         from jobcenter.json_schemas",
        "select format('system action %s %s %s %s', action_id, name, type, version)
         from jobcenter.actions where action_id < 0",
        "select format('system input %s %s %s %s %s', action_id, name, type, optional, \"default\")
         from jobcenter.action_inputs where action_id < 0",
        "select format('system output %s %s %s %s', action_id, name, type, optional)
         from jobcenter.action_outputs where action_id < 0",
    ];
    let mut out = vec![];
    for q in queries {
        for r in c.query(q, &[]).await.unwrap_or_else(|e| panic!("{q}: {e}")) {
            out.push(r.get::<_, String>(0));
        }
    }
    out.sort();
    out
}
