//! `bench loop`: steps per second of a worker-free loop. Workflow `benchloop` runs
//! `i = 0; while v.i < a.n: i += 1` (a branch and an eval per turn, all plotted inline in
//! `create_job`'s transaction), once per size. A size whose time, predicted from the sizes
//! before it, exceeds the budget is skipped and reported with the prediction.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use jcl::build::{assign, bin, lit, path, set, var};
use jcl::{AssignOp, BinOp, Ns};
use serde_json::{json, Value};

use crate::conn::Conn;
use crate::sql::{self, Api};
use crate::summary::{predict_seconds, rate, round_to};

/// The loop's workflow.
pub const WORKFLOW: &str = "benchloop";

/// The loop's workflow: input `n`, output `i` (= n); [`steps`]`(n)` steps per job.
pub fn model() -> jcl::Model {
    let mut f = testkit::flow::Flow::workflow(WORKFLOW)
        .input("n", "number")
        .output("i", "number")
        // The default of 99 steps would end the loop at once.
        .config(|c| c.max_steps = Some(u32::MAX / 2));
    f.eval(vec![set(path(Ns::V, &["i"]), lit(0))]);
    let test = f.branch(bin(BinOp::NumLt, var(Ns::V, &["i"]), var(Ns::A, &["n"])));
    let body = f.eval(vec![assign(path(Ns::V, &["i"]), AssignOp::Add, lit(1))]);
    f.goto(body, test);
    let end = f.push_end(vec![set(path(Ns::O, &["i"]), var(Ns::V, &["i"]))]);
    f.goto(test, end);
    f.edge(test, "true", body);
    f.build()
}

/// Steps a job of `n` turns logs: a branch and an eval per turn, plus the start, the first
/// eval, the last branch and the end.
pub fn steps(turns: u64) -> u64 {
    2 * turns + 4
}

/// Turns of the loop for about `steps` steps.
pub fn turns(steps: u64) -> u64 {
    steps.saturating_sub(4) / 2
}

/// One size: run, or skipped because it was predicted to take too long.
#[derive(Debug, Clone)]
pub enum Size {
    Ran {
        /// Steps logged (the job's rows in `job_task_log`).
        steps: u64,
        elapsed: Duration,
    },
    Skipped {
        steps: u64,
        predicted_s: f64,
    },
}

impl Size {
    pub fn json(&self, target: u64) -> Value {
        match self {
            Size::Ran { steps, elapsed } => json!({
                "target_steps": target,
                "steps": steps,
                "elapsed_s": round_to(elapsed.as_secs_f64(), 3),
                "steps_per_s": round_to(rate(*steps as f64, elapsed.as_secs_f64()), 0),
            }),
            Size::Skipped { steps, predicted_s } => json!({
                "target_steps": target,
                "steps": steps,
                "skipped": true,
                "predicted_s": round_to(*predicted_s, 1),
            }),
        }
    }
}

/// Runs each size of `sizes` (steps) in turn on `db`, a fresh database with the extension;
/// sizes predicted to take more than `budget` are skipped.
pub async fn run(
    db: &testkit::TestDb,
    sizes: &[u64],
    budget: Duration,
) -> anyhow::Result<Vec<Size>> {
    let conn = Conn::open(&db.dsn).await?;
    let c = &conn.client;
    jc_db::load_model(c, &model(), &[])
        .await
        .context("could not load the loop's workflow")?;
    let api = Api::prepare(c).await?;
    let mut done: Vec<(u64, f64)> = vec![];
    let mut out = Vec::with_capacity(sizes.len());
    for &target in sizes {
        let n = turns(target);
        let steps = steps(n);
        if let Some(predicted_s) =
            predict_seconds(&done, steps).filter(|&p| p > budget.as_secs_f64())
        {
            eprintln!("loop: {steps} steps skipped, predicted {predicted_s:.0} s");
            out.push(Size::Skipped { steps, predicted_s });
            continue;
        }
        eprintln!("loop: {steps} steps …");
        let start = Instant::now();
        let job = api
            .create_job(c, WORKFLOW, &json!({ "n": n }))
            .await
            .with_context(|| format!("create_job({WORKFLOW}, n = {n})"))?;
        let elapsed = start.elapsed();
        let (state, output) = sql::job_result(c, job).await?;
        ensure!(
            state == "finished" && output == Some(json!({ "i": n })),
            "the loop of {n} turns ended {state} with output {output:?}"
        );
        let logged = u64::try_from(sql::job_steps(c, job).await?).unwrap_or_default();
        done.push((logged, elapsed.as_secs_f64()));
        out.push(Size::Ran {
            steps: logged,
            elapsed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_become_turns() {
        assert_eq!(turns(1000), 498);
        assert_eq!(steps(turns(1000)), 1000);
        assert_eq!(turns(3), 0);
        assert_eq!(turns(0), 0);
    }

    /// Against a real cluster: every size runs to its output, logs the steps [`steps`]
    /// counts, and a size beyond the budget is skipped with a prediction.
    #[tokio::test]
    async fn a_small_loop_runs_and_a_big_one_is_skipped() -> anyhow::Result<()> {
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let sizes = run(&db, &[20, 100], Duration::from_secs(3600)).await?;
        let logged: Vec<u64> = sizes
            .iter()
            .map(|s| match s {
                Size::Ran { steps, .. } => *steps,
                Size::Skipped { .. } => 0,
            })
            .collect();
        assert_eq!(logged, vec![20, 100]);
        let db = testkit::Cluster::shared().await?.new_db().await?;
        let sizes = run(&db, &[20, 1_000_000_000], Duration::from_secs(1)).await?;
        match sizes.as_slice() {
            [Size::Ran { .. }, Size::Skipped { steps, predicted_s }] => {
                assert_eq!(*steps, 1_000_000_000);
                assert!(*predicted_s > 1.0, "{predicted_s}");
            }
            other => panic!("expected a run and a skip, got {other:?}"),
        }
        Ok(())
    }

    #[test]
    fn sizes_report_as_json() {
        let ran = Size::Ran {
            steps: 10_003,
            elapsed: Duration::from_millis(500),
        };
        assert_eq!(
            ran.json(10_000),
            json!({"target_steps": 10_000, "steps": 10_003, "elapsed_s": 0.5,
                   "steps_per_s": 20_006.0})
        );
        let skipped = Size::Skipped {
            steps: 99_999,
            predicted_s: 9123.45,
        };
        assert_eq!(
            skipped.json(100_000),
            json!({"target_steps": 100_000, "steps": 99_999, "skipped": true,
                   "predicted_s": 9123.5})
        );
    }
}
