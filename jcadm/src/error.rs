//! The admin tool's error type: what went wrong, with a stable code per kind.

/// Errors of jcadm.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused the request (a JCnnn SQLSTATE), or another database error.
    #[error(transparent)]
    Db(#[from] jc_db::Error),
    /// The stale-reference query of the compiler failed.
    #[error(transparent)]
    Jcc(#[from] jcc::Error),
    /// The installed extension lacks a procedure this command needs.
    #[error("the installed jobcenter extension has no {procedure}: {command} needs extension version 0.2.0 (ALTER EXTENSION jobcenter UPDATE)")]
    MissingProcedure {
        procedure: &'static str,
        command: &'static str,
    },
    /// No such job, live or archived.
    #[error("no job {0}")]
    NoJob(i64),
    /// No such workflow (version).
    #[error("no workflow {0}")]
    NoWorkflow(String),
    /// A bad value on the command line.
    #[error("{0}")]
    BadInput(String),
    /// An operation needs confirmation and there is no terminal to ask on.
    #[error("{0}: not on a terminal, so not confirmed; pass --yes to do it")]
    NotConfirmed(String),
    /// The user answered no.
    #[error("{0}: not done")]
    Declined(String),
    /// Some of the jobs of an operation were refused (each one's reason is printed).
    #[error("{failed} of {of} jobs were refused")]
    Failed { failed: usize, of: usize },
    /// The gateway's admin view could not be had.
    #[error("gateway: {0}")]
    Gateway(String),
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot serialise the output: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Db(e.into())
    }
}

impl Error {
    /// A stable code for scripts (`--json` errors and the exit status name it).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Db(e) => e.code().map_or("JA100", |c| c.sqlstate()),
            Error::Jcc(_) => "JA100",
            Error::MissingProcedure { .. } => "JA101",
            Error::NoJob(_) => "JA102",
            Error::NoWorkflow(_) => "JA103",
            Error::BadInput(_) => "JA104",
            Error::NotConfirmed(_) => "JA105",
            Error::Declined(_) => "JA106",
            Error::Io(_) | Error::Json(_) => "JA107",
            Error::Failed { .. } => "JA108",
            Error::Gateway(_) => "JA109",
        }
    }
}
