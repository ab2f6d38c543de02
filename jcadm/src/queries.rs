//! The read-only views: each a query on the documented tables, answered as JSON objects
//! (the `--json` output as it is; the tables are drawn from the same objects). A query about
//! one job reaches it through its primary key and the indexes on `parentjob_id` and
//! `job_task_log (job_id, …)`; lists of jobs page by job id (keyset), never by offset, and
//! a `since` becomes a lower bound on the job id too.

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

use crate::Error;

/// Rows of one jsonb column.
async fn objects(
    c: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Value>, Error> {
    c.query(sql, params)
        .await?
        .iter()
        .map(|r| Ok(r.try_get(0)?))
        .collect()
}

/// The filter of [`jobs`].
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub states: Vec<&'static str>,
    pub workflow: Option<String>,
    pub since: Option<SystemTime>,
    pub before: Option<i64>,
    pub limit: i64,
    pub archived: bool,
}

/// A time given as a date-time or as an interval before now (`2h`, `3 days`).
pub async fn resolve_since(c: &impl GenericClient, since: &str) -> Result<SystemTime, Error> {
    let looks_like_date = since.len() >= 10
        && since.as_bytes()[4] == b'-'
        && since[..4].bytes().all(|b| b.is_ascii_digit());
    let sql = if looks_like_date {
        "select $1::text::timestamptz"
    } else {
        "select now() - $1::text::interval"
    };
    let row = c.query_one(sql, &[&since]).await.map_err(|e| {
        Error::BadInput(format!(
            "--since {since}: not a time or an interval ({})",
            e.as_db_error()
                .map_or(e.to_string(), |d| d.message().to_owned())
        ))
    })?;
    Ok(row.try_get(0)?)
}

const JOB_ROW: &str = "jsonb_build_object('job_id', j.job_id, 'workflow', a.name,
    'version', a.version, 'state', j.state, 'task', ta.name, 'parentjob_id', j.parentjob_id,
    'created', j.job_created, 'finished', j.job_finished, 'priority', j.priority,
    'archived', false)";

/// The filter and page of `jobs` and `jobs_archive` (as `j`): $1 states, $2 workflow name,
/// $3 created since, $4 the cursor, $5 the page size, $6 the lowest job id that can have been
/// created since $3 (which bounds the backward scan of the primary key).
const JOB_FILTER: &str =
    "where ($1::text[] is null or j.state = any($1::text[]::jobcenter.job_state[]))
    and ($2::text is null or j.workflow_id in
         (select action_id from jobcenter.actions where name = $2 and type = 'workflow'))
    and ($3::timestamptz is null or j.job_created >= $3)
    and ($4::bigint is null or j.job_id < $4)
    and ($6::bigint is null or j.job_id >= $6)
    order by j.job_id desc limit $5";

/// Job ids grow with creation time, but a transaction that ran this long could have created
/// a job with a smaller id than one created before it.
const CREATION_SKEW: Duration = Duration::from_secs(3600);

/// The lowest job id of `table` that can have been created at or after `since`: a binary
/// search over the primary key (about 2·log2(rows) index probes; `jobs` has no index on
/// its creation time). Allows for [`CREATION_SKEW`]; the filter on `job_created` decides.
async fn first_id_since(
    c: &impl GenericClient,
    table: &str,
    since: SystemTime,
) -> Result<Option<i64>, Error> {
    let since = since
        .checked_sub(CREATION_SKEW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let bounds = format!("select min(job_id), max(job_id) from jobcenter.{table}");
    let row = c.query_one(&bounds, &[]).await?;
    let (Some(mut lo), Some(mut hi)) = (row.try_get::<_, Option<i64>>(0)?, row.try_get(1)?) else {
        return Ok(None);
    };
    // The first row at or after an id, and when it was created.
    let probe = format!(
        "select job_id, job_created >= $2 from jobcenter.{table} where job_id >= $1
         order by job_id limit 1"
    );
    // Invariant: every id below lo was created before `since`; hi may not be.
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let row = c.query_one(&probe, &[&mid, &since]).await?;
        let (id, recent): (i64, bool) = (row.try_get(0)?, row.try_get(1)?);
        if recent {
            hi = mid;
        } else {
            lo = id + 1;
        }
    }
    Ok(Some(lo))
}

