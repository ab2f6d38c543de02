//! A per-backend cache of the compiled model: actions with their declared inputs and outputs
//! (JSON Schema validators compiled), and workflows with their tasks (IR deserialised),
//! conditional edges and whether they take locks at start.
//!
//! Entries are keyed by action id. Versions are rows of their own, so a load never changes
//! a cached entry; `replace_action` rewrites one in place and `set_disabled` flips a flag,
//! both by updating the `actions` row. An entry remembers that row's `xmin` and is checked
//! against it once per transaction (one index lookup); `model_changed` drops an entry at once
//! in the backend that changed it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::JsonB;
use serde_json::{Map, Value};

use crate::json_arg::Jsonb;

use jcl::{Expr, Stmt, TaskAttributes, IR_VERSION};

/// The most entries kept; past it the cache starts afresh.
const CACHE_LIMIT: usize = 2048;

/// A declared input or output.
pub struct Decl {
    pub name: String,
    pub optional: bool,
    pub default: Option<Value>,
    /// An input of destination `environment`.
    pub env: bool,
    validator: Option<jsonschema::Validator>,
}

impl Decl {
    /// Whether `value` is of the declared type (a schema that does not compile fits nothing).
    pub fn fits(&self, value: &Value) -> bool {
        self.validator.as_ref().is_some_and(|v| v.is_valid(value))
    }
}

/// A compiled task. `code`, `cond`, `value`, `imap`, `omap` and `wfomap` are the IR of its
/// attributes; `fast` is false when the attributes could not be read (another IR version,
/// a shape this build does not know): such a task is always left to the SQL driver, which
/// reports why.
pub struct Task {
    pub action_id: i32,
    pub next: Option<i32>,
    pub fast: bool,
    pub code: Option<Vec<Stmt>>,
    pub cond: Option<Expr>,
    pub value: Option<Expr>,
    pub imap: Option<Vec<Stmt>>,
    pub omap: Option<Vec<Stmt>>,
    pub wfomap: Option<Vec<Stmt>>,
    /// Conditional edges: `when` → task id.
    pub edges: HashMap<String, i32>,
}

/// An action, procedure or workflow.
pub struct Entry {
    pub kind: String,
    pub config: Value,
    pub inputs: Vec<Decl>,
    pub outputs: Vec<Decl>,
    /// The ready queue of an action (`jobcenter.action_queue`).
    pub queue: Option<i32>,
    /// A workflow's tasks.
    pub tasks: HashMap<i32, Task>,
    /// A workflow that takes locks at start (`locks:` with a value, not manual).
    pub start_locks: bool,
    xmin: Option<String>,
    checked: Cell<u32>,
}

thread_local! {
    static CACHE: RefCell<HashMap<i32, Rc<Entry>>> = RefCell::new(HashMap::new());
}

/// The backend's local transaction number: an entry checked in this transaction is fresh.
fn transaction() -> u32 {
    // SAFETY: MyProc is this backend's PGPROC, set up before any function can run.
    unsafe { (*pg_sys::MyProc).lxid }
}

fn spi_err(e: pgrx::spi::SpiError) -> String {
    format!("reading the compiled model: {e}")
}

fn json(v: Option<JsonB>) -> Value {
    v.map_or(Value::Null, |j| j.0)
}

thread_local! {
    /// The freshness check's plan, prepared once per backend: it runs in every transaction
    /// that uses the cache, and parsing and planning it cost more than running it.
    static XMIN_PLAN: RefCell<Option<OwnedPreparedStatement>> = const { RefCell::new(None) };
}

fn xmin_of(id: i32) -> Result<Option<String>, String> {
    Spi::connect(|c| {
        XMIN_PLAN.with(|plan| {
            let mut plan = plan.borrow_mut();
            let plan = match plan.as_ref() {
                Some(p) => p,
                None => {
                    let p = c
                        .prepare(
                            "select xmin::text from jobcenter.actions where action_id = $1",
                            &[PgOid::BuiltIn(PgBuiltInOids::INT4OID)],
                        )
                        .map_err(spi_err)?
                        .keep();
                    plan.insert(p)
                }
            };
            let rows = c.select(plan, Some(1), &[id.into()]).map_err(spi_err)?;
            match rows.into_iter().next() {
                None => Ok(None),
                Some(r) => r.get::<String>(1).map_err(spi_err),
            }
        })
    })
}

