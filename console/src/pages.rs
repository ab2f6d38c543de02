//! The pages and actions. Every page needs a session (else it sends the browser to the login
//! form); every POST needs a session, its form token, and for cancel, retry and retry-now
//! the admin role.
//! The views are jcadm's queries (primary keys, `jobs_state`, keyset paging); the actions are
//! jcadm's calls of the engine's procedures.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use jcadm::{graph, procs, queries};
use serde::Deserialize;
use serde_json::Value;

use crate::html::{self, esc, job_link, pre, state, table, text};
use crate::session::{self, Session};
use crate::{App, Error};

type Shared = State<Arc<App>>;

/// The job states, as the engine names them (the filter's choices).
pub(crate) const STATES: [&str; 12] = [
    "ready",
    "working",
    "eventwait",
    "childwait",
    "sleeping",
    "lockwait",
    "retrywait",
    "done",
    "plotting",
    "zombie",
    "finished",
    "error",
];

const PAGE_SIZE: i64 = 50;

pub(crate) fn to_login() -> Response {
    Redirect::to("/login").into_response()
}

pub(crate) fn ok(title: &str, s: &Session, body: &str) -> Result<Response, Error> {
    Ok(Html(html::page(title, Some(s), body)).into_response())
}

/// The session of a POST, refused without one or with a wrong form token.
pub(crate) fn posted(app: &App, headers: &HeaderMap, csrf: &str) -> Result<Session, Error> {
    let s = app.sessions.get(headers).ok_or(Error::Unauthorized)?;
    if !session::same(&s.csrf, csrf) {
        return Err(Error::Forbidden(
            "the form's token is missing or wrong; reload the page and try again",
        ));
    }
    Ok(s)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    user: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

fn login_page(status: StatusCode, message: &str) -> Response {
    let token = session::random_token();
    let msg = if message.is_empty() {
        String::new()
    } else {
        format!("<p class=\"error\">{}</p>", esc(message))
    };
    let body = format!(
        "{msg}<form method=\"post\" action=\"/login\" id=\"login\">{}\
         <p><label>User <input name=\"user\" id=\"user\" autocomplete=\"username\"></label></p>\
         <p><label>Password or token <input type=\"password\" name=\"password\" id=\"password\" \
         autocomplete=\"current-password\"></label></p><p><button id=\"submit\">Log in</button></p>\
         </form>",
        html::csrf_field(&token)
    );
    let cookie = session::set_cookie(session::LOGIN_COOKIE, &token, LOGIN_AGE);
    (
        status,
        [(header::SET_COOKIE, cookie)],
        Html(html::page("Log in", None, &body)),
    )
        .into_response()
}

/// How long a login form stays usable.
const LOGIN_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

pub async fn login_form(State(app): Shared, headers: HeaderMap) -> Response {
    if app.sessions.get(&headers).is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, "")
}

/// Checks the user's password (or API token) like the gateway's `hello`, and starts a session.
pub async fn login(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Result<Response, Error> {
    let paired = session::cookie(&headers, session::LOGIN_COOKIE)
        .is_some_and(|c| !f.csrf.is_empty() && session::same(c, &f.csrf));
    if !paired {
        return Ok(login_page(
            StatusCode::FORBIDDEN,
            "the form's token is missing or wrong; try again",
        ));
    }
    let checker = app.clone();
    let (user, password) = (f.user.clone(), f.password);
    // Password hashes are deliberately slow: off the async threads.
    let accepted = tokio::task::spawn_blocking(move || {
        let hello = |method| jcapi::Hello {
            who: &user,
            method,
            token: &password,
            peer_names: &[],
        };
        let methods = [jcapi::AuthMethod::Password, jcapi::AuthMethod::Token];
        let users = &checker.users;
        users.check(hello("password"), &methods).is_ok()
            || users.check(hello("token"), &methods).is_ok()
    })
    .await
    .unwrap_or(false);
    if !accepted {
        return Ok(login_page(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password",
        ));
    }
    let admin = app.users.console_admin(&f.user);
    let (token, _) = app.sessions.start(f.user, admin);
    let mut r = Redirect::to("/").into_response();
    let h = r.headers_mut();
    for c in [
        session::set_cookie(session::COOKIE, &token, session::Sessions::LIFETIME),
        session::set_cookie(session::LOGIN_COOKIE, "", std::time::Duration::ZERO),
    ] {
        h.append(
            header::SET_COOKIE,
            c.parse().map_err(|_| Error::BadRequest("cookie".into()))?,
        );
    }
    Ok(r)
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
}

pub async fn logout(
    State(app): Shared,
    headers: HeaderMap,
    Form(f): Form<ActionForm>,
) -> Result<Response, Error> {
    posted(&app, &headers, &f.csrf)?;
    app.sessions.end(&headers);
    let cookie = session::set_cookie(session::COOKIE, "", std::time::Duration::ZERO);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response())
}

