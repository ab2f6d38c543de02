//! The overview, live: jobs counted by state, the recent throughput (jobs created, finished
//! and failed in the last minute, 5 minutes and hour) and the newest errors. The page holds
//! this as a fragment that a few lines of inline script fetch again from `/overview/live`
//! every [`REFRESH_MS`] and swap in, so it stays current without a reload; without script
//! the page is the same, as of its load.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use jcadm::queries;

use crate::html::{esc, job_link, table, text};
use crate::pages::{ok, to_login, STATES};
use crate::{App, Error};

type Shared = State<Arc<App>>;

/// Counts by state stop here, so the overview reads at most this many index entries a state.
const COUNT_CAP: i64 = 10_000;

/// The throughput is counted among this many newest jobs (a backward read of the primary
/// key), never by scanning `jobs`.
const RECENT: i64 = 10_000;

/// How often the page fetches the fragment again.
pub const REFRESH_MS: u32 = 2_000;

/// The live part of the overview, as HTML.
async fn fragment(app: &App) -> Result<String, Error> {
    let c = app.db().await?;
    let states: Vec<&str> = STATES.to_vec();
    // Each count reads the jobs_state index, and at most COUNT_CAP + 1 entries of it.
    let rows = c
        .query(
            "select s, (select count(*) from (select 1 from jobcenter.jobs j
                 where j.state = s::jobcenter.job_state limit $2::bigint + 1) x)
             from unnest($1::text[]) s",
            &[&states, &COUNT_CAP],
        )
        .await?;
    let mut counts = vec![];
    for r in &rows {
        let name: String = r.try_get(0)?;
        let n: i64 = r.try_get(1)?;
        let shown = if n > COUNT_CAP {
            format!("{COUNT_CAP}+")
        } else {
            n.to_string()
        };
        counts.push(vec![
            format!("<a href=\"/jobs?state={0}\">{0}</a>", esc(&name)),
            format!(
                "<span class=\"count\" data-state=\"{}\">{shown}</span>",
                esc(&name)
            ),
        ]);
    }
    let rows = c
        .query(
            "with recent as (select job_created, job_finished, state from jobcenter.jobs
                             order by job_id desc limit $1)
             select w.label,
                 count(*) filter (where job_created >= now() - w.label::interval),
                 count(*) filter (where state = 'finished'
                                    and job_finished >= now() - w.label::interval),
                 count(*) filter (where state = 'error'
                                    and job_finished >= now() - w.label::interval)
             from unnest(array['1 minute', '5 minutes', '1 hour']) with ordinality w(label, n)
             left join recent on true
             group by w.label, w.n order by w.n",
            &[&RECENT],
        )
        .await?;
    let mut throughput = vec![];
    for r in &rows {
        let w: String = r.try_get(0)?;
        let mut row = vec![format!("last {}", esc(&w))];
        for (i, what) in ["created", "finished", "error"].iter().enumerate() {
            let n: i64 = r.try_get(i + 1)?;
            row.push(format!(
                "<span class=\"rate\" data-what=\"{what}\">{n}</span>"
            ));
        }
        throughput.push(row);
    }
    let errors = queries::errors(&**c, &[], 10).await?;
    let err_rows: Vec<Vec<String>> = errors
        .iter()
        .map(|e| {
            vec![
                job_link(&e["job_id"]),
                esc(&text(&e["workflow"])),
                esc(&text(&e["class"])),
                esc(&text(&e["msg"])),
                esc(&text(&e["task"])),
                esc(&text(&e["line"])),
                esc(&text(&e["finished"])),
            ]
        })
        .collect();
    let now: String = c
        .query_one("select to_char(now(), 'HH24:MI:SS')", &[])
        .await?
        .try_get(0)?;
    Ok(format!(
        "<p class=\"updated\">as of <span id=\"as-of\">{now}</span></p>\
         <h2>Jobs by state</h2>{}<h2>Throughput</h2>{}<h2>Recent errors</h2>{}",
        table("counts", &["state", "jobs"], &counts),
        table(
            "throughput",
            &["", "created", "finished", "error"],
            &throughput
        ),
        table(
            "errors",
            &["job", "workflow", "class", "message", "task", "line", "when"],
            &err_rows
        )
    ))
}

/// The overview page: the fragment and the script that keeps it current.
pub async fn overview(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let live = fragment(&app).await?;
    // A failed fetch (the console restarting, a lost session) keeps the last figures and
    // says so; the next one that works clears it.
    let body = format!(
        "<div id=\"live\">{live}</div><p id=\"stale\" class=\"error\" hidden></p>\
         <script>\
         setInterval(async () => {{\
           const stale = document.getElementById('stale');\
           try {{\
             const r = await fetch('/overview/live', {{credentials: 'same-origin'}});\
             if (!r.ok) throw new Error('HTTP ' + r.status);\
             document.getElementById('live').innerHTML = await r.text();\
             stale.hidden = true;\
           }} catch (e) {{\
             stale.textContent = 'not updating: ' + e.message;\
             stale.hidden = false;\
           }}\
         }}, {REFRESH_MS});\
         </script>"
    );
    ok("Overview", &s, &body)
}

/// The fragment alone, for the page's script (401 without a session: nothing to redirect).
pub async fn overview_live(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    if app.sessions.get(&headers).is_none() {
        return Err(Error::Unauthorized);
    }
    let live = fragment(&app).await?;
    Ok((
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Html(live),
    )
        .into_response())
}