fn decls(sql: &str, id: i32, inputs: bool) -> Result<Vec<Decl>, String> {
    Spi::connect(|c| {
        let rows = c.select(sql, None, &[id.into()]).map_err(spi_err)?;
        let mut out = Vec::new();
        for r in rows {
            let name: String = r.get(1).map_err(spi_err)?.unwrap_or_default();
            let optional: bool = r.get(2).map_err(spi_err)?.unwrap_or(false);
            let schema = json(r.get::<JsonB>(3).map_err(spi_err)?);
            let (default, env) = if inputs {
                let d = r.get::<JsonB>(4).map_err(spi_err)?.map(|j| j.0);
                let dest: Option<String> = r.get(5).map_err(spi_err)?;
                (d, dest.as_deref() == Some("environment"))
            } else {
                (None, false)
            };
            out.push(Decl {
                name,
                optional,
                default,
                env,
                validator: jsonschema::validator_for(&schema).ok(),
            });
        }
        Ok(out)
    })
}

fn task_of(action_id: i32, next: Option<i32>, attributes: &Value) -> Task {
    let ir = attributes.get("ir").and_then(Value::as_u64);
    let attrs = if ir == Some(u64::from(IR_VERSION)) {
        serde_json::from_value::<TaskAttributes>(attributes.clone()).ok()
    } else {
        None
    };
    let mut t = Task {
        action_id,
        next,
        fast: attrs.is_some(),
        code: None,
        cond: None,
        value: None,
        imap: None,
        omap: None,
        wfomap: None,
        edges: HashMap::new(),
    };
    if let Some(a) = attrs {
        t.code = a.code;
        t.cond = a.cond;
        t.value = a.value;
        t.imap = a.imap;
        t.omap = a.omap;
        t.wfomap = a.wfomap;
    }
    t
}

fn load(id: i32) -> Result<Option<Entry>, String> {
    let head = Spi::connect(|c| {
        let rows = c
            .select(
                "select xmin::text, type::text, config from jobcenter.actions where action_id = $1",
                None,
                &[id.into()],
            )
            .map_err(spi_err)?;
        match rows.into_iter().next() {
            None => Ok::<_, String>(None),
            Some(r) => Ok(Some((
                r.get::<String>(1).map_err(spi_err)?,
                r.get::<String>(2).map_err(spi_err)?.unwrap_or_default(),
                json(r.get::<JsonB>(3).map_err(spi_err)?),
            ))),
        }
    })?;
    let Some((xmin, kind, config)) = head else {
        return Ok(None);
    };
    let inputs = decls(
        "select i.name, i.optional, s.schema, i.\"default\", i.destination::text \
         from jobcenter.action_inputs i join jobcenter.json_schemas s using (type) \
         where i.action_id = $1 order by i.name",
        id,
        true,
    )?;
    let outputs = decls(
        "select o.name, o.optional, s.schema from jobcenter.action_outputs o \
         join jobcenter.json_schemas s using (type) where o.action_id = $1 order by o.name",
        id,
        false,
    )?;
    let queue = if kind == "action" {
        Spi::get_one_with_args::<i32>(
            "select action_id from jobcenter.actions where type = 'action' and name = \
             (select name from jobcenter.actions where action_id = $1) order by version limit 1",
            &[id.into()],
        )
        .map_err(spi_err)?
    } else {
        None
    };
    let mut tasks = HashMap::new();
    let mut start_locks = false;
    if kind == "workflow" {
        Spi::connect(|c| {
            let rows = c
                .select(
                    "select task_id, action_id, next_task_id, attributes from jobcenter.tasks \
                     where workflow_id = $1",
                    None,
                    &[id.into()],
                )
                .map_err(spi_err)?;
            for r in rows {
                let Some(task_id) = r.get::<i32>(1).map_err(spi_err)? else {
                    continue;
                };
                let action_id = r.get::<i32>(2).map_err(spi_err)?.unwrap_or(0);
                let next = r.get::<i32>(3).map_err(spi_err)?;
                let attributes = json(r.get::<JsonB>(4).map_err(spi_err)?);
                tasks.insert(task_id, task_of(action_id, next, &attributes));
            }
            let rows = c
                .select(
                    "select n.from_task_id, n.\"when\", n.to_task_id from jobcenter.next_tasks n \
                     join jobcenter.tasks t on t.task_id = n.from_task_id where t.workflow_id = $1",
                    None,
                    &[id.into()],
                )
                .map_err(spi_err)?;
            for r in rows {
                let (Some(from), Some(when), Some(to)) = (
                    r.get::<i32>(1).map_err(spi_err)?,
                    r.get::<String>(2).map_err(spi_err)?,
                    r.get::<i32>(3).map_err(spi_err)?,
                ) else {
                    continue;
                };
                if let Some(t) = tasks.get_mut(&from) {
                    t.edges.insert(when, to);
                }
            }
            Ok::<(), String>(())
        })?;
        start_locks = Spi::get_one_with_args::<bool>(
            "select exists (select 1 from jobcenter.workflow_locks \
             where workflow_id = $1 and not manual and value is not null)",
            &[id.into()],
        )
        .map_err(spi_err)?
        .unwrap_or(true);
    }
    Ok(Some(Entry {
        kind,
        config,
        inputs,
        outputs,
        queue,
        tasks,
        start_locks,
        xmin,
        checked: Cell::new(transaction()),
    }))
}

