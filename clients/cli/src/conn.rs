//! Connection options: command-line flags, each with a `JC_` environment variable, over a
//! TOML file's `[connection]` table (or its top level, for `jcclient --config`).
//!
//! ```toml
//! host = "localhost"      # or: ws = "ws://localhost:6523/"
//! port = 6522
//! tls = true
//! ca = "ca.pem"
//! cert = "client.pem"     # with key: a client certificate
//! key = "client.key"
//! user = "alice"
//! password = "secret"     # or: token = "…"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use jc_client::{Auth, Config, Endpoint, TlsOptions};
use serde::Deserialize;

/// The connection flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConnOpts {
    /// Gateway host.
    #[arg(long, env = "JC_HOST")]
    pub host: Option<String>,
    /// Gateway port (TCP or TLS).
    #[arg(long, env = "JC_PORT")]
    pub port: Option<u16>,
    /// Use TLS.
    #[arg(long, env = "JC_TLS")]
    pub tls: bool,
    /// The CA certificate (PEM) to trust instead of the system's roots.
    #[arg(long, env = "JC_CA")]
    pub ca: Option<PathBuf>,
    /// A client certificate (PEM), with --key.
    #[arg(long, env = "JC_CERT")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, env = "JC_KEY")]
    pub key: Option<PathBuf>,
    /// The name to check on the server's certificate (default: the host).
    #[arg(long, env = "JC_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Connect over WebSocket to this URL (ws:// or wss://) instead of TCP.
    #[arg(long, env = "JC_WS")]
    pub ws: Option<String>,
    /// User name.
    #[arg(long, env = "JC_USER")]
    pub user: Option<String>,
    /// Password.
    #[arg(long, env = "JC_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// API token (instead of a password).
    #[arg(long, env = "JC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The same settings in a file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConnFile {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<bool>,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
    pub ws: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// The worker's name in `announce`.
    pub workername: Option<String>,
    /// Seconds to wait for each call's answer.
    pub call_timeout: Option<f64>,
}

