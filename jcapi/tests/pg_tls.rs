//! The real `jcapi` binary connected to PostgreSQL over TLS only (`verify-full` and a
//! client certificate): its pool and its LISTEN connection carry a whole job.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[tokio::test]
async fn the_gateway_runs_a_job_over_tls_to_postgresql() {
    let tls = testkit::TlsCluster::start().await.unwrap();
    let dsn = tls.dsn("postgres").unwrap();
    let pg = jc_db::connect_config(&dsn, "test").unwrap();
    let (db, conn) = pg.connect().await.unwrap();
    tokio::spawn(conn);
    let tdb = testkit::TestDb {
        name: tls.db.name.clone(),
        dsn,
    };
    let env = env_on(tdb, db).await;
    let g = Gateway::start(&env, &[]).await;
    let mut c = login(&g, "tcp", "alice", ALICE_PW).await;
    let w = announced(&g, "tcp", "w1", "add", 1).await;
    let done = Done::default();
    let _worker = worker(w, "add", done.clone(), Duration::ZERO, add);
    let job = c.create_job("calltest", json!({"input": 1})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 4}));
    let row = env
        .db
        .query_one(
            "select count(*), bool_and(s.ssl) from pg_stat_activity a join pg_stat_ssl s \
             using (pid) where a.application_name = 'jcapi'",
            &[],
        )
        .await
        .unwrap();
    let (connections, all_tls): (i64, bool) = (row.get(0), row.get(1));
    assert!(
        connections >= 2,
        "LISTEN and at least one pooled connection"
    );
    assert!(all_tls);
}
