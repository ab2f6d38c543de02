//! The db crate's error type and the stable error codes of the extension's SQLSTATEs.

use std::fmt;

/// The engine's stable error codes, raised by the extension as SQLSTATE `JCnnn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// JC001: no workflow, action or schedule of that name.
    UnknownWorkflow,
    /// JC002: arguments, event data or a filter do not fit.
    BadArguments,
    /// JC003: no task holds that cookie (done already, timed out, or wrong).
    UnknownCookie,
    /// JC004: the caller may not do this.
    NotAuthorized,
    /// JC005: no such job.
    UnknownJob,
    /// JC006: no such (live) worker, or it did not announce the action.
    UnknownWorker,
    /// JC007: the job is in the wrong state for the request.
    WrongState,
    /// JC008: the workflow is disabled.
    Disabled,
    /// JC009: the workflow model cannot be loaded.
    InvalidModel,
}

impl ErrorCode {
    /// Every code, in SQLSTATE order.
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::UnknownWorkflow,
        ErrorCode::BadArguments,
        ErrorCode::UnknownCookie,
        ErrorCode::NotAuthorized,
        ErrorCode::UnknownJob,
        ErrorCode::UnknownWorker,
        ErrorCode::WrongState,
        ErrorCode::Disabled,
        ErrorCode::InvalidModel,
    ];

    /// The SQLSTATE the extension raises for this code.
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorCode::UnknownWorkflow => "JC001",
            ErrorCode::BadArguments => "JC002",
            ErrorCode::UnknownCookie => "JC003",
            ErrorCode::NotAuthorized => "JC004",
            ErrorCode::UnknownJob => "JC005",
            ErrorCode::UnknownWorker => "JC006",
            ErrorCode::WrongState => "JC007",
            ErrorCode::Disabled => "JC008",
            ErrorCode::InvalidModel => "JC009",
        }
    }

    /// The code of a SQLSTATE, if it is one of the engine's.
    pub fn from_sqlstate(state: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.sqlstate() == state)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sqlstate())
    }
}

/// Errors of the db crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine refused the request.
    #[error("{code}: {message}")]
    Api {
        code: ErrorCode,
        message: String,
        detail: Option<String>,
        hint: Option<String>,
    },
    /// Any other database error.
    #[error("database error: {0}")]
    Postgres(tokio_postgres::Error),
    #[error("cannot serialise: {0}")]
    Json(#[from] serde_json::Error),
    /// A connection string (or a TLS file it names) that cannot be used.
    #[error("{0}")]
    Dsn(String),
}

impl Error {
    /// The engine's error code, when the engine refused the request.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if let Some(db) = e.as_db_error() {
            if let Some(code) = ErrorCode::from_sqlstate(db.code().code()) {
                return Error::Api {
                    code,
                    message: db.message().to_owned(),
                    detail: db.detail().map(str::to_owned),
                    hint: db.hint().map(str::to_owned),
                };
            }
        }
        Error::Postgres(e)
    }
}
