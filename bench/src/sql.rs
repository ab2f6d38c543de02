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
     lateral jobcenter.create_job($1, jsonb_build_object('input', i), a_notify => $4)";

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
pub async fn create_jobs(
    c: &Client,
    workflow: &str,
    from: i64,
    to: i64,
    notify: bool,
) -> anyhow::Result<()> {
    c.query_one(CREATE_JOBS, &[&workflow, &from, &to, &notify])
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

/// Lets the gateway's role (the connection's) act for the gateway users `users`, who get
/// rows in `jc_roles`.
pub async fn allow_gateway_users(
    c: &Client,
    users: &[String],
    workers: &[String],
) -> anyhow::Result<()> {
    c.execute(
        "insert into jobcenter.jc_roles (rolename) select unnest($1::text[])",
        &[&users],
    )
    .await
    .context("could not add the gateway users to jobcenter.jc_roles")?;
    c.execute(
        "insert into jobcenter.jc_impersonate_roles (rolename, impersonates) \
         select current_user, unnest($1::text[])",
        &[&users],
    )
    .await
    .context("could not let the gateway's role impersonate its users")?;
    // The workers serve actions without role: (members of the default worker role).
    c.execute(
        "insert into jobcenter.jc_role_members (rolename, member_of) \
         select unnest($1::text[]), 'workers'",
        &[&workers],
    )
    .await
    .context("could not make the worker users members of workers")?;
    Ok(())
}

/// Sets the engine setting `name` (`jobcenter.settings`) to `value`.
pub async fn set_setting(c: &Client, name: &str, value: &Value) -> anyhow::Result<()> {
    c.execute(
        "insert into jobcenter.settings (name, value) values ($1, $2) \
         on conflict (name) do update set value = excluded.value",
        &[&name, value],
    )
    .await
    .with_context(|| format!("could not set {name}"))?;
    Ok(())
}

/// Standbys streaming from this server.
pub async fn streaming_standbys(c: &Client) -> anyhow::Result<i64> {
    Ok(c.query_one(
        "select count(*) from pg_stat_replication where state = 'streaming'",
        &[],
    )
    .await
    .context("could not read pg_stat_replication")?
    .try_get(0)?)
}

/// Makes every commit wait for a standby (`synchronous_standby_names = '*'`), or not.
pub async fn set_synchronous_standby(c: &Client, on: bool) -> anyhow::Result<()> {
    let names = if on { "'*'" } else { "''" };
    // Two statements: ALTER SYSTEM cannot run in the implicit transaction of a batch.
    c.batch_execute(&format!(
        "alter system set synchronous_standby_names = {names}"
    ))
    .await
    .context("could not set synchronous_standby_names")?;
    c.batch_execute("select pg_reload_conf()")
        .await
        .context("could not reload the settings")
}

/// Whether a top-level job created after `since` has finished: of workflow `workflow` if
/// given, of a client with an odd (or even) number if `client_parity` is given (inputs are
/// `client * span + n`).
pub async fn finished_since(
    c: &Client,
    since: std::time::SystemTime,
    workflow: Option<&str>,
    client_parity: Option<(i64, i64)>,
) -> anyhow::Result<bool> {
    let (span, parity) = client_parity.map_or((None, None), |(s, p)| (Some(s), Some(p)));
    let filter = "j.job_created > $1 and j.job_finished is not null and j.parentjob_id is null \
         and ($2::text is null or j.workflow_id in \
              (select action_id from jobcenter.actions where name = $2)) \
         and ($3::bigint is null or ((j.arguments ->> 'input')::bigint / $3) % 2 = $4)";
    let sql = format!(
        "select exists (select 1 from jobcenter.jobs j where {filter}) \
             or exists (select 1 from jobcenter.jobs_archive j where {filter})"
    );
    Ok(c.query_one(&sql, &[&since, &workflow, &span, &parity])
        .await
        .context("could not look for a finished job")?
        .try_get(0)?)
}

/// The live worker named `prefix…` holding the most tasks: its name, id and jobs.
pub async fn busiest_worker(
    c: &Client,
    prefix: &str,
) -> anyhow::Result<Option<(String, i64, Vec<i64>)>> {
    let row = c
        .query_opt(
            "select w.name, w.worker_id, array_agg(j.job_id) from jobcenter.jobs j \
             join jobcenter.workers w using (worker_id) \
             where j.state = 'working' and w.stopped is null and w.name like $1 || '%' \
             group by w.name, w.worker_id order by count(*) desc limit 1",
            &[&prefix],
        )
        .await
        .context("could not look for a busy worker")?;
    row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .transpose()
}

/// Of `jobs`, those still `working` for worker `worker_id` or waiting to retry.
pub async fn still_held(c: &Client, worker_id: i64, jobs: &[i64]) -> anyhow::Result<i64> {
    Ok(c.query_one(
        "select count(*) from jobcenter.jobs where job_id = any($1) \
         and (state = 'working' and worker_id = $2 or state = 'retrywait')",
        &[&jobs, &worker_id],
    )
    .await
    .context("could not look at the worker's jobs")?
    .try_get(0)?)
}

/// `pg_terminate_backend` of every session of the maestro and the gateways in this database;
/// how many.
pub async fn terminate_engine(c: &Client) -> anyhow::Result<i64> {
    Ok(c.query_one(
        "select count(*) filter (where pg_terminate_backend(pid)) from pg_stat_activity \
         where datname = current_database() and pid <> pg_backend_pid() \
           and application_name in ('maestro', 'jcapi')",
        &[],
    )
    .await
    .context("could not terminate the engine's sessions")?
    .try_get(0)?)
}

/// Opens a transaction whose snapshot holds back the database's xmin (vacuum cannot
/// remove what it might see) until it ends.
pub async fn hold_xmin(c: &Client) -> anyhow::Result<()> {
    c.batch_execute("begin isolation level repeatable read; select count(*) from jobcenter.jobs")
        .await
        .context("could not open the long transaction")
}

/// The state and outputs of `jobs` that exist, live or archived.
pub async fn job_ends(
    c: &Client,
    jobs: &[i64],
) -> anyhow::Result<Vec<(i64, String, Option<Value>)>> {
    c.query(
        "select job_id, state::text, out_args from jobcenter.jobs where job_id = any($1) \
         union all \
         select job_id, state::text, out_args from jobcenter.jobs_archive where job_id = any($1)",
        &[&jobs],
    )
    .await
    .context("could not read the jobs' ends")?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}

/// Jobs (any) whose end was logged more than once, and how often.
pub async fn ended_twice(c: &Client) -> anyhow::Result<Vec<(i64, i64)>> {
    c.query(
        "select job_id, count(*) from jobcenter.job_task_log \
         where state in ('finished', 'zombie', 'error') \
         group by job_id having count(*) > 1",
        &[],
    )
    .await
    .context("could not count the jobs' ends")?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// (job, task, times) of worker tasks whose outputs were applied (a `done` step) more than
/// once; the load's workflows run each task once.
pub async fn applied_twice(c: &Client) -> anyhow::Result<Vec<(i64, i32, i64)>> {
    c.query(
        "select l.job_id, l.task_id, count(*) from jobcenter.job_task_log l \
         join jobcenter.tasks t using (task_id) \
         join jobcenter.actions a on a.action_id = t.action_id \
         where a.type = 'action' and l.state = 'done' \
         group by l.job_id, l.task_id having count(*) > 1",
        &[],
    )
    .await
    .context("could not count the applied outputs")?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}

/// Jobs with a retry (a `retrywait` step), and the retries.
pub async fn retries(c: &Client) -> anyhow::Result<(i64, i64)> {
    let r = c
        .query_one(
            "select count(distinct job_id), count(*) from jobcenter.job_task_log \
             where state = 'retrywait'",
            &[],
        )
        .await
        .context("could not count the retries")?;
    Ok((r.try_get(0)?, r.try_get(1)?))
}

/// The error messages of the retries (`retrywait` steps), with how often each came.
pub async fn retry_causes(c: &Client) -> anyhow::Result<Vec<(String, i64)>> {
    c.query(
        "select coalesce(task_state -> 'error' ->> 'msg', ''), count(*) \
         from jobcenter.job_task_log where state = 'retrywait' group by 1",
        &[],
    )
    .await
    .context("could not read the retries' causes")?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect()
}

/// Live jobs (not ended) and whether each has a reason to move on: a time-out (a timer), or
/// a live child, a lock holder or a live worker of its action (a waker).
pub async fn live_jobs(c: &Client) -> anyhow::Result<Vec<(i64, String, bool)>> {
    c.query(
        "select j.job_id, j.state::text, case \
           when j.state in ('sleeping', 'retrywait', 'eventwait') then j.timeout is not null \
           when j.state = 'working' then j.timeout is not null or exists \
             (select 1 from jobcenter.workers w where w.worker_id = j.worker_id \
              and w.stopped is null) \
           when j.state = 'childwait' then exists (select 1 from jobcenter.jobs k \
             where k.parentjob_id = j.job_id and k.state not in ('finished', 'error', 'zombie')) \
           when j.state = 'lockwait' then exists (select 1 from jobcenter.locks l \
             join jobcenter.jobs h using (job_id) where h.state not in ('finished', 'error')) \
           when j.state = 'ready' then exists (select 1 from jobcenter.worker_actions wa \
             join jobcenter.workers w using (worker_id) \
             join jobcenter.actions a on a.action_id = wa.action_id \
             join jobcenter.actions r on r.action_id = j.ready_action_id \
             where w.stopped is null and a.name = r.name) \
           else false end \
         from jobcenter.jobs j where j.state not in ('finished', 'error', 'zombie') \
         order by j.job_id",
        &[],
    )
    .await
    .context("could not list the live jobs")?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
    .collect()
}

/// Rows left behind by ended jobs: (locks, event subscriptions, queued events).
pub async fn orphans(c: &Client) -> anyhow::Result<(i64, i64, i64)> {
    let ended = "j.state in ('finished', 'error', 'zombie')";
    let r = c
        .query_one(
            &format!(
                "select (select count(*) from jobcenter.locks l \
                         join jobcenter.jobs j using (job_id) where {ended}), \
                        (select count(*) from jobcenter.event_subscriptions s \
                         join jobcenter.jobs j using (job_id) where {ended}), \
                        (select count(*) from jobcenter.queued_events q \
                         join jobcenter.event_subscriptions s using (subscription_id) \
                         join jobcenter.jobs j using (job_id) where {ended})"
            ),
            &[],
        )
        .await
        .context("could not count the orphans")?;
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?))
}

/// The soak's sample of the job tables: rows of `jobs`, `job_task_log` and `jobs_archive`,
/// and their dead tuples together (the statistics collector's count).
pub async fn table_sample(c: &Client) -> anyhow::Result<(i64, i64, i64, i64)> {
    let r = c
        .query_one(
            "select (select count(*) from jobcenter.jobs), \
                    (select count(*) from jobcenter.job_task_log), \
                    (select count(*) from jobcenter.jobs_archive), \
                    (select coalesce(sum(n_dead_tup), 0)::bigint from pg_stat_user_tables \
                     where schemaname = 'jobcenter' \
                       and relname in ('jobs', 'job_task_log', 'jobs_archive'))",
            &[],
        )
        .await
        .context("could not sample the job tables")?;
    Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
}
