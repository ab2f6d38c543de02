//! The harness against a real PostgreSQL: one database per test, restarts, durability
//! settings, the extension template and the watchdog that cleans up after the process.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use testkit::{Cluster, ClusterOptions, Error};
use tokio_postgres::Client;

/// Set in the child process of `watchdog_removes_the_cluster_after_the_process_exits`.
const WATCHDOG_CHILD: &str = "JC_TESTKIT_WATCHDOG_CHILD";
/// Prefix of the line in which the child reports its cluster: `<port> <data dir>`.
const CLUSTER_LINE: &str = "testkit cluster: ";

fn io_error(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        context: context.to_owned(),
        source,
    }
}

async fn query_string(client: &Client, sql: &str) -> Result<String, Error> {
    let row = client.query_one(sql, &[]).await?;
    Ok(row.get(0))
}

/// Each of the two isolation tests creates the same table in its own database; if they
/// shared one, the second `CREATE TABLE` would fail.
async fn own_database_with_table() -> Result<(), Error> {
    let db = Cluster::shared().await?.new_empty_db().await?;
    let client = db.connect().await?;
    assert_eq!(
        query_string(&client, "SELECT current_database()").await?,
        db.name
    );
    let setup = "CREATE TABLE probe (owner text); INSERT INTO probe VALUES (current_database())";
    client.batch_execute(setup).await?;
    assert_eq!(
        query_string(&client, "SELECT string_agg(owner, ',') FROM probe").await?,
        db.name
    );
    assert_eq!(query_string(&client, "SHOW fsync").await?, "off");
    Ok(())
}

#[tokio::test]
async fn tests_get_their_own_database_a() -> Result<(), Error> {
    own_database_with_table().await
}

#[tokio::test]
async fn tests_get_their_own_database_b() -> Result<(), Error> {
    own_database_with_table().await
}

#[tokio::test]
async fn new_db_has_the_jobcenter_schema() -> Result<(), Error> {
    let cluster = Cluster::shared().await?;
    if !cluster.extension_available().await? {
        assert!(
            std::env::var_os("JC_REQUIRE_EXTENSION").is_none_or(|v| v != "1"),
            "JC_REQUIRE_EXTENSION=1 but the jobcenter extension is not installed; \
             run scripts/install-extension"
        );
        eprintln!("skipped: the jobcenter extension is not installed (scripts/install-extension)");
        return Ok(());
    }
    let db = cluster.new_db().await?;
    let client = db.connect().await?;
    let schema = query_string(
        &client,
        "SELECT coalesce(max(nspname), '') FROM pg_namespace WHERE nspname = 'jobcenter'",
    )
    .await?;
    assert_eq!(schema, "jobcenter");
    Ok(())
}

#[tokio::test]
async fn restart_keeps_data_and_port() -> Result<(), Error> {
    let cluster = Cluster::start(ClusterOptions::default()).await?;
    let data_dir = cluster.data_dir().to_owned();
    let db = cluster.new_empty_db().await?;
    let client = db.connect().await?;
    client
        .batch_execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")
        .await?;
    let port = cluster.port();

    cluster.restart().await?;
    assert!(
        client.is_closed() || client.simple_query("SELECT 1").await.is_err(),
        "the old connection survived the restart"
    );
    assert_eq!(cluster.port(), port);
    let client = db.connect().await?;
    assert_eq!(
        query_string(&client, "SELECT v FROM kept").await?,
        "still here"
    );

    drop(client);
    drop(cluster);
    assert!(
        !data_dir.exists(),
        "{} survived the drop",
        data_dir.display()
    );
    Ok(())
}

#[tokio::test]
async fn durable_clusters_flush() -> Result<(), Error> {
    let cluster = Cluster::start(ClusterOptions { durable: true }).await?;
    let client = cluster.new_empty_db().await?.connect().await?;
    for setting in ["fsync", "synchronous_commit", "full_page_writes"] {
        assert_eq!(
            query_string(&client, &format!("SHOW {setting}")).await?,
            "on"
        );
    }
    Ok(())
}

/// Does nothing unless run as the child of the watchdog test: then it starts the shared
/// cluster, reports where it lives and exits, leaving the clean-up to the watchdog.
#[tokio::test]
async fn watchdog_child() -> Result<(), Error> {
    if std::env::var_os(WATCHDOG_CHILD).is_some() {
        let cluster = Cluster::shared().await?;
        println!(
            "{CLUSTER_LINE}{} {}",
            cluster.port(),
            cluster.data_dir().display()
        );
    }
    Ok(())
}

#[test]
fn watchdog_removes_the_cluster_after_the_process_exits() -> Result<(), Error> {
    let exe = std::env::current_exe().map_err(io_error("current_exe"))?;
    let output = Command::new(exe)
        .args(["--exact", "watchdog_child", "--nocapture"])
        .env(WATCHDOG_CHILD, "1")
        .output()
        .map_err(io_error("run the child test"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (port, data_dir) = stdout
        .lines()
        .find_map(|line| line.strip_prefix(CLUSTER_LINE)?.split_once(' '))
        .unwrap_or_else(|| panic!("the child did not report its cluster: {stdout}"));
    let data_dir = PathBuf::from(data_dir);

    let deadline = Instant::now() + Duration::from_secs(10);
    while data_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "{} still exists 10 s after the test process exited",
            data_dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "PostgreSQL still listens on port {port}"
    );
    Ok(())
}