/// Jobs, newest first, and the `before` of the next page (`None` on the last one).
pub async fn jobs(
    c: &impl GenericClient,
    f: &JobFilter,
) -> Result<(Vec<Value>, Option<i64>), Error> {
    let states: Option<Vec<&str>> = (!f.states.is_empty()).then(|| f.states.clone());
    let limit = f.limit.clamp(1, 10_000);
    let live_from = match f.since {
        Some(since) => first_id_since(c, "jobs", since).await?,
        None => None,
    };
    let archive_from = match f.since {
        Some(since) if f.archived => first_id_since(c, "jobs_archive", since).await?,
        _ => None,
    };
    // Each side reads its primary key (or jobs_state) backwards from the cursor.
    let live = format!(
        "select j.job_id, {JOB_ROW} as o from jobcenter.jobs j
         join jobcenter.actions a on a.action_id = j.workflow_id
         join jobcenter.tasks t on t.task_id = j.task_id
         join jobcenter.actions ta on ta.action_id = t.action_id
         {JOB_FILTER}"
    );
    let archived_filter = JOB_FILTER.replace("$6", "$7");
    let sql = if f.archived {
        format!(
            "select o from (
               ({live})
               union all
               (select j.job_id, jsonb_build_object('job_id', j.job_id, 'workflow', a.name,
                    'version', a.version, 'state', j.state, 'task', null,
                    'parentjob_id', j.parentjob_id, 'created', j.job_created,
                    'finished', j.job_finished, 'archived', true)
                from jobcenter.jobs_archive j
                join jobcenter.actions a on a.action_id = j.workflow_id
                {archived_filter})
             ) u order by job_id desc limit $5"
        )
    } else {
        format!("select o from ({live}) u order by job_id desc")
    };
    // One more than asked says whether there is a next page.
    let page = limit + 1;
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&states, &f.workflow, &f.since, &f.before, &page, &live_from];
    if f.archived {
        params.push(&archive_from);
    }
    let rows = objects(c, &sql, &params).await?;
    let mut rows = rows;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().and_then(|r| r["job_id"].as_i64())
    } else {
        None
    };
    Ok((rows, next))
}

/// Jobs in error (newest first), optionally of some workflows only.
pub async fn errors(
    c: &impl GenericClient,
    workflows: &[String],
    limit: i64,
) -> Result<Vec<Value>, Error> {
    let names: Option<&[String]> = (!workflows.is_empty()).then_some(workflows);
    objects(
        c,
        "select jsonb_build_object('job_id', j.job_id, 'workflow', a.name, 'version', a.version,
             'class', j.out_args #>> '{error,class}', 'msg', j.out_args #>> '{error,msg}',
             'task_id', j.out_args #> '{error,task_id}', 'task', ta.name,
             'line', j.out_args #> '{error,line}', 'error', j.out_args -> 'error',
             'finished', j.job_finished, 'parentjob_id', j.parentjob_id)
         from jobcenter.jobs j
         join jobcenter.actions a on a.action_id = j.workflow_id
         left join jobcenter.tasks t on t.task_id = (j.out_args #>> '{error,task_id}')::integer
         left join jobcenter.actions ta on ta.action_id = t.action_id
         where j.state = 'error' and ($1::text[] is null or a.name = any($1))
         order by j.job_id desc limit $2",
        &[&names, &limit.clamp(1, 10_000)],
    )
    .await
}

