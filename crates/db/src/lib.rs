//! Typed wrappers over the jobcenter extension's SQL API.
//!
//! Every function takes any `tokio_postgres::GenericClient` (a client or a transaction) and
//! maps the extension's SQLSTATEs (class `JC`) to [`ErrorCode`]s, so callers (the gateway, the
//! compiler, the tools and the tests) see the engine's errors with their meaning intact.

mod connect;
mod error;
mod tls;

pub use connect::{connect_config, pool, redact, Pg};
pub use error::{Error, ErrorCode};
pub use tls::{pem_certs, Tls};

use std::time::SystemTime;

use serde_json::Value;
use tokio_postgres::GenericClient;

/// Options of [`create_job`] beyond the workflow name and arguments.
#[derive(Debug, Clone, Default)]
pub struct CreateJob<'a> {
    /// Version tags to try, `a:b` tries `a`, then `b`, then the untagged versions.
    pub tag: Option<&'a str>,
    /// The role to act as (the session role must be allowed to impersonate it).
    pub impersonate: Option<&'a str>,
    /// Extra environment for the job.
    pub env: Option<&'a Value>,
    /// Start later: until then the job sleeps at its start task (the maestro starts it).
    pub start_at: Option<SystemTime>,
    /// Idempotency key: a create of the same workflow with the same key while its job lives,
    /// or within the `job_key_retention` setting after it ended, returns that job instead.
    pub key: Option<&'a str>,
    /// Priority, -1000 to 1000 (default 0): served before lower ones, bounded by aging (the
    /// `priority_aging` setting).
    pub priority: Option<i32>,
    /// A quiet job: its end is notified to nobody (`create_job`'s `a_notify => false`).
    pub quiet: bool,
}

/// A job created by [`create_job`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub job_id: i64,
    /// The channel notified when the job ends (`job:<id>:finished`).
    pub listen: String,
}

/// One take of [`pooled::takes`]: worker `worker` takes tasks of action `action`.
#[derive(Debug, Clone)]
pub struct Take<'a> {
    pub worker: &'a str,
    pub action: &'a str,
    pub what: TakeWhat,
}

/// What a [`Take`] takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeWhat {
    /// One task, as [`get_task`]: of this job, or the oldest.
    Job(Option<i64>),
    /// Up to this many, as [`get_tasks`].
    Up(i32),
}

/// A task taken by [`get_task`].
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub job_id: i64,
    /// The task's cookie (a UUID as text, as the original hands it out), for [`task_done`].
    pub cookie: String,
    pub inargs: Value,
    pub env: Option<Value>,
}

/// Starts a job of the newest version of workflow `wfname`.
pub async fn create_job(
    c: &impl GenericClient,
    wfname: &str,
    args: &Value,
    opts: CreateJob<'_>,
) -> Result<NewJob, Error> {
    let row = c
        .query_one(CREATE_JOB, &create_job_params(&wfname, args, &opts))
        .await?;
    new_job(&row)
}

type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);

fn create_job_params<'a>(
    wfname: &'a &str,
    args: &'a Value,
    opts: &'a CreateJob<'_>,
) -> [Param<'a>; 9] {
    [
        wfname,
        args,
        &opts.tag,
        &opts.impersonate,
        &opts.env,
        &opts.start_at,
        &opts.key,
        &opts.priority,
        &opts.quiet,
    ]
}

const CREATE_JOB: &str =
    "select job_id, listenstring from jobcenter.create_job($1, $2, $3, $4, $5, $6, $7, $8, not $9::boolean)";
const GET_JOB_STATUS: &str = "select o_out_args from jobcenter.get_job_status($1)";

fn new_job(row: &tokio_postgres::Row) -> Result<NewJob, Error> {
    Ok(NewJob {
        job_id: row.try_get(0)?,
        listen: row.try_get(1)?,
    })
}

/// The job's output once it has ended (`{"error": …}` for a job in error), `None` while it runs.
pub async fn get_job_status(c: &impl GenericClient, job_id: i64) -> Result<Option<Value>, Error> {
    let row = c.query_one(GET_JOB_STATUS, &[&job_id]).await?;
    Ok(row.try_get(0)?)
}