/// The entry of action `id`, fresh for this transaction; `None` when there is no such action.
pub fn get(id: i32) -> Result<Option<Rc<Entry>>, String> {
    let now = transaction();
    let cached = CACHE.with(|c| c.borrow().get(&id).cloned());
    if let Some(e) = cached {
        if e.checked.get() == now {
            return Ok(Some(e));
        }
        if xmin_of(id)? == e.xmin {
            e.checked.set(now);
            return Ok(Some(e));
        }
    }
    let Some(entry) = load(id)? else {
        CACHE.with(|c| c.borrow_mut().remove(&id));
        return Ok(None);
    };
    let entry = Rc::new(entry);
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= CACHE_LIMIT {
            c.clear();
        }
        c.insert(id, Rc::clone(&entry));
    });
    Ok(Some(entry))
}

/// Checks `args` against an entry's declared inputs (of destination `arguments`) as
/// `jobcenter.check_inputs` does: the filled arguments, or `None` when they do not fit (the
/// SQL function then says why).
pub fn fill_inputs(entry: &Entry, args: Map<String, Value>) -> Option<Map<String, Value>> {
    fill(entry, args, false)
}

/// [`fill_inputs`] for the inputs of destination `environment` when `env`.
fn fill(entry: &Entry, args: Map<String, Value>, env: bool) -> Option<Map<String, Value>> {
    let mut args = args;
    for d in entry.inputs.iter().filter(|d| d.env == env) {
        match args.get(&d.name) {
            None => match &d.default {
                Some(v) => {
                    args.insert(d.name.clone(), v.clone());
                }
                None if d.optional => {}
                None => return None,
            },
            Some(v) if !d.fits(v) => return None,
            Some(_) => {}
        }
    }
    let known = |k: &String| entry.inputs.iter().any(|d| d.env == env && &d.name == k);
    args.keys().all(known).then_some(args)
}

/// Checks outputs against an entry's declared outputs as `jobcenter.check_outputs` does:
/// the declared ones (undeclared keys dropped), or `None` when they do not fit.
pub fn checked_outputs(entry: &Entry, out: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut checked = Map::new();
    for d in &entry.outputs {
        match out.get(&d.name) {
            None if d.optional => {}
            None => return None,
            Some(v) if !d.fits(v) => return None,
            Some(v) => {
                checked.insert(d.name.clone(), v.clone());
            }
        }
    }
    Some(checked)
}

/// The environment inputs of an entry present in `env` (what `do_action_task` hands the
/// worker).
pub fn env_inputs(entry: &Entry, env: &Map<String, Value>) -> Map<String, Value> {
    entry
        .inputs
        .iter()
        .filter(|d| d.env)
        .filter_map(|d| env.get(&d.name).map(|v| (d.name.clone(), v.clone())))
        .collect()
}

/// Drops the cached entry of action `action_id` in this backend (the loader calls it after
/// changing an action in place, so this transaction sees the change at once).
#[pg_extern(volatile, parallel_unsafe)]
fn model_changed(action_id: i32) -> bool {
    CACHE.with(|c| c.borrow_mut().remove(&action_id).is_some())
}

/// The fast path of `jobcenter.check_inputs`: `a_args` with defaults filled in when they fit
/// the declared inputs of action `action_id` (of destination `environment` when
/// `environment`), else null (the SQL function then says why).
#[pg_extern(volatile, parallel_unsafe)]
fn fill_args(action_id: i32, args: Jsonb, environment: bool) -> Option<JsonB> {
    let Ok(Value::Object(args)) = args.0 else {
        return None;
    };
    let entry = get(action_id).ok()??;
    fill(&entry, args, environment).map(|m| JsonB(Value::Object(m)))
}

/// The fast path of `jobcenter.check_outputs`: the declared outputs of action `action_id`
/// taken from `out` when they fit, else null (the SQL function then says why).
#[pg_extern(volatile, parallel_unsafe)]
fn fit_outputs(action_id: i32, out: Jsonb) -> Option<JsonB> {
    let Ok(Value::Object(out)) = out.0 else {
        return None;
    };
    let entry = get(action_id).ok()??;
    checked_outputs(&entry, &out).map(|m| JsonB(Value::Object(m)))
}
