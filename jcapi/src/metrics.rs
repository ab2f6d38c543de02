//! The gateway's metrics, kept in atomics by the connections and loops and rendered at
//! `/metrics` on the HTTP listener in the Prometheus text format (0.0.4) by the
//! `prometheus-client` crate, with the names of the hand-written rendering it replaced.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

/// The `Content-Type` of `/metrics`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus histogram of durations.
#[derive(Debug, Clone)]
pub struct Histogram(prometheus_client::metrics::histogram::Histogram);

impl Default for Histogram {
    fn default() -> Self {
        Histogram(prometheus_client::metrics::histogram::Histogram::new(
            BUCKETS,
        ))
    }
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

/// What the gateway counts.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections: AtomicU64,
    pub open_connections: AtomicI64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    /// Malformed frames, non-JSON, invalid requests and oversized messages.
    pub bad_messages: AtomicU64,
    pub auth_failures: AtomicU64,
    pub jobs_created: AtomicU64,
    pub jobs_done_sent: AtomicU64,
    /// Jobs whose end the group commit read in its own transaction (their `job_done` sent
    /// without a read after `job:finished`).
    pub ends_at_commit: AtomicU64,
    /// Statements of the end loop reading the outputs of jobs heard to have ended.
    pub end_reads: AtomicU64,
    pub tasks_offered: AtomicU64,
    pub tasks_taken: AtomicU64,
    pub tasks_done: AtomicU64,
    /// `tasks_done` calls of the group commit, each finishing a batch of results.
    pub task_done_batches: AtomicU64,
    /// Results sent again after they lost a deadlock or serialization conflict.
    pub task_done_conflicts: AtomicU64,
    /// Transactions that made the gateway's creates: a batch of the group commit, or a create
    /// with a key, alone.
    pub create_job_batches: AtomicU64,
    /// Transactions of the takes' group commit (`get_task`, `get_tasks`).
    pub take_batches: AtomicU64,
    pub offers_expired: AtomicU64,
    pub ping_timeouts: AtomicU64,
    pub slow_clients: AtomicU64,
    pub db_errors: AtomicU64,
    pub listen_connects: AtomicU64,
    /// Connections refused or closed by a limit (connections, time-outs).
    pub connections_refused: AtomicU64,
    pub workers: AtomicI64,
    /// Time to answer a request.
    pub requests: Histogram,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        // A registry of this moment's values; the text encoder adds `_total` to counters.
        let mut r = Registry::default();
        let counters: [(&str, &str, &AtomicU64); 22] = [
            (
                "jcapi_connections",
                "Connections accepted",
                &self.connections,
            ),
            ("jcapi_messages_in", "Messages received", &self.messages_in),
            ("jcapi_messages_out", "Messages sent", &self.messages_out),
            (
                "jcapi_bad_messages",
                "Malformed frames, non-JSON, invalid or oversized messages",
                &self.bad_messages,
            ),
            (
                "jcapi_auth_failures",
                "Failed hello calls",
                &self.auth_failures,
            ),
            (
                "jcapi_jobs_created",
                "Jobs created through the gateway",
                &self.jobs_created,
            ),
            (
                "jcapi_job_done_sent",
                "job_done notifications sent.",
                &self.jobs_done_sent,
            ),
            (
                "jcapi_ends_at_commit",
                "Waited jobs whose end the group commit read in its own transaction",
                &self.ends_at_commit,
            ),
            (
                "jcapi_end_reads",
                "Reads of the outputs of waited jobs heard to have ended",
                &self.end_reads,
            ),
            (
                "jcapi_tasks_offered",
                "task_ready notifications sent.",
                &self.tasks_offered,
            ),
            (
                "jcapi_tasks_taken",
                "Tasks handed to workers by get_task and get_tasks",
                &self.tasks_taken,
            ),
            (
                "jcapi_tasks_done",
                "Results received (task_done notifications and tasks_done results)",
                &self.tasks_done,
            ),
            (
                "jcapi_task_done_batches",
                "tasks_done calls of the group commit",
                &self.task_done_batches,
            ),
            (
                "jcapi_create_job_batches",
                "Transactions that made create_job calls (a batch, or a keyed create alone)",
                &self.create_job_batches,
            ),
            (
                "jcapi_take_batches",
                "Transactions of the group commit of get_task and get_tasks",
                &self.take_batches,
            ),
            (
                "jcapi_task_done_conflicts",
                "Results sent again after a deadlock or serialization conflict",
                &self.task_done_conflicts,
            ),
            (
                "jcapi_offers_expired",
                "Offers not taken in time and offered again",
                &self.offers_expired,
            ),
            (
                "jcapi_ping_timeouts",
                "Workers disconnected for not answering a ping",
                &self.ping_timeouts,
            ),
            (
                "jcapi_slow_clients",
                "Connections closed because their write queue was full",
                &self.slow_clients,
            ),
            (
                "jcapi_db_errors",
                "Database calls that failed for other reasons than the request",
                &self.db_errors,
            ),
            (
                "jcapi_listen_connects",
                "Connections of the LISTEN connection, the first one included",
                &self.listen_connects,
            ),
            (
                "jcapi_connections_refused",
                "Connections refused or closed by a limit: connection counts, time-outs",
                &self.connections_refused,
            ),
        ];
        for (name, help, c) in counters {
            r.register(name, help, ConstCounter::new(c.load(Ordering::Relaxed)));
        }
        let gauges: [(&str, &str, &AtomicI64); 2] = [
            (
                "jcapi_open_connections",
                "Connections open now",
                &self.open_connections,
            ),
            (
                "jcapi_workers",
                "Connections that announced at least one action",
                &self.workers,
            ),
        ];
        for (name, help, g) in gauges {
            r.register(name, help, ConstGauge::new(g.load(Ordering::Relaxed)));
        }
        r.register(
            "jcapi_request_duration_seconds",
            "Time to answer a request",
            self.requests.0.clone(),
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &r);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_gauges_and_the_histogram_under_their_names() {
        let m = Metrics::default();
        Metrics::inc(&m.connections);
        Metrics::inc(&m.connections);
        m.open_connections.fetch_add(1, Ordering::Relaxed);
        m.requests.observe(Duration::from_millis(3));
        let text = m.render();
        for line in [
            "# HELP jcapi_connections_total Connections accepted.\n",
            "# TYPE jcapi_connections_total counter\n",
            "jcapi_connections_total 2\n",
            "jcapi_auth_failures_total 0\n",
            "# TYPE jcapi_open_connections gauge\njcapi_open_connections 1\n",
            "jcapi_request_duration_seconds_bucket{le=\"0.0025\"} 0\n",
            "jcapi_request_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "jcapi_request_duration_seconds_bucket{le=\"+Inf\"} 1\n",
            "jcapi_request_duration_seconds_count 1\n",
        ] {
            assert!(text.contains(line), "{line:?} in\n{text}");
        }
    }
}
