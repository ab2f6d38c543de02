//! Every gateway method takes the parameter shapes the original JobCenter documents
//! (`doc/jsonrpc2api.md`) and its Perl client (JobCenter::Client::Mojo) sends: named or
//! positional parameters, unset options as null, unknown extras, a job id read as text, and
//! `find_jobs` with its filter JSON-encoded in a string. Garbage is still refused with a clear
//! -32602.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_originals_parameter_shapes_are_accepted() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;

    // The Perl worker's announce: slots and slotgroup unset (null).
    let mut w = login(&g, "tcp", "alice", ALICE_PW).await;
    let r = w
        .call(
            "announce",
            json!({"workername": "perlw", "actionname": "add", "slotgroup": null, "slots": null}),
        )
        .await;
    assert_eq!(r, json!([true, "success"]));
    let done = Done::default();
    let worker_task = worker(w, "add", done, Duration::ZERO, add);

    // The Perl client's create_job: vtag and timeout null, reqauth (not ours) ignored.
    let r = c
        .call(
            "create_job",
            json!({"wfname": "calltest", "vtag": null, "inargs": {"input": 1},
                   "timeout": null, "reqauth": null}),
        )
        .await;
    assert!(r[1].is_null(), "{r}");
    let job = r[0].as_i64().unwrap();
    assert_eq!(c.job_done(job).await, json!({"output": 4}));
    // by position, in the documented order (wfname, inargs, vtag)
    let r = c
        .call("create_job", json!(["calltest", {"input": 2}, null]))
        .await;
    let second = r[0].as_i64().unwrap();
    assert_eq!(c.job_done(second).await, json!({"output": 5}));

    // get_job_status with the Perl client's notify flag, the id as a number, a string, or
    // by position
    for params in [
        json!({"job_id": job, "notify": false}),
        json!({"job_id": job.to_string()}),
        json!([job]),
    ] {
        assert_eq!(
            c.call("get_job_status", params.clone()).await,
            json!([job, {"output": 4}]),
            "{params}"
        );
    }
    let e = c
        .call_err("get_job_status", json!({"job_id": "seven"}))
        .await;
    assert_eq!(e["code"], -32602, "{e}");
    assert!(e["message"].as_str().unwrap().contains("job id"), "{e}");

    // find_jobs: the filter as an object, or JSON-encoded in a string as the Perl client does
    assert_eq!(
        c.call("find_jobs", json!({"filter": {"input": 1}})).await,
        json!([job])
    );
    assert_eq!(
        c.call("find_jobs", json!({"filter": "{\"input\": 1}"}))
            .await,
        json!([job])
    );
    assert_eq!(
        c.call("find_jobs", json!({"filter": "{\"input\": 3}"}))
            .await,
        json!([])
    );
    for (bad, why) in [
        (json!("{input: 1"), "not JSON"),
        (json!("[1, 2]"), "got [1,2]"),
        (json!("\"x\""), "got \"x\""),
        (json!(5), "got 5"),
        (json!([{"input": 1}]), "got [{"),
    ] {
        let e = c.call_err("find_jobs", json!({ "filter": bad })).await;
        assert_eq!(e["code"], -32602, "{bad}: {e}");
        let msg = e["message"].as_str().unwrap();
        assert!(
            msg.contains("filter must be a JSON object") && msg.contains(why),
            "{bad}: {msg}"
        );
    }

    // check_if_lock_exists (locktype, lockvalue), named and by position
    assert_eq!(
        c.call(
            "check_if_lock_exists",
            json!({"locktype": "foo", "lockvalue": "bar"})
        )
        .await,
        json!(false)
    );
    assert_eq!(
        c.call("check_if_lock_exists", json!(["foo", "bar"])).await,
        json!(false)
    );

    // ping: no params ("Params: none"), or {} as the Perl client sends
    c.send(&json!({"jsonrpc": "2.0", "method": "ping", "id": "p1"}));
    assert_eq!(c.response(json!("p1")).await["result"], json!("pong"));
    assert_eq!(c.call("ping", json!({})).await, json!("pong"));

    worker_task.abort();
}
