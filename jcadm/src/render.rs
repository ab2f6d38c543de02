//! The human form of each view: tables and a job's timeline, drawn from the JSON objects the
//! queries return (so the two outputs never disagree).

use std::fmt::Write as _;

use serde_json::Value;

use crate::table::{cell, render};

pub fn jobs(rows: &[Value], next: Option<i64>) -> String {
    let mut s = render(
        rows,
        &[
            ("job_id", "JOB"),
            ("workflow", "WORKFLOW"),
            ("version", "V"),
            ("state", "STATE"),
            ("task", "TASK"),
            ("parentjob_id", "PARENT"),
            ("priority", "PRIO"),
            ("created", "CREATED"),
            ("finished", "FINISHED"),
        ],
    );
    if let Some(n) = next {
        let _ = writeln!(s, "more: --before {n}");
    }
    s
}

pub fn errors(rows: &[Value]) -> String {
    render(
        rows,
        &[
            ("job_id", "JOB"),
            ("workflow", "WORKFLOW"),
            ("version", "V"),
            ("class", "CLASS"),
            ("task", "TASK"),
            ("line", "LINE"),
            ("msg", "MESSAGE"),
            ("finished", "FINISHED"),
        ],
    )
}

pub fn locks(v: &Value) -> String {
    let none = vec![];
    let holders = v["holders"].as_array().unwrap_or(&none);
    let waiters = v["waiters"].as_array().unwrap_or(&none);
    let mut s = String::from("held:\n");
    s.push_str(&render(
        holders,
        &[
            ("locktype", "TYPE"),
            ("lockvalue", "VALUE"),
            ("job_id", "JOB"),
            ("workflow", "WORKFLOW"),
            ("state", "STATE"),
            ("held", "HELD"),
            ("inherit", "INHERIT"),
            ("inherited_from", "FROM"),
            ("waiting", "WAITING"),
            ("taken", "TAKEN"),
        ],
    ));
    s.push_str("\nwaiting:\n");
    s.push_str(&render(
        waiters,
        &[
            ("job_id", "JOB"),
            ("workflow", "WORKFLOW"),
            ("locktype", "TYPE"),
            ("lockvalue", "VALUE"),
            ("holder", "HOLDER"),
            ("since", "SINCE"),
            ("timeout", "TIMEOUT"),
        ],
    ));
    s
}

