//! The `jcc` command against a test database: one transaction for all files, unchanged
//! sources skipped, `--force`, `--tags`, `--dry-run`, `--replace`, `--stale`, `JC_DSN`,
//! `--format json`, callees looked up in the database, the exit status on errors and warnings, and a
//! workflow's `schedule:` section (written, fired, replaced, dropped, checked by the
//! database's cron parser).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use serde_json::{json, Value};
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
        "schedules",
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

/// A workflow with an input `n` it returns, and `schedule` as its `schedule:` section.
fn ticker(schedule: &str) -> String {
    format!(
        "workflow ticker:\nin:\n\tn number\n\tlabel string 'none'\nout:\n\tn number\n\
         wfomap:\n\tn = a.n\ndo:\n\treturn\n{schedule}"
    )
}

/// The schedules as (name, cron, time zone, missed, args, enabled, tag, source), by name.
async fn schedules(
    c: &Client,
) -> Vec<(
    String,
    String,
    String,
    String,
    Value,
    bool,
    Option<String>,
    Option<String>,
)> {
    c.query(
        "select name, cron, timezone, missed, args, enabled, tag, source \
         from jobcenter.schedules where wfname = 'ticker' order by name",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
            r.get(7),
        )
    })
    .collect()
}

#[tokio::test]
async fn a_schedule_section_is_written_with_the_workflow_fires_and_is_dropped_when_removed() {
    let (tdb, c) = setup().await;
    let tmp = tempfile::tempdir().unwrap();
    let two = ticker(
        "schedule:\n\tevery_second: cron = '* * * * * *', args = {n: 7}\n\
         \tnightly:\n\t\tcron = '0 30 2 * * *'\n\t\ttz = 'Europe/Amsterdam'\n\
         \t\tmissed = 'catchup', args = {n: 1, label: 'night'}\n",
    );
    let f = write(tmp.path(), "ticker.jcl", &two);
    // a dry run creates them and rolls back
    let out = jcc_ok(&tdb.dsn, &["--dry-run", &f]);
    assert!(
        out.contains("workflow ticker: loaded as version 1; schedules ticker/every_second, ticker/nightly (dry run: rolled back)"),
        "{out}"
    );
    assert_eq!(count(&c, "schedules").await, 0);
    assert_eq!(count(&c, "actions where name = 'ticker'").await, 0);

    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert!(
        out.contains(
            "workflow ticker: loaded as version 1; schedules ticker/every_second, ticker/nightly"
        ),
        "{out}"
    );
    let jcc = Some("jcc".to_owned());
    assert_eq!(
        schedules(&c).await,
        vec![
            (
                "ticker/every_second".into(),
                "* * * * * *".into(),
                "UTC".into(),
                "skip".into(),
                json!({"n": 7}),
                true,
                None,
                jcc.clone()
            ),
            (
                "ticker/nightly".into(),
                "0 30 2 * * *".into(),
                "Europe/Amsterdam".into(),
                "catchup".into(),
                json!({"n": 1, "label": "night"}),
                true,
                None,
                jcc.clone()
            ),
        ]
    );
    // the schedule fires within a second and starts a job of the workflow with its args
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let started = engine_tests::db::do_schedules(&c).await.unwrap();
    assert_eq!(started, 1, "only every_second is due");
    let row = c
        .query_one(
            "select j.job_id, j.arguments, j.environment ->> 'jcschedule' \
             from jobcenter.jobs j join jobcenter.actions a on a.action_id = j.workflow_id \
             where a.name = 'ticker'",
            &[],
        )
        .await
        .unwrap();
    let (job, args, sched): (i64, Value, Option<String>) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(args["n"], json!(7));
    assert_eq!(sched.as_deref(), Some("ticker/every_second"));
    assert_eq!(state(&c, job).await, "finished");
    assert_eq!(
        engine_tests::db::get_job_status(&c, job).await.unwrap(),
        Some(json!({"n": 7}))
    );

    // unchanged: nothing is written, the schedules stay as they are (next_run moved on)
    let before = snapshot(&c).await;
    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert_eq!(
        out.trim_end(),
        format!("{f}: workflow ticker: unchanged (version 1)")
    );
    assert_eq!(snapshot(&c).await, before);

    // a schedule made by hand for the same workflow is not jcc's to drop
    let args = json!({"n": 3});
    engine_tests::db::create_schedule(
        &c,
        &engine_tests::db::Schedule::new("ticker-by-hand", "ticker", "0 0 * * * *", &args),
    )
    .await
    .unwrap();
    // every_second removed, nightly changed: a new version, nightly replaced, every_second dropped
    let one = ticker("schedule:\n\tnightly: cron = '0 45 2 * * *', tz = 'Europe/Amsterdam', args = {n: 2}, enabled = false\n");
    let f = write(tmp.path(), "ticker.jcl", &one);
    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert!(
        out.contains("workflow ticker: loaded as version 2; schedules ticker/nightly; dropped schedules ticker/every_second"),
        "{out}"
    );
    assert_eq!(
        schedules(&c).await,
        vec![
            (
                "ticker-by-hand".into(),
                "0 0 * * * *".into(),
                "UTC".into(),
                "skip".into(),
                json!({"n": 3}),
                true,
                None,
                None
            ),
            (
                "ticker/nightly".into(),
                "0 45 2 * * *".into(),
                "Europe/Amsterdam".into(),
                "skip".into(),
                json!({"n": 2}),
                false,
                None,
                jcc.clone()
            ),
        ]
    );
    // with --tags the schedules start the tagged version (--force: the source is unchanged)
    let out = jcc_ok(&tdb.dsn, &["--force", "--tags", "beta", &f]);
    assert!(
        out.contains("loaded as version 3; schedules ticker/nightly"),
        "{out}"
    );
    assert_eq!(schedules(&c).await[1].6.as_deref(), Some("beta"));
    // without a schedule section: the last of jcc's is dropped, the hand-made one stays
    let f = write(tmp.path(), "ticker.jcl", &ticker(""));
    let out = jcc_ok(&tdb.dsn, &[&f]);
    assert!(
        out.contains("loaded as version 4; dropped schedules ticker/nightly"),
        "{out}"
    );
    let names: Vec<String> = schedules(&c).await.into_iter().map(|s| s.0).collect();
    assert_eq!(names, vec!["ticker-by-hand"]);
}

