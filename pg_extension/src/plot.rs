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

use crate::json_arg::{check_limits, Jsonb};
use crate::model_cache::{self, checked_outputs, env_inputs, fill_inputs, Entry};

/// The system actions the plotter runs (ids of `jcl::SystemAction`).
const START: i32 = -1;
const END: i32 = -2;
const NO_OP: i32 = -3;
const EVAL: i32 = -4;
const BRANCH: i32 = -5;
const SWITCH: i32 = -6;

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
    vars: Map<String, Value>,
    steps: i32,
    entered: f64,
    moved: bool,
    log: Vec<Value>,
}

impl Job {
    /// The current task finished (finish_step): logs it, the job is 'done'.
    fn finish(&mut self, vars: Map<String, Value>, next: Option<i32>) {
        let changed = vars != self.vars;
        self.log.push(json!({
            "task_id": self.task_id,
            "variables": if changed { Value::Object(vars.clone()) } else { Value::Null },
            "task_state": next.map_or(Value::Null, |n| json!({"next": n})),
            "entered": self.entered,
            "completed": now(),
        }));
        self.vars = vars;
        self.next = next;
        self.done = true;
    }
}

fn ctx(a: &Map<String, Value>, e: &Map<String, Value>, v: &Map<String, Value>) -> Context {
    Context {
        a: a.clone(),
        e: e.clone(),
        v: v.clone(),
        i: Map::new(),
        o: Map::new(),
        t: Map::new(),
    }
}

/// Runs one step of task `task_id` (the job is 'plotting' there): the stop, or `Ok(())` when
/// the step finished and the job is 'done'; `Err(())` leaves the step to the SQL driver.
fn run_step(
    wf: &Entry,
    job: &mut Job,
    a: &Map<String, Value>,
    e: &Map<String, Value>,
) -> Result<Option<Stop>, ()> {
    let task = wf.tasks.get(&job.task_id).ok_or(())?;
    if !task.fast {
        return Err(());
    }
    match task.action_id {
        START if !wf.start_locks => {
            let vars = job.vars.clone();
            job.finish(vars, None);
            Ok(None)
        }
        NO_OP => {
            let vars = job.vars.clone();
            job.finish(vars, None);
            Ok(None)
        }
        EVAL => {
            let mut c = ctx(a, e, &job.vars);
            if let Some(code) = &task.code {
                jcl::run(code, &mut c).map_err(|_| ())?;
                check_limits(&Value::Object(c.v.clone())).map_err(|_| ())?;
            }
            job.finish(c.v, None);
            Ok(None)
        }
        BRANCH => {
            let cond = task.cond.as_ref().ok_or(())?;
            let v = jcl::eval(cond, &ctx(a, e, &job.vars)).map_err(|_| ())?;
            if let Some(v) = &v {
                check_limits(v).map_err(|_| ())?;
            }
            let next = if v.as_ref().is_some_and(jcl::value::truthy) {
                task.edges.get("true").copied()
            } else {
                None
            };
            let vars = job.vars.clone();
            job.finish(vars, next);
            Ok(None)
        }
        SWITCH => {
            let value = task.value.as_ref().ok_or(())?;
            let v = jcl::eval(value, &ctx(a, e, &job.vars)).map_err(|_| ())?;
            if let Some(v) = &v {
                check_limits(v).map_err(|_| ())?;
            }
            let label = v.as_ref().map(jcl::value::to_string).unwrap_or_default();
            let next = task.edges.get(&label).copied();
            let vars = job.vars.clone();
            job.finish(vars, next);
            Ok(None)
        }
        END => {
            let mut c = ctx(a, e, &job.vars);
            if let Some(code) = &task.wfomap {
                jcl::run(code, &mut c).map_err(|_| ())?;
            }
            let o = Value::Object(c.o);
            check_limits(&o).map_err(|_| ())?;
            let Value::Object(o) = o else { return Err(()) };
            let out = checked_outputs(wf, &o).ok_or(())?;
            Ok(Some(Stop::End(out)))
        }
        id if id > 0 => {
            let callee = model_cache::get(id).map_err(|_| ())?.ok_or(())?;
            if callee.kind != "action" {
                return Err(());
            }
            let mut c = ctx(a, e, &job.vars);
            if let Some(code) = &task.imap {
                jcl::run(code, &mut c).map_err(|_| ())?;
            }
            let i = Value::Object(c.i);
            check_limits(&i).map_err(|_| ())?;
            let Value::Object(i) = i else { return Err(()) };
            let inargs = fill_inputs(&callee, i).ok_or(())?;
            Ok(Some(Stop::Ready {
                inargs,
                env: env_inputs(&callee, e),
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
        "plotting" => wf.tasks.get(&task_id).is_some_and(|t| {
            t.fast
                && match t.action_id {
                    START => !wf.start_locks,
                    END | NO_OP | EVAL | BRANCH | SWITCH => true,
                    id if id > 0 => {
                        matches!(model_cache::get(id), Ok(Some(c)) if c.kind == "action")
                    }
                    _ => false,
                }
        }),
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
    let a = object(arguments.0)?;
    let e = object(environment.0)?;
    let task_state = object(task_state.0)?;
    let mut job = Job {
        task_id,
        done: state == "done",
        next: task_state
            .get("next")
            .and_then(Value::as_i64)
            .and_then(|n| i32::try_from(n).ok()),
        vars: object(variables.0)?,
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
            let mut c = ctx(&a, &e, &job.vars);
            c.o = out.clone();
            if let Some(code) = &task.omap {
                jcl::run(code, &mut c).ok()?;
            }
            check_limits(&Value::Object(c.v.clone())).ok()?;
            let changed = c.v != job.vars;
            job.log.push(json!({
                "task_id": task_id,
                "call": true,
                "variables": if changed { Value::Object(c.v.clone()) } else { Value::Null },
                "inargs": task_state.get("inargs").cloned().unwrap_or(Value::Null),
                "outargs": out,
                "completed": now(),
            }));
            job.vars = c.v;
            job.next = None;
            job.done = true;
        }
        ("done" | "plotting", None) => {}
        _ => return None,
    }
    let mut stop = Stop::Slow;
    loop {
        if job.done {
            if job.steps >= max_steps {
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
        match run_step(&wf, &mut job, &a, &e) {
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
        "variables": job.vars,
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
