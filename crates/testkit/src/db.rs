//! Databases for tests: each test gets its own, cloned from a template database that
//! already has the extension, so that creating one is cheap and tests never share rows.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use crate::{Cluster, Error};

/// The template [`Cluster::new_db`] clones. Nothing stays connected to it: PostgreSQL
/// refuses to copy a database others are connected to.
const TEMPLATE: &str = "jc_template";

/// How often to retry `CREATE DATABASE` while the template is in use. The server
/// already waits five seconds for other sessions to leave before failing.
const CREATE_ATTEMPTS: u32 = 5;

/// Numbers databases across all clusters of the process, so names never repeat.
static NEXT_DB: AtomicU64 = AtomicU64::new(1);

/// A database of one test. Dropping it does nothing: the cluster goes away as a whole.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database name, `jc_t<N>`.
    pub name: String,
    /// A libpq-style connection string for it.
    pub dsn: String,
}

impl TestDb {
    /// Opens a connection; its driving task runs on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client, Error> {
        let (client, _task) = connect(&self.dsn).await?;
        Ok(client)
    }
}

impl Cluster {
    /// A new database with the `jobcenter` extension installed.
    ///
    /// The first call creates the template; it fails with
    /// [`Error::ExtensionNotInstalled`] if the extension's files are missing.
    pub async fn new_db(&self) -> Result<TestDb, Error> {
        self.template
            .get_or_try_init(|| self.prepare_template())
            .await?;
        self.create_db(TEMPLATE).await
    }

    /// A new database without the extension (a copy of `template0`), for tests that
    /// install it themselves.
    pub async fn new_empty_db(&self) -> Result<TestDb, Error> {
        self.create_db("template0").await
    }

    /// Whether the extension's files are installed in this PostgreSQL.
    pub async fn extension_available(&self) -> Result<bool, Error> {
        let (client, task) = connect(&self.dsn("postgres")).await?;
        let available = self.query_extension_available(&client).await?;
        close(client, task).await;
        Ok(available)
    }

    async fn query_extension_available(&self, client: &Client) -> Result<bool, Error> {
        let row = client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = $1)",
                &[&self.extension()],
            )
            .await
            .map_err(Error::postgres("could not list the available extensions"))?;
        Ok(row.get(0))
    }

    /// Creates the template with the extension. Safe to call again after a failure:
    /// every step checks what is already there.
    async fn prepare_template(&self) -> Result<(), Error> {
        let (admin, admin_task) = connect(&self.dsn("postgres")).await?;
        if !self.query_extension_available(&admin).await? {
            return Err(Error::ExtensionNotInstalled);
        }
        let exists: bool = admin
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
                &[&TEMPLATE],
            )
            .await
            .map_err(Error::postgres("could not look for the template database"))?
            .get(0);
        if !exists {
            admin
                .batch_execute(&format!("CREATE DATABASE {TEMPLATE} TEMPLATE template0"))
                .await
                .map_err(Error::postgres("could not create the template database"))?;
        }

        let (template, template_task) = connect(&self.dsn(TEMPLATE)).await?;
        let created = template
            .batch_execute(&format!(
                "CREATE EXTENSION IF NOT EXISTS \"{}\" CASCADE",
                self.extension()
            ))
            .await
            .map_err(Error::postgres(format!(
                "could not create extension {} in the template database",
                self.extension()
            )));
        close(template, template_task).await;
        created?;

        // No one may connect from now on, so that cloning never waits for a session
        // (autovacuum included) to leave.
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"
            ))
            .await
            .map_err(Error::postgres("could not seal the template database"))?;
        close(admin, admin_task).await;
        Ok(())
    }

    async fn create_db(&self, template: &str) -> Result<TestDb, Error> {
        let name = format!("jc_t{}", NEXT_DB.fetch_add(1, Ordering::Relaxed));
        let (admin, admin_task) = connect(&self.dsn("postgres")).await?;
        let statement = format!("CREATE DATABASE {name} TEMPLATE {template}");
        let mut attempt = 1;
        loop {
            match admin.batch_execute(&statement).await {
                Ok(()) => break,
                // Another session, such as one still closing, is on the template.
                Err(error)
                    if attempt < CREATE_ATTEMPTS
                        && error.code() == Some(&SqlState::OBJECT_IN_USE) =>
                {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => {
                    return Err(Error::Postgres {
                        context: format!("could not create database {name}"),
                        source: error,
                    })
                }
            }
        }
        close(admin, admin_task).await;
        Ok(TestDb {
            dsn: self.dsn(&name),
            name,
        })
    }
}

/// Connects and drives the connection on a task of the current runtime.
async fn connect(dsn: &str) -> Result<(Client, JoinHandle<()>), Error> {
    let (client, connection) = tokio_postgres::connect(dsn, NoTls)
        .await
        .map_err(Error::postgres(format!("could not connect with `{dsn}`")))?;
    let task = tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("testkit: connection error: {error}");
        }
    });
    Ok((client, task))
}

/// Closes a connection and waits until the server has been told, so that the session
/// is on its way out before, say, its database is cloned.
async fn close(client: Client, task: JoinHandle<()>) {
    drop(client);
    // The task only ends with the connection; a join error would mean it panicked,
    // which its body cannot.
    let _ = task.await;
}

#[cfg(test)]
mod tests {
    use futures_util::future::try_join_all;

    use super::*;
    use crate::ClusterOptions;

    /// pg_trgm ships with PostgreSQL, so this runs before jobcenter is installed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_clones_of_the_template_all_have_the_extension() -> Result<(), Error> {
        let cluster = Cluster::start_with_extension(ClusterOptions::default(), "pg_trgm").await?;
        let dbs = try_join_all((0..8).map(|_| cluster.new_db())).await?;
        for db in &dbs {
            let client = db.connect().await?;
            let row = client
                .query_one(
                    "SELECT current_database(), \
                     EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm')",
                    &[],
                )
                .await?;
            assert_eq!(row.get::<_, String>(0), db.name);
            assert!(row.get::<_, bool>(1), "{} lacks pg_trgm", db.name);
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_missing_extension_says_how_to_install_it() -> Result<(), Error> {
        let cluster =
            Cluster::start_with_extension(ClusterOptions::default(), "jc_no_such_extension")
                .await?;
        let error = cluster
            .new_db()
            .await
            .expect_err("the extension does not exist");
        assert!(matches!(error, Error::ExtensionNotInstalled), "{error}");
        assert!(error.to_string().contains("scripts/install-extension"));
        Ok(())
    }
}
