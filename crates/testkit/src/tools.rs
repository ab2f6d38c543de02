//! Running the PostgreSQL command-line tools, as the `postgres` user when we are root
//! (the server refuses to run as root).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::Error;

/// Where initdb and pg_ctl live unless `JC_PG_BINDIR` says otherwise.
const DEFAULT_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// How to invoke the server tools on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Tools {
    bin_dir: PathBuf,
    as_postgres: bool,
}

impl Tools {
    pub(crate) fn detect() -> Tools {
        let bin_dir = std::env::var_os("JC_PG_BINDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN_DIR));
        Tools {
            bin_dir,
            as_postgres: rustix::process::geteuid().is_root(),
        }
    }

    /// True when files the server writes must belong to `postgres`.
    pub(crate) fn as_postgres(&self) -> bool {
        self.as_postgres
    }

    /// A command for the server tool `tool` (e.g. "pg_ctl"), wrapped in
    /// `runuser -u postgres --` when we are root. It runs in `cwd`, which must be
    /// readable by the user it runs as: PostgreSQL tools complain about a current
    /// directory they cannot enter, such as /root.
    pub(crate) fn command(&self, tool: &str, cwd: &Path) -> Command {
        let program = self.bin_dir.join(tool);
        let mut command = if self.as_postgres {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(program);
            runuser
        } else {
            Command::new(program)
        };
        command.current_dir(cwd);
        command
    }
}

/// Runs `command` to completion, failing unless it exits successfully.
pub(crate) async fn run(command: Command) -> Result<Output, Error> {
    let line = command_line(&command);
    let output = tokio::process::Command::from(command)
        .output()
        .await
        .map_err(Error::io(format!("could not run `{line}`")))?;
    check(line, output)
}

/// [`run`] for places that cannot await, such as `Drop`.
pub(crate) fn run_blocking(mut command: Command) -> Result<Output, Error> {
    let line = command_line(&command);
    let output = command
        .output()
        .map_err(Error::io(format!("could not run `{line}`")))?;
    check(line, output)
}

fn check(command: String, output: Output) -> Result<Output, Error> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(Error::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// The command as a user would type it, for error messages.
pub(crate) fn command_line(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
