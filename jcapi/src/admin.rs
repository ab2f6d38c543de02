//! The gateway's admin view (the original's `api-clients`/`api-tasks`), served as JSON at
//! `GET /admin/gateway` on the HTTP listener to users with `console = "admin"` in the users
//! file (HTTP Basic, as for JSON-RPC over POST): every stream connection (TCP, TLS,
//! WebSocket) with its peer, user and, for workers, its worker name, slot groups, announced
//! actions, offers in flight and tasks in hand; and the actions with workers here.
//!
//! The connections are kept in a [`Registry`]: a connection is registered when it opens
//! ([`register`], removed when the guard drops) and gets its user at `hello`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::config::Kind;
use crate::dispatch::ConnId;
use crate::http::{authenticate, unauthorized, Peer};
use crate::server::{lock, Shared};

/// What the registry knows of a connection.
#[derive(Debug)]
struct ConnInfo {
    peer: SocketAddr,
    kind: Kind,
    since: Instant,
    user: Option<String>,
}

/// The open stream connections, and when the gateway started.
#[derive(Debug)]
pub(crate) struct Registry {
    conns: Mutex<HashMap<ConnId, ConnInfo>>,
    started: SystemTime,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            conns: Mutex::default(),
            started: SystemTime::now(),
        }
    }
}

/// Keeps a connection registered while it lives.
#[derive(Debug)]
pub(crate) struct Registered {
    shared: Arc<Shared>,
    id: ConnId,
}

impl Drop for Registered {
    fn drop(&mut self) {
        lock(&self.shared.admin.conns).remove(&self.id);
    }
}

/// Registers connection `id` from `peer` on a listener of `kind`.
pub(crate) fn register(
    shared: &Arc<Shared>,
    id: ConnId,
    peer: SocketAddr,
    kind: Kind,
) -> Registered {
    lock(&shared.admin.conns).insert(
        id,
        ConnInfo {
            peer,
            kind,
            since: Instant::now(),
            user: None,
        },
    );
    Registered {
        shared: shared.clone(),
        id,
    }
}

/// Connection `id` said `hello` as `who`.
pub(crate) fn hello(shared: &Shared, id: ConnId, who: &str) {
    if let Some(c) = lock(&shared.admin.conns).get_mut(&id) {
        c.user = Some(who.to_owned());
    }
}

/// The admin view as JSON.
fn view(shared: &Shared) -> Value {
    let now = Instant::now();
    let d = lock(&shared.dispatch).view(now);
    let conns: Vec<(ConnId, Value)> = lock(&shared.admin.conns)
        .iter()
        .map(|(id, c)| {
            (
                *id,
                json!({
                    "conn": id,
                    "peer": c.peer.to_string(),
                    "kind": c.kind.name(),
                    "user": c.user,
                    "connected_secs": now.saturating_duration_since(c.since).as_secs(),
                }),
            )
        })
        .collect();
    let mut connections: Vec<Value> = conns
        .into_iter()
        .map(|(id, mut v)| {
            let worker = d.names.iter().find(|(_, _, c)| *c == id).map(|n| &n.0);
            let slots: Vec<Value> = d
                .groups
                .iter()
                .filter(|g| g.conn == id)
                .map(|g| json!({"group": g.group, "slots": g.slots, "used": g.used}))
                .collect();
            let actions: Vec<&str> = d
                .actions
                .iter()
                .filter(|a| a.workers.iter().any(|w| w.conn == id))
                .map(|a| a.name.as_str())
                .collect();
            v["worker"] = json!(worker);
            v["slots"] = json!(slots);
            v["actions"] = json!(actions);
            v["offers"] = json!(d.offers.iter().filter(|o| o.conn == id).count());
            v["in_hand"] = json!(d.taken.iter().filter(|t| t.conn == id).count());
            v
        })
        .collect();
    connections.sort_by_key(|c| c["conn"].as_u64());
    let names: HashMap<i32, &str> = d
        .actions
        .iter()
        .map(|a| (a.action_id, a.name.as_str()))
        .collect();
    let offers: Vec<Value> = d
        .offers
        .iter()
        .map(|o| {
            json!({"job": o.job, "action": names.get(&o.action_id), "action_id": o.action_id,
                   "conn": o.conn, "expires_in_ms": o.expires_in_ms})
        })
        .collect();
    let actions: Vec<Value> = d
        .actions
        .iter()
        .map(|a| {
            json!({"action_id": a.action_id, "name": a.name, "pending": a.pending,
                   "workers": a.workers,
                   "in_hand": d.taken.iter().filter(|t| t.action_id == a.action_id).count()})
        })
        .collect();
    let started = shared
        .admin
        .started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    json!({
        "gateway": {"version": env!("CARGO_PKG_VERSION"), "started_unix": started},
        "connections": connections,
        "actions": actions,
        "offers": offers,
    })
}

/// `GET /admin/gateway`: the view, for a console admin.
pub(crate) async fn gateway(
    State(shared): State<Arc<Shared>>,
    Extension(Peer(addr)): Extension<Peer>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = authenticate(&shared, addr, &headers).await else {
        return unauthorized(&shared, addr);
    };
    if !shared.gate.users().console_admin(&who) {
        return (
            StatusCode::FORBIDDEN,
            "the gateway's admin view needs console = \"admin\" in the users file\n",
        )
            .into_response();
    }
    Json(view(&shared)).into_response()
}