impl ConnFile {
    /// Reads a TOML file of connection settings; relative paths are relative to the file.
    pub fn load(path: &Path) -> anyhow::Result<ConnFile> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut f: ConnFile =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        f.resolve_paths(path);
        Ok(f)
    }

    pub(crate) fn resolve_paths(&mut self, file: &Path) {
        let base = file.parent().unwrap_or(Path::new("."));
        for p in [&mut self.ca, &mut self.cert, &mut self.key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// The client configuration: flags and environment first, then the file, then defaults.
pub fn client_config(opts: &ConnOpts, file: &ConnFile) -> anyhow::Result<Config> {
    let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
    let pickp = |a: &Option<PathBuf>, b: &Option<PathBuf>| a.clone().or_else(|| b.clone());
    let tls_opts = TlsOptions {
        ca: pickp(&opts.ca, &file.ca),
        cert: pickp(&opts.cert, &file.cert),
        key: pickp(&opts.key, &file.key),
        server_name: pick(&opts.server_name, &file.server_name),
    };
    if tls_opts.cert.is_some() != tls_opts.key.is_some() {
        bail!("a client certificate needs both --cert and --key");
    }
    let host = pick(&opts.host, &file.host).unwrap_or_else(|| "localhost".into());
    let port = opts
        .port
        .or(file.port)
        .unwrap_or(jc_client::jc_proto::DEFAULT_PORT);
    let endpoint = match pick(&opts.ws, &file.ws) {
        Some(url) => Endpoint::WebSocket { url, tls: tls_opts },
        None if opts.tls || file.tls == Some(true) => Endpoint::tls(host, port, tls_opts),
        None => {
            if tls_opts.cert.is_some() {
                bail!("a client certificate needs --tls (or a wss:// URL)");
            }
            Endpoint::tcp(host, port)
        }
    };
    let user = pick(&opts.user, &file.user);
    let has_cert = match &endpoint {
        Endpoint::Tls { tls, .. } | Endpoint::WebSocket { tls, .. } => tls.cert.is_some(),
        Endpoint::Tcp { .. } => false,
    };
    let who = |what: &str| match &user {
        Some(u) => Ok(u.clone()),
        None => Err(anyhow::anyhow!(
            "{what} needs a user name (--user or JC_USER)"
        )),
    };
    let auth = if let Some(token) = pick(&opts.token, &file.token) {
        Auth::Token {
            who: who("a token")?,
            token,
        }
    } else if let Some(password) = pick(&opts.password, &file.password) {
        Auth::Password {
            who: who("a password")?,
            password,
        }
    } else if has_cert {
        Auth::ClientCert {
            who: who("a client certificate")?,
        }
    } else {
        bail!(
            "no credentials: give --user and --password, --token, or a client certificate \
             (or JC_USER/JC_PASSWORD, JC_TOKEN, a config file)"
        );
    };
    let mut config = Config::new(endpoint, auth);
    config.workername = file.workername.clone();
    if let Some(t) = file.call_timeout {
        if !(t.is_finite() && t > 0.0) {
            bail!("call_timeout must be a positive number of seconds");
        }
        config.call_timeout = Duration::from_secs_f64(t);
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_pick_the_transport_and_auth() {
        let file = ConnFile {
            host: Some("filehost".into()),
            port: Some(7000),
            user: Some("bob".into()),
            password: Some("pw".into()),
            ..Default::default()
        };
        let c = client_config(&ConnOpts::default(), &file).unwrap();
        assert_eq!(c.endpoint, Endpoint::tcp("filehost", 7000));
        assert_eq!(
            c.auth,
            Auth::Password {
                who: "bob".into(),
                password: "pw".into()
            }
        );
        let opts = ConnOpts {
            host: Some("cli".into()),
            token: Some("tok".into()),
            tls: true,
            ca: Some("/ca.pem".into()),
            ..Default::default()
        };
        let c = client_config(&opts, &file).unwrap();
        assert_eq!(
            c.endpoint,
            Endpoint::tls(
                "cli",
                7000,
                TlsOptions {
                    ca: Some("/ca.pem".into()),
                    ..Default::default()
                }
            )
        );
        assert_eq!(
            c.auth,
            Auth::Token {
                who: "bob".into(),
                token: "tok".into()
            }
        );
        let opts = ConnOpts {
            ws: Some("ws://h:1/".into()),
            ..Default::default()
        };
        let c = client_config(&opts, &file).unwrap();
        assert!(matches!(c.endpoint, Endpoint::WebSocket { ref url, .. } if url == "ws://h:1/"));
    }

    #[test]
    fn missing_or_half_credentials_are_refused() {
        let e = client_config(&ConnOpts::default(), &ConnFile::default()).unwrap_err();
        assert!(e.to_string().contains("no credentials"), "{e}");
        let opts = ConnOpts {
            password: Some("x".into()),
            ..Default::default()
        };
        let e = client_config(&opts, &ConnFile::default()).unwrap_err();
        assert!(e.to_string().contains("needs a user"), "{e}");
        let opts = ConnOpts {
            cert: Some("c.pem".into()),
            tls: true,
            ..Default::default()
        };
        let e = client_config(&opts, &ConnFile::default()).unwrap_err();
        assert!(e.to_string().contains("both --cert and --key"), "{e}");
        let opts = ConnOpts {
            cert: Some("c.pem".into()),
            key: Some("c.key".into()),
            ..Default::default()
        };
        let e = client_config(&opts, &ConnFile::default()).unwrap_err();
        assert!(e.to_string().contains("needs --tls"), "{e}");
    }

    #[test]
    fn a_file_with_a_client_certificate_authenticates_by_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("conn.toml");
        std::fs::write(
            &p,
            "host = \"h\"\ntls = true\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\nuser = \"alice\"\n",
        )
        .unwrap();
        let f = ConnFile::load(&p).unwrap();
        assert_eq!(f.ca, Some(dir.path().join("ca.pem")));
        let c = client_config(&ConnOpts::default(), &f).unwrap();
        assert_eq!(
            c.auth,
            Auth::ClientCert {
                who: "alice".into()
            }
        );
        std::fs::write(&p, "hots = \"typo\"\n").unwrap();
        let e = ConnFile::load(&p).unwrap_err();
        assert!(format!("{e:#}").contains("hots"), "{e:#}");
    }
}
