//! A private PostgreSQL cluster: initdb into a fresh temporary directory, started on a
//! free port of 127.0.0.1 with settings that trade durability for speed.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::OnceCell;

use crate::tools::{self, Tools};
use crate::{watchdog, Error};

/// The extension every database from [`Cluster::new_db`] has.
const EXTENSION: &str = "jobcenter";

/// How many fresh ports to try when another process takes ours between probing and
/// binding.
const PORT_ATTEMPTS: usize = 5;

/// Lines of the server log quoted when the server does not start.
const LOG_TAIL_LINES: usize = 30;

static SHARED: OnceCell<Cluster> = OnceCell::const_new();

/// How to set up a cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOptions {
    /// Keep `fsync`, `synchronous_commit` and `full_page_writes` on, so that timings
    /// reflect a real deployment (the benchmark). Off by default: tests never survive a
    /// machine crash and run much faster without flushing.
    pub durable: bool,
}

/// The files of a cluster that accepts TLS ([`Cluster::enable_tls`]), as PEM text.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    /// The CA client certificates are checked against (`ssl_ca_file`).
    pub ca_pem: String,
}

/// A running PostgreSQL 15 cluster owned by this test process.
///
/// Its directory (data, unix socket and log) lives under the system temp dir. A
/// cluster from [`Cluster::start`] is stopped and deleted when dropped; the one from
/// [`Cluster::shared`] lives until the process exits, after which a watchdog process
/// stops it and deletes the directory.
#[derive(Debug)]
pub struct Cluster {
    tools: Tools,
    /// The temp directory holding everything below.
    base: PathBuf,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    running: AtomicBool,
    extension: &'static str,
    /// Set once the template database with the extension exists.
    pub(crate) template: OnceCell<()>,
}

