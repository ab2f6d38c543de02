//! A workflow version's compiled task graph, and a job's path through it: the model that the
//! DOT and SVG renderers draw ([`dot`], [`svg`]), read from the documented tables.
//!
//! Nodes are the workflow's tasks in task-id order (numbered from 0 within the workflow, so a
//! graph reads the same in every database). Edges are the default next task, the conditional
//! edges of branches and switches (`next_tasks`), the `on_error` edge into a catch block, and
//! a `reap_child` task's link to the task that started its children.

pub mod dot;
pub mod svg;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value;
use tokio_postgres::GenericClient;

use crate::Error;

/// A task of the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// The task's number within the workflow (0 is `start`).
    pub index: usize,
    pub task_id: i32,
    /// What the task calls: a system action (`eval`, `branch`, …), an action, a procedure
    /// or a workflow.
    pub action: String,
    /// `system`, `action`, `procedure` or `workflow`.
    pub kind: String,
    /// The callee's version (0 for system actions).
    pub version: i32,
    /// The source line of the statement the task was compiled from.
    pub line: Option<u32>,
    /// That line's text, trimmed.
    pub statement: Option<String>,
    /// How many times the job ran this task (with `--job`).
    pub visits: usize,
    /// The job is at this task now.
    pub current: bool,
}

/// What an edge means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// The default next task.
    Next,
    /// Taken when a branch's condition is true or a switch's value matches.
    When,
    /// An error in the task goes to the catch block.
    Catch,
    /// A `reap_child` task reaps the children this task started.
    Reaps,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Node indexes.
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    /// `true`/`false` of a branch, a switch's case or `default`, `catch`, `reaps`; empty for
    /// a plain next task.
    pub label: String,
    /// The job went this way (with `--job`).
    pub taken: bool,
}

/// The job a graph is drawn for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobMark {
    pub job_id: i64,
    pub state: String,
    /// Node indexes of the tasks it ran, in order (repeats of one task folded).
    pub path: Vec<usize>,
    /// The node it is at (none for an archived job).
    pub current: Option<usize>,
}

/// A workflow version's task graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    pub workflow: String,
    pub version: i32,
    pub workflow_id: i32,
    pub disabled: bool,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    pub job: Option<JobMark>,
}

/// `NAME` or `NAME:VERSION`.
pub fn parse_name(spec: &str) -> Result<(&str, Option<i32>), Error> {
    match spec.rsplit_once(':') {
        Some((name, v)) if !name.is_empty() => v.parse().map(|v| (name, Some(v))).map_err(|_| {
            Error::BadInput(format!("{spec}: the version after ':' must be a number"))
        }),
        _ if spec.is_empty() => Err(Error::BadInput("a name is needed".into())),
        _ => Ok((spec, None)),
    }
}

/// The job's workflow version, state and current task (none when archived); `None` for no
/// such job.
async fn job_position(
    c: &impl GenericClient,
    job_id: i64,
) -> Result<Option<(i32, String, Option<i32>)>, Error> {
    let row = c
        .query_opt(
            "select workflow_id, state::text, task_id from jobcenter.jobs where job_id = $1
             union all
             select workflow_id, state::text, null from jobcenter.jobs_archive where job_id = $1
             limit 1",
            &[&job_id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)),
        None => None,
    })
}

