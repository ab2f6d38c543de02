//! The `jcconsole` binary over plain HTTP: the workers, locks, schedules and events pages
//! show the database's workers, locks, schedules and events; the workflows page marks stale
//! versions; the overview's live fragment
//! (counts, throughput, errors) needs a session; retry-now and the schedule toggle are done
//! for an admin and refused for a read-only user and without the form token.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{enc, http, login};
use engine_tests::state;

/// The cells of the table row of `class` whose text contains `key`.
fn row_with(body: &str, class: &str, key: &str) -> String {
    let at = body
        .find(&format!("<table class=\"{class}\">"))
        .unwrap_or_else(|| panic!("no table {class} in {body}"));
    let table = &body[at..at + body[at..].find("</table>").unwrap()];
    table
        .split("<tr>")
        .find(|r| r.contains(key))
        .unwrap_or_else(|| panic!("no row with {key} in {table}"))
        .to_owned()
}

async fn enabled(c: &tokio_postgres::Client) -> bool {
    c.query_one(
        "select enabled from jobcenter.schedules where name = 'failer/nightly'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test]
async fn workers_locks_schedules_and_events_pages() {
    let (tdb, c, j, m) = common::fixture_more().await;
    let con = common::start(&tdb.dsn);
    let a = con.addr.as_str();
    for path in ["/workers", "/locks", "/schedules", "/events"] {
        let r = http(a, "GET", path, "", None);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/login")),
            "{path}"
        );
    }
    let bob = login(a, "bob", "bob-pw");

    let r = http(a, "GET", "/workers", &bob, None);
    assert_eq!(r.status, 200);
    let w1 = row_with(&r.body, "workers", "<td>w1</td>");
    assert!(w1.contains("step v1"), "the announced action: {w1}");
    // an action's rate and concurrency limits are shown with it
    c.batch_execute(
        "update jobcenter.actions set config = config
             || '{\"concurrency\": 2, \"rate\": {\"limit\": 5, \"per\": \"1 second\"}}'
         where name = 'step'",
    )
    .await
    .unwrap();
    let r = http(a, "GET", "/workers", &bob, None);
    let w1 = row_with(&r.body, "workers", "<td>w1</td>");
    assert!(
        w1.contains("step v1 (rate 5 per 1 second) (concurrency 2)"),
        "the limits: {w1}"
    );

    let r = http(a, "GET", "/locks", &bob, None);
    let held = row_with(&r.body, "holders", "<td>k</td>");
    assert!(held.contains("<td>res</td>"), "{held}");
    assert!(held.contains(&format!("/jobs/{}\"", m.holder)), "{held}");
    assert!(
        held.contains("<td>1/1</td>"),
        "holders against the limit: {held}"
    );
    let waiting = row_with(&r.body, "waiters", &format!("/jobs/{}\"", m.lockwait));
    assert!(
        waiting.contains(&format!("/jobs/{}\"", m.holder)),
        "the waiter's holder: {waiting}"
    );

    let r = http(a, "GET", "/events", &bob, None);
    let early = row_with(&r.body, "subscriptions", "<td>early</td>");
    assert!(
        early.contains(&format!("/jobs/{}\"", m.eventwait)),
        "{early}"
    );
    assert!(early.contains("<td>1</td>"), "one event queued: {early}");
    let queued = row_with(&r.body, "queued", "<td>early</td>");
    assert!(
        queued.contains("{&quot;early&quot;: 7}") || queued.contains("{&quot;early&quot;:7}"),
        "the event's data: {queued}"
    );

    let r = http(a, "GET", "/schedules", &bob, None);
    let nightly = row_with(&r.body, "schedules", "failer/nightly");
    assert!(nightly.contains("0 0 3 * * *") && nightly.contains(">enabled<"));
    assert!(!r.body.contains("class=\"toggle\""), "no buttons for bob");
    let toggle = format!(
        "csrf={}&name={}&enabled=false",
        r.csrf(),
        enc("failer/nightly")
    );
    let r = http(a, "POST", "/schedules/enable", &bob, Some(&toggle));
    assert_eq!(r.status, 403, "a read-only user's toggle is refused");
    assert!(enabled(&c).await);

    let alice = login(a, "alice", "alice-pw");
    let r = http(a, "GET", "/schedules", &alice, None);
    assert!(row_with(&r.body, "schedules", "failer/nightly").contains(">Disable<"));
    let csrf = r.csrf();
    let forged = format!("csrf=0000&name={}&enabled=false", enc("failer/nightly"));
    assert_eq!(
        http(a, "POST", "/schedules/enable", &alice, Some(&forged)).status,
        403
    );
    let off = format!("csrf={csrf}&name={}&enabled=false", enc("failer/nightly"));
    let r = http(a, "POST", "/schedules/enable", &alice, Some(&off));
    assert_eq!((r.status, r.header("location")), (303, Some("/schedules")));
    assert!(!enabled(&c).await);
    let r = http(a, "GET", "/schedules", &alice, None);
    let nightly = row_with(&r.body, "schedules", "failer/nightly");
    assert!(nightly.contains(">disabled<") && nightly.contains(">Enable<"));
    let on = format!("csrf={csrf}&name={}&enabled=true", enc("failer/nightly"));
    assert_eq!(
        http(a, "POST", "/schedules/enable", &alice, Some(&on)).status,
        303
    );
    assert!(enabled(&c).await);
    let bad = format!("csrf={csrf}&name={}&enabled=maybe", enc("failer/nightly"));
    assert_eq!(
        http(a, "POST", "/schedules/enable", &alice, Some(&bad)).status,
        400
    );
    let none = format!("csrf={csrf}&name=nosuch&enabled=false");
    let r = http(a, "POST", "/schedules/enable", &alice, Some(&none));
    assert!(
        r.status == 409 && r.body.contains("no schedule named nosuch"),
        "{}",
        r.body
    );

    // retry-now: the button only for the admin and only in retrywait
    let page = format!("/jobs/{}", m.retrywait);
    let now = format!("/jobs/{}/retry-now", m.retrywait);
    let r = http(a, "GET", &page, &alice, None);
    assert!(r.body.contains(&format!("action=\"{now}\"")), "{}", r.body);
    let ready_page = http(a, "GET", &format!("/jobs/{}", j.ready), &alice, None);
    assert!(!ready_page.body.contains("retry-now"));
    let r = http(a, "GET", &page, &bob, None);
    assert!(!r.body.contains(&format!("action=\"{now}\"")));
    let r = http(a, "POST", &now, &bob, Some(&format!("csrf={}", r.csrf())));
    assert_eq!(r.status, 403);
    assert_eq!(state(&c, m.retrywait).await, "retrywait");
    let r = http(a, "POST", &now, &alice, Some(&format!("csrf={csrf}")));
    assert_eq!((r.status, r.header("location")), (303, Some(page.as_str())));
    assert_eq!(state(&c, m.retrywait).await, "ready");
    let r = http(a, "POST", &now, &alice, Some(&format!("csrf={csrf}")));
    assert!(
        r.status == 409 && r.body.contains("only a job in retrywait"),
        "the engine's refusal: {}",
        r.body
    );
}

#[tokio::test]
async fn the_overview_fragment_counts_jobs_and_needs_a_session() {
    let (tdb, _c, _j, _m) = common::fixture_more().await;
    let con = common::start(&tdb.dsn);
    let a = con.addr.as_str();
    assert_eq!(http(a, "GET", "/overview/live", "", None).status, 401);
    let bob = login(a, "bob", "bob-pw");
    let r = http(a, "GET", "/overview/live", &bob, None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert!(!r.body.contains("<nav"), "a fragment, not a page");
    for (st, n) in [
        ("ready", 1),
        ("error", 1),
        ("finished", 1),
        ("retrywait", 1),
    ] {
        assert!(
            r.body.contains(&format!("data-state=\"{st}\">{n}<")),
            "{st}: {}",
            r.body
        );
    }
    let minute = row_with(&r.body, "throughput", "last 1 minute");
    assert!(
        minute.contains("data-what=\"created\">7<"),
        "the 7 jobs just made: {minute}"
    );
    assert!(minute.contains("data-what=\"error\">1<"), "{minute}");
    let page = http(a, "GET", "/", &bob, None);
    assert!(page.body.contains("id=\"live\"") && page.body.contains("/overview/live"));
}

#[tokio::test]
async fn a_workflow_calling_an_older_version_is_marked_stale() {
    let (tdb, mut c, _j) = common::fixture().await;
    let con = common::start(&tdb.dsn);
    let a = con.addr.as_str();
    let bob = login(a, "bob", "bob-pw");
    let r = http(a, "GET", "/workflows", &bob, None);
    assert!(!r.body.contains("stale:"), "{}", r.body);
    common::compile_with(&mut c, &["step"], true).await;
    let r = http(a, "GET", "/workflows", &bob, None);
    let opsdemo = row_with(&r.body, "workflows", "/workflows/opsdemo?version=1");
    assert!(
        opsdemo.contains("stale: calls step v1 (newest v2)"),
        "{opsdemo}"
    );
    let failer = row_with(&r.body, "workflows", "/workflows/failer?version=1");
    assert!(!failer.contains("stale"), "{failer}");
}

#[tokio::test]
async fn the_jobs_list_filters_by_age() {
    let (tdb, c, j) = common::fixture().await;
    // Two jobs made three days ago (their ids stay below the newer one's, as they would).
    c.execute(
        "update jobcenter.jobs set job_created = job_created - interval '3 days'
         where job_id = any($1)",
        &[&vec![j.ready, j.error]],
    )
    .await
    .unwrap();
    let con = common::start(&tdb.dsn);
    let a = con.addr.as_str();
    let bob = login(a, "bob", "bob-pw");
    let listed = |body: &str| -> Vec<i64> {
        [j.ready, j.error, j.finished]
            .into_iter()
            .filter(|id| body.contains(&format!("/jobs/{id}\"")))
            .collect()
    };
    let r = http(a, "GET", "/jobs?age=1+hour", &bob, None);
    assert_eq!(r.status, 200);
    assert_eq!(listed(&r.body), [j.finished]);
    assert!(r.body.contains("<option value=\"1 hour\" selected>"));
    let r = http(a, "GET", "/jobs?age=7+days", &bob, None);
    assert_eq!(listed(&r.body), [j.ready, j.error, j.finished]);
    let r = http(a, "GET", "/jobs?age=1+hour&state=error", &bob, None);
    assert!(listed(&r.body).is_empty());
    assert_eq!(http(a, "GET", "/jobs?age=forever", &bob, None).status, 400);
}