/// Held locks (with the jobs they go back to when inherited, `held` as holders of the value
/// against the lock type's limit, `2/3`, and `waiting` as the jobs waiting for the value) and
/// the jobs waiting for one (with the longest holder).
pub async fn locks(c: &impl GenericClient) -> Result<Value, Error> {
    let holders = objects(
        c,
        "select jsonb_build_object('locktype', l.locktype, 'lockvalue', l.lockvalue,
             'job_id', l.job_id, 'workflow', a.name, 'state', j.state, 'inherit', l.inherit,
             'inherited_from', to_jsonb(l.inherited_from),
             'waiting', (select count(*) from jobcenter.jobs w
                         where w.state = 'lockwait' and w.task_state -> 'lockwait'
                             = jsonb_build_object('type', l.locktype, 'value', l.lockvalue)),
             'taken', l.taken, 'held', count(*) over (partition by l.locktype, l.lockvalue)
                 || '/' || lt.max_holders)
         from jobcenter.locks l join jobcenter.jobs j using (job_id)
         join jobcenter.locktypes lt using (locktype)
         join jobcenter.actions a on a.action_id = j.workflow_id
         order by l.locktype, l.lockvalue, l.slot",
        &[],
    )
    .await?;
    let waiters = objects(
        c,
        "select jsonb_build_object('job_id', j.job_id, 'workflow', a.name,
             'locktype', j.task_state #>> '{lockwait,type}',
             'lockvalue', j.task_state #>> '{lockwait,value}',
             'holder', l.job_id, 'timeout', j.timeout, 'since', j.task_entered)
         from jobcenter.jobs j
         join jobcenter.actions a on a.action_id = j.workflow_id
         left join lateral (
             select l.job_id from jobcenter.locks l
             where l.locktype = j.task_state #>> '{lockwait,type}'
               and l.lockvalue = j.task_state #>> '{lockwait,value}'
             order by l.taken, l.slot limit 1) l on true
         where j.state = 'lockwait' order by j.job_id",
        &[],
    )
    .await?;
    Ok(json!({"holders": holders, "waiters": waiters}))
}

/// Live workers with their announced actions (and filters, rate and concurrency limits), tasks
/// in hand and last ping.
pub async fn workers(c: &impl GenericClient) -> Result<Vec<Value>, Error> {
    objects(
        c,
        "select jsonb_build_object('worker_id', w.worker_id, 'name', w.name,
             'started', w.started, 'last_ping', w.last_ping,
             'actions', coalesce((select jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
                     'action', a.name, 'version', a.version, 'filter', wa.filter,
                     'rate', a.config -> 'rate', 'concurrency', a.config -> 'concurrency'))
                     order by a.name, a.version)
                 from jobcenter.worker_actions wa join jobcenter.actions a using (action_id)
                 where wa.worker_id = w.worker_id), '[]'),
             'working', (select count(*) from jobcenter.jobs j
                 where j.worker_id = w.worker_id and j.state = 'working'))
         from jobcenter.workers w where w.stopped is null order by w.name",
        &[],
    )
    .await
}

/// The newest workflow versions calling an older version of a callee (the compiler's check).
pub async fn stale(c: &impl GenericClient) -> Result<Vec<Value>, Error> {
    Ok(jcc::db::stale(c)
        .await?
        .into_iter()
        .map(|s| {
            json!({"workflow": s.workflow, "version": s.version, "callee": s.callee,
                   "callee_version": s.callee_version, "newest": s.newest})
        })
        .collect())
}

/// Every schedule.
pub async fn schedules(c: &impl GenericClient) -> Result<Vec<Value>, Error> {
    objects(
        c,
        "select to_jsonb(s) from jobcenter.schedules s order by s.name",
        &[],
    )
    .await
}

