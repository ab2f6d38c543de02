//! `jcadm gateway` against a real gateway (jcapi run in-process on port 0, a real database):
//! a worker with two slots and a task in hand, and a client, are shown with their users,
//! worker name, actions, slots and offers, as JSON and as tables; a user without
//! `console = "admin"` and a wrong password are refused with the gateway's answer; over TLS,
//! the gateway's certificate is checked against `--cacert`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine_tests::{setup, state};
use jc_client::{AnnounceOptions, Auth, Client, Config, Endpoint, Handler};
use serde_json::{json, Value};

/// alice (`alice-pw`) is a console admin; bob (`bob-pw`) is not.
const USERS: &str = r#"
[users.alice]
password = "$6$alicesalt$HFdxLk8wA2OrrIRe2fi88/dNWjVgW3Rgo//Lrtub09NaZ00EjCmK5ofIco9Wv57xiylXKDqqLmvAlfRMjg85W/"
console = "admin"

[users.bob]
password = "$6$bobsalt$rt.1WAPDQAm9w/bMx2NAc4Xf.JZ4.BiqVAcw2L1UeNjI8OkCzNXRPzkbFYvaOOnzK6liKZXUOSixQpLTF1l3K/"
"#;

/// `jcadm gateway` with the password in the environment, ready to run.
fn gateway_cmd(url: &str, user: &str, password: &str, json: bool) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jcadm"));
    if json {
        cmd.arg("--json");
    }
    cmd.args(["gateway", "--url", url, "--user", user])
        .env("JC_GATEWAY_PASSWORD", password)
        .env_remove("JC_DSN")
        .env_remove("JC_GATEWAY_CACERT")
        .stdin(Stdio::null());
    cmd
}

fn gateway(url: &str, user: &str, password: &str, json: bool) -> Output {
    gateway_cmd(url, user, password, json)
        .output()
        .expect("run jcadm")
}

fn client(addr: SocketAddr, who: &str, password: &str, workername: Option<&str>) -> Config {
    let mut c = Config::new(
        Endpoint::tcp("127.0.0.1", addr.port()),
        Auth::Password {
            who: who.into(),
            password: password.into(),
        },
    );
    c.workername = workername.map(str::to_owned);
    c.reconnect = false;
    c
}