#[derive(Debug, Deserialize)]
pub struct JobsQuery {
    state: Option<String>,
    workflow: Option<String>,
    /// One of [`AGES`]: only jobs created that recently.
    age: Option<String>,
    before: Option<i64>,
}

/// The age filter's choices: (value, label); each value is an interval.
const AGES: [(&str, &str); 4] = [
    ("10 minutes", "10 minutes"),
    ("1 hour", "an hour"),
    ("1 day", "a day"),
    ("7 days", "a week"),
];

/// Jobs, newest first, filtered by state, workflow and age, in pages by job id.
pub async fn jobs(
    State(app): Shared,
    headers: HeaderMap,
    Query(q): Query<JobsQuery>,
) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let state_filter = match q.state.as_deref().filter(|x| !x.is_empty()) {
        None => None,
        Some(name) => Some(
            STATES
                .iter()
                .copied()
                .find(|x| *x == name)
                .ok_or_else(|| Error::BadRequest(format!("no job state {name:?}")))?,
        ),
    };
    let workflow = q.workflow.filter(|w| !w.is_empty());
    let age = match q.age.as_deref().filter(|x| !x.is_empty()) {
        None => None,
        Some(a) => Some(
            AGES.iter()
                .map(|(v, _)| *v)
                .find(|v| *v == a)
                .ok_or_else(|| Error::BadRequest(format!("no age {a:?}")))?,
        ),
    };
    let c = app.db().await?;
    let since = match age {
        Some(a) => Some(queries::resolve_since(&**c, a).await?),
        None => None,
    };
    let filter = queries::JobFilter {
        states: state_filter.into_iter().collect(),
        workflow: workflow.clone(),
        since,
        before: q.before,
        limit: PAGE_SIZE,
        archived: false,
    };
    let (rows, next) = queries::jobs(&**c, &filter).await?;
    let mut options = String::from("<option value=\"\">any</option>");
    for st in STATES {
        let sel = if Some(st) == state_filter {
            " selected"
        } else {
            ""
        };
        let _ = write!(options, "<option{sel}>{st}</option>");
    }
    let mut ages = String::from("<option value=\"\">any</option>");
    for (v, label) in AGES {
        let sel = if Some(v) == age { " selected" } else { "" };
        let _ = write!(ages, "<option value=\"{v}\"{sel}>{label}</option>");
    }
    let wf = workflow.clone().unwrap_or_default();
    let mut body = format!(
        "<form method=\"get\" action=\"/jobs\" class=\"filter\"><label>State \
         <select name=\"state\">{options}</select></label> <label>Workflow \
         <input name=\"workflow\" value=\"{}\"></label> <label>Created within \
         <select name=\"age\">{ages}</select></label> <button>Show</button></form>",
        esc(&wf)
    );
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|j| {
            vec![
                job_link(&j["job_id"]),
                format!(
                    "<a href=\"/workflows/{0}\">{0}</a>",
                    esc(&text(&j["workflow"]))
                ),
                esc(&text(&j["version"])),
                state(&j["state"]),
                esc(&text(&j["task"])),
                esc(&text(&j["priority"])),
                esc(&text(&j["created"])),
                esc(&text(&j["finished"])),
            ]
        })
        .collect();
    body.push_str(&table(
        "jobs",
        &[
            "job", "workflow", "version", "state", "task", "priority", "created", "finished",
        ],
        &table_rows,
    ));
    if let Some(before) = next {
        let _ = write!(
            body,
            "<p><a class=\"next\" href=\"/jobs?state={}&amp;workflow={}&amp;age={}&amp;\
             before={before}\">older jobs</a></p>",
            state_filter.unwrap_or(""),
            esc(&url_part(&wf)),
            url_part(age.unwrap_or(""))
        );
    }
    ok("Jobs", &s, &body)
}

