//! The `jcapi` command line: layered configuration (`--dump-config`, flags over `JC_`
//! variables over the file), refusals of bad settings, and the users-file helpers
//! (`--hash-password`, `--hash-token`, `scripts/jcapi-adduser`).
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn jcapi(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_jcapi"));
    cmd.args(args)
        .env_remove("JC_DSN")
        .env_remove("JC_LISTEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn dump_config_shows_the_layers_merged() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jcapi.toml");
    std::fs::write(
        &file,
        "dsn = \"host=/tmp dbname=file password=hush\"\nping_interval = \"5s\"\n\
         offer_timeout = \"7s\"\nusers_file = \"users.toml\"\n",
    )
    .unwrap();
    let out = jcapi(
        &[
            "--config",
            file.to_str().unwrap(),
            "--dump-config",
            "--ping-interval",
            "9s",
            "--listen",
            "ws:0.0.0.0:7000",
        ],
        &[("JC_PING_INTERVAL", "8s"), ("JC_OFFER_TIMEOUT", "3s")],
        "",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let dump = text(&out.stdout);
    for line in [
        "dsn = \"host=/tmp dbname=file password=***\"",
        "ping_interval = \"9s\"",
        "offer_timeout = \"3s\"",
        "ping_timeout = \"30s\"",
        "max_message_size = 16777216",
        "kind = \"ws\"",
        "address = \"0.0.0.0:7000\"",
        "auth = [\"password\", \"token\"]",
    ] {
        assert!(dump.contains(line), "{line} in\n{dump}");
    }
    let users = dir.path().join("users.toml");
    assert!(
        dump.contains(&format!("users_file = {:?}", users.display().to_string())),
        "relative to the file:\n{dump}"
    );
    assert!(!dump.contains("hush"));
}

#[test]
fn bad_settings_are_refused_before_starting() {
    let out = jcapi(&[], &[], "");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no database"),
        "{}",
        text(&out.stderr)
    );
    let out = jcapi(
        &["--dsn", "host=/tmp", "--listen", "udp:1.2.3.4:5"],
        &[],
        "",
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("udp"), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users.toml");
    std::fs::write(&users, "[users.a]\npassword = \"plain text\"\n").unwrap();
    let out = jcapi(
        &[
            "--dsn",
            "host=/tmp",
            "--users-file",
            users.to_str().unwrap(),
            "--listen",
            "tcp:127.0.0.1:0",
        ],
        &[],
        "",
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("must be a hash"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn hash_helpers_make_users_file_values() {
    let out = jcapi(&["--hash-password"], &[], "s3cret\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let hash = text(&out.stdout).trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let users = jcapi::Users::parse(&format!("[users.a]\npassword = {hash:?}\n")).unwrap();
    let hello = |pw| jcapi_hello(&users, "a", pw);
    assert!(hello("s3cret"));
    assert!(!hello("s3cret\n"));
    let out = jcapi(&["--hash-token"], &[], "tok\n");
    assert_eq!(text(&out.stdout).trim(), jcapi::token_digest("tok"));
}

fn jcapi_hello(users: &jcapi::Users, who: &str, pw: &str) -> bool {
    users
        .check(
            jcapi::Hello {
                who,
                method: "password",
                token: pw,
                peer_names: &[],
            },
            &[jcapi::AuthMethod::Password],
        )
        .is_ok()
}

#[tokio::test]
async fn adduser_writes_a_private_users_file_where_it_is_told() {
    use std::os::unix::fs::PermissionsExt as _;
    let tdb = testkit::Cluster::shared()
        .await
        .unwrap()
        .new_db()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/jcapi-adduser");
    let adduser_with = |flags: &[&str], name: &str, secret: &str| {
        let mut child = Command::new(script)
            .args(flags)
            .args(["users.toml", name])
            .current_dir(dir.path())
            .env("JC_DSN", &tdb.dsn)
            .env("JCAPI", env!("CARGO_BIN_EXE_jcapi"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // a refused name ends the script before it reads the secret: the pipe may be closed
        if let Err(e) = stdin.write_all(format!("{secret}\n").as_bytes()) {
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let adduser = |name: &str, secret: &str| adduser_with(&[], name, secret);
    let out = adduser("ops.team@example", "pw-1");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = dir.path().join("users.toml");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the users file is private");
    // The name with its dots reads back as one user who can log in.
    let users = jcapi::Users::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert!(jcapi_hello(&users, "ops.team@example", "pw-1"));
    for bad in ["a\"b", "x]\n[users.root", "a b"] {
        let out = adduser(bad, "pw");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
    let again = adduser("ops.team@example", "pw-2");
    assert!(!again.status.success(), "a second entry for one user");
    assert!(jcapi::Users::parse(&std::fs::read_to_string(&file).unwrap()).is_ok());
    // --worker: a member of the default worker role, so it may serve actions without role:.
    let out = adduser_with(&["--worker"], "w1", "pw-3");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let db = tdb.connect().await.unwrap();
    let roles: Vec<String> = db
        .query(
            "select rolename || ' in ' || member_of from jobcenter.jc_role_members order by 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(roles, ["w1 in workers"], "ops.team@example is no worker");
}
