//! HTML building blocks: escaping, the page frame (navigation and logout form), tables, and
//! JSON values shown as preformatted text. Pages are plain server-rendered HTML; no script.

use std::fmt::Write as _;

use serde_json::Value;

use crate::session::Session;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as text: strings bare, null as empty, the rest compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// A JSON value pretty-printed in a `<pre>`.
pub fn pre(v: &Value) -> String {
    let s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    format!("<pre class=\"json\">{}</pre>", esc(&s))
}

const STYLE: &str = "body{font-family:sans-serif;margin:0}nav{background:#234;padding:.5em 1em}
nav a{color:#fff;margin-right:1em;text-decoration:none}nav form{display:inline;float:right}
nav span{color:#ccd;margin-right:1em}main{padding:1em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
.state-error{color:#b00}.state-finished{color:#070}pre{background:#f4f4f4;padding:.5em}
.graph svg{max-width:100%;height:auto}form.action{display:inline}";

/// A whole page: the navigation (with the user and a logout form) around `body`.
pub fn page(title: &str, session: Option<&Session>, body: &str) -> String {
    let nav = match session {
        Some(s) => format!(
            "<nav><a href=\"/\">Overview</a><a href=\"/jobs\">Jobs</a>\
             <a href=\"/workflows\">Workflows</a><a href=\"/workers\">Workers</a>\
             <a href=\"/locks\">Locks</a><a href=\"/schedules\">Schedules</a>\
             <a href=\"/events\">Events</a>\
             <form method=\"post\" action=\"/logout\">{}<span class=\"user\">{} ({})</span>\
             <button>Log out</button></form></nav>",
            csrf_field(&s.csrf),
            esc(&s.user),
            if s.admin { "admin" } else { "read-only" }
        ),
        None => "<nav><a href=\"/login\">Log in</a></nav>".to_owned(),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{} - jobcenter</title>\
         <style>{STYLE}</style></head><body>{nav}<main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

/// The hidden field every POST form carries.
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A table with a header row; cells are HTML already.
pub fn table(class: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("<table class=\"{class}\"><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{c}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// A table of JSON objects, one row each, with `(key, heading)` columns: job ids link to
/// the job, states are coloured, the rest is text.
pub fn objects(class: &str, rows: &[Value], columns: &[(&str, &str)]) -> String {
    let head: Vec<&str> = columns.iter().map(|(_, h)| *h).collect();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|(k, _)| {
                    let v = &r[*k];
                    match *k {
                        "job_id" | "holder" if !v.is_null() => job_link(v),
                        "state" => state(v),
                        _ => esc(&text(v)),
                    }
                })
                .collect()
        })
        .collect();
    table(class, &head, &cells)
}

/// A link to a job.
pub fn job_link(id: &Value) -> String {
    format!("<a href=\"/jobs/{0}\">{0}</a>", esc(&text(id)))
}

/// A state, with a class to colour it.
pub fn state(v: &Value) -> String {
    let s = esc(&text(v));
    format!("<span class=\"state state-{s}\">{s}</span>")
}

/// An SVG document as an inline element (the XML prolog dropped).
pub fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    format!("<div class=\"graph\">{}</div>", &svg[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
