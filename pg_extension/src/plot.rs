//! The in-memory plotter: runs the steps of one job that need no row but its own (choosing the
//! next task, `start` without locks, `no_op`, `eval`, `branch`, `switch`, the outputs of a
//! call arriving, building an action's inputs, `end`) on the compiled model of
//! `model_cache`, so the SQL driver writes the job row once and the step log in one insert
//! (`jobcenter.apply_plot`) instead of once per step.
//!
//! The plotter never decides an error: a step that fails (an evaluation error, inputs or
//! outputs that do not fit, a value beyond the limits, `max_steps` reached) is left unrun, and
//! the SQL driver runs it the slow way, raising exactly the error it always raised.

use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

use jcl::Context;

use crate::json_arg::{check_limits, check_object_limits, Jsonb};
use crate::model_cache::{self, checked_outputs, env_inputs, fill_inputs, Entry, Task};

/// The system actions the plotter runs (ids of `jcl::SystemAction`).
const START: i32 = -1;
const END: i32 = -2;
const NO_OP: i32 = -3;
const EVAL: i32 = -4;
const BRANCH: i32 = -5;
const SWITCH: i32 = -6;

/// The most steps one call runs: the driver writes them and calls again.
const CHUNK: usize = 5000;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn object(v: Result<Value, String>) -> Option<Map<String, Value>> {
    match v {
        Ok(Value::Object(m)) => Some(m),
        Ok(Value::Null) => Some(Map::new()),
        _ => None,
    }
}

/// Where the plotter stopped.
enum Stop {
    /// At a step the SQL driver runs.
    Slow,
    /// The job's current task is an action, its inputs built: the job becomes ready.
    Ready {
        inargs: Map<String, Value>,
        env: Map<String, Value>,
        queue: Option<i32>,
        filter: bool,
    },
    /// The job's `end` ran: it finishes with these outputs.
    End(Map<String, Value>),
}

struct Job {
    task_id: i32,
    done: bool,
    next: Option<i32>,
    /// The evaluation context: a. and e. as given, v. the job's variables.
    c: Context,
    steps: i32,
    entered: f64,
    moved: bool,
    log: Vec<Value>,
}

impl Job {
    /// The current task finished (finish_step) with variables `c.v`, which `before` held
    /// before it (when the step ran code): logs it, the job is 'done'.
    fn finish(&mut self, before: Option<Map<String, Value>>, next: Option<i32>) {
        let changed = before.is_some_and(|b| b != self.c.v);
        self.log.push(json!({
            "task_id": self.task_id,
            "variables": if changed { Value::Object(self.c.v.clone()) } else { Value::Null },
            "task_state": next.map_or(Value::Null, |n| json!({"next": n})),
            "entered": self.entered,
            "completed": now(),
        }));
        self.next = next;
        self.done = true;
    }

    /// Clears the namespaces a step's code may write besides v.
    fn scratch(&mut self) {
        self.c.i.clear();
        self.c.o.clear();
        self.c.t.clear();
    }

    /// Runs `code` on the variables (the other namespaces as they are); on an error or a
    /// value beyond the limits they are as before and the step is left to the SQL driver.
    /// Returns the variables before.
    fn run_code(&mut self, code: Option<&Vec<jcl::Stmt>>) -> Result<Map<String, Value>, ()> {
        let before = self.c.v.clone();
        if let Some(code) = code {
            let ok = jcl::run(code, &mut self.c).is_ok() && check_object_limits(&self.c.v).is_ok();
            if !ok {
                self.c.v = before;
                return Err(());
            }
        }
        Ok(before)
    }

    /// [`Job::run_code`] with empty i., o. and t.
    fn run(&mut self, code: Option<&Vec<jcl::Stmt>>) -> Result<Map<String, Value>, ()> {
        self.scratch();
        self.run_code(code)
    }
}

/// Whether the plotter runs task `t` of workflow `wf` (the job 'plotting' there).
fn runs(wf: &Entry, t: &Task) -> bool {
    t.fast
        && match t.action_id {
            START => !wf.start_locks,
            END | NO_OP | EVAL | BRANCH | SWITCH => true,
            id if id > 0 => matches!(model_cache::get(id), Ok(Some(c)) if c.kind == "action"),
            _ => false,
        }
}

/// Runs one step of task `task_id` (the job is 'plotting' there): the stop, or `Ok(None)`
/// when the step finished and the job is 'done'; `Err(())` leaves the step to the SQL driver.
fn run_step(wf: &Entry, job: &mut Job) -> Result<Option<Stop>, ()> {
    let task = wf.tasks.get(&job.task_id).ok_or(())?;
    if !runs(wf, task) {
        return Err(());
    }
    match task.action_id {
        START | NO_OP => {
            job.finish(None, None);
            Ok(None)
        }
        EVAL => {
            let before = job.run(task.code.as_ref())?;
            job.finish(Some(before), None);
            Ok(None)
        }
        BRANCH | SWITCH => {
            let expr = if task.action_id == BRANCH {
                task.cond.as_ref()
            } else {
                task.value.as_ref()
            };
            let v = jcl::eval(expr.ok_or(())?, &job.c).map_err(|_| ())?;
            if let Some(v) = &v {
                check_limits(v).map_err(|_| ())?;
            }
            let next = if task.action_id == BRANCH {
                v.as_ref()
                    .is_some_and(jcl::value::truthy)
                    .then(|| task.edges.get("true").copied())
                    .flatten()
            } else {
                let label = v.as_ref().map(jcl::value::to_string).unwrap_or_default();
                task.edges.get(&label).copied()
            };
            job.finish(None, next);
            Ok(None)
        }
        END => {
            let before = job.run(task.wfomap.as_ref())?;
            let o = std::mem::take(&mut job.c.o);
            // the output map's writes to v. are not kept
            job.c.v = before;
            check_object_limits(&o).map_err(|_| ())?;
            let out = checked_outputs(wf, &o).ok_or(())?;
            Ok(Some(Stop::End(out)))
        }
        id if id > 0 => {
            let callee = model_cache::get(id).map_err(|_| ())?.ok_or(())?;
            let before = job.run(task.imap.as_ref())?;
            let i = std::mem::take(&mut job.c.i);
            // an input map's writes to v. are not kept
            job.c.v = before;
            check_object_limits(&i).map_err(|_| ())?;
            let inargs = fill_inputs(&callee, i).ok_or(())?;
            Ok(Some(Stop::Ready {
                inargs,
                env: env_inputs(&callee, &job.c.e),
                queue: callee.queue,
                filter: callee.config.get("filter").is_some(),
            }))
        }
        _ => Err(()),
    }
}

