//! Authentication: the users file and the checks behind `hello`.
//!
//! The users file is TOML, one table per user (the names are jobcenter roles, `jc_roles`):
//!
//! ```toml
//! [users.alice]
//! password = "$argon2id$v=19$m=19456,t=2,p=1$…"   # argon2, or crypt-style: $6$ / $5$ sha-crypt
//! tokens = ["9f86d081884c7d65…"]                 # API tokens, as SHA-256 hex digests
//! certs = ["alice-laptop"]                       # TLS client certificate names that are alice
//! console = "admin"                              # web console: "read" (the default) or "admin"
//! ```
//!
//! A verified client certificate logs in as a user only when one of its names — every
//! common name of its subject and every DNS, e-mail and URI subject alternative name — is in
//! that user's `certs` (a name equal to the user's name counts for nothing by itself).
//! A password `hello` for an unknown user (or one without a password) is checked against
//! another user's hash and refused, so it costs as long as a wrong password.
//! `jcapi --hash-password` and `--hash-token` print the values to put in the file.

use std::collections::HashMap;
use std::path::Path;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::Argon2;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::AuthMethod;
use crate::Error;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsersFile {
    #[serde(default)]
    users: HashMap<String, UserEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserEntry {
    password: Option<String>,
    #[serde(default)]
    tokens: Vec<String>,
    #[serde(default)]
    certs: Vec<String>,
    console: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct User {
    password: Option<String>,
    tokens: Vec<[u8; 32]>,
    console_admin: bool,
}

/// The users the gateway knows.
#[derive(Debug, Clone, Default)]
pub struct Users {
    users: HashMap<String, User>,
    /// Certificate name -> user.
    certs: HashMap<String, String>,
    /// A password hash of the file, verified (and ignored) for unknown users.
    dummy: Option<String>,
}

/// What `hello` presented.
#[derive(Debug, Clone, Copy)]
pub struct Hello<'a> {
    pub who: &'a str,
    pub method: &'a str,
    pub token: &'a str,
    /// The names of the verified TLS client certificate (empty without one).
    pub peer_names: &'a [String],
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The SHA-256 hex digest of an API token, as the users file stores it.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An argon2id hash of `password` with a fresh salt, for the users file.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

thread_local! {
    /// The argon2 working memory of this thread, kept for its next check: a fresh (aligned)
    /// allocation per check fragments the heap so that every check takes new memory.
    static ARGON2_MEMORY: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// An argon2 hash checked in this thread's working memory.
fn verify_argon2(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (
        argon2::Algorithm::try_from(parsed.algorithm),
        argon2::Params::try_from(&parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(argon2::Version::try_from) {
        None => argon2::Version::default(),
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    let hashed = ARGON2_MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, argon2::Block::default());
        }
        Argon2::new(algorithm, version, params).hash_password_into_with_memory(
            password.as_bytes(),
            salt,
            &mut out,
            &mut memory[..blocks],
        )
    });
    hashed.is_ok() && same(&out, expected.as_bytes())
}

fn verify_password(password: &str, hash: &str) -> bool {
    if hash.starts_with("$argon2") {
        verify_argon2(password, hash)
    } else {
        pwhash::unix::verify(password, hash)
    }
}

fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Users {
    /// Reads a users file.
    pub fn load(path: &Path) -> Result<Users, Error> {
        let err = |msg: String| Error::Users {
            path: path.to_owned(),
            msg,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Users::parse(&text).map_err(err)
    }

    /// Reads a users file's text.
    pub fn parse(text: &str) -> Result<Users, String> {
        let file: UsersFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut users = Users::default();
        let mut entries: Vec<_> = file.users.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        users.dummy = entries.iter().find_map(|(_, e)| e.password.clone());
        for (name, entry) in entries {
            if let Some(p) = &entry.password {
                if p.starts_with("$argon2") && PasswordHash::new(p).is_err() {
                    return Err(format!("user {name}: the argon2 hash does not parse"));
                }
                if !p.starts_with('$') {
                    return Err(format!(
                        "user {name}: password must be a hash (argon2 or crypt-style), \
                         see jcapi --hash-password"
                    ));
                }
            }
            let tokens = entry
                .tokens
                .iter()
                .map(|t| {
                    parse_digest(t).ok_or_else(|| {
                        format!("user {name}: a token must be a SHA-256 hex digest, see jcapi --hash-token")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let console_admin = match entry.console.as_deref() {
                None | Some("read") => false,
                Some("admin") => true,
                Some(other) => {
                    return Err(format!(
                        "user {name}: console must be \"read\" or \"admin\", not {other:?}"
                    ))
                }
            };
            for cn in entry.certs {
                if let Some(other) = users.certs.insert(cn.clone(), name.clone()) {
                    return Err(format!("certificate name {cn} is both {other} and {name}"));
                }
            }
            users.users.insert(
                name,
                User {
                    password: entry.password,
                    tokens,
                    console_admin,
                },
            );
        }
        Ok(users)
    }

    /// Whether `who` may act (cancel, retry) in the web console, not only look.
    pub fn console_admin(&self, who: &str) -> bool {
        self.users.get(who).is_some_and(|u| u.console_admin)
    }

    /// Checks a `hello` on a listener accepting `accepted`; the error is the reason to give.
    /// Slow for passwords (hashing is deliberately costly): call it off the async threads.
    pub fn check(&self, hello: Hello<'_>, accepted: &[AuthMethod]) -> Result<(), String> {
        let method = AuthMethod::parse(hello.method)
            .ok_or_else(|| format!("unknown auth method {:?}", hello.method))?;
        if !accepted.contains(&method) {
            let names: Vec<&str> = accepted.iter().map(|m| m.name()).collect();
            return Err(format!(
                "auth method {} is not accepted here (accepted: {})",
                method.name(),
                names.join(", ")
            ));
        }
        let denied = || Err(format!("authentication failed for {}", hello.who));
        match method {
            AuthMethod::Password => {
                match self.users.get(hello.who).and_then(|u| u.password.as_ref()) {
                    Some(hash) if verify_password(hello.token, hash) => Ok(()),
                    Some(_) => denied(),
                    None => {
                        // As costly as a wrong password, so timing does not tell who exists.
                        if let Some(hash) = &self.dummy {
                            verify_password(hello.token, hash);
                        }
                        denied()
                    }
                }
            }
            AuthMethod::Token => {
                let digest = Sha256::digest(hello.token.as_bytes());
                let user = self.users.get(hello.who);
                let ok = user.is_some_and(|u| u.tokens.iter().any(|t| same(t, &digest)));
                if ok {
                    Ok(())
                } else {
                    denied()
                }
            }
            AuthMethod::ClientCert => {
                if hello.peer_names.is_empty() {
                    return Err("no verified client certificate".into());
                }
                let owned = hello
                    .peer_names
                    .iter()
                    .any(|n| self.certs.get(n).is_some_and(|u| u == hello.who));
                if owned {
                    Ok(())
                } else {
                    Err(format!(
                        "the client certificate does not belong to {}",
                        hello.who
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const ALL: [AuthMethod; 3] = [
        AuthMethod::Password,
        AuthMethod::Token,
        AuthMethod::ClientCert,
    ];

    fn hello<'a>(who: &'a str, method: &'a str, token: &'a str) -> Hello<'a> {
        Hello {
            who,
            method,
            token,
            peer_names: &[],
        }
    }

    #[test]
    fn passwords_tokens_and_certificates() {
        let argon = Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8, 1, 1, None).unwrap(),
        )
        .hash_password(b"s3cret", &SaltString::generate(&mut OsRng))
        .unwrap()
        .to_string();
        let sha = pwhash::sha512_crypt::hash_with("$6$rounds=1000$salt", "hunter2").unwrap();
        let text = format!(
            "[users.alice]\npassword = {argon:?}\ntokens = [{:?}]\ncerts = [\"alice-laptop\"]\n\
             [users.bob]\npassword = {sha:?}\n",
            token_digest("tok-1")
        );
        let users = Users::parse(&text).unwrap();
        assert!(users
            .check(hello("alice", "password", "s3cret"), &ALL)
            .is_ok());
        assert!(users
            .check(hello("alice", "password", "wrong"), &ALL)
            .is_err());
        assert!(users
            .check(hello("bob", "password", "hunter2"), &ALL)
            .is_ok());
        assert!(users
            .check(hello("bob", "password", "s3cret"), &ALL)
            .is_err());
        assert!(users.check(hello("carol", "password", "x"), &ALL).is_err());
        assert!(users.check(hello("alice", "token", "tok-1"), &ALL).is_ok());
        assert!(users.check(hello("bob", "token", "tok-1"), &ALL).is_err());
        let e = users
            .check(hello("alice", "token", "tok-1"), &[AuthMethod::Password])
            .unwrap_err();
        assert!(e.contains("not accepted"), "{e}");
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cert = |who, n: &'static [String]| Hello {
            peer_names: n,
            ..hello(who, "clientcert", "")
        };
        let laptop: &'static [String] = names(&["x", "alice-laptop"]).leak();
        let bob: &'static [String] = names(&["bob"]).leak();
        assert!(users.check(cert("alice", laptop), &ALL).is_ok(), "any name");
        assert!(
            users.check(cert("bob", bob), &ALL).is_err(),
            "CN = user name is not enough"
        );
        assert!(users.check(cert("bob", laptop), &ALL).is_err());
        assert!(users.check(cert("alice", &[]), &ALL).is_err());
    }

    #[test]
    fn console_roles() {
        let users = Users::parse(
            "[users.a]\nconsole = \"admin\"\n[users.b]\nconsole = \"read\"\n[users.c]\n",
        )
        .unwrap();
        assert!(users.console_admin("a"));
        assert!(!users.console_admin("b"));
        assert!(!users.console_admin("c"));
        assert!(!users.console_admin("nobody"));
    }

    #[test]
    fn bad_users_files_are_refused() {
        for bad in [
            "[users.a]\npassword = \"plain\"\n",
            "[users.a]\ntokens = [\"abc\"]\n",
            "[users.a]\nshoe = 1\n",
            "[users.a]\ncerts = [\"x\"]\n[users.b]\ncerts = [\"x\"]\n",
            "[users.a]\nconsole = \"root\"\n",
        ] {
            assert!(Users::parse(bad).is_err(), "{bad}");
        }
    }
}
