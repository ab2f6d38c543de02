//! The short chaos run of the suite: `bench chaos` with every fault once (the maestro, a
//! gateway, a worker and a client killed with SIGKILL, PostgreSQL crashed, a failover to the
//! standby, a held transaction, a terminate storm) under the mixed load; nothing a client was
//! told of may be lost or doubled, and the engine must recover from every fault.
//!
//! It runs the bench binary, which runs the jcapi and maestro binaries next to it: build
//! them first (`cargo build -p jcapi -p maestro`; the workspace's test command does).

use std::process::Command;

use serde_json::Value;

#[test]
fn a_short_chaos_run_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("chaos.json");
    let run = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["chaos", "--rounds", "1", "--seconds", "30"])
        .args([
            "--hold-seconds",
            "5",
            "--storm-seconds",
            "3",
            "--drain-seconds",
            "60",
        ])
        .args(["--workers", "2", "--clients", "2"])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("the bench runs");
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "bench chaos failed:\n{said}");
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("chaos.json")).expect("JSON");
    let chaos = &doc["chaos"];
    let checks = &chaos["checks"];
    assert!(checks["jobs_created"].as_u64() > Some(100), "{said}");
    assert_eq!(checks["lost"], 0, "{said}");
    assert_eq!(checks["doubled"], 0, "{said}");
    assert_eq!(checks["wrong_outputs"], 0, "{said}");
    assert_eq!(checks["stuck"], 0, "{said}");
    for orphan in ["locks", "subscriptions", "queued_events"] {
        assert_eq!(checks["orphans"][orphan], 0, "{orphan}: {said}");
    }
    let faults = chaos["faults"].as_array().expect("faults");
    assert_eq!(faults.len(), 8, "{said}");
    for f in faults {
        assert!(f["recover_s"].is_number(), "not recovered: {f}\n{said}");
    }
}
