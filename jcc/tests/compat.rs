//! Compatibility: the workflow files of `workflows/compat`, written in the original
//! JobCenter's style (`.wf` and `.ac` files with its constructs: trailing `;`, `interface NAME:`
//! header lines, `object(k: v)`, quoted keys, bare-word lock values, `raise_error:`/`sleep:`
//! blocks, `wait_for_event` without `events`, embedded Perl, the original's `adder.wf` calling
//! actions through an interface), are compiled by the `jcc` binary into a test database and run
//! with test workers to hand-worked answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use engine_tests::db;
use serde_json::json;

const COMPAT: &str = "workflows/compat";

#[tokio::test]
async fn the_compiler_warns_about_a_name_never_subscribed_and_still_writes() {
    let (tdb, _c) = setup().await;
    let all = files(COMPAT);
    let args: Vec<&str> = all.iter().map(String::as_str).collect();
    let report = jcc_ok(&tdb.dsn, &args);
    assert!(
        report.contains("eventtest.wf:18:31: warning[JC0301]:"),
        "{report}"
    );
    assert!(report.contains("jcc: 1 warning\n"), "{report}");
    assert!(!report.contains("error["), "{report}");
    assert!(report.contains("workflow eventtest"), "written: {report}");
}

#[tokio::test]
async fn call_eval_and_interface_calls() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "calltest", json!({"input": 1})).await,
        json!({"output": 4, "doubled": 8})
    );
    // the original's adder.wf, unchanged: an interface declared once (`add`) and implemented
    // by the actions a.add, b.add and c.add (`interface add:` header lines); the Perl imap
    // copies every argument, `which` too
    for (which, step, counter) in [("a", 3, 13), ("b", 3, 16), ("c", 3, 7), ("a", 1, 11)] {
        let args = if step == 1 {
            json!({"counter": 10, "which": which})
        } else {
            json!({"counter": 10, "step": step, "which": which})
        };
        assert_eq!(
            output(&c, "adder", args).await,
            json!({"counter": counter}),
            "which {which}"
        );
    }
    let e = error(&c, "adder", json!({"counter": 1, "which": "d"})).await;
    assert_eq!(
        (e["class"].as_str(), e["msg"].as_str()),
        (
            Some("normal"),
            Some("d.add is not one of the candidates of interface add")
        ),
        "{e}"
    );
}

#[tokio::test]
async fn if_elsif_while_repeat_and_case() {
    let (_db, c) = compiled(&[COMPAT]).await;
    for (input, out) in [
        (5, json!({"output": 6, "whut": "less than 10"})),
        (
            150,
            json!({"output": 151, "whut": "greater than 100 but less than 200"}),
        ),
        (300, json!({"output": 301})),
        (
            50,
            json!({"output": 51, "whut": "between 10 and 100 inclusive"}),
        ),
    ] {
        assert_eq!(output(&c, "iftest", json!({"input": input})).await, out);
    }
    assert_eq!(
        output(&c, "whiletest", json!({"input": 1})).await,
        json!({"output": 10})
    );
    assert_eq!(
        output(&c, "whiletest", json!({"input": 20})).await,
        json!({"output": 21})
    );
    // the Perl imap adds 2 from the input until the Perl condition holds
    assert_eq!(
        output(&c, "repeattest", json!({"input": 1})).await,
        json!({"output": 11})
    );
    assert_eq!(
        output(&c, "repeattest", json!({"input": 20})).await,
        json!({"output": 22})
    );
    for (input, counter, thing) in [
        ("foo", 11, "got foo"),
        ("bar", 21, "got bar or baz"),
        ("baz", 21, "got bar or baz"),
        ("quux", 31, "dunno what i got: quux"),
    ] {
        assert_eq!(
            output(&c, "casetest", json!({"input": input})).await,
            json!({"counter": counter, "thing": thing})
        );
    }
}

