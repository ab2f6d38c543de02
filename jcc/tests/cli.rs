//! The `jcc` command against a test database: one transaction for all files, unchanged
//! sources skipped, `--force`, `--tags`, `--dry-run`, `--replace`, `--stale`, `JC_DSN`,
//! `--format json`, callees looked up in the database, and the exit status on errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::json;
use tokio_postgres::Client;

const OK: &str = "workflows/tests/ok";

fn ok_args() -> Vec<String> {
    files(OK)
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Writes `text` to `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

async fn versions(c: &Client, name: &str) -> Vec<i32> {
    c.query(
        "select version from jobcenter.actions where name = $1 order by version",
        &[&name],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Row counts of the tables a compile writes.
async fn snapshot(c: &Client) -> Vec<i64> {
    let mut v = vec![];
    for t in [
        "actions",
        "action_inputs",
        "action_outputs",
        "tasks",
        "next_tasks",
        "workflow_locks",
        "action_version_tags",
    ] {
        v.push(count(c, t).await);
    }
    v
}

const CALLTEST: &str = "workflow calltest:\nin:\n\tinput number\nout:\n\toutput number\n\ttwice number\nwfomap:\n\toutput = v.thing\n\ttwice = v.thing * 2\ndo:\n\tcall add:\n\t\tcounter = a.input\n\t\tstep = 5\n\tinto:\n\t\tthing = o.counter\n";

#[tokio::test]
async fn compiling_the_same_files_twice_writes_nothing_the_second_time() {
    let (tdb, c) = setup().await;
    let args = ok_args();
    let first = jcc_ok(&tdb.dsn, &refs(&args));
    assert!(
        first.contains("workflow calltest: loaded as version 1"),
        "{first}"
    );
    let before = snapshot(&c).await;
    let second = jcc_ok(&tdb.dsn, &refs(&args));
    assert_eq!(second.lines().count(), args.len());
    assert!(
        second
            .lines()
            .all(|l| l.contains(": unchanged (version 1)")),
        "{second}"
    );
    assert_eq!(snapshot(&c).await, before);
    assert_eq!(versions(&c, "calltest").await, vec![1]);
}

#[tokio::test]
async fn files_are_loaded_callees_first_whatever_their_order_on_the_command_line() {
    let (tdb, c) = setup().await;
    let ok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/tests/ok");
    let p = |f: &str| ok.join(f).to_string_lossy().into_owned();
    let args = [p("childjobtest.jcl"), p("calltest.jcl"), p("add.jcl")];
    let report = jcc_ok(&tdb.dsn, &refs(&args));
    let order: Vec<&str> = report
        .lines()
        .map(|l| l.split(": ").nth(1).unwrap())
        .collect();
    assert_eq!(
        order,
        vec!["action add", "workflow calltest", "workflow childjobtest"]
    );
    assert_eq!(
        output(&c, "childjobtest", json!({"input": 0})).await,
        json!({"output": 42})
    );
}

#[tokio::test]
async fn two_compilers_at_once_are_serialised() {
    let (tdb, c) = setup().await;
    let args = ok_args();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_jcc"))
            .arg("--dsn")
            .arg(&tdb.dsn)
            .args(&args)
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success());
    // one of them loaded everything, the other found it unchanged
    let reports = [
        String::from_utf8_lossy(&a.stderr).into_owned(),
        String::from_utf8_lossy(&b.stderr).into_owned(),
    ];
    assert_eq!(
        reports.iter().filter(|r| r.contains("unchanged")).count(),
        1,
        "{reports:?}"
    );
    let max: i32 = c
        .query_one("select max(version) from jobcenter.actions", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(max, 1);
}

#[tokio::test]
async fn a_changed_file_is_a_new_version_and_force_recompiles_an_unchanged_one() {
    let (tdb, c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "calltest.jcl", CALLTEST);
    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert!(
        out.contains("workflow calltest: loaded as version 2"),
        "{out}"
    );
    assert_eq!(
        output(&c, "calltest", json!({"input": 1})).await,
        json!({"output": 6, "twice": 12})
    );
    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert!(out.contains("unchanged (version 2)"), "{out}");
    let out = jcc_ok(&tdb.dsn, &["--force", &f]);
    assert!(out.contains("loaded as version 3"), "{out}");
    assert_eq!(versions(&c, "calltest").await, vec![1, 2, 3]);
}

#[tokio::test]
async fn tags_mark_the_new_versions() {
    let (tdb, c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "calltest.jcl", CALLTEST);
    jcc_ok(&tdb.dsn, &["--tags", "beta:gamma", &f]);
    let tags: Vec<String> = c
        .query(
            "select t.tag from jobcenter.action_version_tags t join jobcenter.actions a using (action_id) \
             where a.name = 'calltest' and a.version = 2 order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tags, vec!["beta", "gamma"]);
    // untagged jobs still get version 1 (step 3), tag beta gets version 2 (step 5)
    assert_eq!(
        output(&c, "calltest", json!({"input": 1})).await,
        json!({"output": 14, "twice": 28})
    );
    let job = engine_tests::db::create_job(
        &c,
        "calltest",
        &json!({"input": 1}),
        engine_tests::db::CreateJob {
            tag: Some("beta"),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    work(&c).await;
    assert_eq!(
        engine_tests::db::get_job_status(&c, job.job_id)
            .await
            .unwrap(),
        Some(json!({"output": 6, "twice": 12}))
    );
}

#[tokio::test]
async fn dry_run_checks_against_the_database_and_writes_nothing() {
    let (tdb, c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let before = snapshot(&c).await;
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "calltest.jcl", CALLTEST);
    let out = jcc_ok(&tdb.dsn, &["--dry-run", &f]);
    assert!(
        out.contains("loaded as version 2 (dry run: rolled back)"),
        "{out}"
    );
    assert_eq!(snapshot(&c).await, before);
    // a dry run still checks against the database's callees
    let bad = write(
        tmp.path(),
        "bad.jcl",
        "workflow bad:\ndo:\n\tcall add:\n\t\tcounter = 'x'\n",
    );
    let out = jcc(&tdb.dsn, &["--dry-run", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.jcl:4:13: error[JC0204]"), "{err}");
}

#[tokio::test]
async fn callees_in_the_database_are_checked_like_those_of_the_same_compile() {
    let (tdb, c) = setup().await;
    let ok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/tests/ok/add.jcl");
    jcc_ok(&tdb.dsn, &[ok.to_str().unwrap()]);
    let tmp = tempfile::tempdir().unwrap();
    let good = write(
        tmp.path(),
        "useadd.jcl",
        "workflow useadd:\nout:\n\tn number\nwfomap:\n\tn = v.n\ndo:\n\tcall add:\n\t\tcounter = 40\n\t\tstep = 2\n\tinto:\n\t\tn = o.counter\n",
    );
    jcc_ok(&tdb.dsn, &[&good]);
    assert_eq!(output(&c, "useadd", json!({})).await, json!({"n": 42}));
    let bad = write(
        tmp.path(),
        "badadd.jcl",
        "workflow badadd:\ndo:\n\tcall add:\n\t\tcountr = 40\n\tinto:\n\t\tn = o.count\n",
    );
    let before = snapshot(&c).await;
    let out = jcc(&tdb.dsn, &[&bad, &good]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "badadd.jcl:3:2: error[JC0203]",
        "badadd.jcl:4:3: error[JC0202]",
        "hint: did you mean `counter`?",
        "badadd.jcl:6:9: error[JC0207]",
        "nothing written",
    ] {
        assert!(err.contains(want), "{want} missing in:\n{err}");
    }
    // the good file of the same compile was not written either
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn the_database_may_come_from_jc_dsn_and_diagnostics_as_json() {
    let (tdb, c) = setup().await;
    let add = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/tests/ok/add.jcl");
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .arg(&add)
        .env("JC_DSN", &tdb.dsn)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(versions(&c, "add").await, vec![1]);
    // no database at all: refused, unless only checking
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .arg(&add)
        .env_remove("JC_DSN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(
        tmp.path(),
        "bad.jcl",
        "workflow bad:\ndo:\n\tgoto nowhere\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .args(["--dry-run", "--format", "json", &bad])
        .env_remove("JC_DSN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let diags: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "JC0208");
    assert_eq!(diags[0]["span"]["line"], 3);
    assert_eq!(diags[0]["span"]["col"], 7);
    assert_eq!(diags[0]["file"], bad.as_str());
}

#[tokio::test]
async fn replace_fixes_the_newest_version_in_place_keeping_the_interface() {
    let (tdb, c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let (done, _) = run(&c, "calltest", json!({"input": 1})).await;
    let tasks_before = count(&c, "tasks").await;
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "calltest.jcl", CALLTEST);
    let out = jcc_ok(&tdb.dsn, &["--replace", &f]);
    assert!(
        out.contains("workflow calltest: version 1 replaced"),
        "{out}"
    );
    assert_eq!(versions(&c, "calltest").await, vec![1]);
    assert_eq!(
        output(&c, "calltest", json!({"input": 1})).await,
        json!({"output": 6, "twice": 12})
    );
    // the ended job still points at valid task rows
    assert_eq!(state(&c, done).await, "finished");
    assert_eq!(count(&c, "tasks").await, tasks_before);
    // a changed interface is refused, and nothing changes
    let before = snapshot(&c).await;
    let changed = CALLTEST.replace("\tinput number\n", "\tinput number\n\textra string 'x'\n");
    let g = write(tmp.path(), "calltest.jcl", &changed);
    let out = jcc(&tdb.dsn, &["--replace", &g]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the inputs or outputs differ from version 1"),
        "{err}"
    );
    assert_eq!(snapshot(&c).await, before);
}

#[tokio::test]
async fn replace_refuses_while_jobs_of_the_version_run() {
    let (tdb, c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let job =
        engine_tests::db::create_job(&c, "calltest", &json!({"input": 1}), Default::default())
            .await
            .unwrap();
    assert_eq!(state(&c, job.job_id).await, "ready");
    let tmp = tempfile::tempdir().unwrap();
    let f = write(tmp.path(), "calltest.jcl", CALLTEST);
    let out = jcc(&tdb.dsn, &["--replace", &f]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("jobs of workflow calltest version 1 are running"),
        "{err}"
    );
}

#[tokio::test]
async fn stale_lists_workflows_calling_an_older_version() {
    let (tdb, _c) = setup().await;
    jcc_ok(&tdb.dsn, &refs(&ok_args()));
    let stale = |dsn: &str| {
        let out = jcc(dsn, &["--stale"]);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(stale(&tdb.dsn), "");
    let add = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/tests/ok/add.jcl");
    jcc_ok(&tdb.dsn, &["--force", add.to_str().unwrap()]);
    let listed = stale(&tdb.dsn);
    assert_eq!(
        listed,
        "calltest (version 1) calls add version 1, the newest is 2\n\
         casetest (version 1) calls add version 1, the newest is 2\n\
         whiletest (version 1) calls add version 1, the newest is 2\n"
    );
}

#[tokio::test]
async fn an_interface_and_a_dispatch_may_come_from_the_database() {
    let (tdb, c) = setup().await;
    let ok = Path::new(env!("CARGO_MANIFEST_DIR")).join("../workflows/tests/ok");
    let p = |f: &str| ok.join(f).to_string_lossy().into_owned();
    jcc_ok(&tdb.dsn, &[&p("shape.jcl")]);
    // shape.square takes its inputs and outputs from shape, found in the database
    jcc_ok(&tdb.dsn, &[&p("shape.square.jcl")]);
    jcc_ok(&tdb.dsn, &[&p("shape.circle.jcl"), &p("dispatchtest.jcl")]);
    assert_eq!(
        output(&c, "dispatchtest", json!({"kind": "square", "size": 4})).await,
        json!({"area": 16})
    );
    // a candidate without the interface's outputs is refused
    let tmp = tempfile::tempdir().unwrap();
    let odd = write(
        tmp.path(),
        "odd.jcl",
        "workflow shape.odd:\nin:\n\tsize number\n",
    );
    let user = write(
        tmp.path(),
        "user.jcl",
        "workflow user:\ndo:\n\tinterface shape:\n\t\tshape.square, shape.odd\n\tcall 'shape.odd':\n\t\tsize = 1\n",
    );
    let out = jcc(&tdb.dsn, &[&odd, &user]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("user.jcl:4:17: error[JC0223]: workflow `shape.odd` does not have the inputs and outputs of interface `shape`"),
        "{err}"
    );
}