impl Cluster {
    /// The cluster shared by all tests of this process, started on first use.
    ///
    /// If starting fails, the error is returned and the next call tries again.
    pub async fn shared() -> Result<&'static Cluster, Error> {
        SHARED
            .get_or_try_init(|| Cluster::start(ClusterOptions::default()))
            .await
    }

    /// Starts a cluster owned by the caller; dropping it stops it (`pg_ctl stop -m
    /// fast`) and deletes its directory.
    pub async fn start(options: ClusterOptions) -> Result<Cluster, Error> {
        Cluster::start_with_extension(options, EXTENSION).await
    }

    /// [`Cluster::start`] with another extension in the template, so that the template
    /// machinery can be tested with an extension PostgreSQL ships.
    pub(crate) async fn start_with_extension(
        options: ClusterOptions,
        extension: &'static str,
    ) -> Result<Cluster, Error> {
        let tools = Tools::detect();
        let base = tempfile::Builder::new()
            .prefix("jc-test-")
            .tempdir()
            .map_err(Error::io("could not create a temporary directory"))?
            .keep();
        let data = base.join("data");
        let mut cluster = Cluster {
            log: data.join("postgres.log"),
            data,
            base,
            tools,
            port: 0,
            running: AtomicBool::new(false),
            extension,
            template: OnceCell::new(),
        };
        // From here on a failure drops `cluster`, which deletes the directory; the
        // watchdog covers the process dying before that.
        watchdog::spawn(&cluster.base, &cluster.pg_ctl_stop("immediate"))?;
        let socket_dir = cluster.base.join("socket");
        fs::create_dir(&socket_dir).map_err(Error::io(format!(
            "could not create {}",
            socket_dir.display()
        )))?;
        if cluster.tools.as_postgres() {
            let mut chown = Command::new("chown");
            chown.arg("-R").arg("postgres:").arg(&cluster.base);
            tools::run(chown).await?;
        }
        cluster.initdb().await?;
        cluster.write_settings(&options, &socket_dir)?;
        cluster.start_on_free_port().await?;
        Ok(cluster)
    }

    /// A libpq-style connection string for database `db`.
    pub fn dsn(&self, db: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            self.port
        )
    }

    /// The TCP port on 127.0.0.1 the server listens on; it survives [`Cluster::restart`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data directory (`PGDATA`); the server log is `postgres.log` in it.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Stops the server (`pg_ctl stop -m fast`); does nothing if it is not running.
    pub async fn stop(&self) -> Result<(), Error> {
        if self.running.load(Ordering::SeqCst) {
            tools::run(self.pg_ctl_stop("fast")).await?;
            self.running.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Stops the server and starts it again on the same port and data directory, as
    /// for a test of how a daemon copes with PostgreSQL going away.
    pub async fn restart(&self) -> Result<(), Error> {
        self.stop().await?;
        self.pg_ctl_start().await
    }

    /// Crashes the server (`pg_ctl stop -m immediate`: no shutdown checkpoint, connections
    /// cut at once; the next start runs crash recovery), as for a test of an outage.
    pub async fn crash(&self) -> Result<(), Error> {
        if self.running.load(Ordering::SeqCst) {
            tools::run(self.pg_ctl_stop("immediate")).await?;
            self.running.store(false, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Starts a server that [`Cluster::stop`] or [`Cluster::crash`] stopped, on the same
    /// port and data directory; does nothing if it is running.
    pub async fn start_again(&self) -> Result<(), Error> {
        if self.running.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.pg_ctl_start().await
    }

    /// Turns TLS on: writes the server's certificate and key and the CA that client
    /// certificates must chain to into the data directory, puts the rules `hba` (pg_hba.conf
    /// lines) before the existing ones, and restarts the server on the same port.
    pub async fn enable_tls(&self, tls: &ServerTls, hba: &str) -> Result<(), Error> {
        let files = [
            ("server.crt", &tls.cert_pem),
            ("server.key", &tls.key_pem),
            ("root.crt", &tls.ca_pem),
        ];
        for (name, text) in files {
            let path = self.data.join(name);
            fs::write(&path, text)
                .map_err(Error::io(format!("could not write {}", path.display())))?;
            // PostgreSQL refuses a key file others can read.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(Error::io(format!("could not chmod {}", path.display())))?;
        }
        let settings = "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                        ssl_ca_file = 'root.crt'\n";
        let conf = self.data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(Error::io(format!("could not write {}", conf.display())))?;
        let hba_file = self.data.join("pg_hba.conf");
        let old = fs::read_to_string(&hba_file)
            .map_err(Error::io(format!("could not read {}", hba_file.display())))?;
        fs::write(&hba_file, format!("{hba}\n{old}"))
            .map_err(Error::io(format!("could not write {}", hba_file.display())))?;
        if self.tools.as_postgres() {
            let mut chown = Command::new("chown");
            chown.arg("postgres:");
            for (name, _) in files {
                chown.arg(self.data.join(name));
            }
            tools::run(chown).await?;
        }
        self.restart().await
    }

    pub(crate) fn extension(&self) -> &'static str {
        self.extension
    }

    async fn initdb(&self) -> Result<(), Error> {
        let mut initdb = self.tools.command("initdb", &self.base);
        initdb
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            // A throw-away cluster need not be flushed to disk.
            .args(["--no-sync", "--no-instructions"]);
        tools::run(initdb).await?;
        Ok(())
    }

    /// Appends the test settings to postgresql.conf rather than passing them to
    /// `pg_ctl -o`, where a path would have to survive a shell; they also persist across
    /// restarts that way. Only the port is given on the command line.
    fn write_settings(&self, options: &ClusterOptions, socket_dir: &Path) -> Result<(), Error> {
        let durability = if options.durable { "on" } else { "off" };
        let socket_dir = socket_dir.to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# added by testkit\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             max_connections = 300\n\
             shared_buffers = 128MB\n\
             fsync = {durability}\n\
             synchronous_commit = {durability}\n\
             full_page_writes = {durability}\n"
        );
        let conf = self.data.join("postgresql.conf");
        fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(Error::io(format!("could not write {}", conf.display())))
    }

    /// Picks a free port and starts there, trying another port if someone else took it
    /// between our probe and the server's bind.
    async fn start_on_free_port(&mut self) -> Result<(), Error> {
        let mut attempt = 1;
        loop {
            self.port = free_port()?;
            let log_before = fs::metadata(&self.log).map_or(0, |meta| meta.len());
            match self.pg_ctl_start().await {
                Err(_) if attempt < PORT_ATTEMPTS && self.port_taken_since(log_before) => {
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn port_taken_since(&self, offset: u64) -> bool {
        let log = fs::read(&self.log).unwrap_or_default();
        let new = log.get(offset as usize..).unwrap_or_default();
        String::from_utf8_lossy(new).contains("Address already in use")
    }

    async fn pg_ctl_start(&self) -> Result<(), Error> {
        let mut pg_ctl = self.tools.command("pg_ctl", &self.base);
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .arg("-o")
            .arg(format!("-p {}", self.port))
            .args(["-w", "start"]);
        match tools::run(pg_ctl).await {
            Ok(_) => {
                self.running.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(cause) => Err(Error::Start {
                cause: Box::new(cause),
                log: self.log.clone(),
                log_tail: log_tail(&self.log),
            }),
        }
    }

    fn pg_ctl_stop(&self, mode: &str) -> Command {
        let mut pg_ctl = self.tools.command("pg_ctl", &self.base);
        pg_ctl
            .arg("-D")
            .arg(&self.data)
            .args(["-m", mode, "-w", "stop"]);
        pg_ctl
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running.load(Ordering::SeqCst) {
            if let Err(error) = tools::run_blocking(self.pg_ctl_stop("fast")) {
                eprintln!("testkit: could not stop the test cluster: {error}");
            }
        }
        if let Err(error) = fs::remove_dir_all(&self.base) {
            eprintln!("testkit: could not remove {}: {error}", self.base.display());
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16, Error> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(Error::io("could not find a free port on 127.0.0.1"))
}

fn log_tail(log: &Path) -> String {
    match fs::read(log) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(error) => format!("(could not read the log: {error})"),
    }
}
