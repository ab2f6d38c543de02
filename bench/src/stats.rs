//! `--stats`: where the server's time went, from pg_stat_statements (nested statements of the
//! engine's PL/pgSQL functions included).

use anyhow::Context as _;

use crate::conn::Conn;

/// Statements shown per round.
const TOP: i64 = 15;

/// Loads pg_stat_statements (tracking nested statements too) and restarts the cluster.
pub async fn enable(cluster: &testkit::Cluster) -> anyhow::Result<()> {
    let admin = Conn::open(&cluster.dsn("postgres")).await?;
    // ALTER SYSTEM cannot run in the implicit transaction of a batch, and the setting of
    // pg_stat_statements exists only once the library is loaded.
    admin
        .client
        .batch_execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .await
        .context("could not load pg_stat_statements")?;
    drop(admin);
    cluster
        .restart()
        .await
        .context("could not restart the cluster")?;
    let admin = Conn::open(&cluster.dsn("postgres")).await?;
    for statement in [
        "ALTER SYSTEM SET pg_stat_statements.track = 'all'",
        "ALTER SYSTEM SET track_functions = 'all'",
        "SELECT pg_reload_conf()",
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    ] {
        admin
            .client
            .batch_execute(statement)
            .await
            .with_context(|| format!("could not set up pg_stat_statements: {statement}"))?;
    }
    Ok(())
}

/// Forgets the statistics gathered so far.
pub async fn reset(cluster: &testkit::Cluster) -> anyhow::Result<()> {
    let admin = Conn::open(&cluster.dsn("postgres")).await?;
    admin
        .client
        .batch_execute("SELECT pg_stat_statements_reset()")
        .await
        .context("could not reset pg_stat_statements")?;
    Ok(())
}

/// Prints the statements of database `db` that took the most time.
pub async fn print_top(cluster: &testkit::Cluster, db: &str) -> anyhow::Result<()> {
    let admin = Conn::open(&cluster.dsn("postgres")).await?;
    let rows = admin
        .client
        .query(
            "select s.calls, s.total_exec_time, s.mean_exec_time, s.toplevel, \
                    regexp_replace(s.query, '\\s+', ' ', 'g') \
             from pg_stat_statements s join pg_database d on d.oid = s.dbid \
             where d.datname = $1 order by s.total_exec_time desc limit $2",
            &[&db, &TOP],
        )
        .await
        .context("could not read pg_stat_statements")?;
    println!("  top statements by total time (nested ones are part of their callers' time):");
    println!(
        "  {:>8} {:>10} {:>8} {:>3}  query",
        "calls", "total_ms", "mean_ms", "top"
    );
    for r in rows {
        let query: String = r.get(4);
        let query: String = query.chars().take(110).collect();
        println!(
            "  {:>8} {:>10.1} {:>8.3} {:>3}  {query}",
            r.get::<_, i64>(0),
            r.get::<_, f64>(1),
            r.get::<_, f64>(2),
            if r.get::<_, bool>(3) { "y" } else { "n" },
        );
    }
    Ok(())
}

/// Prints the engine's functions in database `db` by the time spent in them, their own
/// (`self_ms`, without the functions they call) and in all (`total_ms`), since the database
/// was created (track_functions = all).
pub async fn print_functions(cluster: &testkit::Cluster, db: &str) -> anyhow::Result<()> {
    let c = Conn::open(&cluster.dsn(db)).await?;
    let rows = c
        .client
        .query(
            "select funcname::text, calls, self_time, total_time \
             from pg_stat_user_functions where schemaname = 'jobcenter' \
             order by self_time desc limit $1",
            &[&TOP],
        )
        .await
        .context("could not read pg_stat_user_functions")?;
    println!("  functions by their own time:");
    println!(
        "  {:>8} {:>10} {:>10}  function",
        "calls", "self_ms", "total_ms"
    );
    for r in rows {
        println!(
            "  {:>8} {:>10.1} {:>10.1}  {}",
            r.get::<_, i64>(1),
            r.get::<_, f64>(2),
            r.get::<_, f64>(3),
            r.get::<_, String>(0),
        );
    }
    Ok(())
}
