//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong while setting up or talking to a test cluster.
#[derive(thiserror::Error)]
pub enum Error {
    /// A file-system or process-spawning operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },

    /// An external command (initdb, pg_ctl, chown, …) exited unsuccessfully.
    #[error("`{command}` failed ({status}): {}", stderr.trim_end())]
    Command {
        command: String,
        status: ExitStatus,
        stderr: String,
    },

    /// PostgreSQL did not come up; carries the end of the server log.
    #[error("PostgreSQL did not start: {cause}\n--- last lines of {} ---\n{log_tail}", log.display())]
    Start {
        cause: Box<Error>,
        log: PathBuf,
        log_tail: String,
    },

    /// A statement or connection failed.
    #[error("{context}: {}", describe_postgres(source))]
    Postgres {
        context: String,
        source: tokio_postgres::Error,
    },

    /// `CREATE EXTENSION jobcenter` cannot work because the extension's files are not
    /// in this PostgreSQL installation.
    #[error(
        "the jobcenter extension is not installed in this PostgreSQL; \
         run scripts/install-extension first"
    )]
    ExtensionNotInstalled,

    /// A test fixture (a certificate, a setting) could not be made.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }

    pub(crate) fn postgres(
        context: impl Into<String>,
    ) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Postgres { context, source }
    }

    /// The SQLSTATE of a failed statement, if that is what this error is.
    pub fn sqlstate(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            Error::Postgres { source, .. } => source.code(),
            _ => None,
        }
    }
}

/// Lets tests that return `Result<(), testkit::Error>` use `?` on their own queries.
impl From<tokio_postgres::Error> for Error {
    fn from(source: tokio_postgres::Error) -> Error {
        Error::Postgres {
            context: "PostgreSQL".to_owned(),
            source,
        }
    }
}

/// Tests print errors with `{:?}` when they return `Err`; the message, with the server
/// log tail on real lines, is far more useful there than the derived structure.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// tokio-postgres displays a server error as just "db error"; spell out what the
/// server said.
fn describe_postgres(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
        if let Some(detail) = db.detail() {
            text.push_str(&format!(" (detail: {detail})"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!(" (hint: {hint})"));
        }
        return text;
    }
    match std::error::Error::source(error) {
        Some(cause) => format!("{error}: {cause}"),
        None => error.to_string(),
    }
}
