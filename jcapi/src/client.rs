//! The client methods: each calls the engine on behalf of the authenticated user (who is
//! passed as `impersonate`, so the engine checks that user's roles and records them as the
//! job's `jcclient`), and none reaches a job another user created.
//!
//! They need no connection state, so the stream connections and HTTP POST share them.

use jc_proto::methods::{
    CancelJob, CheckIfLockExists, CreateJob, CreateJobResult, FindJobs, GetJob, GetJobStatus,
    JobInfo, JobStatus, RaiseEvent, RetryJob,
};
use jc_proto::{ErrorKind, ErrorObject, Method, Request};
use serde_json::{json, Value};

use crate::server::Shared;

/// The result of `M` as JSON.
pub(crate) fn ok<M: Method>(result: M::Result) -> Result<Value, ErrorObject> {
    serde_json::to_value(result)
        .map_err(|e| ErrorObject::new(ErrorKind::InternalError, e.to_string()))
}

/// Refuses unless `who` created job `job_id`. Another user's job gets the same answer as
/// no job at all, so job ids tell nothing about other users.
async fn own_job(shared: &Shared, who: &str, job_id: i64) -> Result<(), ErrorObject> {
    let db = shared.db().await?;
    match jc_db::job_client(&**db, job_id).await {
        Ok(Some(client)) if client == who => Ok(()),
        Ok(_) => Err(ErrorObject::new(
            ErrorKind::UnknownJob,
            format!("no job {job_id}"),
        )),
        Err(e) => Err(shared.db_error(e)),
    }
}

/// Runs client method `r` for `who`; `None` when `r` is not a client method.
pub(crate) async fn call(
    shared: &Shared,
    who: &str,
    r: &Request,
) -> Option<Result<Value, ErrorObject>> {
    Some(match r.method.as_str() {
        CreateJob::NAME => create_job(shared, who, r).await,
        GetJobStatus::NAME => get_job_status(shared, who, r).await,
        FindJobs::NAME => find_jobs(shared, who, r).await,
        CheckIfLockExists::NAME => check_if_lock_exists(shared, who, r).await,
        CancelJob::NAME => cancel_job(shared, who, r).await,
        RetryJob::NAME => retry_job(shared, who, r).await,
        RaiseEvent::NAME => raise_event(shared, who, r).await,
        GetJob::NAME => get_job(shared, who, r).await,
        _ => return None,
    })
}

async fn create_job(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<CreateJob>()?;
    if !p.inargs.is_object() {
        return ok::<CreateJob>(CreateJobResult(
            None,
            Some("inargs must be a JSON object".into()),
        ));
    }
    let call = crate::create::Call {
        wfname: p.wfname,
        args: p.inargs,
        tag: p.vtag,
        who: who.to_owned(),
        env: p.clenv.as_ref().map(|c| json!({ "clenv": c })),
        key: p.key,
        priority: p.priority,
    };
    ok::<CreateJob>(match crate::create::create(shared, call).await {
        Ok(job_id) => CreateJobResult(Some(job_id), None),
        Err(e) => CreateJobResult(None, Some(e.message)),
    })
}

async fn get_job_status(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<GetJobStatus>()?;
    own_job(shared, who, p.job_id).await?;
    let db = shared.db().await?;
    let out = jc_db::pooled::get_job_status(&db, p.job_id)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<GetJobStatus>(JobStatus(p.job_id, out))
}

/// The filter of `find_jobs`: a JSON object, or a string holding one, as the original Perl
/// client sends it (the original gateway passed the string on to SQL).
fn find_filter(filter: Value) -> Result<Value, ErrorObject> {
    let refuse = |why: String| {
        ErrorObject::new(
            ErrorKind::InvalidParams,
            format!("find_jobs: filter must be a JSON object or a string holding one: {why}"),
        )
    };
    let filter = match filter {
        Value::String(s) => {
            serde_json::from_str(&s).map_err(|e| refuse(format!("the string is not JSON ({e})")))?
        }
        other => other,
    };
    if filter.is_object() {
        Ok(filter)
    } else {
        Err(refuse(format!("got {filter}")))
    }
}

async fn find_jobs(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<FindJobs>()?;
    let filter = find_filter(p.filter)?;
    let db = shared.db().await?;
    let ids = jc_db::find_client_jobs(&**db, &filter, p.state.as_deref(), who)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<FindJobs>(ids)
}

/// Asked as the user, so a lock another user's job holds is answered as no lock.
async fn check_if_lock_exists(
    shared: &Shared,
    who: &str,
    r: &Request,
) -> Result<Value, ErrorObject> {
    let p = r.params::<CheckIfLockExists>()?;
    let db = shared.db().await?;
    let held = jc_db::check_if_lock_exists_as(&**db, &p.locktype, &p.lockvalue, who)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<CheckIfLockExists>(held)
}

async fn cancel_job(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<CancelJob>()?;
    own_job(shared, who, p.job_id).await?;
    let reason = p.reason.unwrap_or_else(|| format!("cancelled by {who}"));
    let db = shared.db().await?;
    // The gateway's cancel_job (ours) ends a job whatever it waits for, a worker included.
    jc_db::cancel_job(&**db, p.job_id, &reason, true)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<CancelJob>(true)
}

async fn retry_job(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<RetryJob>()?;
    own_job(shared, who, p.job_id).await?;
    let reason = p.reason.unwrap_or_else(|| format!("retried by {who}"));
    let db = shared.db().await?;
    jc_db::retry_job(&**db, p.job_id, &reason)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<RetryJob>(true)
}

/// Raised as the user, so it reaches only the jobs the user may raise events to.
async fn raise_event(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<RaiseEvent>()?;
    let db = shared.db().await?;
    let id = jc_db::raise_event_as(&**db, &p.event, who)
        .await
        .map_err(|e| shared.db_error(e))?;
    ok::<RaiseEvent>(id)
}

async fn get_job(shared: &Shared, who: &str, r: &Request) -> Result<Value, ErrorObject> {
    let p = r.params::<GetJob>()?;
    own_job(shared, who, p.job_id).await?;
    let db = shared.db().await?;
    let info = jc_db::job_info(&**db, p.job_id)
        .await
        .map_err(|e| shared.db_error(e))?
        .ok_or_else(|| ErrorObject::new(ErrorKind::UnknownJob, format!("no job {}", p.job_id)))?;
    let info: JobInfo = serde_json::from_value(info)
        .map_err(|e| ErrorObject::new(ErrorKind::InternalError, e.to_string()))?;
    ok::<GetJob>(info)
}
