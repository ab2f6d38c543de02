//! The `jcconsole` binary over plain HTTP against a real database: login (password and
//! token, bad passwords and forms without their token refused), pages refused without a
//! session, the jobs list and its filters, a job's page with its graph, a workflow's page,
//! and cancel/retry: refused without the form token and for a read-only user, done for an
//! admin through the engine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{http, login, try_login};
use engine_tests::state;

#[tokio::test]
async fn login_pages_and_actions() {
    let (tdb, c, j) = common::fixture().await;
    let con = common::start(&tdb.dsn);
    let a = con.addr.as_str();

    // no session: pages send to the login form, actions are refused
    for path in ["/", "/jobs", &format!("/jobs/{}", j.ready), "/workflows"] {
        let r = http(a, "GET", path, "", None);
        assert_eq!(
            (r.status, r.header("location")),
            (303, Some("/login")),
            "{path}"
        );
    }
    let r = http(
        a,
        "POST",
        &format!("/jobs/{}/cancel", j.ready),
        "",
        Some("csrf=x"),
    );
    assert_eq!(r.status, 401);
    assert_eq!(state(&c, j.ready).await, "ready");

    // logins
    assert_eq!(try_login(a, "alice", "wrong").status, 401);
    assert_eq!(try_login(a, "nobody", "alice-pw").status, 401);
    let no_token = http(
        a,
        "POST",
        "/login",
        "",
        Some("user=alice&password=alice-pw&csrf="),
    );
    assert_eq!(no_token.status, 403);
    assert!(no_token.cookie("jc_session").is_none());
    let r = try_login(a, "alice", "alice-pw");
    assert_eq!(r.status, 303);
    let (_, set) = r.cookie("jc_session").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let alice = login(a, "alice", "alice-pw");
    assert_ne!(
        alice,
        login(a, "alice", "alice-token"),
        "each login is a new session"
    );
    let bob = login(a, "bob", "bob-pw");

    // overview and jobs
    let r = http(a, "GET", "/", &alice, None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("data-state=\"error\">1<"), "{}", r.body);
    assert!(r.body.contains("broken"), "the recent error's message");
    let r = http(a, "GET", "/jobs", &bob, None);
    for id in [j.ready, j.error, j.finished] {
        assert!(r.body.contains(&format!("/jobs/{id}\"")), "job {id}");
    }
    let r = http(a, "GET", "/jobs?state=error", &bob, None);
    assert!(r.body.contains(&format!("/jobs/{}\"", j.error)));
    assert!(!r.body.contains(&format!("/jobs/{}\"", j.ready)));
    let r = http(a, "GET", "/jobs?workflow=opsdemo", &bob, None);
    assert!(r.body.contains(&format!("/jobs/{}\"", j.finished)));
    assert!(!r.body.contains(&format!("/jobs/{}\"", j.error)));
    assert_eq!(http(a, "GET", "/jobs?state=bogus", &bob, None).status, 400);
    assert_eq!(http(a, "GET", "/jobs/999999", &bob, None).status, 404);

    // a job's page: its graph with the current task; buttons for the admin only
    let page = format!("/jobs/{}", j.ready);
    let cancel = format!("/jobs/{}/cancel", j.ready);
    let r = http(a, "GET", &page, &alice, None);
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<svg"), "the graph");
    assert!(
        r.body.contains("<th>priority</th><th>key</th>"),
        "the priority and key columns"
    );
    assert!(
        r.body.contains("class=\"task current\""),
        "the current task"
    );
    assert!(r.body.contains(&format!("action=\"{cancel}\"")));
    let read_only = http(a, "GET", &page, &bob, None);
    assert!(read_only.body.contains("<svg"));
    assert!(!read_only.body.contains(&format!("action=\"{cancel}\"")));

    // refusals: the read-only user with a good token, the admin without one
    let r = http(
        a,
        "POST",
        &cancel,
        &bob,
        Some(&format!("csrf={}", read_only.csrf())),
    );
    assert_eq!(r.status, 403);
    let r = http(a, "POST", &cancel, &alice, Some("csrf=0000"));
    assert_eq!(r.status, 403);
    let r = http(a, "POST", &cancel, &alice, Some(""));
    assert_eq!(r.status, 403);
    assert_eq!(state(&c, j.ready).await, "ready");

    // cancel, then retry, by the admin
    let csrf = http(a, "GET", &page, &alice, None).csrf();
    let r = http(a, "POST", &cancel, &alice, Some(&format!("csrf={csrf}")));
    assert_eq!((r.status, r.header("location")), (303, Some(page.as_str())));
    assert_eq!(state(&c, j.ready).await, "error");
    let r = http(a, "GET", &page, &alice, None);
    assert!(
        r.body.contains("cancel in the web console by alice"),
        "the reason"
    );
    let retry = format!("/jobs/{}/retry", j.ready);
    assert!(r.body.contains(&format!("action=\"{retry}\"")));
    let r = http(a, "POST", &retry, &alice, Some(&format!("csrf={csrf}")));
    assert_eq!(r.status, 303);
    assert_eq!(state(&c, j.ready).await, "ready");
    // the engine's refusal is shown, not hidden
    let r = http(
        a,
        "POST",
        &format!("/jobs/{}/cancel", j.finished),
        &alice,
        Some(&format!("csrf={csrf}")),
    );
    assert_eq!(r.status, 409, "{}", r.body);

    // workflows
    let r = http(a, "GET", "/workflows", &bob, None);
    assert!(
        r.body.contains("/workflows/opsdemo?version=1"),
        "{}",
        r.body
    );
    let r = http(a, "GET", "/workflows/opsdemo", &bob, None);
    assert!(r.body.contains("<svg") && r.body.contains("workflow opsdemo:"));
    assert_eq!(http(a, "GET", "/workflows/nosuch", &bob, None).status, 404);

    // logout ends the session
    let r = http(
        a,
        "POST",
        "/logout",
        &bob,
        Some(&format!("csrf={}", read_only.csrf())),
    );
    assert_eq!(r.status, 303);
    assert_eq!(http(a, "GET", "/jobs", &bob, None).status, 303);
}
