//! The gateway's metrics, kept in atomics and rendered in the Prometheus text format at
//! `/metrics` on the HTTP listener.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus histogram of durations.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
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
    pub tasks_offered: AtomicU64,
    pub tasks_taken: AtomicU64,
    pub tasks_done: AtomicU64,
    /// `tasks_done` calls of the group commit, each finishing a batch of results.
    pub task_done_batches: AtomicU64,
    /// Results sent again after they lost a deadlock or serialization conflict.
    pub task_done_conflicts: AtomicU64,
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
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 18] = [
            (
                "jcapi_connections_total",
                "Connections accepted.",
                &self.connections,
            ),
            (
                "jcapi_messages_in_total",
                "Messages received.",
                &self.messages_in,
            ),
            (
                "jcapi_messages_out_total",
                "Messages sent.",
                &self.messages_out,
            ),
            (
                "jcapi_bad_messages_total",
                "Malformed frames, non-JSON, invalid or oversized messages.",
                &self.bad_messages,
            ),
            (
                "jcapi_auth_failures_total",
                "Failed hello calls.",
                &self.auth_failures,
            ),
            (
                "jcapi_jobs_created_total",
                "Jobs created through the gateway.",
                &self.jobs_created,
            ),
            (
                "jcapi_job_done_sent_total",
                "job_done notifications sent.",
                &self.jobs_done_sent,
            ),
            (
                "jcapi_tasks_offered_total",
                "task_ready notifications sent.",
                &self.tasks_offered,
            ),
            (
                "jcapi_tasks_taken_total",
                "Tasks handed to workers by get_task and get_tasks.",
                &self.tasks_taken,
            ),
            (
                "jcapi_tasks_done_total",
                "Results received (task_done notifications and tasks_done results).",
                &self.tasks_done,
            ),
            (
                "jcapi_task_done_batches_total",
                "tasks_done calls of the group commit.",
                &self.task_done_batches,
            ),
            (
                "jcapi_task_done_conflicts_total",
                "Results sent again after a deadlock or serialization conflict.",
                &self.task_done_conflicts,
            ),
            (
                "jcapi_offers_expired_total",
                "Offers not taken in time and offered again.",
                &self.offers_expired,
            ),
            (
                "jcapi_ping_timeouts_total",
                "Workers disconnected for not answering a ping.",
                &self.ping_timeouts,
            ),
            (
                "jcapi_slow_clients_total",
                "Connections closed because their write queue was full.",
                &self.slow_clients,
            ),
            (
                "jcapi_db_errors_total",
                "Database calls that failed for other reasons than the request.",
                &self.db_errors,
            ),
            (
                "jcapi_listen_connects_total",
                "Connections of the LISTEN connection, the first one included.",
                &self.listen_connects,
            ),
            (
                "jcapi_connections_refused_total",
                "Connections refused or closed by a limit: connection counts, time-outs.",
                &self.connections_refused,
            ),
        ];
        for (name, help, c) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let gauges: [(&str, &str, &AtomicI64); 2] = [
            (
                "jcapi_open_connections",
                "Connections open now.",
                &self.open_connections,
            ),
            (
                "jcapi_workers",
                "Connections that announced at least one action.",
                &self.workers,
            ),
        ];
        for (name, help, g) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                g.load(Ordering::Relaxed)
            );
        }
        self.requests.render(
            &mut out,
            "jcapi_request_duration_seconds",
            "Time to answer a request.",
        );
        out
    }
}