/// Percent-encodes a query value.
fn url_part(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// An action's form button (admins only).
fn action(s: &Session, id: i64, what: &str, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/jobs/{id}/{what}\" class=\"action\">{}\
         <button id=\"{what}\">{label}</button></form> ",
        html::csrf_field(&s.csrf)
    )
}

/// One job: its state, inputs, variables and outputs, the step log, its family, and the
/// workflow graph with its path and current task.
pub async fn job(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let j = queries::job(&**c, id).await?;
    let tree = queries::tree(&**c, id).await?;
    let spec = format!("{}:{}", text(&j["workflow"]), text(&j["version"]));
    let g = graph::load(&**c, &spec, Some(id)).await?;
    let svg = match graph::svg::render(&g) {
        Ok(svg) => html::inline_svg(&svg),
        Err(e) => format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    };
    let st = text(&j["state"]);
    let archived = j["archived"].as_bool().unwrap_or(false);
    let mut actions = String::new();
    if s.admin && !archived {
        if st != "finished" && st != "error" {
            actions.push_str(&action(&s, id, "cancel", "Cancel"));
        }
        if st == "error" {
            actions.push_str(&action(&s, id, "retry", "Retry"));
        }
        if st == "retrywait" {
            actions.push_str(&action(&s, id, "retry-now", "Retry now"));
        }
    }
    let summary = table(
        "summary",
        &[
            "state", "workflow", "task", "line", "parent", "priority", "key", "created", "finished",
        ],
        &[vec![
            state(&j["state"]),
            format!(
                "<a href=\"/workflows/{}?version={}\">{}</a>",
                esc(&text(&j["workflow"])),
                esc(&text(&j["version"])),
                esc(&spec)
            ),
            esc(&text(&j["task"])),
            esc(&text(&j["line"])),
            if j["parentjob_id"].is_null() {
                String::new()
            } else {
                job_link(&j["parentjob_id"])
            },
            esc(&text(&j["priority"])),
            esc(&text(&j["key"])),
            esc(&text(&j["created"])),
            esc(&text(&j["finished"])),
        ]],
    );
    let steps: Vec<Vec<String>> = j["steps"]
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|l| {
            vec![
                format!("{:.3}s", l["at"].as_f64().unwrap_or(0.0)),
                esc(&text(&l["task"])),
                esc(&text(&l["line"])),
                esc(&text(&l["state"])),
                esc(&text(&l["inargs"])),
                esc(&text(&l["outargs"])),
            ]
        })
        .collect();
    let family: Vec<Vec<String>> = tree
        .iter()
        .map(|t| {
            let depth = t["depth"].as_u64().unwrap_or(0) as usize;
            let mark = if t["selected"].as_bool() == Some(true) {
                " (this job)"
            } else {
                ""
            };
            vec![
                format!(
                    "{}{}{mark}",
                    "&nbsp;&nbsp;".repeat(depth),
                    job_link(&t["job_id"])
                ),
                esc(&text(&t["workflow"])),
                state(&t["state"]),
                esc(&text(&t["task"])),
            ]
        })
        .collect();
    let body = format!(
        "<div class=\"actions\">{actions}</div>{summary}\
         <h2>Inputs</h2>{}<h2>Variables</h2>{}<h2>Outputs</h2>{}\
         <h2>Step log</h2>{}<h2>Job tree</h2>{}<h2>Graph</h2>{svg}",
        pre(&j["arguments"]),
        pre(&j["variables"]),
        pre(&j["output"]),
        table(
            "steps",
            &["at", "task", "line", "state", "in", "out"],
            &steps
        ),
        table("tree", &["job", "workflow", "state", "task"], &family),
    );
    ok(&format!("Job {id}"), &s, &body)
}

/// Refuses a user without `console = "admin"`.
pub(crate) fn admin_only(s: &Session) -> Result<(), Error> {
    if s.admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "this user may only look; console = \"admin\" in the users file allows actions",
        ))
    }
}

async fn act(
    app: &App,
    headers: &HeaderMap,
    csrf: &str,
    id: i64,
    what: &str,
) -> Result<Response, Error> {
    let s = posted(app, headers, csrf)?;
    admin_only(&s)?;
    let c = app.db().await?;
    let reason = format!("{what} in the web console by {}", s.user);
    match what {
        "cancel" => procs::cancel(&**c, id, &reason).await?,
        "retry-now" => procs::retry_now(&**c, id).await?,
        _ => procs::retry(&**c, id, &reason).await?,
    }
    Ok(Redirect::to(&format!("/jobs/{id}")).into_response())
}

