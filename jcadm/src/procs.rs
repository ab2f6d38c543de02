//! Every call of an extension procedure jcadm makes, in one place: the operations change job
//! state only through these (never by writing tables), and a change of the SQL API's
//! signatures is adapted here.

use tokio_postgres::error::SqlState;
use tokio_postgres::GenericClient;

use crate::Error;

/// Cancels a live job (an `abort` error; its children are aborted too), one whose task a
/// worker is running too: the operator decides (`a_force`).
pub async fn cancel(c: &impl GenericClient, job_id: i64, reason: &str) -> Result<(), Error> {
    Ok(jc_db::cancel_job(c, job_id, reason, true).await?)
}

/// Restarts a job in error from its start.
pub async fn retry(c: &impl GenericClient, job_id: i64, reason: &str) -> Result<(), Error> {
    Ok(jc_db::retry_job(c, job_id, reason).await?)
}

/// Makes a job in `retrywait` ready now (`jobcenter.retry_now`, admin.sql).
pub async fn retry_now(c: &impl GenericClient, job_id: i64) -> Result<(), Error> {
    c.execute("select jobcenter.retry_now($1)", &[&job_id])
        .await
        .map_err(missing("jobcenter.retry_now", "retry-now"))?;
    Ok(())
}

/// Enables or disables schedule `name` (`jobcenter.enable_schedule`); enabling starts from
/// now, so the runs that fell while it was disabled are not made up.
pub async fn enable_schedule(
    c: &impl GenericClient,
    name: &str,
    enabled: bool,
) -> Result<(), Error> {
    Ok(jc_db::enable_schedule(c, name, enabled).await?)
}

/// What [`set_disabled`] changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Disabled {
    pub action_id: i32,
    pub name: String,
    pub kind: String,
    pub version: i32,
    /// Whether it was disabled before.
    pub was: bool,
    pub disabled: bool,
}

/// Disables or enables version `version` (the newest when `None`) of action or workflow
/// `name` (`jobcenter.set_disabled`, admin.sql).
pub async fn set_disabled(
    c: &impl GenericClient,
    name: &str,
    version: Option<i32>,
    kind: Option<&str>,
    disabled: bool,
) -> Result<Disabled, Error> {
    let row = c
        .query_one(
            "select o_action_id, o_type, o_version, o_was \
             from jobcenter.set_disabled($1, $2, $3, $4::text::jobcenter.action_type)",
            &[&name, &disabled, &version, &kind],
        )
        .await
        .map_err(missing("jobcenter.set_disabled", "disable and enable"))?;
    Ok(Disabled {
        action_id: row.try_get(0)?,
        name: name.to_owned(),
        kind: row.try_get(1)?,
        version: row.try_get(2)?,
        was: row.try_get(3)?,
        disabled,
    })
}

/// Archives ended job trees past their retention; returns how many jobs moved.
pub async fn archive(c: &impl GenericClient) -> Result<i32, Error> {
    Ok(jc_db::do_archival_and_cleanup(c).await?)
}

/// An error of a procedure older extensions lack: an undefined function says which version
/// is needed; anything else keeps its meaning.
fn missing(
    procedure: &'static str,
    command: &'static str,
) -> impl FnOnce(tokio_postgres::Error) -> Error {
    move |e| {
        if e.code() == Some(&SqlState::UNDEFINED_FUNCTION) {
            Error::MissingProcedure { procedure, command }
        } else {
            e.into()
        }
    }
}
