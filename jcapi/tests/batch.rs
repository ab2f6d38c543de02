//! The batched worker calls through the real `jcapi` binary: `get_tasks` bounded by the
//! worker's slots, `tasks_done` answering each result on its own (an unknown cookie, a task
//! taken elsewhere, outputs that are no object or do not fit beside good results), the group
//! commit of results arriving together, the `job_done` of the jobs a batch ends sent from
//! the batch's own read, no result lost while PostgreSQL is down, and the group commits of
//! `create_job` calls and of takes, where a refused create or take fails alone.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

async fn metric(g: &Gateway, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(g.addr("http"))
        .await
        .unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {out}"))
}

/// Waits for a first offer, then takes up to `count` tasks with `get_tasks`.
async fn take(w: &mut Rpc, action: &str, count: u32) -> Vec<Value> {
    w.notification("task_ready", WAIT).await.expect("an offer");
    let tasks = w
        .call("get_tasks", json!({"actionname": action, "count": count}))
        .await;
    tasks.as_array().unwrap().clone()
}

/// Takes `n` tasks, in as many `get_tasks` as it needs (offers may come one at a time).
async fn take_all(w: &mut Rpc, action: &str, n: usize) -> Vec<Value> {
    let mut tasks = take(w, action, n as u32).await;
    while tasks.len() < n {
        tasks.extend(take(w, action, (n - tasks.len()) as u32).await);
    }
    tasks
}

fn result(task: &Value, outargs: Value) -> Value {
    json!({"cookie": task[1], "outargs": outargs})
}

#[tokio::test]
async fn get_tasks_is_bounded_by_slots_and_tasks_done_answers_each_result() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = announced(&g, "tcp", "batcher", "add", 4).await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(c.create_job("calltest", json!({"input": i})).await);
    }
    // Ten asked, four slots: four tasks, oldest first.
    let tasks = take(&mut w, "add", 10).await;
    let ids: Vec<i64> = tasks.iter().map(|t| t[0].as_i64().unwrap()).collect();
    assert_eq!(ids, jobs[..4]);
    assert!(
        w.call("get_tasks", json!({"actionname": "add", "count": 3}))
            .await
            .as_array()
            .unwrap()
            .is_empty(),
        "no slot is free"
    );

    // Another worker's task and a made-up cookie beside good results.
    let mut other = announced(&g, "ws", "other", "add", 1).await;
    let theirs = take(&mut other, "add", 1).await;
    assert_eq!(theirs.len(), 1);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let answers = w
        .call(
            "tasks_done",
            json!({"results": [
                result(&tasks[0], add(&tasks[0][2])),
                {"cookie": unknown, "outargs": {"counter": 1}},
                result(&tasks[1], json!({"counter": "not a number"})),
                result(&theirs[0], add(&theirs[0][2])),
                result(&tasks[2], json!("no object")),
                {"cookie": "not a cookie", "outargs": {}},
                result(&tasks[3], json!({"error": {"class": "normal", "msg": "out of paper"}})),
            ]}),
        )
        .await;
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 7);
    let codes: Vec<Value> = answers
        .iter()
        .map(|a| {
            if a["ok"] == true {
                assert!(a.get("error").is_none(), "{a}");
                json!("ok")
            } else {
                a["error"]["code"].clone()
            }
        })
        .collect();
    assert_eq!(
        codes,
        [
            json!("ok"),
            json!(1003),
            json!("ok"),
            json!(1003),
            json!(-32602),
            json!(1003),
            json!("ok")
        ],
        "{answers:?}"
    );
    assert_eq!(answers[1]["cookie"], unknown);
    assert_eq!(c.job_done(jobs[0]).await, json!({"output": 3}));
    // Outputs that do not fit fail their own job; a failure reported by the worker too.
    assert_eq!(c.job_done(jobs[1]).await["error"]["class"], "normal");
    assert_eq!(c.job_done(jobs[3]).await["error"]["msg"], "out of paper");
    // The other worker's task is still its own, and the refused result kept its task.
    assert_eq!(
        job_state(&env.db, theirs[0][0].as_i64().unwrap()).await,
        "working"
    );
    assert_eq!(job_state(&env.db, jobs[2]).await, "working");
    let again = w
        .call(
            "tasks_done",
            json!({"results": [result(&tasks[2], add(&tasks[2][2]))]}),
        )
        .await;
    assert_eq!(again, json!([{"cookie": tasks[2][1], "ok": true}]));
    assert_eq!(c.job_done(jobs[2]).await, json!({"output": 5}));
    // A lone result is finished by task_done: its refusal is its answer, and the same
    // result a second time is refused as its task is done.
    let lone = w
        .call(
            "tasks_done",
            json!({"results": [{"cookie": unknown, "outargs": {"counter": 1}}]}),
        )
        .await;
    assert_eq!(lone[0]["cookie"], unknown, "{lone}");
    assert_eq!(lone[0]["error"]["code"], 1003, "{lone}");
    let twice = w
        .call(
            "tasks_done",
            json!({"results": [result(&tasks[2], add(&tasks[2][2]))]}),
        )
        .await;
    assert_eq!(twice[0]["error"]["code"], 1003, "{twice}");

    // The freed slots are offered the job left over; the single calls work beside.
    let rest = take(&mut w, "add", 4).await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert_eq!(rest[0][0], jobs[5]);
    w.notify("task_done", result(&rest[0], add(&rest[0][2])));
    assert_eq!(c.job_done(jobs[5]).await, json!({"output": 8}));
}

