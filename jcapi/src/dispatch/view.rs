//! A read-only picture of the dispatcher for the admin endpoint: the announced actions and
//! their workers, the slot groups, the offers in flight and the tasks in hand (without their
//! cookies, which are secrets).

use jc_proto::methods::JobRef;
use serde::Serialize;
use tokio::time::Instant;

use super::{ConnId, Dispatch};

/// One worker connection's announcement of an action.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AnnouncedView {
    pub conn: ConnId,
    pub workername: String,
    pub group: String,
}

/// An action with workers on this gateway.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ActionView {
    pub action_id: i32,
    pub name: String,
    /// Ready tasks may wait that no offer covers (every slot was busy).
    pub pending: bool,
    pub workers: Vec<AnnouncedView>,
}

/// A connection's slot group.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GroupView {
    pub conn: ConnId,
    pub group: String,
    pub slots: u32,
    pub used: u32,
}

/// A task offered to a worker that has not taken it yet.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct OfferView {
    pub job: JobRef,
    pub action_id: i32,
    pub conn: ConnId,
    /// Milliseconds until the offer goes to the next worker.
    pub expires_in_ms: u64,
}

/// A task a worker took and has not finished.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TakenView {
    pub conn: ConnId,
    pub action_id: i32,
    pub group: String,
}

/// The whole picture, each list in a stable order.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DispatchView {
    pub actions: Vec<ActionView>,
    pub groups: Vec<GroupView>,
    pub offers: Vec<OfferView>,
    pub taken: Vec<TakenView>,
    /// Worker names in use: name, owner, connection.
    pub names: Vec<(String, String, ConnId)>,
}

impl Dispatch {
    /// What the dispatcher holds now.
    pub fn view(&self, now: Instant) -> DispatchView {
        let mut actions: Vec<ActionView> = self
            .actions
            .iter()
            .map(|(id, e)| ActionView {
                action_id: *id,
                name: e.name.clone(),
                pending: e.pending,
                workers: e
                    .workers
                    .iter()
                    .map(|w| AnnouncedView {
                        conn: w.handle.id,
                        workername: w.workername.clone(),
                        group: w.group.clone(),
                    })
                    .collect(),
            })
            .collect();
        actions.sort_by_key(|a| a.action_id);
        let mut groups: Vec<GroupView> = self
            .groups
            .iter()
            .map(|((conn, group), g)| GroupView {
                conn: *conn,
                group: group.clone(),
                slots: g.slots,
                used: g.used,
            })
            .collect();
        groups.sort_by(|a, b| (a.conn, &a.group).cmp(&(b.conn, &b.group)));
        let mut offers: Vec<OfferView> = self
            .offers
            .iter()
            .map(|(job, o)| OfferView {
                job: job.clone(),
                action_id: o.action_id,
                conn: o.conn,
                expires_in_ms: u64::try_from(o.deadline.saturating_duration_since(now).as_millis())
                    .unwrap_or(u64::MAX),
            })
            .collect();
        offers.sort_by_key(|o| (o.conn, o.action_id, o.expires_in_ms));
        let mut taken: Vec<TakenView> = self
            .taken
            .values()
            .map(|t| TakenView {
                conn: t.conn,
                action_id: t.action_id,
                group: t.group.clone(),
            })
            .collect();
        taken.sort_by(|a, b| (a.conn, a.action_id, &a.group).cmp(&(b.conn, b.action_id, &b.group)));
        let mut names: Vec<(String, String, ConnId)> = self
            .names
            .iter()
            .filter_map(|(name, u)| u.conn.map(|c| (name.clone(), u.user.clone(), c)))
            .collect();
        names.sort();
        DispatchView {
            actions,
            groups,
            offers,
            taken,
            names,
        }
    }
}
