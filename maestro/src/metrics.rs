//! Metrics in the Prometheus text format, served at `/metrics` by a tiny HTTP responder.
//!
//! Counters and histograms are kept in atomics by the loops; the job counts by state are
//! read from the database at each scrape (they are the database's, not the maestro's).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bounds of the histogram buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
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
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

/// The procedures the maestro calls, for the call-duration histogram.
#[derive(Debug, Clone, Copy)]
pub enum Call {
    DoTimeout,
    DoSchedules,
    DoCrashRecovery,
    DoWorkerCheck,
    DoArchivalAndCleanup,
}

impl Call {
    const ALL: [Call; 5] = [
        Call::DoTimeout,
        Call::DoSchedules,
        Call::DoCrashRecovery,
        Call::DoWorkerCheck,
        Call::DoArchivalAndCleanup,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Call::DoTimeout => "do_timeout",
            Call::DoSchedules => "do_schedules",
            Call::DoCrashRecovery => "do_crash_recovery",
            Call::DoWorkerCheck => "do_worker_check",
            Call::DoArchivalAndCleanup => "do_archival_and_cleanup",
        }
    }
}

/// What the maestro counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Jobs handled by do_timeout (sleeps, time-outs, retries, waits, delayed starts).
    pub timers_fired: AtomicU64,
    /// Jobs created by schedules.
    pub schedule_runs: AtomicU64,
    /// Jobs driven on by crash recovery.
    pub recovered: AtomicU64,
    /// Workers disconnected for silence.
    pub workers_disconnected: AtomicU64,
    /// Jobs moved to the archive.
    pub archived: AtomicU64,
    /// Failed database calls (each is retried).
    pub db_errors: AtomicU64,
    /// Connections of the LISTEN connection, the first one included.
    pub listen_connects: AtomicU64,
    /// How late the timer loop woke after the due time it slept for.
    pub wake_lateness: Histogram,
    calls: [Histogram; Call::ALL.len()],
}

impl Metrics {
    /// Records the duration of a call.
    pub fn call(&self, call: Call, d: Duration) {
        if let Some(h) = self.calls.get(call as usize) {
            h.observe(d);
        }
    }

    /// The metrics in the Prometheus text format; `jobs` are the counts by state.
    pub fn render(&self, jobs: Option<&[(String, i64)]>) -> String {
        let mut out = String::new();
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "jobcenter_timers_fired_total",
                "Jobs whose timeout the maestro fired (do_timeout).",
                &self.timers_fired,
            ),
            (
                "jobcenter_schedule_runs_total",
                "Jobs created by schedules (do_schedules).",
                &self.schedule_runs,
            ),
            (
                "jobcenter_crash_recovered_total",
                "Jobs driven on by crash recovery.",
                &self.recovered,
            ),
            (
                "jobcenter_workers_disconnected_total",
                "Workers disconnected because they stopped pinging.",
                &self.workers_disconnected,
            ),
            (
                "jobcenter_jobs_archived_total",
                "Jobs moved to jobs_archive.",
                &self.archived,
            ),
            (
                "jobcenter_maestro_db_errors_total",
                "Database calls of the maestro that failed (and were retried).",
                &self.db_errors,
            ),
            (
                "jobcenter_maestro_listen_connects_total",
                "Connections of the LISTEN connection, reconnections included.",
                &self.listen_connects,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let name = "jobcenter_maestro_call_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Duration of the maintenance procedures the maestro calls.\n\
             # TYPE {name} histogram"
        );
        for (call, h) in Call::ALL.iter().zip(&self.calls) {
            h.render(&mut out, name, &format!("call=\"{}\"", call.name()));
        }
        let name = "jobcenter_maestro_wake_lateness_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} How late the timer loop woke after the earliest due time.\n\
             # TYPE {name} histogram"
        );
        self.wake_lateness.render(&mut out, name, "");
        let name = "jobcenter_up";
        let _ = writeln!(
            out,
            "# HELP {name} Whether the database answered this scrape.\n# TYPE {name} gauge"
        );
        let _ = writeln!(out, "{name} {}", u8::from(jobs.is_some()));
        if let Some(jobs) = jobs {
            let name = "jobcenter_jobs";
            let _ = writeln!(
                out,
                "# HELP {name} Live jobs (not archived) by state.\n# TYPE {name} gauge"
            );
            for (state, n) in jobs {
                let _ = writeln!(out, "{name}{{state=\"{state}\"}} {n}");
            }
        }
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

/// Serves `/metrics` on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: std::sync::Arc<Metrics>, pool: Pool) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = respond(stream, &metrics, &pool).await {
                tracing::debug!(error = %e, "metrics request failed");
            }
        });
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics, pool: &Pool) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next(), parts.next());
    let (status, body) = match (method, target) {
        (Some("GET"), Some("/metrics")) => {
            let jobs = jobs_by_state(pool).await;
            ("200 OK", metrics.render(jobs.as_deref()))
        }
        _ => ("404 Not Found", "try /metrics\n".to_owned()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
