//! A client and worker library for jobcenter, speaking JSON-RPC 2.0 to the `jcapi` gateway
//! over TCP or TLS (netstring frames) or WebSocket.
//!
//! - As a **client**: [`Client::call`] creates a job and waits for its `job_done`,
//!   [`Client::call_nb`] only creates it; [`Client::get_job_status`], [`Client::cancel_job`],
//!   [`Client::retry_job`], [`Client::raise_event`], [`Client::get_job`].
//! - As a **worker**: [`Client::announce`] an action with a [`Handler`] (async, blocking, or
//!   an [`Action`]) and a number of slots, then [`Client::work`] serves `task_ready` offers
//!   (`get_task`, the handler, the `task_done` notification) until [`Client::stop`],
//!   answering the server's pings and reconnecting with back-off. A finished result the
//!   gateway did not acknowledge (it went away) is kept and sent again on the next
//!   connection, after the announcements, until it is applied or refused (see `worker.rs`).
//!
//! Across a reconnection [`Client::wait_job`] asks for the job's status again, and the
//! read-only calls may simply be made again; [`Client::create_job`] is not repeated by the
//! library, since a `create_job` whose answer was lost may have created the job.
//!
//! ```no_run
//! # async fn demo() -> jc_client::Result<()> {
//! use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Handler, TaskError};
//! use serde_json::json;
//!
//! let config = Config::new(
//!     Endpoint::tcp("localhost", 6522),
//!     Auth::Password { who: "worker".into(), password: "secret".into() },
//! );
//! let worker = Client::connect(config).await?;
//! worker
//!     .announce(
//!         "add",
//!         Handler::new_async(|task| async move {
//!             let a = task.inargs["counter"].as_i64().ok_or("counter is not a number")?;
//!             let b = task.inargs["step"].as_i64().ok_or(TaskError::new("no step"))?;
//!             Ok(json!({ "counter": a + b }))
//!         }),
//!         AnnounceOptions { slots: Some(4), ..Default::default() },
//!     )
//!     .await?;
//! worker.work().await?;
//! # Ok(()) }
//! ```

mod client;
mod config;
mod conn;
mod error;
mod transport;
mod worker;

pub use client::{Client, JobRequest};
pub use config::{Auth, Backoff, Config, Endpoint, TlsOptions};
pub use error::{Error, Result};
pub use jc_proto;
pub use worker::{Action, AnnounceOptions, Handler, Task, TaskError, TaskResult};
