//! The crate's error type and the JSON-RPC error codes of the protocol.
//!
//! The standard codes (-32700..-32603) are for bad messages; ours lie outside the range
//! JSON-RPC reserves (-32768..-32000): 1001..1009 are the engine's SQLSTATEs `JC001`..`JC009`
//! with their meaning intact, 1100 and up are the gateway's own.

use std::fmt;

/// Errors of this crate: a message that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes are not JSON, or not a JSON-RPC 2.0 message.
    #[error(transparent)]
    Message(#[from] crate::jsonrpc::MessageError),
    /// The framing is broken.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// Parameters or a result do not have the method's shape.
    #[error("bad {what} for {method}: {source}")]
    Shape {
        method: String,
        what: &'static str,
        source: serde_json::Error,
    },
    /// The peer answered a call with an error.
    #[error("{method} failed: {error}")]
    Remote {
        method: String,
        error: crate::jsonrpc::ErrorObject,
    },
}

/// What a JSON-RPC error code means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// -32700: the message is not JSON (or its frame is malformed).
    ParseError,
    /// -32600: JSON, but not a JSON-RPC 2.0 request.
    InvalidRequest,
    /// -32601: no such method.
    MethodNotFound,
    /// -32602: the parameters do not fit the method.
    InvalidParams,
    /// -32603: the gateway failed (e.g. the database is unreachable).
    InternalError,
    /// 1001 (JC001): no workflow or action of that name.
    UnknownWorkflow,
    /// 1002 (JC002): arguments, event data or a filter do not fit.
    BadArguments,
    /// 1003 (JC003): no task holds that cookie.
    UnknownCookie,
    /// 1004 (JC004): the caller may not do this (including: the job is another user's).
    NotAuthorized,
    /// 1005 (JC005): no such job.
    UnknownJob,
    /// 1006 (JC006): no such worker, or the action was not announced.
    UnknownWorker,
    /// 1007 (JC007): the job is in the wrong state for the request.
    WrongState,
    /// 1008 (JC008): the workflow is disabled.
    Disabled,
    /// 1009 (JC009): the workflow model cannot be loaded.
    InvalidModel,
    /// 1100: a call other than `hello`/`ping` before a successful `hello`.
    NotAuthenticated,
    /// 1101: the message is larger than the gateway accepts.
    TooLarge,
    /// 1102: the request is valid but the gateway cannot do it (e.g. a slot group exists).
    Refused,
}

impl ErrorKind {
    /// Every kind, in code order.
    pub const ALL: [ErrorKind; 17] = [
        ErrorKind::ParseError,
        ErrorKind::InvalidRequest,
        ErrorKind::MethodNotFound,
        ErrorKind::InvalidParams,
        ErrorKind::InternalError,
        ErrorKind::UnknownWorkflow,
        ErrorKind::BadArguments,
        ErrorKind::UnknownCookie,
        ErrorKind::NotAuthorized,
        ErrorKind::UnknownJob,
        ErrorKind::UnknownWorker,
        ErrorKind::WrongState,
        ErrorKind::Disabled,
        ErrorKind::InvalidModel,
        ErrorKind::NotAuthenticated,
        ErrorKind::TooLarge,
        ErrorKind::Refused,
    ];

    /// The JSON-RPC error code.
    pub fn code(self) -> i64 {
        match self {
            ErrorKind::ParseError => -32700,
            ErrorKind::InvalidRequest => -32600,
            ErrorKind::MethodNotFound => -32601,
            ErrorKind::InvalidParams => -32602,
            ErrorKind::InternalError => -32603,
            ErrorKind::UnknownWorkflow => 1001,
            ErrorKind::BadArguments => 1002,
            ErrorKind::UnknownCookie => 1003,
            ErrorKind::NotAuthorized => 1004,
            ErrorKind::UnknownJob => 1005,
            ErrorKind::UnknownWorker => 1006,
            ErrorKind::WrongState => 1007,
            ErrorKind::Disabled => 1008,
            ErrorKind::InvalidModel => 1009,
            ErrorKind::NotAuthenticated => 1100,
            ErrorKind::TooLarge => 1101,
            ErrorKind::Refused => 1102,
        }
    }

    /// The kind of a code, if it is one of the protocol's.
    pub fn from_code(code: i64) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The kind of an engine SQLSTATE (`JC001`..`JC009`).
    pub fn from_sqlstate(state: &str) -> Option<ErrorKind> {
        let n: i64 = state.strip_prefix("JC")?.parse().ok()?;
        ErrorKind::from_code(1000 + n).filter(|k| (1001..=1009).contains(&k.code()))
    }

    /// A short text for the code (JSON-RPC's own words for the standard ones).
    pub fn text(self) -> &'static str {
        match self {
            ErrorKind::ParseError => "Parse error",
            ErrorKind::InvalidRequest => "Invalid Request",
            ErrorKind::MethodNotFound => "Method not found",
            ErrorKind::InvalidParams => "Invalid params",
            ErrorKind::InternalError => "Internal error",
            ErrorKind::UnknownWorkflow => "unknown workflow or action",
            ErrorKind::BadArguments => "invalid arguments",
            ErrorKind::UnknownCookie => "unknown cookie",
            ErrorKind::NotAuthorized => "not authorized",
            ErrorKind::UnknownJob => "unknown job",
            ErrorKind::UnknownWorker => "unknown worker",
            ErrorKind::WrongState => "wrong state",
            ErrorKind::Disabled => "workflow disabled",
            ErrorKind::InvalidModel => "invalid workflow model",
            ErrorKind::NotAuthenticated => "not authenticated",
            ErrorKind::TooLarge => "message too large",
            ErrorKind::Refused => "refused",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_ours_avoid_the_reserved_range() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_code(k.code()), Some(k));
            let reserved = (-32768..=-32000).contains(&k.code());
            let standard = matches!(
                k,
                ErrorKind::ParseError
                    | ErrorKind::InvalidRequest
                    | ErrorKind::MethodNotFound
                    | ErrorKind::InvalidParams
                    | ErrorKind::InternalError
            );
            assert_eq!(reserved, standard, "{k:?}");
        }
    }

    #[test]
    fn sqlstates_map_to_engine_codes() {
        assert_eq!(
            ErrorKind::from_sqlstate("JC001"),
            Some(ErrorKind::UnknownWorkflow)
        );
        assert_eq!(
            ErrorKind::from_sqlstate("JC009"),
            Some(ErrorKind::InvalidModel)
        );
        assert_eq!(ErrorKind::from_sqlstate("JC100"), None);
        assert_eq!(ErrorKind::from_sqlstate("23505"), None);
        assert_eq!(ErrorKind::from_sqlstate("JC"), None);
    }
}