/// Reads the graph of workflow `spec` (`NAME[:VERSION]`, the newest version without one), or
/// with `job` of the version that job runs, marked with the job's path.
pub async fn load(c: &impl GenericClient, spec: &str, job: Option<i64>) -> Result<Graph, Error> {
    let (name, version) = parse_name(spec)?;
    let position = match job {
        Some(id) => Some(job_position(c, id).await?.ok_or(Error::NoJob(id))?),
        None => None,
    };
    let wf = c
        .query_opt(
            "select action_id, name, version, disabled, src from jobcenter.actions
             where type = 'workflow' and name = $1
               and ($2::int is null or version = $2) and ($3::int is null or action_id = $3)
             order by version desc limit 1",
            &[&name, &version, &position.as_ref().map(|p| p.0)],
        )
        .await?
        .ok_or_else(|| match job {
            Some(id) => Error::BadInput(format!("job {id} does not run workflow {spec}")),
            None => Error::NoWorkflow(spec.to_owned()),
        })?;
    let workflow_id: i32 = wf.try_get(0)?;
    let src: Option<String> = wf.try_get(4)?;
    let lines: Vec<&str> = src
        .as_deref()
        .map(|s| s.lines().collect())
        .unwrap_or_default();

    let rows = c
        .query(
            "select t.task_id, a.name, a.type::text, a.version, t.next_task_id,
                    t.on_error_task_id, t.attributes
             from jobcenter.tasks t join jobcenter.actions a on a.action_id = t.action_id
             where t.workflow_id = $1 order by t.task_id",
            &[&workflow_id],
        )
        .await?;
    let mut nodes = Vec::with_capacity(rows.len());
    let mut index = HashMap::new();
    let mut links = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let task_id: i32 = r.try_get(0)?;
        let attributes: Value = r.try_get(6)?;
        let line = attributes["line"]
            .as_u64()
            .and_then(|l| u32::try_from(l).ok());
        let statement = line
            .and_then(|l| lines.get((l as usize).checked_sub(1)?))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        index.insert(task_id, i);
        links.push((
            r.try_get::<_, Option<i32>>(4)?,
            r.try_get::<_, Option<i32>>(5)?,
            attributes["spawn_task"].as_i64(),
        ));
        nodes.push(Node {
            index: i,
            task_id,
            action: r.try_get(1)?,
            kind: r.try_get(2)?,
            version: r.try_get(3)?,
            line,
            statement,
            visits: 0,
            current: false,
        });
    }
    let conditional = c
        .query(
            "select n.from_task_id, n.to_task_id, n.\"when\" from jobcenter.next_tasks n
             join jobcenter.tasks t on t.task_id = n.from_task_id
             where t.workflow_id = $1 order by n.from_task_id, n.\"when\"",
            &[&workflow_id],
        )
        .await?;
    let mut whens: HashMap<usize, Vec<(usize, String)>> = HashMap::new();
    for r in &conditional {
        let (from, to): (i32, i32) = (r.try_get(0)?, r.try_get(1)?);
        if let (Some(&f), Some(&t)) = (index.get(&from), index.get(&to)) {
            whens.entry(f).or_default().push((t, r.try_get(2)?));
        }
    }

    let mut edges = vec![];
    for (i, (next, on_error, spawn)) in links.into_iter().enumerate() {
        let cases = whens.remove(&i).unwrap_or_default();
        if let Some(&to) = next.and_then(|n| index.get(&n)) {
            let label = match nodes[i].action.as_str() {
                "branch" if nodes[i].kind == "system" => "false",
                "switch" if nodes[i].kind == "system" => "default",
                _ => "",
            };
            edges.push(edge(i, to, EdgeKind::Next, label));
        }
        for (to, when) in cases {
            edges.push(edge(i, to, EdgeKind::When, &when));
        }
        if let Some(&to) = on_error.and_then(|n| index.get(&n)) {
            edges.push(edge(i, to, EdgeKind::Catch, "catch"));
        }
        let spawn = spawn.and_then(|s| i32::try_from(s).ok());
        if let Some(&to) = spawn.and_then(|s| index.get(&s)) {
            edges.push(edge(i, to, EdgeKind::Reaps, "reaps"));
        }
    }

    let mut graph = Graph {
        workflow: wf.try_get(1)?,
        version: wf.try_get(2)?,
        workflow_id,
        disabled: wf.try_get(3)?,
        nodes,
        edges,
        job: None,
    };
    if let (Some(job_id), Some((_, state, current))) = (job, position) {
        let steps: Vec<i32> = c
            .query(
                "select task_id from jobcenter.job_task_log where job_id = $1
                 order by job_task_log_id",
                &[&job_id],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        let current = current.and_then(|t| index.get(&t).copied());
        graph.mark(job_id, state, &steps, current, &index);
    }
    Ok(graph)
}

fn edge(from: usize, to: usize, kind: EdgeKind, label: &str) -> Edge {
    Edge {
        from,
        to,
        kind,
        label: label.to_owned(),
        taken: false,
    }
}

impl Graph {
    /// Marks a job's path: the logged steps (task ids, in order) and where it is now.
    fn mark(
        &mut self,
        job_id: i64,
        state: String,
        steps: &[i32],
        current: Option<usize>,
        index: &HashMap<i32, usize>,
    ) {
        let mut path: Vec<usize> = vec![];
        for i in steps.iter().filter_map(|t| index.get(t).copied()) {
            self.nodes[i].visits += 1;
            if path.last() != Some(&i) {
                path.push(i);
            }
        }
        // The current task has no log row until it finishes.
        if let Some(i) = current {
            if path.last() != Some(&i) {
                path.push(i);
            }
            self.nodes[i].current = true;
        }
        let hops: HashSet<(usize, usize)> = path.windows(2).map(|w| (w[0], w[1])).collect();
        for e in &mut self.edges {
            e.taken = hops.contains(&(e.from, e.to));
        }
        self.job = Some(JobMark {
            job_id,
            state,
            path,
            current,
        });
    }

    /// A node's label: its number and callee, and the statement with its line.
    pub fn label(&self, n: &Node) -> String {
        let mut s = format!("{}: {}", n.index, n.action);
        if n.kind != "system" {
            s.push_str(&format!(" ({} v{})", n.kind, n.version));
        }
        if let Some(line) = n.line {
            s.push_str(&format!("\nline {line}"));
            if let Some(stmt) = &n.statement {
                s.push_str(": ");
                s.push_str(&shorten(stmt, 40));
            }
        }
        s
    }

    /// The graph's title: the workflow version, and the job drawn on it.
    pub fn title(&self) -> String {
        let mut s = format!("{} version {}", self.workflow, self.version);
        if self.disabled {
            s.push_str(" (disabled)");
        }
        if let Some(j) = &self.job {
            s.push_str(&format!(", job {} ({})", j.job_id, j.state));
        }
        s
    }
}

/// `s` cut to at most `max` characters, with an ellipsis when cut.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_and_without_versions() {
        assert_eq!(parse_name("calltest").ok(), Some(("calltest", None)));
        assert_eq!(parse_name("calltest:3").ok(), Some(("calltest", Some(3))));
        assert!(parse_name("calltest:x").is_err());
        assert!(parse_name("").is_err());
    }

    #[test]
    fn long_statements_are_shortened() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
    }
}
