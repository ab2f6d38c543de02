//! A detached shell process that stops a cluster and deletes its directory once the test
//! process is gone: Rust's test harness has no global teardown, and a test binary may
//! also be killed.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Error;

/// `$1` is the pid to watch, `$2` the directory to delete, the rest the stop command.
/// A failing stop command (the cluster was already stopped and removed by `Drop`) is
/// fine, the directory goes regardless.
const SCRIPT: &str = r#"
pid=$1 dir=$2
shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
"$@" >/dev/null 2>&1
rm -rf "$dir"
"#;

/// Starts the watchdog for the current process. `stop` is run once this process has
/// exited, then `dir` is removed.
pub(crate) fn spawn(dir: &Path, stop: &Command) -> Result<(), Error> {
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(SCRIPT)
        .arg("jc-testkit-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .current_dir("/")
        // Holding the test's stdout open would make whoever reads it (cargo, or a
        // parent test) wait for the watchdog.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group, so a Ctrl-C aimed at the tests does not kill it too.
        .process_group(0);
    // Never waited for: it outlives this process by design and is then reaped by init.
    shell
        .spawn()
        .map_err(Error::io("could not start the cluster watchdog"))?;
    Ok(())
}