pub async fn cancel(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<ActionForm>,
) -> Result<Response, Error> {
    act(&app, &headers, &f.csrf, id, "cancel").await
}

pub async fn retry(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<ActionForm>,
) -> Result<Response, Error> {
    act(&app, &headers, &f.csrf, id, "retry").await
}

/// A job in `retrywait` becomes ready without waiting for its back-off.
pub async fn retry_now(
    State(app): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Form(f): Form<ActionForm>,
) -> Result<Response, Error> {
    act(&app, &headers, &f.csrf, id, "retry-now").await
}

/// Every workflow with its versions and their tags; the newest versions that call an older
/// version of an action or workflow are marked stale with what they call.
pub async fn workflows(State(app): Shared, headers: HeaderMap) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let c = app.db().await?;
    let rows: Vec<Value> = c
        .query(
            "select jsonb_build_object('name', a.name, 'version', a.version,
                 'disabled', a.disabled, 'created', a.created,
                 'tags', (select coalesce(string_agg(t.tag, ', ' order by t.tag), '')
                          from jobcenter.action_version_tags t where t.action_id = a.action_id))
             from jobcenter.actions a where a.type = 'workflow'
             order by a.name, a.version desc",
            &[],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let stale = queries::stale(&**c).await?;
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|w| {
            let calls: Vec<String> = stale
                .iter()
                .filter(|s| s["workflow"] == w["name"] && s["version"] == w["version"])
                .map(|s| {
                    esc(&format!(
                        "calls {} v{} (newest v{})",
                        text(&s["callee"]),
                        text(&s["callee_version"]),
                        text(&s["newest"])
                    ))
                })
                .collect();
            let stale = if calls.is_empty() {
                String::new()
            } else {
                format!("<span class=\"stale\">stale: {}</span>", calls.join("; "))
            };
            let name = esc(&text(&w["name"]));
            let v = esc(&text(&w["version"]));
            vec![
                format!("<a href=\"/workflows/{name}?version={v}\">{name}</a>"),
                v,
                esc(&text(&w["tags"])),
                if w["disabled"].as_bool() == Some(true) {
                    "disabled".into()
                } else {
                    String::new()
                },
                stale,
                esc(&text(&w["created"])),
            ]
        })
        .collect();
    let body = table(
        "workflows",
        &["workflow", "version", "tags", "", "", "created"],
        &table_rows,
    );
    ok("Workflows", &s, &body)
}

#[derive(Debug, Deserialize)]
pub struct VersionQuery {
    version: Option<i32>,
}

/// One workflow version: the other versions, the graph, and the JCL source.
pub async fn workflow(
    State(app): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<VersionQuery>,
) -> Result<Response, Error> {
    let Some(s) = app.sessions.get(&headers) else {
        return Ok(to_login());
    };
    let spec = match q.version {
        Some(v) => format!("{name}:{v}"),
        None => name.clone(),
    };
    let c = app.db().await?;
    let g = graph::load(&**c, &spec, None).await?;
    let svg = match graph::svg::render(&g) {
        Ok(svg) => html::inline_svg(&svg),
        Err(e) => format!("<p class=\"error\">{}</p>", esc(&e.to_string())),
    };
    let src: Option<String> = c
        .query_one(
            "select src from jobcenter.actions where action_id = $1",
            &[&g.workflow_id],
        )
        .await?
        .try_get(0)?;
    let versions: Vec<i32> = c
        .query(
            "select version from jobcenter.actions where type = 'workflow' and name = $1
             order by version desc",
            &[&name],
        )
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    let links: Vec<String> = versions
        .iter()
        .map(|v| {
            if *v == g.version {
                format!("<b>{v}</b>")
            } else {
                format!(
                    "<a href=\"/workflows/{}?version={v}\">{v}</a>",
                    esc(&url_part(&name))
                )
            }
        })
        .collect();
    let body = format!(
        "<p>Versions: {}{} &middot; <a href=\"/jobs?workflow={}\">jobs</a></p>\
         <h2>Graph</h2>{svg}<h2>Source</h2><pre class=\"src\">{}</pre>",
        links.join(" "),
        if g.disabled {
            " (this version is disabled)"
        } else {
            ""
        },
        esc(&url_part(&name)),
        esc(src.as_deref().unwrap_or("(loaded without its source)"))
    );
    ok(
        &format!("Workflow {} version {}", g.workflow, g.version),
        &s,
        &body,
    )
}
