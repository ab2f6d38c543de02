//! The `jcapi` command: reads the layered configuration, sets up logging, and runs the
//! gateway until SIGTERM or SIGINT. `--hash-password` and `--hash-token` print values for the
//! users file.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use jcapi::{Config, Layer, ListenLayer, LogFormat};

/// The jobcenter gateway: JSON-RPC 2.0 for clients and workers over TCP (netstrings), TLS,
/// WebSocket and HTTP POST.
///
/// Settings come from the defaults, then --config FILE (TOML), then JC_ environment
/// variables (JC_DSN, JC_POOL_SIZE, JC_LISTEN, JC_USERS_FILE, JC_HTTP, JC_MAX_MESSAGE_SIZE,
/// JC_PING_INTERVAL, JC_PING_TIMEOUT, JC_OFFER_TIMEOUT, JC_SWEEP_INTERVAL, JC_WRITE_QUEUE,
/// JC_LOG_FORMAT, JC_LOG_LEVEL and one JC_ variable per limit below, e.g.
/// JC_MAX_CONNECTIONS), then these flags. The database role must be allowed to impersonate
/// the users (rows in jobcenter.jc_impersonate_roles). SIGHUP reloads the users file.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// A TOML file with any of the settings (keys as the flags, with underscores; listeners
    /// as [[listen]] tables with kind, address, auth, tls_cert, tls_key, client_ca,
    /// require_client_cert).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The database: a libpq connection string or a postgres:// URL.
    #[arg(long)]
    dsn: Option<String>,
    /// Connections in the pool for the calls.
    #[arg(long)]
    pool_size: Option<usize>,
    /// A listener, KIND:ADDRESS with KIND tcp or ws (repeatable; replaces the configured
    /// listeners), e.g. tcp:0.0.0.0:6522.
    #[arg(long, value_name = "KIND:ADDRESS")]
    listen: Vec<String>,
    /// The users file (TOML: [users.NAME] password, tokens, certs).
    #[arg(long, value_name = "FILE")]
    users_file: Option<PathBuf>,
    /// Where to serve /metrics and JSON-RPC over POST, e.g. 127.0.0.1:6524.
    #[arg(long, value_name = "ADDRESS")]
    http: Option<String>,
    /// The largest message accepted, in bytes (default 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_message_size: Option<usize>,
    /// How often workers are pinged (default 60s).
    #[arg(long, value_name = "DURATION")]
    ping_interval: Option<String>,
    /// A worker silent this long after a ping is disconnected (default 30s).
    #[arg(long, value_name = "DURATION")]
    ping_timeout: Option<String>,
    /// An offered task not taken within this goes to the next worker (default 10s).
    #[arg(long, value_name = "DURATION")]
    offer_timeout: Option<String>,
    /// How often ready tasks are looked for in the database (default 5s).
    #[arg(long, value_name = "DURATION")]
    sweep_interval: Option<String>,
    /// Results arriving within this of the first are finished in one transaction (default
    /// 1ms; 0 sends what is queued at once).
    #[arg(long, value_name = "DURATION")]
    task_done_window: Option<String>,
    /// create_job calls arriving within this of the first are made in one transaction
    /// (default 1ms; 0 sends what is queued at once).
    #[arg(long, value_name = "DURATION")]
    create_job_window: Option<String>,
    /// Takes of different workers arriving within this of the first are made in one
    /// transaction (default 1ms; 0 sends what is queued at once).
    #[arg(long, value_name = "DURATION")]
    get_task_window: Option<String>,
    /// Messages queued for a connection before it counts as too slow (default 4096).
    #[arg(long)]
    write_queue: Option<usize>,
    /// pretty or json.
    #[arg(long)]
    log_format: Option<String>,
    /// A tracing filter, e.g. info or jcapi=debug.
    #[arg(long)]
    log_level: Option<String>,
    /// The largest message before a successful hello, in bytes (default 4096).
    #[arg(long, value_name = "BYTES")]
    pre_auth_max_message: Option<usize>,
    /// The longest password or token accepted, in bytes (default 1024).
    #[arg(long, value_name = "BYTES")]
    max_password: Option<usize>,
    /// Open connections per listener (default 1024).
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Open connections per peer address, IPv6 per /64 (default 64).
    #[arg(long, value_name = "N")]
    max_connections_per_peer: Option<usize>,
    /// A connection not logged in within this is closed (default 10s).
    #[arg(long, value_name = "DURATION")]
    pre_auth_timeout: Option<String>,
    /// A client silent this long (no worker, no waited job) is closed (default 5m).
    #[arg(long, value_name = "DURATION")]
    idle_timeout: Option<String>,
    /// Bytes queued for a connection before it counts as not reading (default 64 MiB).
    #[arg(long, value_name = "BYTES")]
    write_queue_bytes: Option<usize>,
    /// The same before a successful hello (default 64 KiB).
    #[arg(long, value_name = "BYTES")]
    pre_auth_write_queue_bytes: Option<usize>,
    /// A connection whose queue stays full this long is closed (default 30s).
    #[arg(long, value_name = "DURATION")]
    write_timeout: Option<String>,
    /// Password checks running at once (default 4).
    #[arg(long, value_name = "N")]
    password_checks: Option<usize>,
    /// Failed logins per peer address before it is refused (default 10) ...
    #[arg(long, value_name = "N")]
    login_failures: Option<usize>,
    /// ... and the time that gives one back (default 6s).
    #[arg(long, value_name = "DURATION")]
    login_failure_refill: Option<String>,
    /// The longest peer-supplied string in a log line, in characters (default 200).
    #[arg(long, value_name = "N")]
    log_field_max: Option<usize>,
    /// Log lines per second about peers refused before auth (default 20).
    #[arg(long, value_name = "N")]
    pre_auth_log_rate: Option<usize>,
    /// The most slots one announce or slot group may have (default 1000).
    #[arg(long, value_name = "N")]
    max_slots: Option<usize>,
    /// The HTTP listener's auth methods, comma-separated (default: those every listener
    /// accepts, of password and token).
    #[arg(long, value_name = "METHODS", value_delimiter = ',')]
    http_auth: Option<Vec<String>>,
    /// TLS for the HTTP listener: its certificate chain (PEM) ...
    #[arg(long, value_name = "FILE", requires = "http_tls_key")]
    http_tls_cert: Option<PathBuf>,
    /// ... and its key.
    #[arg(long, value_name = "FILE", requires = "http_tls_cert")]
    http_tls_key: Option<PathBuf>,
    /// A browser origin allowed to open WebSocket connections (repeatable).
    #[arg(long = "ws-origin", value_name = "ORIGIN")]
    ws_origins: Vec<String>,
    /// Print the resolved configuration as TOML and exit.
    #[arg(long)]
    dump_config: bool,
    /// Read a password from standard input and print its argon2 hash for the users file.
    #[arg(long, conflicts_with = "hash_token")]
    hash_password: bool,
    /// Read an API token from standard input and print its digest for the users file.
    #[arg(long)]
    hash_token: bool,
}

