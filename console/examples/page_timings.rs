//! Page timings of the console with many jobs in the tables: a private cluster (testkit)
//! gets `JC_BENCH_JOBS` jobs (100000 by default; four in five waiting `ready` at an action,
//! one in five in `error`), then every page is requested through the console's router (no
//! sockets) as a logged-in user, `JC_BENCH_ROUNDS` times (20), and the median and the
//! slowest time of each are printed. The figures are in console/BENCH.md.
//!
//! ```sh
//! JC_PG_BINDIR=… cargo run -p jcconsole --example page_timings
//! ```

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use tower::ServiceExt as _;

const USERS: &str = r#"
[users.alice]
password = "$6$alicesalt$HFdxLk8wA2OrrIRe2fi88/dNWjVgW3Rgo//Lrtub09NaZ00EjCmK5ofIco9Wv57xiylXKDqqLmvAlfRMjg85W/"
console = "admin"
"#;

fn env_number(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v.parse().with_context(|| format!("{name}={v:?}")),
        Err(_) => Ok(default),
    }
}

/// One request through the router: status, the `Set-Cookie` values, the body.
async fn send(
    router: &axum::Router,
    req: Request<Body>,
) -> anyhow::Result<(StatusCode, Vec<String>, String)> {
    let r = router.clone().oneshot(req).await?;
    let status = r.status();
    let cookies = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next().map(str::to_owned))
        .collect();
    let body = axum::body::to_bytes(r.into_body(), usize::MAX).await?;
    Ok((status, cookies, String::from_utf8_lossy(&body).into_owned()))
}

/// Logs in through the form; returns the session's `Cookie` value.
async fn login(router: &axum::Router) -> anyhow::Result<String> {
    let (_, cookies, body) = send(router, Request::get("/login").body(Body::empty())?).await?;
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .context("no form token")?;
    let form = format!("user=alice&password=alice-pw&csrf={csrf}");
    let req = Request::post("/login")
        .header(header::COOKIE, cookies.join("; "))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))?;
    let (status, cookies, _) = send(router, req).await?;
    if status != StatusCode::SEE_OTHER {
        bail!("login: {status}");
    }
    cookies
        .into_iter()
        .find(|c| c.starts_with("jc_session="))
        .context("no session cookie")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let jobs = env_number("JC_BENCH_JOBS", 100_000)?;
    let rounds = env_number("JC_BENCH_ROUNDS", 20)?.max(1);
    let (tdb, mut c) = engine_tests::setup().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../jcadm/tests/fixtures");
    let sources = ["step", "opsdemo", "failer"]
        .iter()
        .map(|n| {
            let path = dir.join(format!("{n}.jcl"));
            Ok(jcc::SourceFile::new(
                path.to_string_lossy(),
                std::fs::read_to_string(&path)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (parsed, _) = jcc::parse(sources);
    jcc::db::compile_and_write(&mut c, &parsed, &Default::default()).await?;

    let started = Instant::now();
    let batch = 5_000;
    let mut made = 0;
    while made < jobs {
        let n = batch.min(jobs - made) as i64;
        // Through create_job, like any client; every fifth job fails at once.
        c.execute(
            "select count(jobcenter.create_job(
                 case when i % 5 = 0 then 'failer' else 'opsdemo' end,
                 case when i % 5 = 0 then jsonb_build_object('why', 'bench ' || i)
                      else jsonb_build_object('n', i) end))
             from generate_series(1, $1::bigint) i",
            &[&n],
        )
        .await?;
        made += n as usize;
    }
    c.batch_execute("analyze").await?;
    println!(
        "{jobs} jobs made in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mid: i64 = c
        .query_one(
            "select job_id from jobcenter.jobs order by job_id offset $1 limit 1",
            &[&((jobs / 2) as i64)],
        )
        .await?
        .get(0);

    let users = jcapi::Users::parse(USERS).map_err(anyhow::Error::msg)?;
    let app = Arc::new(jcconsole::App::new(&tdb.dsn, users)?);
    let router = jcconsole::router(app);
    let cookie = login(&router).await?;
    let pages = [
        "/".to_owned(),
        "/overview/live".to_owned(),
        "/jobs".to_owned(),
        "/jobs?state=error".to_owned(),
        "/jobs?workflow=opsdemo".to_owned(),
        format!("/jobs?state=ready&before={mid}"),
        format!("/jobs/{mid}"),
        "/workflows".to_owned(),
        "/workflows/opsdemo".to_owned(),
        "/workers".to_owned(),
        "/locks".to_owned(),
        "/schedules".to_owned(),
        "/events".to_owned(),
    ];
    println!("{:<32} {:>10} {:>10}", "page", "median ms", "max ms");
    for page in &pages {
        let mut times: Vec<Duration> = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let req = Request::get(page.as_str())
                .header(header::COOKIE, &cookie)
                .body(Body::empty())?;
            let t = Instant::now();
            let (status, _, _) = send(&router, req).await?;
            times.push(t.elapsed());
            if status != StatusCode::OK {
                bail!("{page}: {status}");
            }
        }
        times.sort();
        println!(
            "{page:<32} {:>10.1} {:>10.1}",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3
        );
    }
    Ok(())
}
