//! The console's error type: each kind answers with its HTTP status and a short page.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::html::esc;

/// Errors of the console.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A view or an operation of the admin library failed (the engine's refusal included).
    #[error(transparent)]
    Admin(#[from] jcadm::Error),
    /// No database connection could be had.
    #[error("no database connection: {0}")]
    Pool(String),
    /// The users file could not be read.
    #[error(transparent)]
    Users(#[from] jcapi::Error),
    /// The request is not allowed: no admin role, or a bad or missing form token.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A POST without a session.
    #[error("not logged in")]
    Unauthorized,
    /// A bad query or form value.
    #[error("{0}")]
    BadRequest(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Admin(e.into())
    }
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Error::Admin(jcadm::Error::NoJob(_) | jcadm::Error::NoWorkflow(_)) => {
                StatusCode::NOT_FOUND
            }
            Error::Admin(jcadm::Error::BadInput(_)) | Error::BadRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            // The engine refused the operation (a JCnnn SQLSTATE), e.g. retrying a live job.
            Error::Admin(jcadm::Error::Db(e))
                if e.code().is_some_and(|c| c.sqlstate().starts_with("JC")) =>
            {
                StatusCode::CONFLICT
            }
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::Unauthorized => StatusCode::UNAUTHORIZED,
            Error::Admin(_) | Error::Pool(_) | Error::Users(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{status}</title></head>\
             <body><h1>{status}</h1><p class=\"error\">{}</p><p><a href=\"/\">overview</a></p>\
             </body></html>",
            esc(&self.to_string())
        );
        (status, Html(body)).into_response()
    }
}