pub fn workers(rows: &[Value]) -> String {
    let flat: Vec<Value> = rows
        .iter()
        .map(|w| {
            let actions: Vec<String> = w["actions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|x| {
                            let mut s = format!("{} v{}", cell(&x["action"]), x["version"]);
                            if let Some(f) = x.get("filter") {
                                s.push_str(&format!(" {f}"));
                            }
                            if let Some(r) = x.get("rate") {
                                s.push_str(&format!(
                                    " rate {} per {}",
                                    r["limit"],
                                    cell(&r["per"])
                                ));
                            }
                            if let Some(n) = x.get("concurrency") {
                                s.push_str(&format!(" concurrency {n}"));
                            }
                            s
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut w = w.clone();
            w["actions"] = Value::from(actions.join(", "));
            w
        })
        .collect();
    let mut s = render(
        &flat,
        &[
            ("worker_id", "ID"),
            ("name", "NAME"),
            ("working", "WORKING"),
            ("last_ping", "LAST PING"),
            ("started", "STARTED"),
            ("actions", "ACTIONS"),
        ],
    );
    s.push_str("(slots and offers are the gateway's; WORKING counts the tasks in hand)\n");
    s
}

pub fn stale(rows: &[Value]) -> String {
    render(
        rows,
        &[
            ("workflow", "WORKFLOW"),
            ("version", "V"),
            ("callee", "CALLS"),
            ("callee_version", "VERSION"),
            ("newest", "NEWEST"),
        ],
    )
}

pub fn schedules(rows: &[Value]) -> String {
    render(
        rows,
        &[
            ("name", "NAME"),
            ("wfname", "WORKFLOW"),
            ("cron", "CRON"),
            ("timezone", "ZONE"),
            ("enabled", "ENABLED"),
            ("next_run", "NEXT"),
            ("last_run", "LAST"),
            ("last_job_id", "JOB"),
            ("last_error.msg", "LAST ERROR"),
        ],
    )
}

pub fn events(v: &Value) -> String {
    let none = vec![];
    let mut s = String::from("subscriptions:\n");
    s.push_str(&render(
        v["subscriptions"].as_array().unwrap_or(&none),
        &[
            ("subscription_id", "ID"),
            ("job_id", "JOB"),
            ("workflow", "WORKFLOW"),
            ("state", "STATE"),
            ("name", "NAME"),
            ("mask", "MASK"),
            ("queued", "QUEUED"),
        ],
    ));
    s.push_str("\nqueued events:\n");
    s.push_str(&render(
        v["queued"].as_array().unwrap_or(&none),
        &[
            ("event_id", "EVENT"),
            ("subscription_id", "SUB"),
            ("job_id", "JOB"),
            ("name", "NAME"),
            ("when", "WHEN"),
            ("eventdata", "DATA"),
        ],
    ));
    s
}

/// A JSON value on one line, or `-` for none.
fn compact(v: &Value) -> String {
    if v.is_null() {
        "-".into()
    } else {
        v.to_string()
    }
}

pub fn job(v: &Value) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "job {}: {} version {}, {}{}",
        v["job_id"],
        cell(&v["workflow"]),
        v["version"],
        cell(&v["state"]),
        if v["archived"] == Value::Bool(true) {
            " (archived)"
        } else {
            ""
        }
    );
    if !v["task"].is_null() {
        let line = if v["line"].is_null() {
            String::new()
        } else {
            format!(" (line {})", v["line"])
        };
        let _ = writeln!(s, "at task {} {}{line}", v["task_id"], cell(&v["task"]));
    }
    if !v["parentjob_id"].is_null() {
        let _ = writeln!(s, "parent: job {}", v["parentjob_id"]);
    }
    if !v["priority"].is_null() {
        let _ = writeln!(s, "priority: {}", v["priority"]);
    }
    if !v["key"].is_null() {
        let _ = writeln!(s, "key: {}", cell(&v["key"]));
    }
    let _ = writeln!(s, "created: {}", cell(&v["created"]));
    if !v["finished"].is_null() {
        let _ = writeln!(s, "finished: {}", cell(&v["finished"]));
    }
    if !v["timeout"].is_null() {
        let _ = writeln!(s, "timeout: {}", cell(&v["timeout"]));
    }
    let _ = writeln!(s, "inputs: {}", compact(&v["arguments"]));
    let _ = writeln!(s, "variables: {}", compact(&v["variables"]));
    let _ = writeln!(s, "outputs: {}", compact(&v["output"]));
    let _ = writeln!(s, "steps ({}):", v["stepcounter"]);
    for step in v["steps"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let at = step["at"].as_f64().unwrap_or(0.0);
        let line = if step["line"].is_null() {
            String::new()
        } else {
            format!("line {}", step["line"])
        };
        let _ = write!(
            s,
            "  {:>+10.3}s  {:<9}  task {:<5} {:<18} {:<9}",
            at,
            cell(&step["state"]),
            step["task_id"],
            cell(&step["task"]),
            line
        );
        for (key, label) in [
            ("inargs", "in"),
            ("outargs", "out"),
            ("variables", "vars"),
            ("task_state", "state"),
        ] {
            if !step[key].is_null() {
                let _ = write!(s, " {label} {}", step[key]);
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
    }
    s
}

pub fn tree(rows: &[Value]) -> String {
    let mut s = String::new();
    for r in rows {
        let depth = r["depth"].as_u64().unwrap_or(0) as usize;
        let mark = if r["selected"] == Value::Bool(true) {
            "*"
        } else {
            " "
        };
        let task = if r["task"].is_null() {
            String::new()
        } else {
            format!(" at {}", cell(&r["task"]))
        };
        let _ = writeln!(
            s,
            "{mark} {}{} {} v{} {}{task}{}",
            "  ".repeat(depth),
            r["job_id"],
            cell(&r["workflow"]),
            r["version"],
            cell(&r["state"]),
            if r["archived"] == Value::Bool(true) {
                " (archived)"
            } else {
                ""
            }
        );
    }
    s
}

pub fn source(v: &Value) -> String {
    let mut s = format!(
        "# job {} runs {} version {} ({})\n",
        v["job_id"],
        cell(&v["workflow"]),
        v["version"],
        cell(&v["state"])
    );
    let Some(src) = v["src"].as_str() else {
        s.push_str("# no source is stored for this version: it was loaded without one (a model written directly with load_action)\n");
        return s;
    };
    let current = v["line"].as_u64();
    for (i, line) in src.lines().enumerate() {
        let n = i as u64 + 1;
        let mark = if Some(n) == current { '>' } else { ' ' };
        let _ = writeln!(s, "{mark}{n:>4}  {line}");
    }
    s
}

/// The gateway's view: its connections (workers with their slots, actions, offers and tasks
/// in hand; clients with their user), then the actions with workers there and the offers in
/// flight.
pub fn gateway(v: &Value) -> String {
    let none = vec![];
    let rows: Vec<Value> = v["connections"]
        .as_array()
        .unwrap_or(&none)
        .iter()
        .map(|c| {
            let slots: Vec<String> = c["slots"]
                .as_array()
                .unwrap_or(&none)
                .iter()
                .map(|g| {
                    format!(
                        "{} {}/{}",
                        cell(&g["group"]),
                        cell(&g["used"]),
                        cell(&g["slots"])
                    )
                })
                .collect();
            let actions: Vec<String> = c["actions"]
                .as_array()
                .unwrap_or(&none)
                .iter()
                .map(cell)
                .collect();
            let mut r = c.clone();
            r["slots"] = Value::from(slots.join(", "));
            r["actions"] = Value::from(actions.join(", "));
            r
        })
        .collect();
    let mut s = String::from("connections:\n");
    s.push_str(&render(
        &rows,
        &[
            ("conn", "CONN"),
            ("kind", "KIND"),
            ("peer", "PEER"),
            ("user", "USER"),
            ("worker", "WORKER"),
            ("slots", "SLOTS USED/ALL"),
            ("actions", "ACTIONS"),
            ("offers", "OFFERS"),
            ("in_hand", "IN HAND"),
            ("connected_secs", "SECS"),
        ],
    ));
    s.push_str("\nactions:\n");
    let actions: Vec<Value> = v["actions"]
        .as_array()
        .unwrap_or(&none)
        .iter()
        .map(|a| {
            let mut r = a.clone();
            r["workers"] = Value::from(a["workers"].as_array().map_or(0, Vec::len));
            r
        })
        .collect();
    s.push_str(&render(
        &actions,
        &[
            ("name", "ACTION"),
            ("action_id", "ID"),
            ("workers", "WORKERS"),
            ("in_hand", "IN HAND"),
            ("pending", "PENDING"),
        ],
    ));
    s.push_str("\noffers:\n");
    s.push_str(&render(
        v["offers"].as_array().unwrap_or(&none),
        &[
            ("job", "JOB"),
            ("action", "ACTION"),
            ("conn", "CONN"),
            ("expires_in_ms", "EXPIRES MS"),
        ],
    ));
    s
}
