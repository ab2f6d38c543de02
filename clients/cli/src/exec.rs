//! The worker's executors.
//!
//! A **command** runs with `sh -c`: the task's inputs as a JSON object on standard input
//! and each input as a `JC_IN_<name>` environment variable (strings as they are, other
//! values as JSON; characters other than letters, digits and `_` in the name become `_`),
//! plus `JC_JOB_ID` and `JC_ACTION`. An input longer than [`MAX_ENV_VALUE`] bytes (the
//! kernel refuses much larger variables) is left out of the environment and only on
//! standard input. Its standard output is the outputs, a JSON object
//! (empty output: `{}`). An exit status other than 0 fails the task with the standard
//! error as the message; status 75 (`EX_TEMPFAIL`) and a time-out fail it with a *soft*
//! error, which the action's retry policy retries.
//!
//! An **http** action POSTs the inputs as JSON (headers `X-JC-Job-Id` and `X-JC-Action`
//! added) and takes the response body, a JSON object, as the outputs. A status other than
//! 2xx fails the task with the status and body; 502, 503, 504 and connection errors give a
//! soft error.

use std::process::Stdio;
use std::time::Duration;

use jc_client::{Handler, Task, TaskError, TaskResult};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::worker_config::{ActionSpec, Executor};

/// The largest input value passed as an environment variable.
pub const MAX_ENV_VALUE: usize = 64 * 1024;

/// Exit status asking for a retry (sysexits' `EX_TEMPFAIL`).
pub const EX_TEMPFAIL: i32 = 75;

/// The handler performing an action.
pub fn handler(spec: &ActionSpec) -> Handler {
    let timeout = spec.timeout;
    match &spec.executor {
        Executor::Command { .. } => {
            let executor = spec.executor.clone();
            Handler::new_async(move |task| {
                let executor = executor.clone();
                async move { run_command(&executor, &task, timeout).await }
            })
        }
        Executor::Http { url, headers } => {
            let mut builder = ureq::Agent::config_builder().http_status_as_error(false);
            if let Some(t) = timeout {
                builder = builder.timeout_global(Some(t));
            }
            let agent: ureq::Agent = builder.build().into();
            let url = url.clone();
            let headers = headers.clone();
            Handler::new_sync(move |task| post(&agent, &url, &headers, &task))
        }
    }
}

/// The environment variable name of an input.
pub fn input_var(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("JC_IN_{clean}")
}

fn env_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses an executor's output: a JSON object, or nothing.
pub fn parse_output(text: &str, what: &str) -> TaskResult {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(TaskError::new(format!(
            "{what} is not a JSON object: {}",
            clip(&other.to_string())
        ))),
        Err(e) => Err(TaskError::new(format!(
            "{what} is not JSON ({e}): {}",
            clip(text)
        ))),
    }
}

fn clip(s: &str) -> String {
    const MAX: usize = 2000;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Runs a command executor for one task.
pub async fn run_command(
    executor: &Executor,
    task: &Task,
    timeout: Option<Duration>,
) -> TaskResult {
    let Executor::Command { command, env, cwd } = executor else {
        return Err(TaskError::new("not a command action"));
    };
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("JC_JOB_ID", task.job_id.to_string())
        .env("JC_ACTION", &task.actionname);
    if let Value::Object(inargs) = &task.inargs {
        for (k, v) in inargs {
            let value = env_value(v);
            if value.len() <= MAX_ENV_VALUE {
                cmd.env(input_var(k), value);
            } else {
                tracing::debug!(
                    "input {k} ({} bytes) is on standard input only",
                    value.len()
                );
            }
        }
    }
    cmd.envs(env);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| TaskError::new(format!("cannot start the command: {e}")))?;
    let input = task.inargs.to_string();
    let stdin = child.stdin.take();
    // Write the inputs while the output is read, so a large input cannot block the pipe.
    let writer = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A command that does not read its input closes the pipe: not an error.
            let _ = stdin.write_all(input.as_bytes()).await;
        }
    });
    let output = match timeout {
        Some(t) => match tokio::time::timeout(t, child.wait_with_output()).await {
            Ok(r) => r,
            Err(_) => {
                writer.abort();
                return Err(TaskError::soft(format!(
                    "the command timed out after {}",
                    seconds(t)
                )));
            }
        },
        None => child.wait_with_output().await,
    }
    .map_err(|e| TaskError::new(format!("running the command: {e}")))?;
    let _ = writer.await;
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !output.status.success() {
        let code = output.status.code();
        let msg = if stderr.is_empty() {
            match code {
                Some(c) => format!("the command exited with status {c}"),
                None => "the command was killed by a signal".to_owned(),
            }
        } else {
            clip(&stderr)
        };
        return Err(if code == Some(EX_TEMPFAIL) {
            TaskError::soft(msg)
        } else {
            TaskError::new(msg)
        });
    }
    if !stderr.is_empty() {
        tracing::info!(job_id = task.job_id, action = %task.actionname, "stderr: {stderr}");
    }
    parse_output(
        &String::from_utf8_lossy(&output.stdout),
        "the command's output",
    )
}