/// Subscriptions (with how many events wait in each) and the queued events.
pub async fn events(c: &impl GenericClient) -> Result<Value, Error> {
    let subscriptions = objects(
        c,
        "select jsonb_build_object('subscription_id', s.subscription_id, 'job_id', s.job_id,
             'workflow', a.name, 'state', j.state, 'name', s.name, 'mask', s.mask,
             'queued', (select count(*) from jobcenter.queued_events q
                        where q.subscription_id = s.subscription_id))
         from jobcenter.event_subscriptions s join jobcenter.jobs j using (job_id)
         join jobcenter.actions a on a.action_id = j.workflow_id
         order by s.subscription_id",
        &[],
    )
    .await?;
    let queued = objects(
        c,
        "select jsonb_build_object('event_id', e.event_id, 'subscription_id', q.subscription_id,
             'job_id', s.job_id, 'name', s.name, 'when', e.\"when\", 'eventdata', e.eventdata)
         from jobcenter.queued_events q join jobcenter.job_events e using (event_id)
         join jobcenter.event_subscriptions s using (subscription_id)
         order by e.event_id, q.subscription_id",
        &[],
    )
    .await?;
    Ok(json!({"subscriptions": subscriptions, "queued": queued}))
}

/// One job (live or archived) and its step log, `at` being seconds since the job's creation.
pub async fn job(c: &impl GenericClient, id: i64) -> Result<Value, Error> {
    let row = c
        .query_opt(
            "with j as (
                select job_id, workflow_id, task_id, parentjob_id, state::text as state,
                       arguments, environment, variables, out_args, timeout, job_created,
                       job_finished, stepcounter, task_state, false as archived, priority
                from jobcenter.jobs where job_id = $1
                union all
                select job_id, workflow_id, null, parentjob_id, state::text, arguments,
                       environment, variables, out_args, null, job_created, job_finished,
                       stepcounter, null, true, null
                from jobcenter.jobs_archive where job_id = $1
                limit 1)
             select jsonb_build_object('job_id', j.job_id, 'workflow', a.name,
                'version', a.version, 'state', j.state, 'task_id', j.task_id, 'task', ta.name,
                'line', t.attributes -> 'line', 'parentjob_id', j.parentjob_id,
                'arguments', j.arguments, 'variables', j.variables, 'output', j.out_args,
                'environment', j.environment, 'timeout', j.timeout, 'created', j.job_created,
                'finished', j.job_finished, 'stepcounter', j.stepcounter,
                'task_state', j.task_state, 'archived', j.archived, 'priority', j.priority,
                'key', (select k.key from jobcenter.job_keys k where k.job_id = j.job_id
                        order by k.wfname limit 1),
                'steps', coalesce((
                    select jsonb_agg(jsonb_build_object('task_id', l.task_id, 'task', la.name,
                        'line', lt.attributes -> 'line', 'state', l.state,
                        'at', extract(epoch from l.task_completed - j.job_created)::float8,
                        'completed', l.task_completed, 'inargs', l.inargs,
                        'outargs', l.outargs, 'variables', l.variables,
                        'task_state', l.task_state, 'worker_id', l.worker_id)
                        order by l.job_task_log_id)
                    from jobcenter.job_task_log l
                    join jobcenter.tasks lt on lt.task_id = l.task_id
                    join jobcenter.actions la on la.action_id = lt.action_id
                    where l.job_id = j.job_id), '[]'))
             from j join jobcenter.actions a on a.action_id = j.workflow_id
             left join jobcenter.tasks t on t.task_id = j.task_id
             left join jobcenter.actions ta on ta.action_id = t.action_id",
            &[&id],
        )
        .await?
        .ok_or(Error::NoJob(id))?;
    Ok(row.try_get(0)?)
}

