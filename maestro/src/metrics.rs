//! Metrics on the `prometheus-client` crate, served at `GET /metrics` (Prometheus text format
//! 0.0.4) by axum.
//!
//! Counters and histograms are updated by the loops; the job counts by state and
//! `jobcenter_up` are read from the database at each scrape (they are the database's, not the
//! maestro's). The names are those of the hand-written metrics they replaced.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use deadpool_postgres::Pool;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The procedures the maestro calls, for the call-duration histogram.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    DoTimeout,
    DoSchedules,
    DoCrashRecovery,
    DoWorkerCheck,
    DoGatewayCheck,
    DoArchivalAndCleanup,
}

impl Call {
    const ALL: [Call; 6] = [
        Call::DoTimeout,
        Call::DoSchedules,
        Call::DoCrashRecovery,
        Call::DoWorkerCheck,
        Call::DoGatewayCheck,
        Call::DoArchivalAndCleanup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Call::DoTimeout => "do_timeout",
            Call::DoSchedules => "do_schedules",
            Call::DoCrashRecovery => "do_crash_recovery",
            Call::DoWorkerCheck => "do_worker_check",
            Call::DoGatewayCheck => "do_gateway_check",
            Call::DoArchivalAndCleanup => "do_archival_and_cleanup",
        }
    }
}

type Labels = Vec<(&'static str, String)>;

/// What the maestro counts, and the registry that renders it.
#[derive(Debug)]
pub struct Metrics {
    /// Jobs handled by do_timeout (sleeps, time-outs, retries, waits, delayed starts).
    pub timers_fired: Counter,
    /// Jobs created by schedules.
    pub schedule_runs: Counter,
    /// Jobs driven on by crash recovery.
    pub recovered: Counter,
    /// Workers disconnected for silence.
    pub workers_disconnected: Counter,
    /// Workers withdrawn because their gateway died.
    pub workers_withdrawn: Counter,
    /// Jobs moved to the archive.
    pub archived: Counter,
    /// Failed database calls (each is retried).
    pub db_errors: Counter,
    /// Connections of the LISTEN connection, the first one included.
    pub listen_connects: Counter,
    /// How late the timer loop woke after the due time it slept for.
    pub wake_lateness: Histogram,
    calls: Family<Labels, Histogram, fn() -> Histogram>,
    up: Gauge,
    jobs: Family<Labels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            timers_fired: Counter::default(),
            schedule_runs: Counter::default(),
            recovered: Counter::default(),
            workers_disconnected: Counter::default(),
            workers_withdrawn: Counter::default(),
            archived: Counter::default(),
            db_errors: Counter::default(),
            listen_connects: Counter::default(),
            wake_lateness: histogram(),
            calls: Family::new_with_constructor(histogram),
            up: Gauge::default(),
            jobs: Family::default(),
            registry: Registry::default(),
        };
        // Every call is listed from the start, observed or not.
        for call in Call::ALL {
            m.calls
                .get_or_create_owned(&vec![("call", call.name().to_owned())]);
        }
        let mut registry = Registry::default();
        // The text encoder adds `_total` to counter names.
        let counters = [
            (
                "jobcenter_timers_fired",
                "Jobs whose timeout the maestro fired (do_timeout)",
                &m.timers_fired,
            ),
            (
                "jobcenter_schedule_runs",
                "Jobs created by schedules (do_schedules)",
                &m.schedule_runs,
            ),
            (
                "jobcenter_crash_recovered",
                "Jobs driven on by crash recovery",
                &m.recovered,
            ),
            (
                "jobcenter_workers_disconnected",
                "Workers disconnected because they stopped pinging",
                &m.workers_disconnected,
            ),
            (
                "jobcenter_workers_withdrawn",
                "Workers withdrawn because their gateway died (do_gateway_check)",
                &m.workers_withdrawn,
            ),
            (
                "jobcenter_jobs_archived",
                "Jobs moved to jobs_archive",
                &m.archived,
            ),
            (
                "jobcenter_maestro_db_errors",
                "Database calls of the maestro that failed (and were retried)",
                &m.db_errors,
            ),
            (
                "jobcenter_maestro_listen_connects",
                "Connections of the LISTEN connection, reconnections included",
                &m.listen_connects,
            ),
        ];
        for (name, help, c) in counters {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "jobcenter_maestro_call_seconds",
            "Duration of the maintenance procedures the maestro calls",
            m.calls.clone(),
        );
        registry.register(
            "jobcenter_maestro_wake_lateness_seconds",
            "How late the timer loop woke after the earliest due time",
            m.wake_lateness.clone(),
        );
        registry.register(
            "jobcenter_up",
            "Whether the database answered this scrape",
            m.up.clone(),
        );
        registry.register(
            "jobcenter_jobs",
            "Live jobs (not archived) by state",
            m.jobs.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Records the duration of a call.
    pub fn call(&self, call: Call, d: std::time::Duration) {
        self.calls
            .get_or_create(&vec![("call", call.name().to_owned())])
            .observe(d.as_secs_f64());
    }

    /// The metrics in the Prometheus text format; `jobs` are the counts by state (`None`
    /// when the database did not answer: `jobcenter_up` 0 and no job counts).
    pub fn render(&self, jobs: Option<&[(String, i64)]>) -> String {
        self.up.set(i64::from(jobs.is_some()));
        self.jobs.clear();
        for (state, n) in jobs.unwrap_or_default() {
            self.jobs
                .get_or_create(&vec![("state", state.clone())])
                .set(*n);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Live jobs by state, every state listed.
async fn jobs_by_state(pool: &Pool) -> Option<Vec<(String, i64)>> {
    let client = pool.get().await.ok()?;
    let rows = client
        .query(
            "select s::text, count(j.job_id) \
             from unnest(enum_range(null::jobcenter.job_state)) s \
             left join jobcenter.jobs j on j.state = s group by s order by s",
            &[],
        )
        .await
        .ok()?;
    rows.iter()
        .map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
        .collect()
}

async fn scrape(State((metrics, pool)): State<(Arc<Metrics>, Pool)>) -> Response {
    let jobs = jobs_by_state(&pool).await;
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        metrics.render(jobs.as_deref()),
    )
        .into_response()
}

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, pool: Pool) {
    let app = Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "try /metrics\n") })
        .with_state((metrics, pool));
    if let Err(e) = axum::serve(listener, app).await {
        tracing::warn!(error = %e, "the /metrics listener failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_old_names_and_the_database_state() {
        let m = Metrics::default();
        m.timers_fired.inc_by(3);
        m.call(Call::DoTimeout, std::time::Duration::from_millis(2));
        let up = m.render(Some(&[("ready".into(), 5), ("error".into(), 0)]));
        for line in [
            "# TYPE jobcenter_timers_fired_total counter\njobcenter_timers_fired_total 3\n",
            "jobcenter_maestro_db_errors_total 0\n",
            "jobcenter_maestro_call_seconds_bucket{call=\"do_timeout\",le=\"0.0025\"} 1\n",
            "jobcenter_maestro_call_seconds_count{call=\"do_schedules\"} 0\n",
            "jobcenter_up 1\n",
            "jobcenter_jobs{state=\"ready\"} 5\n",
            "jobcenter_jobs{state=\"error\"} 0\n",
        ] {
            assert!(up.contains(line), "{line:?} in\n{up}");
        }
        let down = m.render(None);
        assert!(down.contains("jobcenter_up 0\n"), "{down}");
        assert!(!down.contains("jobcenter_jobs{"), "no stale counts: {down}");
    }
}
