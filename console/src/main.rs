//! `jcconsole`: jobcenter's web console (see the library for the pages).
//!
//! Prints `listening http://ADDR` on stdout once it accepts connections (useful with port 0).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;

/// jobcenter's web console.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The database: a libpq connection string or URL.
    #[arg(long, env = "JC_DSN")]
    dsn: String,
    /// Where to listen (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:6526")]
    listen: SocketAddr,
    /// The gateway's users file: who may log in, and with `console = "admin"` who may act.
    #[arg(long, env = "JC_USERS_FILE")]
    users_file: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let users = jcapi::Users::load(&cli.users_file)?;
    let app = Arc::new(jcconsole::App::new(&cli.dsn, users)?);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cli.listen))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening http://{addr}")?;
    out.flush()?;
    drop(out);
    jcconsole::serve(listener, app, async {
        // Without a signal handler the console serves until killed.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
    .await?;
    Ok(())
}
