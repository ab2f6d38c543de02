//! The pages of what runs beside the jobs: workers (announced actions, tasks in hand, last
//! ping), locks (holders and waiters), schedules (with enable/disable for admins) and events
//! (subscriptions and queued events). Each is one of jcadm's views; the schedule toggle is
//! the engine's `enable_schedule`.

use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use jcadm::{procs, queries};
use serde::Deserialize;
use serde_json::Value;

use crate::html::{self, esc, objects, text};
use crate::pages::{admin_only, ok, posted, to_login};
use crate::{App, Error};

type Shared = State<Arc<App>>;

/// A worker's announced actions as `name vN`, with the filter, rate and concurrency limit when
/// there are.
fn announced(actions: &Value) -> String {
    actions
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|a| {
            let mut s = format!("{} v{}", text(&a["action"]), text(&a["version"]));
            if !a["filter"].is_null() {
                s.push_str(&format!(" (filter {})", a["filter"]));
            }
            if let Some(r) = a.get("rate") {
                s.push_str(&format!(" (rate {} per {})", r["limit"], text(&r["per"])));
            }
            if let Some(n) = a.get("concurrency") {
                s.push_str(&format!(" (concurrency {n})"));
            }
            esc(&s)
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// Live workers.
pub async fn workers(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let rows = queries::workers(&**c).await?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|w| {
            vec![
                esc(&text(&w["name"])),
                esc(&text(&w["worker_id"])),
                announced(&w["actions"]),
                esc(&text(&w["working"])),
                esc(&text(&w["started"])),
                esc(&text(&w["last_ping"])),
            ]
        })
        .collect();
    let body = if cells.is_empty() {
        "<p class=\"empty\">No live workers.</p>".to_owned()
    } else {
        html::table(
            "workers",
            &["worker", "id", "actions", "working", "started", "last ping"],
            &cells,
        )
    };
    ok("Workers", &s, &body)
}

/// Held locks and the jobs waiting for one.
pub async fn locks(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let v = queries::locks(&**c).await?;
    let none = vec![];
    let body = format!(
        "<h2>Held</h2>{}<h2>Waiting</h2>{}",
        objects(
            "holders",
            v["holders"].as_array().unwrap_or(&none),
            &[
                ("locktype", "type"),
                ("lockvalue", "value"),
                ("job_id", "job"),
                ("workflow", "workflow"),
                ("state", "state"),
                ("held", "held / limit"),
                ("inherit", "inherit"),
                ("inherited_from", "inherited from"),
                ("waiting", "waiting"),
                ("taken", "taken"),
            ],
        ),
        objects(
            "waiters",
            v["waiters"].as_array().unwrap_or(&none),
            &[
                ("job_id", "job"),
                ("workflow", "workflow"),
                ("locktype", "type"),
                ("lockvalue", "value"),
                ("holder", "holder"),
                ("since", "since"),
                ("timeout", "timeout"),
            ],
        )
    );
    ok("Locks", &s, &body)
}

/// Every schedule; admins get a button to disable or enable each.
pub async fn schedules(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let rows = queries::schedules(&**c).await?;
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let name = text(&r["name"]);
            let enabled = r["enabled"].as_bool() == Some(true);
            let toggle = if s.admin {
                let (to, label) = if enabled {
                    ("false", "Disable")
                } else {
                    ("true", "Enable")
                };
                format!(
                    "<form method=\"post\" action=\"/schedules/enable\" class=\"action\">{}\
                     <input type=\"hidden\" name=\"name\" value=\"{}\">\
                     <input type=\"hidden\" name=\"enabled\" value=\"{to}\">\
                     <button class=\"toggle\">{label}</button></form>",
                    html::csrf_field(&s.csrf),
                    esc(&name)
                )
            } else {
                String::new()
            };
            vec![
                esc(&name),
                format!(
                    "<a href=\"/workflows/{0}\">{0}</a>",
                    esc(&text(&r["wfname"]))
                ),
                esc(&text(&r["cron"])),
                esc(&text(&r["timezone"])),
                format!(
                    "<span class=\"enabled\">{}</span>",
                    if enabled { "enabled" } else { "disabled" }
                ),
                esc(&text(&r["next_run"])),
                esc(&text(&r["last_run"])),
                if r["last_job_id"].is_null() {
                    String::new()
                } else {
                    html::job_link(&r["last_job_id"])
                },
                esc(&text(&r["last_error"])),
                toggle,
            ]
        })
        .collect();
    let body = html::table(
        "schedules",
        &[
            "schedule",
            "workflow",
            "cron",
            "time zone",
            "",
            "next run",
            "last run",
            "last job",
            "last error",
            "",
        ],
        &cells,
    );
    ok("Schedules", &s, &body)
}

#[derive(Debug, Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    enabled: String,
}

/// Enables or disables a schedule (admins only).
pub async fn enable_schedule(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<ToggleForm>,
) -> Result<Response, Error> {
    let s = posted(&app, &headers, &f.csrf)?;
    admin_only(&s)?;
    let enabled = match f.enabled.as_str() {
        "true" => true,
        "false" => false,
        other => {
            return Err(Error::BadRequest(format!(
                "enabled={other:?}: true or false"
            )))
        }
    };
    let c = app.db().await?;
    procs::enable_schedule(&**c, &f.name, enabled).await?;
    Ok(Redirect::to("/schedules").into_response())
}

/// Event subscriptions (with how many events wait in each) and the queued events.
pub async fn events(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let v = queries::events(&**c).await?;
    let none = vec![];
    let body = format!(
        "<h2>Subscriptions</h2>{}<h2>Queued events</h2>{}",
        objects(
            "subscriptions",
            v["subscriptions"].as_array().unwrap_or(&none),
            &[
                ("subscription_id", "id"),
                ("job_id", "job"),
                ("workflow", "workflow"),
                ("state", "state"),
                ("name", "name"),
                ("mask", "mask"),
                ("queued", "queued"),
            ],
        ),
        objects(
            "queued",
            v["queued"].as_array().unwrap_or(&none),
            &[
                ("event_id", "event"),
                ("subscription_id", "subscription"),
                ("job_id", "job"),
                ("name", "name"),
                ("when", "raised"),
                ("eventdata", "data"),
            ],
        )
    );
    ok("Events", &s, &body)
}
