//! Login sessions: a random token in an HttpOnly, SameSite=Strict cookie names a session in
//! memory, which holds the user, whether they may act, and the token every POST form carries
//! against cross-site requests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// The session cookie's name.
pub const COOKIE: &str = "jc_session";
/// The cookie that pairs with the login form's token (there is no session yet to hold it).
pub const LOGIN_COOKIE: &str = "jc_login";
/// A session ends this long after its login.
const LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// A logged-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    /// May cancel and retry (`console = "admin"` in the users file).
    pub admin: bool,
    /// The token each POST form must send back.
    pub csrf: String,
    expires: Instant,
}

/// The sessions, by cookie token.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    // The OS random source failing leaves no safe way to make sessions.
    getrandom::fill(&mut b).expect("the OS random number source");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Constant-time comparison of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in a request's headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for `name`.
pub fn set_cookie(name: &str, value: &str, max_age: Duration) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        max_age.as_secs()
    )
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map itself intact.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its cookie token.
    pub fn start(&self, user: String, admin: bool) -> (String, Session) {
        let token = random_token();
        let s = Session {
            user,
            admin,
            csrf: random_token(),
            expires: Instant::now() + LIFETIME,
        };
        let mut map = self.map();
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(token.clone(), s.clone());
        (token, s)
    }

    /// The session of a request, if it has a live one.
    pub fn get(&self, headers: &HeaderMap) -> Option<Session> {
        let token = cookie(headers, COOKIE)?;
        let map = self.map();
        map.get(token)
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    /// Ends the session of a request.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(token) = cookie(headers, COOKIE) {
            self.map().remove(token);
        }
    }

    pub const LIFETIME: Duration = LIFETIME;
}
