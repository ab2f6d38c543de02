//! TLS through the real `jcapi` binary: netstrings over TLS without client certificates,
//! with optional and with required client certificates verified against a CA (a name of the
//! certificate, CN or alternative name, listed in a user's `certs` logs in with
//! `clientcert`), certificates from another CA or revoked by the CRL refused, the users file
//! reloaded on SIGHUP, WebSocket over TLS and the HTTP listener over TLS. Certificates are
//! made in the test with rcgen.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

struct Setup {
    env: Env,
    g: Gateway,
    pki: Pki,
    carol: (String, String),
    alice: (String, String),
    rogue: (String, String),
}

async fn setup() -> Setup {
    let env = env().await;
    let dir = env.dir.path().to_owned();
    let pki = Pki::new(&dir, "ca");
    pki.issue("localhost", "server");
    let carol = pki.issue("carol-laptop", "carol");
    let alice = pki.issue("alice", "alice");
    let rogue_ca = Pki::new(&dir, "rogue-ca");
    let rogue = rogue_ca.issue("alice", "rogue");
    let server = |ext: &str| dir.join(format!("server.{ext}")).display().to_string();
    let ca = pki.ca_file("ca").display().to_string();
    let config = format!(
        r#"
[[listen]]
kind = "tls"
address = "127.0.0.1:0"
tls_cert = {cert:?}
tls_key = {key:?}

[[listen]]
kind = "tcp"
address = "127.0.0.1:0"

[[listen]]
kind = "wss"
address = "127.0.0.1:0"
tls_cert = {cert:?}
tls_key = {key:?}
client_ca = {ca:?}
"#,
        cert = server("pem"),
        key = server("key"),
    );
    let file = dir.join("jcapi.toml");
    std::fs::write(&file, config).unwrap();
    // The client-certificate TLS listeners get gateways of their own
    // (client_cert_gateway): the test finds listeners by kind.
    let g = Gateway::start(&env, &["--config", file.to_str().unwrap()]).await;
    Setup {
        env,
        g,
        pki,
        carol,
        alice,
        rogue,
    }
}

fn as_ref(pair: &(String, String)) -> Option<(&str, &str)> {
    Some((pair.0.as_str(), pair.1.as_str()))
}

async fn client_cert_gateway(s: &Setup, required: bool) -> Gateway {
    let dir = s.env.dir.path();
    let server = |ext: &str| dir.join(format!("server.{ext}")).display().to_string();
    let config = format!(
        r#"
[[listen]]
kind = "tls"
address = "127.0.0.1:0"
auth = ["password", "clientcert"]
tls_cert = {cert:?}
tls_key = {key:?}
client_ca = {ca:?}
require_client_cert = {required}
"#,
        cert = server("pem"),
        key = server("key"),
        ca = s.pki.ca_file("ca").display().to_string(),
    );
    let file = dir.join(format!("jcapi-{required}.toml"));
    std::fs::write(&file, config).unwrap();
    Gateway::start(&s.env, &["--config", file.to_str().unwrap()]).await
}

#[tokio::test]
async fn tls_without_client_certificates() {
    let s = setup().await;
    let mut c = tls(s.g.addr("tls"), &s.pki.ca_pem, None).await;
    c.login("alice", ALICE_PW).await;
    let job = c.create_job("nothing", json!({"input": 3})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 3}));
    // A worker over TLS too.
    let mut w = tls(s.g.addr("tls"), &s.pki.ca_pem, None).await;
    w.login("alice", ALICE_PW).await;
    assert_eq!(
        w.call(
            "announce",
            json!({"actionname": "add", "workername": "tlsw"})
        )
        .await,
        json!([true, "success"])
    );
    let done = Done::default();
    let wt = worker(w, "add", done, std::time::Duration::ZERO, add);
    let job = c.create_job("calltest", json!({"input": 5})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 8}));
    wt.abort();
    // clientcert is not among this listener's methods.
    let mut c = tls(s.g.addr("tls"), &s.pki.ca_pem, None).await;
    let r = c.hello("carol", "clientcert", "").await;
    assert_eq!(r[0], false);
    assert!(c.closed(WAIT).await);
    // A client that does not trust the server's CA cannot connect.
    let rogue_ca = Pki::new(s.env.dir.path(), "other");
    assert!(tls_raw(s.g.addr("tls"), &rogue_ca.ca_pem, None)
        .await
        .is_err());
}

#[tokio::test]
async fn optional_client_certificates_log_in_by_their_cn() {
    let s = setup().await;
    let g = client_cert_gateway(&s, false).await;
    let addr = g.addr("tls");

    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.carol)).await;
    assert_eq!(
        c.hello("carol", "clientcert", "").await,
        json!([true, "welcome to the clientapi carol!"])
    );
    let job = c.create_job("nothing", json!({"input": 4})).await;
    assert_eq!(c.job_done(job).await, json!({"output": 4}));

    // The CN names the user; a certificate does not make you someone else.
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.carol)).await;
    let r = c.hello("alice", "clientcert", "").await;
    assert_eq!(r[0], false, "{r}");
    assert!(c.closed(WAIT).await);
    // A CN equal to a user's name is not enough: alice's certs list no name of it.
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.alice)).await;
    let r = c.hello("alice", "clientcert", "").await;
    assert_eq!(r[0], false, "{r}");

    // Without a certificate: passwords still work, clientcert does not.
    let mut c = tls(addr, &s.pki.ca_pem, None).await;
    let r = c.hello("alice", "clientcert", "").await;
    assert_eq!(r, json!([false, "no verified client certificate"]));
    let mut c = tls(addr, &s.pki.ca_pem, None).await;
    c.login("alice", ALICE_PW).await;
    // Tokens are not accepted on this listener.
    let mut c = tls(addr, &s.pki.ca_pem, None).await;
    assert_eq!(c.hello("alice", "token", ALICE_TOKEN).await[0], false);

    // A certificate of another CA is refused in the handshake.
    let refused = match tls_raw(addr, &s.pki.ca_pem, as_ref(&s.rogue)).await {
        Err(_) => true,
        Ok(mut c) => c.recv(WAIT).await.is_none(),
    };
    assert!(refused, "a certificate from another CA was accepted");
}