fn seconds(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// POSTs one task's inputs (blocking: run it on the blocking pool).
pub fn post(
    agent: &ureq::Agent,
    url: &str,
    headers: &std::collections::BTreeMap<String, String>,
    task: &Task,
) -> TaskResult {
    let mut req = agent
        .post(url)
        .header("X-JC-Job-Id", task.job_id.to_string())
        .header("X-JC-Action", &task.actionname);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let mut resp = match req.send_json(&task.inargs) {
        Ok(r) => r,
        Err(e) => return Err(TaskError::soft(format!("POST {url}: {e}"))),
    };
    let status = resp.status();
    let body = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| TaskError::soft(format!("POST {url}: reading the response: {e}")))?;
    if !status.is_success() {
        let msg = format!("POST {url}: HTTP {status}: {}", clip(body.trim()));
        return Err(if matches!(status.as_u16(), 502..=504) {
            TaskError::soft(msg)
        } else {
            TaskError::new(msg)
        });
    }
    parse_output(&body, "the response")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn cmd(c: &str) -> Executor {
        Executor::Command {
            command: c.into(),
            env: [("EXTRA".to_owned(), "x".to_owned())].into(),
            cwd: None,
        }
    }

    fn task(inargs: Value) -> Task {
        Task {
            actionname: "act".into(),
            job_id: 42,
            inargs,
            env: None,
        }
    }

    #[tokio::test]
    async fn a_command_gets_inputs_on_stdin_and_in_the_environment() {
        let t = task(json!({"name": "Ann", "n": 3, "odd-key": [1]}));
        let out = run_command(
            &cmd(r#"read -r line; printf '{"stdin": %s, "name": "%s", "n": %s, "odd": %s, "job": %s, "action": "%s", "extra": "%s"}' "$line" "$JC_IN_name" "$JC_IN_n" "$JC_IN_odd_key" "$JC_JOB_ID" "$JC_ACTION" "$EXTRA""#),
            &t,
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            out,
            json!({"stdin": {"name": "Ann", "n": 3, "odd-key": [1]}, "name": "Ann", "n": 3,
                   "odd": [1], "job": 42, "action": "act", "extra": "x"})
        );
    }

    #[tokio::test]
    async fn exit_status_and_output_decide_success() {
        let t = task(json!({}));
        let e = run_command(&cmd("echo 'it broke' >&2; exit 3"), &t, None)
            .await
            .unwrap_err();
        assert_eq!((e.class.as_str(), e.msg.as_str()), ("normal", "it broke"));
        let e = run_command(&cmd("exit 4"), &t, None).await.unwrap_err();
        assert_eq!(e.msg, "the command exited with status 4");
        let e = run_command(&cmd("echo later >&2; exit 75"), &t, None)
            .await
            .unwrap_err();
        assert_eq!((e.class.as_str(), e.msg.as_str()), ("soft", "later"));
        assert_eq!(
            run_command(&cmd("true"), &t, None).await.unwrap(),
            json!({})
        );
        let e = run_command(&cmd("echo '[1]'"), &t, None).await.unwrap_err();
        assert!(e.msg.contains("not a JSON object"), "{e}");
        let e = run_command(&cmd("echo nope"), &t, None).await.unwrap_err();
        assert!(e.msg.contains("not JSON"), "{e}");
        // A command that ignores its input and a large input do not block; an input too
        // large for the environment is on standard input only.
        let big = task(json!({"s": "x".repeat(1 << 20), "small": 1}));
        assert_eq!(
            run_command(&cmd("echo '{\"ok\": true}'"), &big, None)
                .await
                .unwrap(),
            json!({"ok": true})
        );
        assert_eq!(
            run_command(
                &cmd(r#"printf '{"len": %s, "s": "%s", "small": %s}' "$(wc -c)" "${JC_IN_s:-unset}" "$JC_IN_small""#),
                &big,
                None
            )
            .await
            .unwrap(),
            json!({"len": big.inargs.to_string().len(), "s": "unset", "small": 1})
        );
    }

    #[tokio::test]
    async fn a_slow_command_times_out_softly() {
        let start = std::time::Instant::now();
        let e = run_command(
            &cmd("sleep 5"),
            &task(json!({})),
            Some(Duration::from_millis(200)),
        )
        .await
        .unwrap_err();
        assert_eq!(e.class, "soft");
        assert!(e.msg.contains("timed out"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn input_names_become_variable_names() {
        assert_eq!(input_var("counter"), "JC_IN_counter");
        assert_eq!(input_var("a-b.c d"), "JC_IN_a_b_c_d");
    }
}