#[tokio::test]
async fn batched_calls_are_refused_to_non_workers_and_for_too_many() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let e = c
        .call_err("get_tasks", json!({"actionname": "add", "count": 2}))
        .await;
    assert_eq!(e["code"], 1006, "{e}");
    let e = c.call_err("tasks_done", json!({"results": []})).await;
    assert_eq!(e["code"], 1006, "{e}");
    let mut w = announced(&g, "tcp", "greedy", "add", 1).await;
    let many: Vec<Value> = (0..1001)
        .map(|_| json!({"cookie": "x", "outargs": {}}))
        .collect();
    let e = w.call_err("tasks_done", json!({"results": many})).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = w.call_err("tasks_done", json!({"results": "nope"})).await;
    assert_eq!(e["code"], -32602, "{e}");
    let e = w
        .call_err("get_tasks", json!({"actionname": "fragile", "count": 1}))
        .await;
    assert_eq!(e["code"], 1006, "{e}");
    assert_eq!(
        w.call("tasks_done", json!({"results": []})).await,
        json!([])
    );
    // A take of one (get_task in the database) with none ready is no task, not a row of nulls.
    assert_eq!(
        w.call("get_tasks", json!({"actionname": "add", "count": 1}))
            .await,
        json!([])
    );
    // The connection goes on.
    still_serving(&g).await;
}

