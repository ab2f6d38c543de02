//! Every SQL statement the bench sends: the engine's API calls (prepared once per
//! connection, as a driver in production would), the bulk statements that set rounds up,
//! the commit probe and the peer's (graphile-worker's) `add_job`.
//!
//! The API's names live here and nowhere else in the bench, so a renamed OUT column or a
//! changed type is adapted in this file alone. The API has the original JobCenter's shapes:
//! cookies are text, and `get_task` answers one row, all null when there is no task.

use anyhow::Context as _;
use serde_json::Value;
use tokio_postgres::{Client, Statement};

/// `create_job(workflow, arguments)` → the new job's id.
const CREATE_JOB: &str = "select job_id from jobcenter.create_job($1, $2)";

/// `get_task(worker, action, job id or null)` → job id, cookie and inputs; all null when
/// there is no task.
const GET_TASK: &str =
    "select o_job_id, o_job_cookie, o_in_args from jobcenter.get_task($1, $2, $3) \
     where o_job_id is not null";

/// `task_done(cookie, outputs)`.
const TASK_DONE: &str = "select jobcenter.task_done($1, $2)";

/// `get_tasks(worker, action, limit)` → up to `limit` tasks, one row each.
const GET_TASKS: &str =
    "select o_job_id, o_job_cookie, o_in_args from jobcenter.get_tasks($1, $2, $3)";

/// `tasks_done([{cookie, outargs}, …])` → one row per result, `o_code` null when applied.
const TASKS_DONE: &str = "select o_cookie, o_code, o_message from jobcenter.tasks_done($1)";

/// Creates jobs `$2 ..= $3` of workflow `$1` in one statement, input `{"input": i}`.
const CREATE_JOBS: &str = "select count(*) from generate_series($2::bigint, $3::bigint) i, \
     lateral jobcenter.create_job($1, jsonb_build_object('input', i))";

/// A task's (or a client's) prepared statements on one connection.
#[derive(Debug)]
pub struct Api {
    create_job: Statement,
    get_task: Statement,
    task_done: Statement,
    get_tasks: Statement,
    tasks_done: Statement,
}

/// A task taken by [`Api::get_task`].
#[derive(Debug, Clone)]
pub struct Task {
    pub job_id: i64,
    pub cookie: String,
    pub inargs: Value,
}