// The gateway runs in this process: running jcadm blocks one thread, not all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_shows_workers_clients_slots_and_tasks_in_hand() {
    let (tdb, mut c) = setup().await;
    common::compile(&mut c, &["step", "opsdemo"], false).await;
    let files = tempfile::tempdir().unwrap();
    let g = Gateway::start(&tdb.dsn, &c, files.path(), None).await;
    let (tcp, url) = (g.tcp, g.url.clone());

    // a worker with two slots whose task never ends, and a client
    let worker = Client::connect(client(tcp, "alice", "alice-pw", Some("w-test")))
        .await
        .unwrap();
    worker
        .announce(
            "step",
            Handler::new_async(|_| std::future::pending()),
            AnnounceOptions {
                slots: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let serving = worker.clone();
    let work = tokio::spawn(async move { serving.work().await });
    let bob = Client::connect(client(tcp, "bob", "bob-pw", None))
        .await
        .unwrap();
    let job = engine_tests::create(&c, "opsdemo", json!({"n": 1})).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let out = gateway(&url, "alice", "alice-pw", true);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let in_hand = v["connections"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["in_hand"] == json!(1));
        if in_hand {
            break v;
        }
        assert!(Instant::now() < deadline, "no task in hand: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(state(&c, job).await, "working");
    let conns = view["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 2, "{view:#}");
    let w = conns
        .iter()
        .find(|c| c["worker"] == json!("w-test"))
        .unwrap();
    assert_eq!(
        (&w["user"], &w["kind"], &w["actions"]),
        (&json!("alice"), &json!("tcp"), &json!(["step"]))
    );
    let slots = w["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 1, "{w}");
    assert_eq!(
        (&slots[0]["slots"], &slots[0]["used"]),
        (&json!(2), &json!(1))
    );
    let b = conns.iter().find(|c| c["user"] == json!("bob")).unwrap();
    assert_eq!((&b["worker"], &b["in_hand"]), (&Value::Null, &json!(0)));
    let step = &view["actions"][0];
    assert_eq!(
        (&step["name"], &step["in_hand"]),
        (&json!("step"), &json!(1))
    );
    assert_eq!(step["workers"][0]["workername"], json!("w-test"));

    // the tables
    let out = gateway(&url, "alice", "alice-pw", false);
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("w-test"))
        .unwrap_or_else(|| panic!("no worker line in\n{text}"));
    for cell in [" tcp ", " alice ", " w-test ", "1/2 ", " step "] {
        assert!(line.contains(cell), "{cell:?} in {line:?}");
    }
    assert!(text.lines().any(|l| l.contains(" bob ")), "{text}");

    // refusals, with the gateway's reason
    let out = gateway(&url, "bob", "bob-pw", false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("JA109") && err.contains("403") && err.contains("console = \"admin\""),
        "{err}"
    );
    let out = gateway(&url, "alice", "wrong", false);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    bob.close().await;
    worker.stop();
    work.abort();
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_over_tls_checks_the_certificate_against_cacert() {
    let (tdb, c) = setup().await;
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    // A CA and the gateway's certificate for 127.0.0.1, signed by it.
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.join("ca.pem"), ca.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(dir.join("gw.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("gw.key"), key.serialize_pem()).unwrap();
    let tls = (dir.join("gw.pem"), dir.join("gw.key"));
    let g = Gateway::start(&tdb.dsn, &c, dir, Some(tls)).await;
    let url = g.url.replace("http://", "https://");

    let ca_file = dir.join("ca.pem");
    let mut cmd = gateway_cmd(&url, "alice", "alice-pw", true);
    let out = cmd.arg("--cacert").arg(&ca_file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["connections"], json!([]), "nobody is connected");
    // without the CA the certificate is not trusted
    let out = gateway(&url, "alice", "alice-pw", true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("JA109"), "{err}");
    let out = gateway_cmd(&url, "alice", "alice-pw", true)
        .arg("--cacert")
        .arg(dir.join("gw.key"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("JA104") && err.contains("no certificate in it"),
        "{err}"
    );
    g.stop().await;
}

/// A gateway run in this process on the test database, with a TCP listener and an HTTP
/// one (TLS with `tls`'s certificate and key), for the users of [`USERS`].
struct Gateway {
    tcp: SocketAddr,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), jcapi::Error>>,
}

impl Gateway {
    async fn start(
        dsn: &str,
        c: &tokio_postgres::Client,
        dir: &Path,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Gateway {
        c.batch_execute(
            "insert into jobcenter.jc_roles values ('alice'), ('bob');
             insert into jobcenter.jc_impersonate_roles (rolename, impersonates)
             select current_user, r from unnest(array['alice', 'bob']) r;
             -- alice's worker serves step, which declares no role
             insert into jobcenter.jc_role_members values ('alice', 'workers');",
        )
        .await
        .unwrap();
        let users = dir.join("users.toml");
        std::fs::write(&users, USERS).unwrap();
        let (http_tls_cert, http_tls_key) = tls.unzip();
        let layer = jcapi::Layer {
            dsn: Some(dsn.to_owned()),
            listen: Some(vec![jcapi::ListenLayer {
                kind: "tcp".into(),
                address: "127.0.0.1:0".into(),
                ..Default::default()
            }]),
            users_file: Some(users),
            http: Some("127.0.0.1:0".into()),
            http_tls_cert,
            http_tls_key,
            ..Default::default()
        };
        let config = jcapi::Config::resolve([layer]).unwrap();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(jcapi::run_with(
            config,
            async {
                let _ = stop_rx.await;
            },
            Arc::new(jcapi::Metrics::default()),
            move |a| {
                let _ = ready_tx.send(a.clone());
            },
        ));
        let addrs = ready_rx.await.unwrap();
        Gateway {
            tcp: addrs.listeners[0].1,
            url: format!("http://{}", addrs.http.unwrap()),
            stop,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}