/// A result reaching an idle gateway goes to the database at once; results arriving while a
/// batch is there are committed together. The first result is held in the database by a row
/// lock the test takes, the four after it arrive meanwhile and go as one transaction.
#[tokio::test]
async fn results_arriving_together_are_committed_together() {
    let env = env().await;
    let g = Gateway::start(&env, &["--task-done-window", "300ms"]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = announced(&g, "tcp", "grouped", "add", 5).await;
    let mut jobs = Vec::new();
    for i in 0..5 {
        jobs.push(c.create_job("calltest", json!({"input": i})).await);
    }
    let tasks = take_all(&mut w, "add", 5).await;
    let before = metric(&g, "jcapi_task_done_batches_total").await;
    let blocker = env.tdb.connect().await.unwrap();
    blocker.batch_execute("begin").await.unwrap();
    blocker
        .execute(
            "select 1 from jobcenter.jobs where job_id = $1 for update",
            &[&tasks[0][0].as_i64().unwrap()],
        )
        .await
        .unwrap();
    w.notify("task_done", result(&tasks[0], add(&tasks[0][2])));
    let t0 = std::time::Instant::now();
    while metric(&g, "jcapi_task_done_batches_total").await == before {
        assert!(t0.elapsed() < WAIT, "the first result was not sent at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Three notifications and a batch of one while the first is in the database.
    for t in &tasks[1..4] {
        w.notify("task_done", result(t, add(&t[2])));
    }
    let answer = w
        .call(
            "tasks_done",
            json!({"results": [result(&tasks[4], add(&tasks[4][2]))]}),
        )
        .await;
    assert_eq!(answer[0]["ok"], true, "{answer}");
    blocker.batch_execute("commit").await.unwrap();
    for (i, job) in jobs.iter().enumerate() {
        assert_eq!(c.job_done(*job).await, json!({"output": i + 3}));
    }
    assert_eq!(
        metric(&g, "jcapi_task_done_batches_total").await - before,
        2,
        "the first result alone, the four after it in one transaction"
    );
}

/// A private cluster, since this test crashes PostgreSQL; durable, so that a crash keeps
/// what was committed (the tests' clusters commit without flushing).
#[tokio::test]
async fn no_result_is_lost_while_postgres_is_down() {
    let (cluster, env) = durable_env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut batched = announced(&g, "tcp", "batched", "add", 3).await;
    let mut single = announced(&g, "ws", "single", "add", 1).await;
    let mut jobs = Vec::new();
    for i in 0..6 {
        jobs.push(c.create_job("calltest", json!({"input": i})).await);
    }
    let offer = single.notification("task_ready", WAIT).await.unwrap();
    let one = single
        .call(
            "get_task",
            json!({"actionname": "add", "job_id": offer["job_id"]}),
        )
        .await;
    assert!(one.is_array(), "{one}");
    let mut tasks = Vec::new();
    while tasks.len() < 3 {
        tasks.extend(take(&mut batched, "add", 3 - tasks.len() as u32).await);
    }

    cluster.crash().await.unwrap();
    // Results sent while the database is down: a batch, and the original notification
    // from a worker whose connection then dies.
    batched.send(&json!({"jsonrpc": "2.0", "method": "tasks_done", "id": 99,
        "params": {"results": tasks.iter().map(|t| result(t, add(&t[2]))).collect::<Vec<_>>()}}));
    single.notify(
        "task_done",
        json!({"cookie": one[1], "outargs": add(&one[2])}),
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    single.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The worker is still served meanwhile (pings, calls that need no database).
    assert_eq!(batched.call("ping", json!({})).await, "pong");
    cluster.start_again().await.unwrap();

    let answer = batched.response(json!(99)).await;
    let answers = answer["result"].as_array().unwrap();
    assert!(answers.iter().all(|a| a["ok"] == true), "{answer}");
    // The rest of the jobs go to the surviving worker once the gateway finds them again.
    let mut left = jobs.len() - 4;
    while left > 0 {
        let more = take(&mut batched, "add", 3).await;
        left -= more.len();
        let results: Vec<Value> = more.iter().map(|t| result(t, add(&t[2]))).collect();
        let a = batched
            .call("tasks_done", json!({ "results": results }))
            .await;
        assert!(a.as_array().unwrap().iter().all(|a| a["ok"] == true), "{a}");
    }
    let db = env.tdb.connect().await.unwrap();
    for (i, job) in jobs.iter().enumerate() {
        assert!(
            eventually(WAIT, || async { job_state(&db, *job).await == "finished" }).await,
            "job {job}: {}",
            job_state(&db, *job).await
        );
        assert_eq!(c.job_done(*job).await, json!({"output": i + 3}));
    }
    // The dead worker is ended in the engine once the database is back (after its result,
    // which may come after the other jobs' ends).
    let stopped = || async {
        db.query_one(
            "select stopped is not null from jobcenter.workers where name = 'single' \
             order by worker_id desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get::<_, bool>(0)
    };
    assert!(eventually(WAIT, stopped).await, "{}", g.log());
    assert!(g.log().contains("tasks_done reached the database again"));
}

/// The `job_done`s (their params) `c` receives within `for_`.
async fn job_dones(c: &mut Rpc, for_: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + for_;
    let mut got = Vec::new();
    while let Some(d) = c
        .notification("job_done", deadline - tokio::time::Instant::now())
        .await
    {
        got.push(d);
    }
    got
}

#[tokio::test]
async fn a_batch_that_ends_waited_jobs_tells_their_waiters_once_from_its_own_read() {
    let env = env().await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut w = announced(&g, "tcp", "ender", "add", 3).await;
    let mut jobs = Vec::new();
    for i in 0..3 {
        jobs.push(c.create_job("calltest", json!({"input": i})).await);
    }
    let mut tasks = take_all(&mut w, "add", 3).await;
    tasks.sort_by_key(|t| t[0].as_i64());
    // Two results through the gateway, in one batch.
    let answers = w
        .call(
            "tasks_done",
            json!({"results": [result(&tasks[0], add(&tasks[0][2])), result(&tasks[1], add(&tasks[1][2]))]}),
        )
        .await;
    assert_eq!(answers.as_array().unwrap().len(), 2, "{answers}");
    let mut dones = job_dones(&mut c, Duration::from_millis(500)).await;
    dones.sort_by_key(|d| d["job_id"].as_i64());
    assert_eq!(
        dones,
        [
            json!({"job_id": jobs[0], "outargs": {"output": 3}}),
            json!({"job_id": jobs[1], "outargs": {"output": 4}})
        ],
        "each waiter told once, with the job's outputs"
    );
    assert_eq!(metric(&g, "jcapi_ends_at_commit_total").await, 2);
    // The third finished by SQL, not through this gateway: job:finished tells its waiter.
    env.db
        .execute(
            "select jobcenter.task_done($1, $2)",
            &[&tasks[2][1].as_str().unwrap(), &add(&tasks[2][2])],
        )
        .await
        .unwrap();
    assert_eq!(c.job_done(jobs[2]).await, json!({"output": 5}));
    assert_eq!(metric(&g, "jcapi_ends_at_commit_total").await, 2);
    assert!(job_dones(&mut c, Duration::from_millis(300))
        .await
        .is_empty());
}

/// `create_job` calls arriving while a batch of them is in the database are made in one
/// transaction, and a refused create in that batch fails alone: the first create is held in
/// the database by the workflow's replace lock, which the test takes; five arrive meanwhile
/// on five connections, two of them bad (an unknown workflow, unknown inputs).
#[tokio::test]
async fn creates_arriving_together_are_made_together_and_a_refusal_is_its_own() {
    let env = env().await;
    let g = Gateway::start(&env, &["--create-job-window", "300ms"]).await;
    let mut clients = Vec::new();
    for _ in 0..6 {
        clients.push(login(&g, "tcp", "alice", ALICE_PW).await);
    }
    let blocker = env.tdb.connect().await.unwrap();
    blocker.batch_execute("begin").await.unwrap();
    blocker
        .execute(
            "select pg_advisory_xact_lock(jobcenter.replace_lock_class(), \
             (select action_id from jobcenter.actions where name = 'calltest' \
              and type = 'workflow' order by version desc limit 1))",
            &[],
        )
        .await
        .unwrap();
    let before = metric(&g, "jcapi_create_job_batches_total").await;
    let create = |c: &Rpc, id: i64, wfname: &str, inargs: Value| {
        c.send(&json!({"jsonrpc": "2.0", "id": id, "method": "create_job",
                       "params": {"wfname": wfname, "inargs": inargs}}));
    };
    create(&clients[0], 1, "calltest", json!({"input": 0}));
    let t0 = std::time::Instant::now();
    while metric(&g, "jcapi_create_job_batches_total").await == before {
        assert!(t0.elapsed() < WAIT, "the first create was not sent at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let calls = [
        ("calltest", json!({"input": 1})),
        ("nosuchworkflow", json!({"input": 2})),
        ("calltest", json!({"input": 3})),
        ("calltest", json!({"nosuchinput": 4})),
        ("calltest", json!({"input": 5})),
    ];
    for (i, (wfname, inargs)) in calls.iter().enumerate() {
        create(&clients[i + 1], 1, wfname, inargs.clone());
    }
    // Everything waits for the lock: nobody is answered yet.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        metric(&g, "jcapi_create_job_batches_total").await - before,
        2,
        "the first create alone, the five after it in one transaction"
    );
    assert_eq!(metric(&g, "jcapi_jobs_created_total").await, 0);
    blocker.batch_execute("commit").await.unwrap();
    let mut answers = Vec::new();
    for c in &mut clients {
        answers.push(c.response(json!(1)).await["result"].clone());
    }
    let mut jobs = Vec::new();
    for (i, a) in answers.iter().enumerate() {
        match i {
            2 => {
                assert!(a[0].is_null(), "{a}");
                assert!(
                    a[1].as_str().unwrap().contains("nosuchworkflow"),
                    "the unknown workflow's own error: {a}"
                );
            }
            4 => {
                assert!(a[0].is_null(), "{a}");
                assert!(
                    a[1].as_str().unwrap().contains("bad arguments"),
                    "the bad inputs' own error: {a}"
                );
            }
            _ => {
                assert!(a[1].is_null(), "create {i} made its job: {a}");
                jobs.push(a[0].as_i64().unwrap());
            }
        }
    }
    let made: i64 = env
        .db
        .query_one(
            "select count(*) from jobcenter.jobs where job_id = any($1)",
            &[&jobs],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(made, 4, "each good create made one job: {jobs:?}");
    let all: i64 = env
        .db
        .query_one("select count(*) from jobcenter.jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(all, 4, "and nothing else was made");
    // The jobs run: a worker performs them and their clients hear their ends.
    let mut w = announced(&g, "tcp", "creates", "add", 4).await;
    let tasks = take_all(&mut w, "add", 4).await;
    let results: Vec<Value> = tasks.iter().map(|t| result(t, add(&t[2]))).collect();
    w.call("tasks_done", json!({ "results": results })).await;
    // the good creates were calls 0, 1, 3 and 5, each on its own connection, input = call
    for (job, i) in jobs.iter().zip([0, 1, 3, 5]) {
        assert_eq!(clients[i].job_done(*job).await, json!({"output": i + 3}));
    }
}

/// Takes of different workers arriving while a batch of takes is in the database are made in
/// one transaction, and a take refused there fails alone: the first take (of a rate-limited
/// action) is held in the database by its queue's `action_rates` row, which the test locks;
/// meanwhile two workers of `add` take their offers, and the engine no longer knows one of
/// them (withdrawn by SQL).
#[tokio::test]
async fn takes_arriving_together_are_made_together_and_a_refusal_is_its_own() {
    let env = env().await;
    load_rated(&env, 100).await;
    let g = Gateway::start(&env, &["--get-task-window", "300ms"]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let mut wr = announced(&g, "tcp", "takes-r", "rated", 1).await;
    let mut wa = announced(&g, "tcp", "takes-a", "add", 1).await;
    let mut wb = announced(&g, "tcp", "takes-b", "add", 1).await;
    let rated_job = c.create_job("ratedtest", json!({"input": 0})).await;
    let add_jobs = [
        c.create_job("calltest", json!({"input": 1})).await,
        c.create_job("calltest", json!({"input": 2})).await,
    ];
    let offer = |o: Option<Value>| o.expect("an offer")["job_id"].as_i64().unwrap();
    let r_offer = offer(wr.notification("task_ready", WAIT).await);
    let a_offer = offer(wa.notification("task_ready", WAIT).await);
    let b_offer = offer(wb.notification("task_ready", WAIT).await);
    assert_eq!(r_offer, rated_job);
    let mut offered = [a_offer, b_offer];
    offered.sort_unstable();
    assert_eq!(
        offered, add_jobs,
        "each add worker is offered one of the two"
    );

    env.db
        .execute(
            "insert into jobcenter.action_rates (queue) \
             select action_id from jobcenter.actions where name = 'rated' and type = 'action' \
             on conflict do nothing",
            &[],
        )
        .await
        .unwrap();
    let blocker = env.tdb.connect().await.unwrap();
    blocker.batch_execute("begin").await.unwrap();
    blocker
        .execute("select 1 from jobcenter.action_rates for update", &[])
        .await
        .unwrap();
    env.db
        .execute("select jobcenter.withdraw('takes-b', 'add')", &[])
        .await
        .unwrap();

    let before = metric(&g, "jcapi_take_batches_total").await;
    wr.send(&json!({"jsonrpc": "2.0", "id": 100, "method": "get_task",
                    "params": {"actionname": "rated", "job_id": rated_job}}));
    let t0 = std::time::Instant::now();
    while metric(&g, "jcapi_take_batches_total").await == before {
        assert!(t0.elapsed() < WAIT, "the first take was not sent at once");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wa.send(&json!({"jsonrpc": "2.0", "id": 100, "method": "get_task",
                    "params": {"actionname": "add", "job_id": a_offer}}));
    wb.send(&json!({"jsonrpc": "2.0", "id": 100, "method": "get_task",
                    "params": {"actionname": "add", "job_id": b_offer}}));
    // Both add takes are answered while the first take still waits for the lock.
    let a_task = wa.response(json!(100)).await;
    let b_refused = wb.response(json!(100)).await;
    assert_eq!(a_task["result"][0], a_offer, "{a_task}");
    assert!(
        b_refused["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("takes-b")),
        "the withdrawn worker's own error: {b_refused}"
    );
    assert_eq!(
        metric(&g, "jcapi_take_batches_total").await - before,
        2,
        "the first take alone, the two after it in one transaction"
    );
    assert_eq!(
        job_state(&env.db, b_offer).await,
        "ready",
        "the refused take took nothing"
    );
    assert_eq!(job_state(&env.db, rated_job).await, "ready");

    blocker.batch_execute("commit").await.unwrap();
    let r_task = wr.response(json!(100)).await;
    assert_eq!(r_task["result"][0], rated_job, "{r_task}");
    for (w, task) in [(&wr, &r_task["result"]), (&wa, &a_task["result"])] {
        w.notify(
            "task_done",
            json!({"cookie": task[1], "outargs": add(&task[2])}),
        );
    }
    assert_eq!(c.job_done(rated_job).await, json!({"output": 3}));
    let a_input = if a_offer == add_jobs[0] { 1 } else { 2 };
    assert_eq!(c.job_done(a_offer).await, json!({"output": a_input + 3}));
}
