//! The real `maestro` binary connected to PostgreSQL over TLS only: `verify-full` against
//! the cluster's CA with a client certificate (`cert` authentication), LISTEN and pool
//! connections both encrypted, and a timer fired through them.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{db, load, sleeper, wait_job, wait_listening, Maestro};
use serde_json::json;

#[tokio::test]
async fn the_maestro_runs_over_tls_with_a_client_certificate() {
    let tls = testkit::TlsCluster::start().await.unwrap();
    let dsn = tls.dsn("postgres").unwrap();
    let pg = db::connect_config(&dsn, "test").unwrap();
    let (c, conn) = pg.connect().await.unwrap();
    tokio::spawn(conn);
    load(&c, &[sleeper()]).await;
    let m = Maestro::start(&dsn, &[]);
    wait_listening(&c, 1).await;
    let job = db::create_job(&c, "sleeper", &json!({"t": 1}), Default::default())
        .await
        .unwrap()
        .job_id;
    assert_eq!(
        wait_job(&c, job, Duration::from_secs(10)).await,
        json!({"t": 1}),
        "{}",
        m.log()
    );
    let row = c
        .query_one(
            "select count(*), bool_and(s.ssl), min(s.client_dn) \
             from pg_stat_activity a join pg_stat_ssl s using (pid) \
             where a.application_name = 'maestro'",
            &[],
        )
        .await
        .unwrap();
    let (connections, all_tls, dn): (i64, bool, String) = (row.get(0), row.get(1), row.get(2));
    assert!(
        connections >= 2,
        "LISTEN and at least one pooled connection"
    );
    assert!(all_tls);
    assert_eq!(dn, "/CN=postgres");
}
