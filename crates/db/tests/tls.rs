//! TLS to PostgreSQL through `jc_db::connect_config`, against a private cluster with
//! `ssl = on` that refuses plain connections: each `sslmode`, the server's name and CA
//! checks, client certificates for `cert` authentication, and the call pool.

use std::path::PathBuf;

use testkit::pki::Pki;
use testkit::{Cluster, ClusterOptions, ServerTls};
use tokio::sync::OnceCell;

struct Tls {
    cluster: Cluster,
    pki: Pki,
    /// A CA the server's certificate does not chain to.
    other_ca: PathBuf,
    client: testkit::pki::Issued,
    _dir: tempfile::TempDir,
}

static TLS: OnceCell<Tls> = OnceCell::const_new();

/// The cluster: a server certificate valid for `localhost` only, plain connections
/// rejected, and `certuser` logging in by client certificate only.
async fn tls() -> &'static Tls {
    TLS.get_or_init(|| async {
        let dir = tempfile::tempdir().expect("temp dir");
        let pki = Pki::new(dir.path(), "ca").expect("CA");
        let other_ca = Pki::new(dir.path(), "other").expect("CA").ca_file();
        let server = pki
            .issue_for("server", &["localhost"], "server")
            .expect("server certificate");
        let client = pki
            .issue("certuser", "certuser")
            .expect("client certificate");
        let cluster = Cluster::start(ClusterOptions::default())
            .await
            .expect("cluster");
        let setup = tokio_postgres::connect(&cluster.dsn("postgres"), tokio_postgres::NoTls)
            .await
            .expect("connect before TLS");
        let (c, conn) = setup;
        tokio::spawn(conn);
        c.batch_execute("create role certuser login")
            .await
            .expect("role");
        drop(c);
        let hba = "hostssl all certuser 127.0.0.1/32 cert\n\
                   hostssl all all 127.0.0.1/32 trust\n\
                   hostnossl all all 127.0.0.1/32 reject";
        cluster
            .enable_tls(
                &ServerTls {
                    cert_pem: server.cert_pem,
                    key_pem: server.key_pem,
                    ca_pem: pki.ca_pem.clone(),
                },
                hba,
            )
            .await
            .expect("TLS on");
        Tls {
            cluster,
            pki,
            other_ca,
            client,
            _dir: dir,
        }
    })
    .await
}

impl Tls {
    fn dsn(&self, host: &str, user: &str, extra: &str) -> String {
        format!(
            "host={host} port={} user={user} dbname=postgres {extra}",
            self.cluster.port()
        )
    }

    fn ca(&self) -> String {
        self.pki.ca_file().display().to_string()
    }
}

/// Connects with `dsn` and answers whether the connection is encrypted and as whom.
async fn session(dsn: &str) -> Result<(bool, String), String> {
    let pg = jc_db::connect_config(dsn, "tls-test").map_err(|e| e.to_string())?;
    let (client, conn) = pg.connect().await.map_err(|e| format!("{e:?}"))?;
    tokio::spawn(conn);
    let row = client
        .query_one(
            "select ssl, current_user::text from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok((row.get(0), row.get(1)))
}

#[tokio::test]
async fn verify_full_checks_the_ca_and_the_host_name() {
    let t = tls().await;
    let ok = session(&t.dsn(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full sslrootcert={}", t.ca()),
    ))
    .await;
    assert_eq!(ok, Ok((true, "postgres".to_owned())));
    // The certificate names localhost, not 127.0.0.1.
    let wrong_name = session(&t.dsn(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-full sslrootcert={}", t.ca()),
    ))
    .await
    .expect_err("the name does not match");
    assert!(wrong_name.contains("NotValidForName"), "{wrong_name}");
    let wrong_ca = session(&t.dsn(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full sslrootcert={}", t.other_ca.display()),
    ))
    .await
    .expect_err("another CA");
    assert!(wrong_ca.contains("UnknownIssuer"), "{wrong_ca}");
}

#[tokio::test]
async fn verify_ca_and_require_accept_another_name_but_not_another_ca() {
    let t = tls().await;
    for mode in ["verify-ca", "require"] {
        let ok = session(&t.dsn(
            "127.0.0.1",
            "postgres",
            &format!("sslmode={mode} sslrootcert={}", t.ca()),
        ))
        .await;
        assert_eq!(ok, Ok((true, "postgres".to_owned())), "{mode}");
        let wrong_ca = session(&t.dsn(
            "127.0.0.1",
            "postgres",
            &format!("sslmode={mode} sslrootcert={}", t.other_ca.display()),
        ))
        .await
        .expect_err("another CA");
        assert!(wrong_ca.contains("UnknownIssuer"), "{mode}: {wrong_ca}");
    }
}

#[tokio::test]
async fn prefer_and_require_without_a_ca_encrypt_and_disable_is_refused_here() {
    let t = tls().await;
    for extra in ["", "sslmode=prefer", "sslmode=require"] {
        let ok = session(&t.dsn("127.0.0.1", "postgres", extra)).await;
        assert_eq!(ok, Ok((true, "postgres".to_owned())), "{extra:?}");
    }
    let plain = session(&t.dsn("127.0.0.1", "postgres", "sslmode=disable"))
        .await
        .expect_err("hostnossl reject");
    assert!(plain.contains("no encryption"), "{plain}");
}

#[tokio::test]
async fn a_client_certificate_logs_in_by_cert_authentication() {
    let t = tls().await;
    let with_cert = format!(
        "sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        t.ca(),
        t.client.cert_file.display(),
        t.client.key_file.display()
    );
    let ok = session(&t.dsn("localhost", "certuser", &with_cert)).await;
    assert_eq!(ok, Ok((true, "certuser".to_owned())));
    let without = session(&t.dsn(
        "localhost",
        "certuser",
        &format!("sslmode=verify-full sslrootcert={}", t.ca()),
    ))
    .await
    .expect_err("cert authentication needs a certificate");
    assert!(without.contains("certificate"), "{without}");
    // URL form, same parameters.
    let url = format!(
        "postgresql://certuser@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        t.cluster.port(),
        t.ca(),
        t.client.cert_file.display(),
        t.client.key_file.display()
    );
    assert_eq!(session(&url).await, Ok((true, "certuser".to_owned())));
}

#[tokio::test]
async fn the_call_pool_connects_over_tls() {
    let t = tls().await;
    let pg = jc_db::connect_config(
        &t.dsn(
            "localhost",
            "postgres",
            &format!("sslmode=verify-full sslrootcert={}", t.ca()),
        ),
        "tls-test",
    )
    .expect("config");
    let pool = jc_db::pool(&pg, 2).expect("pool");
    let client = pool.get().await.expect("a pooled connection");
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await
        .expect("query");
    assert!(row.get::<_, bool>(0));
}