/// Announces that worker `worker` performs action `action`; returns the worker id.
pub async fn announce(
    c: &impl GenericClient,
    worker: &str,
    action: &str,
    impersonate: Option<&str>,
    filter: Option<&Value>,
) -> Result<i64, Error> {
    let row = c
        .query_one(
            "select worker_id from jobcenter.announce($1, $2, $3, $4)",
            &[&worker, &action, &impersonate, &filter],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// [`announce`] through gateway `gateway` (see [`gateway_register`]), in one statement, so
/// the worker is never announced without its gateway; returns the worker id.
pub async fn announce_via(
    c: &impl GenericClient,
    gateway: i32,
    worker: &str,
    action: &str,
    impersonate: Option<&str>,
    filter: Option<&Value>,
) -> Result<i64, Error> {
    let row = c
        .query_one(
            "select jobcenter.gateway_attach(a.worker_id, $5) \
             from jobcenter.announce($1, $2, $3, $4) a",
            &[&worker, &action, &impersonate, &filter, &gateway],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Records that worker `worker_id` is connected through gateway `gateway` (announced before
/// the gateway could register); returns the worker id.
pub async fn gateway_attach(
    c: &impl GenericClient,
    worker_id: i64,
    gateway: i32,
) -> Result<i64, Error> {
    let row = c
        .query_one(
            "select jobcenter.gateway_attach($1, $2)",
            &[&worker_id, &gateway],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Registers the session as a gateway named `name`, or as `again` after a reconnection, and
/// takes the gateway's lock for the session's lifetime: its id, and whether it is a new one
/// although `again` was given (that one was found dead: its workers must announce again).
pub async fn gateway_register(
    c: &impl GenericClient,
    again: Option<i32>,
    name: &str,
) -> Result<(i32, bool), Error> {
    let row = c
        .query_one(
            "select o_gateway_id, o_new from jobcenter.gateway_register($1, $2)",
            &[&again, &name],
        )
        .await?;
    Ok((row.try_get(0)?, row.try_get(1)?))
}

/// Withdraws an announcement; `false` when there was none.
pub async fn withdraw(c: &impl GenericClient, worker: &str, action: &str) -> Result<bool, Error> {
    let row = c
        .query_one("select jobcenter.withdraw($1, $2)", &[&worker, &action])
        .await?;
    Ok(row.try_get(0)?)
}

/// Ends a worker: its announcements go, its running tasks fail. `false` when no live worker
/// has that name.
pub async fn disconnect(c: &impl GenericClient, worker: &str) -> Result<bool, Error> {
    let row = c
        .query_one("select jobcenter.disconnect($1)", &[&worker])
        .await?;
    Ok(row.try_get(0)?)
}

/// Records that a worker is alive; `false` when no live worker has that id.
pub async fn ping(c: &impl GenericClient, worker_id: i64) -> Result<bool, Error> {
    let row = c
        .query_one("select jobcenter.ping($1)", &[&worker_id])
        .await?;
    let pong: Option<String> = row.try_get(0)?;
    Ok(pong.is_some())
}

const GET_TASK: &str =
    "select o_job_id, o_job_cookie, o_in_args, o_env from jobcenter.get_task($1, $2, $3)";
const GET_TASKS: &str =
    "select o_job_id, o_job_cookie, o_in_args, o_env from jobcenter.get_tasks($1, $2, $3)";
const TASKS_DONE: &str = "select o_cookie, o_code, o_message from jobcenter.tasks_done($1)";

const TASK_DONE: &str = "select jobcenter.task_done($1, $2)";

/// Takes a ready task of `action` (of `job_id`, or the oldest); `None` when there is none.
pub async fn get_task(
    c: &impl GenericClient,
    worker: &str,
    action: &str,
    job_id: Option<i64>,
) -> Result<Option<Task>, Error> {
    let r = c.query_one(GET_TASK, &[&worker, &action, &job_id]).await?;
    task_row(&r)
}

fn task_row(r: &tokio_postgres::Row) -> Result<Option<Task>, Error> {
    // No task is a row of nulls, as the original answers.
    let Some(job_id) = r.try_get(0)? else {
        return Ok(None);
    };
    Ok(Some(Task {
        job_id,
        cookie: r.try_get(1)?,
        inargs: r.try_get(2)?,
        env: r.try_get(3)?,
    }))
}

/// Finishes the task holding `cookie`; an `error` key in `outargs` fails it.
pub async fn task_done(c: &impl GenericClient, cookie: &str, outargs: &Value) -> Result<(), Error> {
    c.execute(TASK_DONE, &[&cookie, outargs]).await?;
    Ok(())
}

/// The outcome of result `cookie` from `task_done`'s answer, as `tasks_done` would report it:
/// applied, or the SQLSTATE and message of the refusal. `Err` when the connection failed.
fn lone_outcome(
    cookie: &str,
    answer: Result<(), tokio_postgres::Error>,
) -> Result<DoneOutcome, Error> {
    let (code, message) = match answer {
        Ok(_) => (None, None),
        Err(e) => match e.as_db_error() {
            Some(db) => (
                Some(db.code().code().to_owned()),
                Some(db.message().to_owned()),
            ),
            None => return Err(e.into()),
        },
    };
    Ok(DoneOutcome {
        cookie: Some(cookie.to_owned()),
        code,
        message,
    })
}

/// Takes up to `limit` (1 to 1000) ready tasks of `action` in one call and one transaction
/// (`get_tasks`); empty when there is none.
pub async fn get_tasks(
    c: &impl GenericClient,
    worker: &str,
    action: &str,
    limit: i32,
) -> Result<Vec<Task>, Error> {
    let rows = c.query(GET_TASKS, &[&worker, &action, &limit]).await?;
    task_rows(&rows)
}

fn task_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<Task>, Error> {
    rows.iter()
        .filter_map(|r| task_row(r).transpose())
        .collect()
}

/// What became of one result of [`tasks_done`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneOutcome {
    pub cookie: Option<String>,
    /// `None` when the result was applied, else the SQLSTATE `task_done` raised (`JC003` for a
    /// cookie that holds no task, `40P01`/`40001` when sending it again may succeed).
    pub code: Option<String>,
    pub message: Option<String>,
}

/// What [`pooled::tasks_done_reading_ends`] did: every result's outcome, and the outputs of
/// the asked-for jobs that have ended (or why they could not be read).
#[derive(Debug)]
pub struct DoneAndEnds {
    pub outcomes: Vec<DoneOutcome>,
    pub ends: Result<Vec<(i64, Value)>, Error>,
}

impl DoneOutcome {
    /// Whether sending the same result again may succeed (a deadlock or serialization
    /// failure of its own subtransaction).
    #[must_use]
    pub fn retryable(&self) -> bool {
        matches!(self.code.as_deref(), Some("40P01" | "40001"))
    }
}

/// Finishes many tasks in one transaction (`tasks_done`): `(cookie, outargs)` pairs, each
/// applied on its own, so one bad result fails only itself. One outcome per result, in order.
pub async fn tasks_done(
    c: &impl GenericClient,
    results: &[(&str, &Value)],
) -> Result<Vec<DoneOutcome>, Error> {
    let rows = c.query(TASKS_DONE, &[&tasks_done_arg(results)]).await?;
    done_rows(&rows)
}

fn tasks_done_arg(results: &[(&str, &Value)]) -> Value {
    Value::Array(
        results
            .iter()
            .map(|(cookie, out)| serde_json::json!({"cookie": cookie, "outargs": out}))
            .collect(),
    )
}

fn done_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<DoneOutcome>, Error> {
    rows.iter()
        .map(|r| {
            Ok(DoneOutcome {
                cookie: r.try_get(0)?,
                code: r.try_get(1)?,
                message: r.try_get(2)?,
            })
        })
        .collect()
}

/// The calls a gateway makes for every job and task, on a pooled connection that keeps each
/// statement prepared for its next call (`prepare_cached`): one round trip per call instead
/// of a prepare and an execute.
pub mod pooled {
    use super::{create_job_params, done_rows, ended_rows, lone_outcome, new_job, task_row};
    use super::{task_rows, tasks_done_arg, ENDED_JOBS};
    use super::{CreateJob, DoneAndEnds, DoneOutcome, Error, NewJob, Param, Take, TakeWhat, Task};
    use super::{CREATE_JOB, GET_JOB_STATUS, GET_TASK, GET_TASKS, TASKS_DONE, TASK_DONE};
    use serde_json::Value;

    /// The job id of a `get_task` that takes the oldest task: a take of one (`get_tasks`
    /// with a limit of 1 is `get_task` of no job, in the engine too).
    const NO_JOB: Option<i64> = None;

    /// [`super::create_job`] with a cached statement.
    pub async fn create_job(
        c: &deadpool_postgres::Client,
        wfname: &str,
        args: &Value,
        opts: CreateJob<'_>,
    ) -> Result<NewJob, Error> {
        let stmt = c.prepare_cached(CREATE_JOB).await?;
        let params = create_job_params(&wfname, args, &opts);
        new_job(&c.query_one(&stmt, &params).await?)
    }

    /// Runs `n` calls (`call(0)` .. `call(n - 1)`) in one transaction and one round trip:
    /// begin, the calls and commit, sent together (in this order as the futures are first
    /// polled, answered in the same order). `Some` with their answers when all of them and
    /// the commit succeeded; `None` when they are to be made [`one_by_one`]: a lone call (it
    /// needs no begin and commit), or one of them (or the commit) was refused, so the commit
    /// rolled everything back; `Err` when the connection failed (what was done is then
    /// unknown, as for a single call whose connection breaks).
    async fn together<T, F, Fut>(
        c: &deadpool_postgres::Client,
        n: usize,
        call: F,
    ) -> Result<Option<Vec<T>>, Error>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        if n < 2 {
            return Ok(None);
        }
        let (begin, answers, commit) = tokio::join!(
            c.batch_execute("begin"),
            futures_util::future::join_all((0..n).map(call)),
            c.batch_execute("commit"),
        );
        begin?;
        let mut out = Vec::with_capacity(n);
        let mut refused = false;
        for a in answers {
            match a {
                Ok(v) => out.push(v),
                // a refusal (or a call after it, in the aborted transaction)
                Err(e) if e.as_db_error().is_some() => refused = true,
                Err(e) => return Err(e.into()),
            }
        }
        match commit {
            Ok(()) if !refused => Ok(Some(out)),
            Ok(()) => Ok(None),
            Err(e) if e.as_db_error().is_some() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The calls of a batch [`together`] did not make, each in a transaction of its own, so
    /// that each refusal is its own; `Err` when the connection failed.
    async fn one_by_one<T, F, Fut>(n: usize, call: F) -> Result<Vec<Result<T, Error>>, Error>
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            match call(i).await {
                Err(Error::Postgres(e)) if e.as_db_error().is_none() => {
                    return Err(Error::Postgres(e))
                }
                r => out.push(r),
            }
        }
        Ok(out)
    }

    /// [`create_job`] of several jobs in one transaction and one round trip ([`together`]),
    /// so that they share one commit: one flush, and for jobs that notify one turn at
    /// PostgreSQL's notification lock, which serialises the commits of notifying
    /// transactions. Should one of them be refused, each is created again in a transaction of
    /// its own, so one create's error is its own; a lone one is made as [`create_job`]. `Err`
    /// only when the connection failed, as a single create's would: which jobs were made is
    /// then unknown.
    pub async fn create_jobs(
        c: &deadpool_postgres::Client,
        jobs: &[(&str, &Value, CreateJob<'_>)],
    ) -> Result<Vec<Result<NewJob, Error>>, Error> {
        let stmt = c.prepare_cached(CREATE_JOB).await?;
        let names: Vec<&str> = jobs.iter().map(|(w, _, _)| *w).collect();
        let params: Vec<[Param<'_>; 9]> = jobs
            .iter()
            .zip(&names)
            .map(|((_, args, opts), w)| create_job_params(w, args, opts))
            .collect();
        let (stmt, params) = (&stmt, &params);
        if let Some(rows) = together(c, jobs.len(), |i| c.query_one(stmt, &params[i])).await? {
            return Ok(rows.iter().map(new_job).collect());
        }
        one_by_one(jobs.len(), |i| {
            let (wfname, args, opts) = &jobs[i];
            create_job(c, wfname, args, opts.clone())
        })
        .await
    }

    /// Takes of several workers in one transaction and one round trip ([`together`]), so
    /// that they share one commit flush: each is [`get_task`] (with its job id) or
    /// [`get_tasks`] (with its limit), answered with the tasks it got. Should one of them be
    /// refused (say, a worker that is gone), each is taken again in a transaction of its
    /// own, so one take's error is its own; a lone one is made as [`get_task`] or
    /// [`get_tasks`]. `Err` only when the connection failed.
    pub async fn takes(
        c: &deadpool_postgres::Client,
        takes: &[Take<'_>],
    ) -> Result<Vec<Result<Vec<Task>, Error>>, Error> {
        let one = c.prepare_cached(GET_TASK).await?;
        let many = c.prepare_cached(GET_TASKS).await?;
        let params: Vec<[Param<'_>; 3]> = takes
            .iter()
            .map(|t| -> [Param<'_>; 3] {
                match &t.what {
                    TakeWhat::Job(job_id) => [&t.worker, &t.action, job_id],
                    TakeWhat::Up(1) => [&t.worker, &t.action, &NO_JOB],
                    TakeWhat::Up(limit) => [&t.worker, &t.action, limit],
                }
            })
            .collect();
        let (one, many, params) = (&one, &many, &params);
        let call = |i: usize| {
            let stmt = match takes[i].what {
                TakeWhat::Job(_) | TakeWhat::Up(1) => one,
                TakeWhat::Up(_) => many,
            };
            c.query(stmt, &params[i])
        };
        if let Some(answers) = together(c, takes.len(), call).await? {
            return answers.iter().map(|rows| Ok(task_rows(rows))).collect();
        }
        one_by_one(takes.len(), |i| async move {
            let t = &takes[i];
            match t.what {
                TakeWhat::Job(job_id) => Ok(get_task(c, t.worker, t.action, job_id)
                    .await?
                    .into_iter()
                    .collect()),
                TakeWhat::Up(limit) => get_tasks(c, t.worker, t.action, limit).await,
            }
        })
        .await
    }

    /// [`super::get_job_status`] with a cached statement.
    pub async fn get_job_status(
        c: &deadpool_postgres::Client,
        job_id: i64,
    ) -> Result<Option<Value>, Error> {
        let stmt = c.prepare_cached(GET_JOB_STATUS).await?;
        Ok(c.query_one(&stmt, &[&job_id]).await?.try_get(0)?)
    }

    /// [`super::ended_jobs`] with a cached statement.
    pub async fn ended_jobs(
        c: &deadpool_postgres::Client,
        job_ids: &[i64],
    ) -> Result<Vec<(i64, Value)>, Error> {
        let stmt = c.prepare_cached(ENDED_JOBS).await?;
        ended_rows(&c.query(&stmt, &[&job_ids]).await?)
    }

    /// [`super::get_task`] with a cached statement.
    pub async fn get_task(
        c: &deadpool_postgres::Client,
        worker: &str,
        action: &str,
        job_id: Option<i64>,
    ) -> Result<Option<Task>, Error> {
        let stmt = c.prepare_cached(GET_TASK).await?;
        task_row(&c.query_one(&stmt, &[&worker, &action, &job_id]).await?)
    }

    /// [`super::get_tasks`] with a cached statement; one task is taken with `get_task`, as
    /// `get_tasks` of one would take it, without its set-returning layer (0.05 ms a take under
    /// `bench --e2e`, 10 workers).
    pub async fn get_tasks(
        c: &deadpool_postgres::Client,
        worker: &str,
        action: &str,
        limit: i32,
    ) -> Result<Vec<Task>, Error> {
        if limit == 1 {
            return Ok(get_task(c, worker, action, None)
                .await?
                .into_iter()
                .collect());
        }
        let stmt = c.prepare_cached(GET_TASKS).await?;
        task_rows(&c.query(&stmt, &[&worker, &action, &limit]).await?)
    }

    /// [`super::tasks_done`] with a cached statement; a lone result is finished by
    /// `task_done`, whose refusal is its outcome: `tasks_done` would run it in a
    /// subtransaction of its own, a fifth more (0.47 -> 0.59 ms, one client).
    pub async fn tasks_done(
        c: &deadpool_postgres::Client,
        results: &[(&str, &Value)],
    ) -> Result<Vec<DoneOutcome>, Error> {
        if let [(cookie, out)] = results {
            let stmt = c.prepare_cached(TASK_DONE).await?;
            let answer = c.execute(&stmt, &[cookie, out]).await.map(|_| ());
            return Ok(vec![lone_outcome(cookie, answer)?]);
        }
        let stmt = c.prepare_cached(TASKS_DONE).await?;
        done_rows(&c.query(&stmt, &[&tasks_done_arg(results)]).await?)
    }

    /// [`tasks_done`], then in the same transaction [`ended_jobs`] of `job_ids`: the outputs
    /// of those of them that have ended (the ends these results made among them), read before
    /// anyone else is told of the ends (at the commit). The four statements (begin, the two
    /// calls, commit) go in one round trip. Should the read fail, the transaction is rolled
    /// back and the results are finished again without it; `ends` is then its error. A lone
    /// result is finished by `task_done`, as [`tasks_done`] finishes one: its refusal aborts
    /// the transaction, so nothing ended and `ends` is empty.
    pub async fn tasks_done_reading_ends(
        c: &deadpool_postgres::Client,
        results: &[(&str, &Value)],
        job_ids: &[i64],
    ) -> Result<DoneAndEnds, Error> {
        // a lone result is finished by task_done, as tasks_done finishes one
        let lone = match results {
            [(cookie, out)] => Some((*cookie, *out)),
            _ => None,
        };
        let done = c
            .prepare_cached(if lone.is_some() {
                TASK_DONE
            } else {
                TASKS_DONE
            })
            .await?;
        let ended = c.prepare_cached(ENDED_JOBS).await?;
        let arg;
        let done_params: Vec<Param<'_>> = match &lone {
            Some((cookie, out)) => vec![cookie, *out],
            None => {
                arg = tasks_done_arg(results);
                vec![&arg]
            }
        };
        let ended_params: [Param<'_>; 1] = [&job_ids];
        // Sent in this order as the futures are first polled, answered in the same order. A
        // failed statement aborts the transaction, and its commit then rolls it back.
        let (begin, answer, ends, commit) = tokio::join!(
            c.batch_execute("begin"),
            c.query(&done, &done_params),
            c.query(&ended, &ended_params),
            c.batch_execute("commit"),
        );
        begin?;
        let outcomes = match lone {
            Some((cookie, _)) => vec![lone_outcome(cookie, answer.map(|_| ()))?],
            None => done_rows(&answer?)?,
        };
        commit?;
        // a refused lone result aborted the transaction: nothing ended, the read failed with it
        if lone.is_some() && outcomes[0].code.is_some() {
            return Ok(DoneAndEnds {
                outcomes,
                ends: Ok(Vec::new()),
            });
        }
        match ends {
            Ok(ends) => Ok(DoneAndEnds {
                outcomes,
                ends: ended_rows(&ends),
            }),
            Err(e) => Ok(DoneAndEnds {
                outcomes: tasks_done(c, results).await?,
                ends: Err(e.into()),
            }),
        }
    }
}

/// Publishes an event; returns its id (`raise_event_id`; the original's `raise_event` answers
/// `true`).
pub async fn raise_event(c: &impl GenericClient, event: &Value) -> Result<i64, Error> {
    let row = c
        .query_one("select jobcenter.raise_event_id($1)", &[event])
        .await?;
    Ok(row.try_get(0)?)
}

/// Publishes an event as identity `who` (the session role must be allowed to impersonate
/// it): the event reaches only the jobs `who` may raise events to; returns its id.
pub async fn raise_event_as(
    c: &impl GenericClient,
    event: &Value,
    who: &str,
) -> Result<i64, Error> {
    // The impersonation is set for this statement's transaction only, before the call runs.
    let row = c
        .query_one(
            "with s as materialized (select set_config('jobcenter.impersonate', $2, true)) \
             select jobcenter.raise_event_id($1) from s",
            &[event, &who],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Cancels a live job; one whose task a worker is running only with `force` (else JC007).
pub async fn cancel_job(
    c: &impl GenericClient,
    job_id: i64,
    reason: &str,
    force: bool,
) -> Result<(), Error> {
    c.execute(
        "select jobcenter.cancel_job($1, $2, $3)",
        &[&job_id, &reason, &force],
    )
    .await?;
    Ok(())
}

/// Restarts a job in error from its start.
pub async fn retry_job(c: &impl GenericClient, job_id: i64, reason: &str) -> Result<(), Error> {
    c.execute("select jobcenter.retry_job($1, $2)", &[&job_id, &reason])
        .await?;
    Ok(())
}

/// Jobs whose arguments contain `filter`, optionally in `state`.
pub async fn find_jobs(
    c: &impl GenericClient,
    filter: &Value,
    state: Option<&str>,
) -> Result<Vec<i64>, Error> {
    let row = c
        .query_one("select jobcenter.find_jobs($1, $2)", &[filter, &state])
        .await?;
    Ok(row.try_get(0)?)
}

/// Whether a job the session's identity may reach holds lock (`locktype`, `lockvalue`).
pub async fn check_if_lock_exists(
    c: &impl GenericClient,
    locktype: &str,
    lockvalue: &str,
) -> Result<bool, Error> {
    let row = c
        .query_one(
            "select jobcenter.check_if_lock_exists($1, $2)",
            &[&locktype, &lockvalue],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// [`check_if_lock_exists`] asked as identity `who` (the session role must be allowed to
/// impersonate it): a lock held by a job `who` may not reach is answered as no lock.
pub async fn check_if_lock_exists_as(
    c: &impl GenericClient,
    locktype: &str,
    lockvalue: &str,
    who: &str,
) -> Result<bool, Error> {
    let row = c
        .query_one(
            "with s as materialized (select set_config('jobcenter.impersonate', $3, true)) \
             select jobcenter.check_if_lock_exists($1, $2) from s",
            &[&locktype, &lockvalue, &who],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// The interface and settings of the newest version of a workflow.
pub async fn get_workflow_info(c: &impl GenericClient, wfname: &str) -> Result<Value, Error> {
    let row = c
        .query_one("select jobcenter.get_workflow_info($1)", &[&wfname])
        .await?;
    Ok(row.try_get(0)?)
}

/// Writes a compiled model as a new version; returns its action id.
pub async fn load_model(
    c: &impl GenericClient,
    model: &jcl::Model,
    tags: &[&str],
) -> Result<i32, Error> {
    let json = serde_json::to_value(model)?;
    let tags: Option<Vec<&str>> = (!tags.is_empty()).then(|| tags.to_vec());
    let row = c
        .query_one("select jobcenter.load_action($1, $2)", &[&json, &tags])
        .await?;
    Ok(row.try_get(0)?)
}

async fn call_count(c: &impl GenericClient, sql: &str) -> Result<i32, Error> {
    let row = c.query_one(sql, &[]).await?;
    Ok(row.try_get(0)?)
}

/// Fires every due timeout; returns how many jobs it handled.
pub async fn do_timeout(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_timeout()").await
}

/// Drives on every job left runnable by a crash; returns how many.
pub async fn do_crash_recovery(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_crash_recovery()").await
}

/// Archives ended job trees past their retention; returns how many jobs moved.
pub async fn do_archival_and_cleanup(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_archival_and_cleanup()").await
}

/// Withdraws the workers of dead gateways, and applies the dead-worker policy to their tasks
/// after the grace; returns how many workers it withdrew.
pub async fn do_gateway_check(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_gateway_check()").await
}

/// Disconnects workers that stopped pinging; returns how many.
pub async fn do_worker_check(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_worker_check()").await
}

/// Seconds until the earliest timeout, `None` when no timeout is set.
pub async fn next_timeout(c: &impl GenericClient) -> Result<Option<f64>, Error> {
    let row = c.query_one("select jobcenter.next_timeout()", &[]).await?;
    Ok(row.try_get(0)?)
}

/// Fires every due schedule once; returns how many jobs it created.
pub async fn do_schedules(c: &impl GenericClient) -> Result<i32, Error> {
    call_count(c, "select jobcenter.do_schedules()").await
}

/// Seconds until the earliest run of an enabled schedule, `None` when there is none.
pub async fn next_schedule(c: &impl GenericClient) -> Result<Option<f64>, Error> {
    let row = c.query_one("select jobcenter.next_schedule()", &[]).await?;
    Ok(row.try_get(0)?)
}

/// A schedule for [`create_schedule`]: workflow `wfname` started whenever `cron` fires.
#[derive(Debug, Clone)]
pub struct Schedule<'a> {
    pub name: &'a str,
    pub wfname: &'a str,
    /// Six fields, `sec min hour day-of-month month day-of-week` (optionally a year).
    pub cron: &'a str,
    pub args: &'a Value,
    /// An IANA time zone, e.g. `UTC` or `Europe/Amsterdam`.
    pub timezone: &'a str,
    /// `skip` or `catchup` (fire once for all missed runs).
    pub missed: &'a str,
    pub tag: Option<&'a str>,
    pub env: Option<&'a Value>,
    pub impersonate: Option<&'a str>,
    pub enabled: bool,
    /// Replace a schedule of the same name instead of failing.
    pub replace: bool,
}

impl<'a> Schedule<'a> {
    /// An enabled schedule in UTC that skips missed runs.
    pub fn new(name: &'a str, wfname: &'a str, cron: &'a str, args: &'a Value) -> Schedule<'a> {
        Schedule {
            name,
            wfname,
            cron,
            args,
            timezone: "UTC",
            missed: "skip",
            tag: None,
            env: None,
            impersonate: None,
            enabled: true,
            replace: false,
        }
    }
}

/// Creates (or replaces) a schedule; returns its first run.
pub async fn create_schedule(
    c: &impl GenericClient,
    s: &Schedule<'_>,
) -> Result<SystemTime, Error> {
    let row = c
        .query_one(
            "select jobcenter.create_schedule($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[
                &s.name,
                &s.wfname,
                &s.cron,
                s.args,
                &s.timezone,
                &s.missed,
                &s.tag,
                &s.env,
                &s.impersonate,
                &s.enabled,
                &s.replace,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Removes a schedule; `false` when there was none.
pub async fn drop_schedule(c: &impl GenericClient, name: &str) -> Result<bool, Error> {
    let row = c
        .query_one("select jobcenter.drop_schedule($1)", &[&name])
        .await?;
    Ok(row.try_get(0)?)
}

/// Enables or disables a schedule; enabling starts counting from now.
pub async fn enable_schedule(
    c: &impl GenericClient,
    name: &str,
    enabled: bool,
) -> Result<(), Error> {
    c.execute(
        "select jobcenter.enable_schedule($1, $2)",
        &[&name, &enabled],
    )
    .await?;
    Ok(())
}

/// Who created a job (its environment's `jcclient`), live or archived; `None` when there is
/// no such job or it names nobody. The gateway checks it before acting on a job for a user.
pub async fn job_client(c: &impl GenericClient, job_id: i64) -> Result<Option<String>, Error> {
    let row = c
        .query_opt(
            "select environment ->> 'jcclient' from jobcenter.jobs where job_id = $1
             union all
             select environment ->> 'jcclient' from jobcenter.jobs_archive where job_id = $1
             limit 1",
            &[&job_id],
        )
        .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

/// [`find_jobs`] restricted to the jobs `client` created.
pub async fn find_client_jobs(
    c: &impl GenericClient,
    filter: &Value,
    state: Option<&str>,
    client: &str,
) -> Result<Vec<i64>, Error> {
    let rows = c
        .query(
            "select f.id from unnest(jobcenter.find_jobs($1, $2)) as f(id)
             where exists (select 1 from jobcenter.jobs j
                           where j.job_id = f.id and j.environment ->> 'jcclient' = $3)
                or exists (select 1 from jobcenter.jobs_archive j
                           where j.job_id = f.id and j.environment ->> 'jcclient' = $3)
             order by f.id",
            &[filter, &state, &client],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// A job (live or archived) with its workflow, state, output and step log, as a JSON object
/// `{job_id, workflow, version, state, arguments, output, parentjob_id, created, finished,
/// archived, steps: [{task_id, state, inargs, outargs, variables, task_entered, task_started,
/// task_completed, worker_id, task_state}]}`; `None` for no such job.
pub async fn job_info(c: &impl GenericClient, job_id: i64) -> Result<Option<Value>, Error> {
    let row = c
        .query_opt(
            "with j as (
                select job_id, workflow_id, state::text as state, arguments, out_args,
                       parentjob_id, job_created, job_finished, false as archived
                from jobcenter.jobs where job_id = $1
                union all
                select job_id, workflow_id, state::text, arguments, out_args,
                       parentjob_id, job_created, job_finished, true
                from jobcenter.jobs_archive where job_id = $1
                limit 1)
             select jsonb_build_object(
                'job_id', j.job_id, 'workflow', a.name, 'version', a.version,
                'state', j.state, 'arguments', coalesce(j.arguments, '{}'),
                'output', case when j.state in ('finished', 'error', 'zombie') then j.out_args end,
                'parentjob_id', j.parentjob_id, 'created', j.job_created,
                'finished', j.job_finished, 'archived', j.archived,
                'steps', coalesce((
                    select jsonb_agg(jsonb_build_object(
                        'task_id', l.task_id, 'state', l.state, 'inargs', l.inargs,
                        'outargs', l.outargs, 'variables', l.variables,
                        'task_entered', l.task_entered, 'task_started', l.task_started,
                        'task_completed', l.task_completed, 'worker_id', l.worker_id,
                        'task_state', l.task_state) order by l.job_task_log_id)
                    from jobcenter.job_task_log l where l.job_id = j.job_id), '[]'))
             from j join jobcenter.actions a on a.action_id = j.workflow_id",
            &[&job_id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// The ready queue of `action` (one for all its versions) when worker `worker_id` announced
/// it: its tasks notify `action:<queue>:ready`; `None` when it did not announce it.
pub async fn announced_action(
    c: &impl GenericClient,
    worker_id: i64,
    action: &str,
) -> Result<Option<i32>, Error> {
    let row = c
        .query_opt(
            "select jobcenter.action_queue(a.name) from jobcenter.worker_actions wa
             join jobcenter.actions a using (action_id)
             where wa.worker_id = $1 and a.name = $2 and a.type = 'action'
             order by a.version desc limit 1",
            &[&worker_id, &action],
        )
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get(0)?),
        None => None,
    })
}

/// How many tasks of each of the ready queues `action_ids` (from [`announced_action`]) are
/// `ready` (waiting for a worker) and may start now (no more than an action's rate limit and
/// concurrency limit let), for the queues that have any.
pub async fn ready_counts(
    c: &impl GenericClient,
    action_ids: &[i32],
) -> Result<Vec<(i32, i64)>, Error> {
    let rows = c
        .query(
            "select * from (
                 select ready_action_id,
                        least(count(*), jobcenter.start_room(ready_action_id)) as n
                 from jobcenter.jobs
                 where state = 'ready' and ready_action_id = any($1)
                 group by ready_action_id) c
             where n > 0",
            &[&action_ids],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Of `job_ids`, those that have ended (or are unknown), with the outputs
/// [`get_job_status`] would answer for them. For the gateway, which reads the jobs itself
/// (`jobcenter_gateway`) and has checked that each waiter may see its job.
pub async fn ended_jobs(
    c: &impl GenericClient,
    job_ids: &[i64],
) -> Result<Vec<(i64, Value)>, Error> {
    ended_rows(&c.query(ENDED_JOBS, &[&job_ids]).await?)
}

/// The ended jobs read from their rows (live or archived: archival moves a row in one
/// transaction, so a snapshot sees it in one table, and each table is probed by its primary
/// key, whatever the sizes a generic plan was made with), and only an id in neither through
/// `get_job_status`, for its answer to an unknown job. That function cost 0.14 ms a job under
/// a gateway's load (`bench --e2e`, 10 workers), most of it the check that the caller may see
/// the job, which always holds for the gateway: it impersonates the job's client, and it
/// checks a waiter's claim to a job itself. Four ended jobs, one client, with the round trip:
/// 0.38 ms through get_job_status, 0.13 ms read from the rows.
const ENDED_JOBS: &str = "select id, out from (
         select u.id, case when r.state is null
                 then (select s.o_out_args from jobcenter.get_job_status(u.id) s)
                 when r.state in ('finished', 'error', 'zombie') then r.out_args end as out
         from unnest($1::bigint[]) as u(id)
         left join lateral (
             select j.state, j.out_args from jobcenter.jobs j where j.job_id = u.id
             union all
             select a.state, a.out_args from jobcenter.jobs_archive a where a.job_id = u.id
             limit 1) r on true) e
     where out is not null";

fn ended_rows(rows: &[tokio_postgres::Row]) -> Result<Vec<(i64, Value)>, Error> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}
