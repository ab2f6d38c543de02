//! Test harness: a private PostgreSQL cluster per test run, a database per test.
//!
//! A test binary starts one throw-away PostgreSQL 15 cluster on first use
//! ([`Cluster::shared`]) and every test asks it for a database of its own
//! ([`Cluster::new_db`]), cloned from a template that already has the `jobcenter`
//! extension. Tests therefore run in parallel without a global mutex and never see each
//! other's rows. Rust's test harness has no global teardown, so a detached watchdog
//! stops the cluster and deletes its directory once the test process has exited.
//!
//! Tests that restart PostgreSQL, and the benchmark, start a cluster of their own with
//! [`Cluster::start`]; it is stopped and removed when dropped.
//!
//! ```no_run
//! # async fn example() -> Result<(), testkit::Error> {
//! let db = testkit::Cluster::shared().await?.new_db().await?;
//! let client = db.connect().await?;
//! client.batch_execute("SELECT 1").await?;
//! # Ok(())
//! # }
//! ```

mod cluster;
mod db;
mod error;
pub mod pki;
mod tls;
mod tools;
mod watchdog;

pub use cluster::{Cluster, ClusterOptions, ServerTls};
pub use db::TestDb;
pub use error::Error;
pub use tls::TlsCluster;
pub mod examples;
pub mod flow;
