//! A private cluster that takes TCP connections over TLS only, each role logging in by a
//! client certificate for its name: for tests of the daemons' and tools' TLS to PostgreSQL.

use crate::pki::Pki;
use crate::{Cluster, ClusterOptions, Error, ServerTls, TestDb};

/// A cluster with one test database, a server certificate for `localhost` and the CA of
/// both the server's and the clients' certificates.
#[derive(Debug)]
pub struct TlsCluster {
    pub cluster: Cluster,
    /// The test database (with the extension); its `dsn` is the plain one, which the server
    /// now refuses: use [`TlsCluster::dsn`].
    pub db: TestDb,
    pub pki: Pki,
    dir: tempfile::TempDir,
}

impl TlsCluster {
    /// Starts the cluster, creates the database, then turns TLS on with `cert`
    /// authentication for every TCP connection and plain TCP refused.
    pub async fn start() -> Result<TlsCluster, Error> {
        let cluster = Cluster::start(ClusterOptions::default()).await?;
        let db = cluster.new_db().await?;
        let dir =
            tempfile::tempdir().map_err(Error::io("could not create a temporary directory"))?;
        let pki = Pki::new(dir.path(), "ca")?;
        let server = pki.issue_for("server", &["localhost"], "server")?;
        let hba = "hostssl all all 127.0.0.1/32 cert\nhostnossl all all 127.0.0.1/32 reject";
        cluster
            .enable_tls(
                &ServerTls {
                    cert_pem: server.cert_pem,
                    key_pem: server.key_pem,
                    ca_pem: pki.ca_pem.clone(),
                },
                hba,
            )
            .await?;
        Ok(TlsCluster {
            cluster,
            db,
            pki,
            dir,
        })
    }

    /// A connection string for the test database as `user`: `verify-full` against the CA
    /// on `localhost`, with a client certificate for `user` (made on each call).
    pub fn dsn(&self, user: &str) -> Result<String, Error> {
        let client = self.pki.issue(user, &format!("client-{user}"))?;
        Ok(format!(
            "host=localhost port={} user={user} dbname={} sslmode=verify-full sslrootcert={} \
             sslcert={} sslkey={}",
            self.cluster.port(),
            self.db.name,
            self.pki.ca_file().display(),
            client.cert_file.display(),
            client.key_file.display()
        ))
    }

    /// A directory for the test's own files, removed with the cluster.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}
