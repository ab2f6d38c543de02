//! Logs written to a pipe (a file, journald, a log collector) carry no ANSI colour codes.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    // Port 1 refuses the connection, so maestro logs its start and its retries right away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_maestro"))
        .args(["--dsn", "host=127.0.0.1 port=1 user=nobody dbname=nothing"])
        .env_remove("JC_LOG_FORMAT")
        .env("JC_LOG_LEVEL", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start maestro");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stderr.read_to_end(&mut out);
        out
    });
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1500) {
        if child.try_wait().expect("poll maestro").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    let out = String::from_utf8_lossy(&reader.join().expect("reader thread")).into_owned();
    assert!(out.contains("maestro starting"), "no log lines: {out}");
    assert!(
        !out.contains("\x1b["),
        "colour codes in piped logs: {out:?}"
    );
}