#[tokio::test]
async fn try_catch_raise_error_and_child_errors() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "trytest", json!({"i1": 6, "i2": 3})).await,
        json!({"out": 2})
    );
    assert_eq!(
        output(&c, "trytest", json!({"i1": 6, "i2": 0})).await,
        json!({"whut": "caught a normal error"})
    );
    assert_eq!(
        output(&c, "raise_errortest", json!({"in": "ab"})).await,
        json!({"out": "caught: let's raise an error"})
    );
    let e = error(&c, "raise_errortest2", json!({"in": "ab"})).await;
    assert_eq!(
        (e["class"].as_str(), e["msg"].as_str()),
        (Some("normal"), Some("let's raise an error"))
    );
    assert_eq!(
        output(&c, "childjoberrortest", json!({"input": 3})).await,
        json!({"output": "got childerror"})
    );
}

#[tokio::test]
async fn goto_label_and_return() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "gototest", json!({"input": 1})).await,
        json!({"output": " foo bar baz"})
    );
}

#[tokio::test]
async fn wait_for_event_without_events_waits_for_its_timeout_then_sleep() {
    let (_db, c) = compiled(&[COMPAT]).await;
    let (id, status) = run(&c, "sleeptest", json!({"in": "x"})).await;
    assert_eq!(status, None);
    assert_eq!(state(&c, id).await, "eventwait");
    fire_timeout(&c, id).await;
    assert_eq!(state(&c, id).await, "sleeping");
    fire_timeout(&c, id).await;
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"out": "got timeout and did a nap"}))
    );
}

#[tokio::test]
async fn subscribe_raise_event_and_wait_for_event() {
    let (_db, c) = compiled(&[COMPAT]).await;
    // the event matches the mask {"foo": "bar"}: it is the job's own my1stevent
    assert_eq!(
        output(&c, "eventtest", json!({"in": "foo"})).await,
        json!({"out": "got my1stevent"})
    );
    // it does not: the wait times out (my2ndevent, never subscribed, never matches)
    let (id, status) = run(&c, "eventtest", json!({"in": "nofoo"})).await;
    assert_eq!(status, None);
    assert_eq!(state(&c, id).await, "eventwait");
    fire_timeout(&c, id).await;
    work(&c).await;
    assert_eq!(
        db::get_job_status(&c, id).await.unwrap(),
        Some(json!({"out": "got something else"}))
    );
}

#[tokio::test]
async fn locks_with_bare_word_values_lock_unlock_and_inherit() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "locktest", json!({"in": "x"})).await,
        json!({"out": "got x and got lock \"slot\" and got lock \"schloss\" and \
                       lockinherittest2 got x and unlocked lock \"slot\""})
    );
    // while the job ran it held foo/bar and abc/def from its start; all are released now
    let held: i64 = c
        .query_one("select count(*) from jobcenter.locks", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(held, 0);
    let declared: Vec<(String, bool, bool)> = c
        .query(
            "select locktype, manual, inherit from jobcenter.workflow_locks wl \
             join jobcenter.actions a on a.action_id = wl.workflow_id \
             where a.name = 'locktest' order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let d = |t: &str, m, i| (t.to_owned(), m, i);
    assert_eq!(
        declared,
        vec![
            d("abc", false, true),
            d("foo", false, false),
            d("schloss", true, true),
            d("slot", true, false)
        ]
    );
}

#[tokio::test]
async fn split_callflow_and_map_collect() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "splittest", json!({"input": 30})).await,
        json!({"output": "13 23 33"})
    );
    // each element plus its 1-based index: 11 + 22 + 33
    assert_eq!(
        output(&c, "map_collect_test", json!({"input": [10, 20, 30]})).await,
        json!({"output": 66})
    );
}

#[tokio::test]
async fn eval_with_object_colons_quoted_keys_and_perl() {
    let (_db, c) = compiled(&[COMPAT]).await;
    assert_eq!(
        output(&c, "evaltest", json!({"i1": 1, "i2": 2})).await,
        json!({
            "out": "1 + 2",
            "obj": {"foo": 1, "the key": 20},
            "first": 20,
            "perl": "sum 3 and 2"
        })
    );
}
