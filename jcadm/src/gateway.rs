//! `jcadm gateway`: the gateway's live view, fetched from jcapi's `GET /admin/gateway` on
//! its HTTP listener with HTTP Basic (a user with `console = "admin"`).

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::Error;

/// The whole request may take this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The view as the gateway sends it.
pub async fn fetch(url: &str, user: &str, password: &str) -> Result<Value, Error> {
    let endpoint = format!("{}/admin/gateway", url.trim_end_matches('/'));
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    tokio::task::spawn_blocking(move || get(&endpoint, &auth))
        .await
        .map_err(|e| Error::Gateway(e.to_string()))?
}

fn get(endpoint: &str, auth: &str) -> Result<Value, Error> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
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
