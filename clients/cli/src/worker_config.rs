//! `jcworker`'s configuration file: the connection and the actions it serves.
//!
//! ```toml
//! [connection]
//! host = "localhost"
//! user = "worker"
//! password = "secret"
//! workername = "shell-worker-1"
//!
//! [actions.add]                 # a shell command
//! command = "jq -c '{counter: (.counter + .step)}'"
//! slots = 2                     # tasks at once (default 1)
//! timeout = 30                  # seconds; then the task fails with a soft error
//! env = { LC_ALL = "C" }        # extra environment
//!
//! [actions.fetch]               # an HTTP endpoint
//! http = "http://127.0.0.1:8080/fetch"
//! headers = { Authorization = "Bearer …" }
//! filter = { region = "eu" }    # only tasks whose inputs contain this
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;
use serde_json::Value;

use crate::conn::ConnFile;

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkerFile {
    #[serde(default)]
    pub connection: ConnFile,
    #[serde(default)]
    pub actions: BTreeMap<String, ActionConfig>,
}

/// One action as written.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ActionConfig {
    /// A shell command (`sh -c`).
    pub command: Option<String>,
    /// An HTTP endpoint to POST the inputs to.
    pub http: Option<String>,
    /// HTTP headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Extra environment variables for the command.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The command's working directory (relative to the file).
    pub cwd: Option<PathBuf>,
    /// Tasks at once.
    pub slots: Option<u32>,
    /// Seconds a task may take.
    pub timeout: Option<f64>,
    /// Only tasks whose inputs contain this object.
    pub filter: Option<toml::Value>,
}

/// What performs an action.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    Command {
        command: String,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// One action, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionSpec {
    pub name: String,
    pub executor: Executor,
    pub slots: u32,
    pub timeout: Option<Duration>,
    pub filter: Option<Value>,
}

impl WorkerFile {
    /// Reads and checks a worker file.
    pub fn load(path: &Path) -> anyhow::Result<(WorkerFile, Vec<ActionSpec>)> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: WorkerFile =
            toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        file.connection.resolve_paths(path);
        let base = path.parent().unwrap_or(Path::new("."));
        let specs = file
            .specs(base)
            .with_context(|| format!("in {}", path.display()))?;
        Ok((file, specs))
    }

    /// The actions, checked; relative working directories are taken from `base`.
    pub fn specs(&self, base: &Path) -> anyhow::Result<Vec<ActionSpec>> {
        if self.actions.is_empty() {
            bail!("no [actions.NAME] table: nothing to serve");
        }
        let mut out = vec![];
        for (name, a) in &self.actions {
            let executor = match (&a.command, &a.http) {
                (Some(command), None) => {
                    if !a.headers.is_empty() {
                        bail!("action {name}: headers are for http actions");
                    }
                    Executor::Command {
                        command: command.clone(),
                        env: a.env.clone(),
                        cwd: a.cwd.as_ref().map(|c| base.join(c)),
                    }
                }
                (None, Some(url)) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        bail!("action {name}: http must be an http:// or https:// URL");
                    }
                    if !a.env.is_empty() || a.cwd.is_some() {
                        bail!("action {name}: env and cwd are for command actions");
                    }
                    Executor::Http {
                        url: url.clone(),
                        headers: a.headers.clone(),
                    }
                }
                (Some(_), Some(_)) => bail!("action {name}: give command or http, not both"),
                (None, None) => bail!("action {name}: give a command or an http endpoint"),
            };
            let timeout = match a.timeout {
                Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
                Some(_) => bail!("action {name}: timeout must be a positive number of seconds"),
                None => None,
            };
            let filter = match &a.filter {
                Some(f) => {
                    let v = serde_json::to_value(f)?;
                    if !v.is_object() {
                        bail!("action {name}: filter must be a table");
                    }
                    Some(v)
                }
                None => None,
            };
            if a.slots == Some(0) {
                bail!("action {name}: slots must be at least 1");
            }
            out.push(ActionSpec {
                name: name.clone(),
                executor,
                slots: a.slots.unwrap_or(1),
                timeout,
                filter,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_worker_file_with_both_kinds_of_action() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.toml");
        std::fs::write(
            &p,
            r#"
[connection]
user = "w"
password = "pw"
workername = "w1"

[actions.add]
command = "cat"
slots = 3
timeout = 2.5
env = { A = "b" }
cwd = "sub"

[actions.fetch]
http = "http://127.0.0.1:1/x"
headers = { X-Key = "k" }
filter = { region = "eu" }
"#,
        )
        .unwrap();
        let (file, specs) = WorkerFile::load(&p).unwrap();
        assert_eq!(file.connection.workername.as_deref(), Some("w1"));
        assert_eq!(specs.len(), 2);
        assert_eq!(
            specs[0],
            ActionSpec {
                name: "add".into(),
                executor: Executor::Command {
                    command: "cat".into(),
                    env: [("A".to_owned(), "b".to_owned())].into(),
                    cwd: Some(dir.path().join("sub")),
                },
                slots: 3,
                timeout: Some(Duration::from_millis(2500)),
                filter: None,
            }
        );
        assert_eq!(specs[1].filter, Some(serde_json::json!({"region": "eu"})));
        assert!(matches!(&specs[1].executor, Executor::Http { url, headers }
            if url == "http://127.0.0.1:1/x" && headers["X-Key"] == "k"));
    }

    #[test]
    fn bad_actions_are_refused_with_their_name() {
        for (text, want) in [
            (
                "[actions.a]\n",
                "action a: give a command or an http endpoint",
            ),
            (
                "[actions.a]\ncommand = \"x\"\nhttp = \"http://h/\"\n",
                "not both",
            ),
            ("[actions.a]\nhttp = \"ftp://h/\"\n", "http:// or https://"),
            ("[actions.a]\ncommand = \"x\"\nslots = 0\n", "slots must be"),
            (
                "[actions.a]\ncommand = \"x\"\ntimeout = -1\n",
                "timeout must be",
            ),
            (
                "[actions.a]\ncommand = \"x\"\nfilter = 3\n",
                "filter must be",
            ),
            ("[connection]\nuser = \"x\"\n", "nothing to serve"),
        ] {
            let f: WorkerFile = toml::from_str(text).unwrap();
            let e = f.specs(Path::new(".")).unwrap_err();
            assert!(e.to_string().contains(want), "{text}: {e}");
        }
        assert!(toml::from_str::<WorkerFile>("[actions.a]\ncomand = \"x\"\n").is_err());
    }
}