/// Whether `plot` can move a job of workflow `workflow_id` at task `task_id` in `state`: the
/// SQL driver asks first, so a step it runs itself costs no parsing of the job's values.
#[pg_extern(volatile, parallel_unsafe)]
fn plottable(
    workflow_id: i32,
    task_id: i32,
    state: &str,
    stepcounter: i32,
    max_steps: i32,
) -> bool {
    let Ok(Some(wf)) = model_cache::get(workflow_id) else {
        return false;
    };
    match state {
        "done" => stepcounter < max_steps,
        "plotting" => wf.tasks.get(&task_id).is_some_and(|t| runs(&wf, t)),
        _ => false,
    }
}

/// Moves a job as far as its own row allows, in memory. In state 'working', `outputs` are the
/// outputs of its call (task_done without an `error` key): checked, mapped by `omap`, then on.
///
/// Returns null when no step could be run, else the job's new place:
/// `{task_id, state, task_state, variables, stepcounter, entered, moved, log: [step log rows],
/// stop}` with `stop` null (the SQL driver runs the next step), `"ready"` (with `inargs`,
/// `env`, `queue`, `filter`) or `"end"` (with `out`). `entered` is the epoch the last task was
/// entered; a log row with `call: true` is the call step, whose times and worker are the
/// job's own.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn plot(
    workflow_id: i32,
    task_id: i32,
    state: &str,
    task_state: Jsonb,
    arguments: Jsonb,
    environment: Jsonb,
    variables: Jsonb,
    stepcounter: i32,
    max_steps: i32,
    entered: f64,
    outputs: default!(Option<Jsonb>, "NULL"),
) -> Option<JsonB> {
    let wf = model_cache::get(workflow_id).ok()??;
    let task_state = object(task_state.0)?;
    let mut job = Job {
        task_id,
        done: state == "done",
        next: task_state
            .get("next")
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok()),
        c: Context {
            a: object(arguments.0)?,
            e: object(environment.0)?,
            v: object(variables.0)?,
            i: Map::new(),
            o: Map::new(),
            t: Map::new(),
        },
        steps: stepcounter,
        entered,
        moved: false,
        log: Vec::new(),
    };
    match (state, outputs) {
        ("working", Some(out)) => {
            let task = wf.tasks.get(&task_id)?;
            if !task.fast {
                return None;
            }
            let callee = model_cache::get(task.action_id).ok()??;
            let out = checked_outputs(&callee, &object(out.0)?)?;
            job.scratch();
            job.c.o = out.clone();
            let before = job.run_code(task.omap.as_ref()).ok()?;
            let changed = job.c.v != before;
            job.log.push(json!({
                "task_id": task_id,
                "call": true,
                "variables": if changed { Value::Object(job.c.v.clone()) } else { Value::Null },
                "inargs": task_state.get("inargs").cloned().unwrap_or(Value::Null),
                "outargs": out,
                "completed": now(),
            }));
            job.next = None;
            job.done = true;
        }
        ("done" | "plotting", None) => {}
        _ => return None,
    }
    let mut stop = Stop::Slow;
    loop {
        if job.done {
            // a long run is written in parts, so its memory and its log insert stay bounded
            if job.steps >= max_steps || job.log.len() >= CHUNK {
                break;
            }
            let Some(next) = job
                .next
                .or_else(|| wf.tasks.get(&job.task_id).and_then(|t| t.next))
            else {
                break;
            };
            job.task_id = next;
            job.steps += 1;
            job.next = None;
            job.done = false;
            job.entered = now();
            job.moved = true;
            continue;
        }
        match run_step(&wf, &mut job) {
            Ok(None) => {}
            Ok(Some(s)) => {
                stop = s;
                break;
            }
            Err(()) => break,
        }
    }
    let progressed = job.moved || !job.log.is_empty() || !matches!(stop, Stop::Slow);
    if !progressed {
        return None;
    }
    let task_state = if job.done {
        job.next.map_or_else(|| json!({}), |n| json!({"next": n}))
    } else {
        json!({})
    };
    let mut r = json!({
        "task_id": job.task_id,
        "state": if job.done { "done" } else { "plotting" },
        "task_state": task_state,
        "variables": job.c.v,
        "stepcounter": job.steps,
        "entered": job.entered,
        "moved": job.moved,
        "log": job.log,
        "stop": Value::Null,
    });
    match stop {
        Stop::Slow => {}
        Stop::Ready {
            inargs,
            env,
            queue,
            filter,
        } => {
            r["stop"] = json!("ready");
            r["inargs"] = Value::Object(inargs);
            r["env"] = Value::Object(env);
            r["queue"] = json!(queue);
            r["filter"] = json!(filter);
        }
        Stop::End(out) => {
            r["stop"] = json!("end");
            r["out"] = Value::Object(out);
        }
    }
    Some(JsonB(r))
}