/// A job's family: from its top-level ancestor down, depth first, children by id, each with
/// its `depth`.
pub async fn tree(c: &impl GenericClient, id: i64) -> Result<Vec<Value>, Error> {
    let root: Option<i64> = c
        .query_one(
            "with recursive up (job_id, parent, n) as (
                select j.job_id, j.parentjob_id, 0 from (
                    select job_id, parentjob_id from jobcenter.jobs where job_id = $1
                    union all
                    select job_id, parentjob_id from jobcenter.jobs_archive where job_id = $1
                    limit 1) j
                union all
                select p.job_id, p.parentjob_id, up.n + 1 from up, lateral (
                    select job_id, parentjob_id from jobcenter.jobs where job_id = up.parent
                    union all
                    select job_id, parentjob_id from jobcenter.jobs_archive
                    where job_id = up.parent
                    limit 1) p
                where up.n < 1000)
             select (select job_id from up order by n desc limit 1)",
            &[&id],
        )
        .await?
        .try_get(0)?;
    let root = root.ok_or(Error::NoJob(id))?;
    objects(
        c,
        "with recursive down (job_id, depth, path) as (
            select $1::bigint, 0, array[$1::bigint]
            union all
            select k.job_id, d.depth + 1, d.path || k.job_id from down d, lateral (
                select job_id from jobcenter.jobs where parentjob_id = d.job_id
                union all
                select job_id from jobcenter.jobs_archive where parentjob_id = d.job_id) k
            where d.depth < 100)
         select jsonb_build_object('job_id', x.job_id, 'depth', d.depth,
             'parentjob_id', x.parentjob_id, 'workflow', a.name, 'version', a.version,
             'state', x.state, 'task', ta.name, 'created', x.job_created,
             'finished', x.job_finished, 'archived', x.archived, 'selected', x.job_id = $2)
         from down d, lateral (
             select job_id, workflow_id, task_id, parentjob_id, state::text as state,
                    job_created, job_finished, false as archived
             from jobcenter.jobs where job_id = d.job_id
             union all
             select job_id, workflow_id, null, parentjob_id, state::text, job_created,
                    job_finished, true
             from jobcenter.jobs_archive where job_id = d.job_id
             limit 1) x
         join jobcenter.actions a on a.action_id = x.workflow_id
         left join jobcenter.tasks t on t.task_id = x.task_id
         left join jobcenter.actions ta on ta.action_id = t.action_id
         order by d.path",
        &[&root, &id],
    )
    .await
}

/// The source of the workflow version a job runs (`src` is null when it was loaded without
/// one), and the line of its current task.
pub async fn source(c: &impl GenericClient, id: i64) -> Result<Value, Error> {
    let row = c
        .query_opt(
            "select jsonb_build_object('job_id', j.job_id, 'workflow', a.name,
                'version', a.version, 'state', j.state, 'src', a.src, 'srcmd5', a.srcmd5,
                'line', t.attributes -> 'line')
             from (select job_id, workflow_id, task_id, state::text as state
                   from jobcenter.jobs where job_id = $1
                   union all
                   select job_id, workflow_id, null, state::text
                   from jobcenter.jobs_archive where job_id = $1 limit 1) j
             join jobcenter.actions a on a.action_id = j.workflow_id
             left join jobcenter.tasks t on t.task_id = j.task_id",
            &[&id],
        )
        .await?
        .ok_or(Error::NoJob(id))?;
    Ok(row.try_get(0)?)
}

/// One line per job for a confirmation prompt: `ID workflow (state)`, or `ID (no such job)`.
pub async fn job_summaries(c: &impl GenericClient, ids: &[i64]) -> Result<Vec<String>, Error> {
    let rows = c
        .query(
            "select i.id, a.name, j.state::text from unnest($1::bigint[]) with ordinality i(id, n)
             left join jobcenter.jobs j on j.job_id = i.id
             left join jobcenter.actions a on a.action_id = j.workflow_id
             order by i.n",
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get(0)?;
            let wf: Option<String> = r.try_get(1)?;
            let state: Option<String> = r.try_get(2)?;
            Ok(match (wf, state) {
                (Some(wf), Some(state)) => format!("{id} {wf} ({state})"),
                _ => format!("{id} (no live job)"),
            })
        })
        .collect()
}
