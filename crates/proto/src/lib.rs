//! The jobcenter gateway protocol, shared by the gateway (`jcapi`) and every client.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 messages (requests, notifications, responses), parsed from bytes
//!   into a [`Message`] or a [`MessageError`] that says which JSON-RPC error to answer with;
//! - [`codec`]: netstring framing (`<len>:<json>,`) as a `tokio_util` codec with a maximum
//!   frame size; a frame over the limit is skipped and reported, not fatal;
//! - [`methods`]: every method of the protocol with its original name and its typed
//!   parameters and result ([`Method`] for calls, [`Notify`] for notifications);
//! - [`ErrorKind`]: the JSON-RPC error codes, the standard ones and ours (the engine's
//!   SQLSTATEs `JC001`..`JC009` become 1001..1009).
//!
//! The conversation: the server sends `greetings`, the client calls `hello`; after a welcome
//! the client calls the client and worker methods, and the server notifies (`job_done`,
//! `task_ready`) and calls (`ping`) the client.

pub mod codec;
mod error;
pub mod jsonrpc;
pub mod methods;

pub use codec::{CodecError, Frame, NetstringCodec, DEFAULT_MAX_FRAME};
pub use error::{Error, ErrorKind};
pub use jsonrpc::{ErrorObject, Id, Message, MessageError, Notification, Request, Response};
pub use methods::{Method, Notify};

/// The protocol version the gateway announces in `greetings`.
pub const PROTOCOL_VERSION: &str = "1.1";

/// The default TCP port of the gateway.
pub const DEFAULT_PORT: u16 = 6522;