impl Args {
    fn layer(&self) -> anyhow::Result<Layer> {
        let listen = if self.listen.is_empty() {
            None
        } else {
            Some(
                self.listen
                    .iter()
                    .map(|l| ListenLayer::parse_short(l))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(Layer {
            dsn: self.dsn.clone(),
            pool_size: self.pool_size,
            listen,
            users_file: self.users_file.clone(),
            http: self.http.clone(),
            max_message_size: self.max_message_size,
            ping_interval: self.ping_interval.clone(),
            ping_timeout: self.ping_timeout.clone(),
            offer_timeout: self.offer_timeout.clone(),
            sweep_interval: self.sweep_interval.clone(),
            task_done_window: self.task_done_window.clone(),
            create_job_window: self.create_job_window.clone(),
            get_task_window: self.get_task_window.clone(),
            write_queue: self.write_queue,
            log_format: self.log_format.clone(),
            log_level: self.log_level.clone(),
            pre_auth_max_message: self.pre_auth_max_message,
            max_password: self.max_password,
            max_connections: self.max_connections,
            max_connections_per_peer: self.max_connections_per_peer,
            pre_auth_timeout: self.pre_auth_timeout.clone(),
            idle_timeout: self.idle_timeout.clone(),
            write_queue_bytes: self.write_queue_bytes,
            pre_auth_write_queue_bytes: self.pre_auth_write_queue_bytes,
            write_timeout: self.write_timeout.clone(),
            password_checks: self.password_checks,
            login_failures: self.login_failures,
            login_failure_refill: self.login_failure_refill.clone(),
            log_field_max: self.log_field_max,
            pre_auth_log_rate: self.pre_auth_log_rate,
            max_slots: self.max_slots,
            http_auth: self.http_auth.clone(),
            http_tls_cert: self.http_tls_cert.clone(),
            http_tls_key: self.http_tls_key.clone(),
            ws_origins: (!self.ws_origins.is_empty()).then(|| self.ws_origins.clone()),
        })
    }
}

fn read_secret() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    let secret = line.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(!secret.is_empty(), "nothing on standard input");
    Ok(secret)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.hash_password {
        let hash = jcapi::hash_password(&read_secret()?).map_err(anyhow::Error::msg)?;
        println!("{hash}");
        return Ok(());
    }
    if args.hash_token {
        println!("{}", jcapi::token_digest(&read_secret()?));
        return Ok(());
    }
    let mut layers = Vec::new();
    if let Some(path) = &args.config {
        layers.push(Layer::from_file(path)?);
    }
    layers.push(Layer::from_env(|k| std::env::var(k).ok())?);
    layers.push(args.layer()?);
    let config = Config::resolve(layers)?;
    if args.dump_config {
        print!("{}", config.dump());
        return Ok(());
    }

    // The database driver logs every statement's parameters (inargs, outargs, cookies) at
    // debug, and the WebSocket library every message (passwords in `hello`) at trace: never,
    // whatever the level asked for.
    let mut filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .with_context(|| format!("log_level {:?}", config.log_level))?;
    for quiet in [
        "tokio_postgres=info",
        "tungstenite=info",
        "tokio_tungstenite=info",
    ] {
        filter = filter.add_directive(quiet.parse()?);
    }
    // Colour codes only for a terminal: a log file gets plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Pretty => logs.init(),
    }

    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(async {
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot catch SIGTERM");
                        let _ = tokio::signal::ctrl_c().await;
                        return;
                    }
                };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        };
        jcapi::run_with(
            config,
            shutdown,
            std::sync::Arc::new(jcapi::Metrics::default()),
            |addrs| {
                // A line per listener on standard output, then "ready": for scripts and tests
                // that start the gateway on port 0.
                for (kind, addr) in &addrs.listeners {
                    println!("listening {} {addr}", kind.name());
                }
                if let Some(addr) = addrs.http {
                    println!("listening http {addr}");
                }
                println!("ready");
            },
        )
        .await
    })?;
    Ok(())
}