#[tokio::test]
async fn required_client_certificates_refuse_clients_without_one() {
    let s = setup().await;
    let g = client_cert_gateway(&s, true).await;
    let addr = g.addr("tls");
    let refused = match tls_raw(addr, &s.pki.ca_pem, None).await {
        Err(_) => true,
        // TLS 1.3: the client learns of the refusal at its first read.
        Ok(mut c) => c.recv(WAIT).await.is_none(),
    };
    assert!(refused, "a client without a certificate was served");
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.carol)).await;
    assert_eq!(c.hello("carol", "clientcert", "").await[0], true);
    // A password still works over a verified connection.
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.carol)).await;
    c.login("alice", ALICE_PW).await;
}

#[tokio::test]
async fn websocket_over_tls_with_a_client_certificate() {
    use futures_util::{SinkExt, StreamExt};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use std::sync::Arc;

    let s = setup().await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(s.pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(s.carol.0.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(s.carol.1.as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(s.g.addr("wss"))
        .await
        .unwrap();
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("wss://localhost/", stream)
        .await
        .unwrap();
    let next = |m: Option<Result<WsMessage, _>>| -> serde_json::Value {
        match m {
            Some(Ok(WsMessage::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("{other:?}"),
        }
    };
    let g = next(ws.next().await);
    assert_eq!(g["method"], "greetings");
    ws.send(WsMessage::text(
        json!({"jsonrpc": "2.0", "id": 1, "method": "hello",
               "params": {"who": "carol", "method": "clientcert", "token": ""}})
        .to_string(),
    ))
    .await
    .unwrap();
    let r = next(ws.next().await);
    assert_eq!(
        r["result"],
        json!([true, "welcome to the clientapi carol!"])
    );
}

#[tokio::test]
async fn a_certificate_logs_in_by_any_listed_name_unless_revoked() {
    let s = setup().await;
    let dir = s.env.dir.path();
    // CN "laptop-7", carol's listed name as a DNS alternative name.
    let by_san = s.pki.issue_with("laptop-7", &["carol-laptop"], 7, "by-san");
    let revoked = s.pki.issue_with("carol-laptop", &[], 8, "revoked");
    let crl = s.pki.crl(&[8], "crl");
    let server = |ext: &str| dir.join(format!("server.{ext}")).display().to_string();
    let config = format!(
        "[[listen]]\nkind = \"tls\"\naddress = \"127.0.0.1:0\"\nauth = [\"clientcert\"]\n\
         tls_cert = {:?}\ntls_key = {:?}\nclient_ca = {:?}\ncrl = {:?}\n",
        server("pem"),
        server("key"),
        s.pki.ca_file("ca").display().to_string(),
        crl.display().to_string(),
    );
    let file = dir.join("jcapi-crl.toml");
    std::fs::write(&file, config).unwrap();
    let mut g = Gateway::start(&s.env, &["--config", file.to_str().unwrap()]).await;
    let addr = g.addr("tls");
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&by_san)).await;
    assert_eq!(c.hello("carol", "clientcert", "").await[0], true);
    let refused = match tls_raw(addr, &s.pki.ca_pem, as_ref(&revoked)).await {
        Err(_) => true,
        Ok(mut c) => c.recv(WAIT).await.is_none(),
    };
    assert!(refused, "a revoked certificate was served");

    // alice's own certificate names nobody in the users file, until it is reloaded.
    let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.alice)).await;
    assert_eq!(c.hello("alice", "clientcert", "").await[0], false);
    let text = std::fs::read_to_string(&s.env.users_file).unwrap();
    let text = text.replacen("[users.alice]\n", "[users.alice]\ncerts = [\"alice\"]\n", 1);
    std::fs::write(&s.env.users_file, text).unwrap();
    let pid = rustix::process::Pid::from_raw(g.child.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    let reloaded = eventually(WAIT, || async {
        let mut c = tls(addr, &s.pki.ca_pem, as_ref(&s.alice)).await;
        c.hello("alice", "clientcert", "").await[0] == true
    })
    .await;
    assert!(reloaded, "the reloaded users file was not used");
    g.stop().await;
}

#[tokio::test]
async fn the_http_listener_speaks_tls() {
    let s = setup().await;
    let dir = s.env.dir.path();
    let server = |ext: &str| dir.join(format!("server.{ext}")).display().to_string();
    let g = Gateway::start(
        &s.env,
        &[
            "--http-tls-cert",
            &server("pem"),
            "--http-tls-key",
            &server("key"),
        ],
    )
    .await;
    use rustls::pki_types::pem::PemObject;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(s.pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(g.addr("http"))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("jcapi_connections_total"));
}
