//! The `jcc` command writing to a PostgreSQL that takes TLS connections only, with
//! `verify-full` and a client certificate in its connection string.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[tokio::test]
async fn jcc_compiles_over_tls_with_a_client_certificate() {
    let tls = testkit::TlsCluster::start().await.unwrap();
    let dsn = tls.dsn("postgres").unwrap();
    let file = tls.dir().join("add.jcl");
    std::fs::write(
        &file,
        "action add:\nin:\n\tcounter number\n\tstep number\nout:\n\tcounter number\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .arg("--dsn")
        .arg(&dsn)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pg = jc_db::connect_config(&dsn, "test").unwrap();
    let (c, conn) = pg.connect().await.unwrap();
    tokio::spawn(conn);
    let n: i64 = c
        .query_one(
            "select count(*) from jobcenter.actions where name = 'add'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // The same file over a plain connection is refused by the server, with its reason.
    let plain = format!("{dsn} sslmode=disable");
    let out = Command::new(env!("CARGO_BIN_EXE_jcc"))
        .args(["--dsn", &plain, "--force"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no encryption"), "{stderr}");
}