#[tokio::test]
async fn the_database_checks_each_schedules_cron_and_time_zone_before_anything_is_written() {
    let (tdb, c) = setup().await;
    let tmp = tempfile::tempdir().unwrap();
    // each passes the compiler's structural check; the extension's parser refuses them
    let f = write(
        tmp.path(),
        "ticker.jcl",
        &ticker(
            "schedule:\n\tmixed: cron = '0 0 0 1 JAN-3 *', args = {n: 1}\n\
             \tpast: cron = '0 0 0 1 1 * 2020', args = {n: 1}\n\
             \tmars: cron = '@daily', tz = 'Mars/Olympus_Mons', args = {n: 1}\n",
        ),
    );
    let before = snapshot(&c).await;
    for args in [vec![f.as_str()], vec!["--dry-run", f.as_str()]] {
        let out = jcc(&tdb.dsn, &args);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for want in [
            "ticker.jcl:12:16: error[JC0224]: invalid cron expression: 0 0 0 1 JAN-3 *",
            "ticker.jcl:13:15: error[JC0224]: the cron expression `0 0 0 1 1 * 2020` never fires again",
            "ticker.jcl:14:30: error[JC0224]: invalid time zone: unknown time zone Mars/Olympus_Mons",
            "nothing written",
        ] {
            assert!(err.contains(want), "{want} missing in:\n{err}");
        }
        assert_eq!(snapshot(&c).await, before);
    }
    // offline, only the structure is checked: these pass
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .args(["--dry-run", &f])
        .env_remove("JC_DSN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn a_warning_is_printed_like_an_error_but_does_not_stop_the_compile() {
    let tmp = tempfile::tempdir().unwrap();
    let f = write(
        tmp.path(),
        "wait.jcl",
        "workflow wait:\ndo:\n\tsubscribe:\n\t\tname = 'a'\n\t\tmask = object()\n\
         \twait_for_event:\n\t\tevents = array('a', 'b')\n",
    );
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jcc"))
            .args(args)
            .env_remove("JC_DSN")
            .output()
            .unwrap()
    };
    let out = run(&["--dry-run", &f]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("wait.jcl:7:23: warning[JC0301]: the workflow never subscribes to `b`"),
        "{err}"
    );
    assert!(err.contains("jcc: 1 warning\n"), "{err}");
    assert!(err.contains("workflow wait: ok"), "{err}");
    let out = run(&["--dry-run", "--format", "json", &f]);
    assert_eq!(out.status.code(), Some(0));
    let diags: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(diags[0]["code"], "JC0301");
    assert_eq!(diags[0]["severity"], "warning");
    // with an error besides, nothing is written and the status is 1
    let bad = write(
        tmp.path(),
        "bad.jcl",
        "workflow bad:\ndo:\n\tgoto nowhere\n",
    );
    let out = run(&["--dry-run", &f, &bad]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("jcc: 1 error found, nothing written"), "{err}");
}

#[test]
fn an_action_without_a_role_is_warned_about_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let open = write(
        tmp.path(),
        "open.jcl",
        "action open:\nin:\n\tx number\nout:\n\ty number\n",
    );
    let held = write(
        tmp.path(),
        "held.jcl",
        "action held:\nrole: payroll\nin:\n\tx number\nout:\n\ty number\n",
    );
    let run = |flags: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_jcc"))
            .args(flags)
            .args(["--dry-run", &open, &held])
            .env_remove("JC_DSN")
            .output()
            .unwrap()
    };
    let quiet = run(&[]);
    assert!(
        !String::from_utf8_lossy(&quiet.stderr).contains("JC0302"),
        "only when asked"
    );
    let out = run(&["--warn-no-role"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "open.jcl:1:8: warning[JC0302]: action open has no role: only its owner and \
             members of the default worker role (workers) may serve it"
        ),
        "{err}"
    );
    assert!(!err.contains("held.jcl:1"), "{err}");
    assert!(err.contains("jcc: 1 warning\n"), "{err}");
    // The library's checks, which the corpus tests use, leave it out.
    let src = std::fs::read_to_string(&open).unwrap();
    let lib = jcc::compile_offline(vec![jcc::SourceFile::new("open.jcl", src)]);
    assert!(lib.diagnostics.is_empty());
}
