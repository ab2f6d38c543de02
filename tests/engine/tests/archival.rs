//! Archival (do_archival_and_cleanup): a finished job tree moves to jobs_archive, but not while
//! one of its jobs (a detached child) is still running; next_timeout is null with no timer.
#![allow(clippy::unwrap_used)]

use engine_tests::{count, db, flow, load, make_due, only_child, setup, state};
use jcl::build::{lit, path, set};
use jcl::Ns;
use serde_json::json;

/// Workflow `starter`, which starts `napper` (sleeps an hour) detached and ends at once.
async fn load_starter(c: &tokio_postgres::Client) {
    let mut f = flow::Flow::workflow("napper").output("ok", "boolean");
    f.system(
        jcl::SystemAction::Sleep,
        vec![set(path(Ns::I, &["timeout"]), lit(3600))],
    );
    let napper = f.end(vec![set(path(Ns::O, &["ok"]), lit(true))]);
    let mut f = flow::Flow::workflow("starter").output("ok", "boolean");
    f.call_with("napper", vec![], vec![], |t| t.detach = true);
    let starter = f.end(vec![set(path(Ns::O, &["ok"]), lit(true))]);
    load(c, &[napper, starter]).await;
}

/// Archival takes a finished job at once (setting `archive_finished_after`).
async fn archive_at_once(c: &tokio_postgres::Client) {
    c.batch_execute(
        "update jobcenter.settings set value = '\"0 seconds\"' \
         where name = 'archive_finished_after'",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_tree_with_a_running_detached_child_waits_for_it() {
    let (_db, c) = setup().await;
    load_starter(&c).await;
    assert_eq!(db::next_timeout(&c).await.unwrap(), None, "no timer yet");
    let parent = db::create_job(&c, "starter", &json!({}), Default::default())
        .await
        .unwrap()
        .job_id;
    assert_eq!(state(&c, parent).await, "finished");
    let child = only_child(&c, parent).await;
    assert_eq!(state(&c, child).await, "sleeping");
    let wait = db::next_timeout(&c).await.unwrap().unwrap();
    assert!(wait > 3500.0, "{wait}");
    archive_at_once(&c).await;

    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 0);
    assert_eq!(
        count(&c, "jobs").await,
        2,
        "the running child keeps its tree"
    );
    assert_eq!(count(&c, "jobs_archive").await, 0);

    make_due(&c, child).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    assert_eq!(state(&c, child).await, "finished");
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 2);
    assert_eq!(count(&c, "jobs").await, 0);
    let archived: Vec<(i64, String)> = c
        .query(
            "select job_id, state::text from jobcenter.jobs_archive order by job_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        archived,
        [
            (parent, "finished".to_owned()),
            (child, "finished".to_owned())
        ]
    );
    assert_eq!(
        db::get_job_status(&c, child).await.unwrap(),
        Some(json!({"ok": true}))
    );
}

/// The gateway reads the ends of the jobs its clients wait for from their rows
/// (`jc_db::ended_jobs`): a live ended job and an archived one with their outputs, a running
/// one not at all, an unknown one with get_job_status's "no job" answer.
#[tokio::test]
async fn the_gateways_end_read_finds_live_archived_and_unknown_jobs() {
    let (_db, c) = setup().await;
    load_starter(&c).await;
    let parent = db::create_job(&c, "starter", &json!({}), Default::default())
        .await
        .unwrap()
        .job_id;
    let child = only_child(&c, parent).await;
    let unknown = child + 1000;
    let ok = json!({"ok": true});
    let no_job = db::get_job_status(&c, unknown).await.unwrap().unwrap();
    assert_eq!(no_job["error"]["msg"], json!(format!("no job {unknown}")));

    let ended = |ids: Vec<i64>| {
        let c = &c;
        async move {
            let mut e = db::ended_jobs(c, &ids).await.unwrap();
            e.sort_by_key(|(id, _)| *id);
            e
        }
    };
    assert_eq!(
        ended(vec![parent, child, unknown]).await,
        [(parent, ok.clone()), (unknown, no_job.clone())],
        "the sleeping child has not ended"
    );

    make_due(&c, child).await;
    assert_eq!(db::do_timeout(&c).await.unwrap(), 1);
    archive_at_once(&c).await;
    assert_eq!(db::do_archival_and_cleanup(&c).await.unwrap(), 2);
    assert_eq!(count(&c, "jobs").await, 0);
    assert_eq!(
        ended(vec![child, unknown, parent]).await,
        [(parent, ok.clone()), (child, ok), (unknown, no_job)],
        "archived"
    );
}