impl Api {
    /// Prepares the API calls on `c`.
    pub async fn prepare(c: &Client) -> anyhow::Result<Api> {
        let prepare = |sql: &'static str| async move {
            c.prepare(sql)
                .await
                .with_context(|| format!("could not prepare {sql}"))
        };
        Ok(Api {
            create_job: prepare(CREATE_JOB).await?,
            get_task: prepare(GET_TASK).await?,
            task_done: prepare(TASK_DONE).await?,
            get_tasks: prepare(GET_TASKS).await?,
            tasks_done: prepare(TASKS_DONE).await?,
        })
    }

    /// Starts a job of `workflow`; its id.
    pub async fn create_job(
        &self,
        c: &Client,
        workflow: &str,
        args: &Value,
    ) -> anyhow::Result<i64> {
        Ok(c.query_one(&self.create_job, &[&workflow, args])
            .await?
            .try_get(0)?)
    }

    /// Takes the oldest ready task of `action` (of job `job_id` if given) for `worker`;
    /// `None` when there is none.
    pub async fn get_task(
        &self,
        c: &Client,
        worker: &str,
        action: &str,
        job_id: Option<i64>,
    ) -> anyhow::Result<Option<Task>> {
        let row = c
            .query_opt(&self.get_task, &[&worker, &action, &job_id])
            .await?;
        row.map(|r| {
            Ok(Task {
                job_id: r.try_get(0)?,
                cookie: r.try_get(1)?,
                inargs: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Finishes the task holding `cookie` with `outargs`.
    pub async fn task_done(&self, c: &Client, cookie: &str, outargs: &Value) -> anyhow::Result<()> {
        c.execute(&self.task_done, &[&cookie, outargs]).await?;
        Ok(())
    }

    /// Takes up to `limit` tasks of `action` in one call.
    pub async fn get_tasks(
        &self,
        c: &Client,
        worker: &str,
        action: &str,
        limit: i32,
    ) -> anyhow::Result<Vec<Task>> {
        let rows = c
            .query(&self.get_tasks, &[&worker, &action, &limit])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Task {
                    job_id: r.try_get(0)?,
                    cookie: r.try_get(1)?,
                    inargs: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Finishes many tasks in one call; fails when any result was not applied.
    pub async fn tasks_done(&self, c: &Client, results: &[(String, Value)]) -> anyhow::Result<()> {
        let arg = Value::Array(
            results
                .iter()
                .map(|(cookie, out)| serde_json::json!({"cookie": cookie, "outargs": out}))
                .collect(),
        );
        for r in c.query(&self.tasks_done, &[&arg]).await? {
            let code: Option<String> = r.try_get(1)?;
            if let Some(code) = code {
                let cookie: Option<String> = r.try_get(0)?;
                let msg: Option<String> = r.try_get(2)?;
                anyhow::bail!(
                    "tasks_done refused {}: {code} {}",
                    cookie.unwrap_or_default(),
                    msg.unwrap_or_default()
                );
            }
        }
        Ok(())
    }
}

/// Announces that `worker` performs `action`.
pub async fn announce(c: &Client, worker: &str, action: &str) -> anyhow::Result<()> {
    c.execute(
        "select jobcenter.announce($1, $2, null, null)",
        &[&worker, &action],
    )
    .await
    .with_context(|| format!("worker {worker} could not announce {action}"))?;
    Ok(())
}

/// Creates jobs of `workflow` with inputs `from ..= to` in one statement (one transaction).
pub async fn create_jobs(c: &Client, workflow: &str, from: i64, to: i64) -> anyhow::Result<()> {
    c.query_one(CREATE_JOBS, &[&workflow, &from, &to])
        .await
        .with_context(|| format!("could not create jobs {from}..={to} of {workflow}"))?;
    Ok(())
}

/// The id of action (not workflow) `name`.
pub async fn action_id(c: &Client, name: &str) -> anyhow::Result<i32> {
    Ok(c.query_one(
        "select action_id from jobcenter.actions where name = $1 and type = 'action'",
        &[&name],
    )
    .await
    .with_context(|| format!("could not look up the id of action {name}"))?
    .try_get(0)?)
}

/// The installed extension's version (`pg_extension.extversion`).
pub async fn extension_version(c: &Client) -> anyhow::Result<String> {
    Ok(c.query_one(
        "select extversion from pg_extension where extname = 'jobcenter'",
        &[],
    )
    .await
    .context("could not read the extension's version")?
    .try_get(0)?)
}

/// Rows in the job tables: (`jobs`, `jobs_archive`, `job_task_log`).
pub async fn table_rows(c: &Client) -> anyhow::Result<(i64, i64, i64)> {
    let r = c
        .query_one(
            "select (select count(*) from jobcenter.jobs), \
                    (select count(*) from jobcenter.jobs_archive), \
                    (select count(*) from jobcenter.job_task_log)",
            &[],
        )
        .await
        .context("could not count the job tables' rows")?;
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

/// Steps (rows of `job_task_log`) logged for `job_id`.
pub async fn job_steps(c: &Client, job_id: i64) -> anyhow::Result<i64> {
    Ok(c.query_one(
        "select count(*) from jobcenter.job_task_log where job_id = $1",
        &[&job_id],
    )
    .await
    .context("could not count the job's steps")?
    .try_get(0)?)
}

/// A job's state and output.
pub async fn job_result(c: &Client, job_id: i64) -> anyhow::Result<(String, Option<Value>)> {
    let r = c
        .query_one(
            "select state::text, out_args from jobcenter.jobs where job_id = $1",
            &[&job_id],
        )
        .await
        .with_context(|| format!("could not read job {job_id}"))?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// Reserves `n` job ids (moves the jobs' sequence past them); the first.
pub async fn reserve_job_ids(c: &Client, n: i64) -> anyhow::Result<i64> {
    Ok(c.query_one(
        "with s as (select pg_get_serial_sequence('jobcenter.jobs', 'job_id') as seq) \
             select setval(seq, nextval(seq) + $1 - 1) - $1 + 1 from s",
        &[&n],
    )
    .await
    .context("could not reserve job ids")?
    .try_get(0)?)
}

/// Copies finished job `template` into `jobs_archive` as jobs `from ..= to` (input `i`,
/// created `i` ms apart), with its step log: the rows a long-running system accumulates.
pub async fn copy_finished_job(
    c: &Client,
    template: i64,
    from: i64,
    to: i64,
) -> anyhow::Result<()> {
    c.batch_execute("begin").await?;
    c.execute(
        "insert into jobcenter.jobs_archive (job_id, workflow_id, parentjob_id, state, \
             arguments, environment, variables, out_args, job_created, job_finished, \
             stepcounter) \
         select i, j.workflow_id, null, j.state, jsonb_build_object('input', i), \
             j.environment, j.variables, j.out_args, \
             j.job_created - (to_i - i) * interval '1 ms', \
             j.job_finished - (to_i - i) * interval '1 ms', j.stepcounter \
         from jobcenter.jobs j, generate_series($2::bigint, $3::bigint) i, \
             (select $3::bigint as to_i) t \
         where j.job_id = $1",
        &[&template, &from, &to],
    )
    .await
    .context("could not fill jobs_archive")?;
    c.execute(
        "insert into jobcenter.job_task_log (job_id, workflow_id, task_id, state, variables, \
             inargs, outargs, task_entered, task_started, task_completed, worker_id, \
             task_state) \
         select i, l.workflow_id, l.task_id, l.state, l.variables, l.inargs, l.outargs, \
             l.task_entered, l.task_started, l.task_completed, l.worker_id, l.task_state \
         from generate_series($2::bigint, $3::bigint) i, jobcenter.job_task_log l \
         where l.job_id = $1 order by i, l.job_task_log_id",
        &[&template, &from, &to],
    )
    .await
    .context("could not fill job_task_log")?;
    c.batch_execute("commit").await?;
    Ok(())
}

/// Vacuums and analyses the job tables, as autovacuum would have on a long-running system.
pub async fn vacuum_job_tables(c: &Client) -> anyhow::Result<()> {
    c.batch_execute("vacuum analyze jobcenter.jobs, jobcenter.jobs_archive, jobcenter.job_task_log")
        .await
        .context("could not vacuum the job tables")
}

/// The commit probe's table and statement: one single-row insert, committed on its own.
pub const PROBE_TABLE: &str =
    "create table if not exists bench_probe (id bigserial primary key, at timestamptz \
     not null default clock_timestamp()); truncate bench_probe";

/// One commit of the probe.
pub const PROBE_INSERT: &str = "insert into bench_probe default values";

/// graphile-worker's `add_job` of task `bench` with payload `{"id": $1}`.
pub const PEER_ADD_JOB: &str =
    "select graphile_worker.add_job('bench', json_build_object('id', $1::int))";

/// Rows left in graphile-worker's queue.
pub async fn peer_queued(c: &Client) -> anyhow::Result<i64> {
    Ok(
        c.query_one("select count(*) from graphile_worker.jobs", &[])
            .await
            .context("could not count graphile-worker's jobs")?
            .try_get(0)?,
    )
}
