//! `jcadm gateway`: the gateway's live view, fetched from jcapi's `GET /admin/gateway` on
//! its HTTP listener with HTTP Basic (a user with `console = "admin"`), over TLS when the URL
//! is https (checked against a given CA file, else the web's public roots).

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::Error;

/// The whole request may take this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The view as the gateway sends it.
pub async fn fetch(
    url: &str,
    user: &str,
    password: &str,
    cacert: Option<&Path>,
) -> Result<Value, Error> {
    let endpoint = format!("{}/admin/gateway", url.trim_end_matches('/'));
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let roots = match cacert {
        Some(path) => Some(roots(path)?),
        None => None,
    };
    tokio::task::spawn_blocking(move || get(&endpoint, &auth, roots))
        .await
        .map_err(|e| Error::Gateway(e.to_string()))?
}

/// The certificates of a PEM file, as the only roots to trust.
fn roots(path: &Path) -> Result<ureq::tls::RootCerts, Error> {
    let bad = |why: String| Error::BadInput(format!("--cacert {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) = item.map_err(|e| bad(e.to_string()))? {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(bad("no certificate in it".into()));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

fn get(endpoint: &str, auth: &str, roots: Option<ureq::tls::RootCerts>) -> Result<Value, Error> {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT));
    if let Some(roots) = roots {
        config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
    }
    let agent: ureq::Agent = config.build().into();
    let mut resp = agent
        .get(endpoint)
        .header("Authorization", format!("Basic {auth}"))
        .call()
        .map_err(|e| Error::Gateway(format!("GET {endpoint}: {e}")))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| Error::Gateway(format!("GET {endpoint}: reading the answer: {e}")))?;
    if !status.is_success() {
        return Err(Error::Gateway(format!(
            "GET {endpoint}: HTTP {status}: {}",
            body.trim()
        )));
    }
    serde_json::from_str(&body)
        .map_err(|e| Error::Gateway(format!("GET {endpoint}: not the admin view: {e}")))
}
