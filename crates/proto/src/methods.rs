//! Every method of the protocol, with the original JobCenter names, parameters and result
//! shapes, so existing JobCenter clients and workers connect unchanged.
//!
//! A call is a type implementing [`Method`] (its name, parameters and result); a notification
//! implements [`Notify`]. Results that the original sends as several values are tuples,
//! which serialise as JSON arrays: `hello` answers `[true, "welcome …"]`, `create_job`
//! `[job_id, null]` or `[null, "error"]`.
//!
//! | method | direction | params | result |
//! |---|---|---|---|
//! | `greetings` | server → client, notification | [`GreetingsParams`] | |
//! | `hello` | client → server | [`HelloParams`] | [`HelloResult`] |
//! | `ping` | both ways | [`PingParams`] | `"pong"` |
//! | `create_job` | client → server | [`CreateJobParams`] | [`CreateJobResult`] |
//! | `job_done` | server → client, notification | [`JobDoneParams`] | |
//! | `get_job_status` | client → server | [`GetJobStatusParams`] | [`JobStatus`] |
//! | `find_jobs` | client → server | [`FindJobsParams`] | job ids |
//! | `check_if_lock_exists` | client → server | [`CheckIfLockExistsParams`] | bool |
//! | `cancel_job` (ours) | client → server | [`CancelJobParams`] | `true` |
//! | `retry_job` (ours) | client → server | [`RetryJobParams`] | `true` |
//! | `raise_event` (ours) | client → server | [`RaiseEventParams`] | event id |
//! | `get_job` (ours) | client → server | [`GetJobParams`] | [`JobInfo`] |
//! | `create_slotgroup` | worker → server | [`CreateSlotgroupParams`] | `true` |
//! | `announce` | worker → server | [`AnnounceParams`] | [`AnnounceResult`] |
//! | `withdraw` | worker → server | [`WithdrawParams`] | `true` |
//! | `task_ready` | server → worker, notification | [`TaskReadyParams`] | |
//! | `get_task` | worker → server | [`GetTaskParams`] | [`TaskGiven`] or `null` |
//! | `task_done` | worker → server, notification | [`TaskDoneParams`] | |
//! | `get_tasks` (ours) | worker → server | [`GetTasksParams`] | [`TaskGiven`]s, maybe none |
//! | `tasks_done` (ours) | worker → server | [`TasksDoneParams`] | [`DoneOutcome`]s |
//!
//! `get_tasks` and `tasks_done` are the batched forms of `get_task` and `task_done`: a worker
//! offered tasks (`task_ready`) takes up to `count` ready tasks of the action at once (the
//! offers it holds and its free slots bound the count), and finishes many in one call, each
//! result answered on its own. `tasks_done` is answered once its results are applied, which
//! may come after the answers to later requests (the ids tell them apart).
//!
//! `get_job_status`, `cancel_job`, `retry_job` and `get_job` only reach jobs the caller
//! created; `hello` and `ping` are the only calls allowed before a welcome.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A call: its name on the wire, its parameters and its result.
pub trait Method {
    const NAME: &'static str;
    type Params: Serialize + DeserializeOwned;
    type Result: Serialize + DeserializeOwned;
}

/// A notification: its name on the wire and its parameters.
pub trait Notify {
    const NAME: &'static str;
    type Params: Serialize + DeserializeOwned;
}

macro_rules! method {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $params:ty, $result:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl Method for $ty {
            const NAME: &'static str = $name;
            type Params = $params;
            type Result = $result;
        }
    };
}

macro_rules! notify {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $params:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $ty;
        impl Notify for $ty {
            const NAME: &'static str = $name;
            type Params = $params;
        }
    };
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

/// A job id as a number or, as a Perl client may send a value it read as text, a string of
/// digits (the original gateway let SQL cast it).
mod job_id {
    use serde::de::{Deserializer, Error, Unexpected};
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Given {
        Number(i64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match Given::deserialize(d)? {
            Given::Number(n) => Ok(n),
            Given::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| D::Error::invalid_value(Unexpected::Str(&s), &"a job id")),
        }
    }
}

// The handshake -----------------------------------------------------------------------------

notify!(
    /// The server's first message on every connection.
    Greetings,
    "greetings",
    GreetingsParams
);

/// Who the server is: `{"who": "jcapi", "version": "1.1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GreetingsParams {
    pub who: String,
    pub version: String,
}

method!(
    /// Authenticates the connection.
    Hello,
    "hello",
    HelloParams,
    HelloResult
);

/// `method` is `password` (token: the password), `token` (an API token) or `clientcert`
/// (the TLS client certificate decides; token ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloParams {
    pub who: String,
    pub method: String,
    #[serde(default)]
    pub token: String,
}

/// `[true, "welcome to the clientapi <who>!"]` or `[false, why]` (then the server closes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloResult(pub bool, pub String);

method!(
    /// Liveness, both ways: the server pings workers (every 60 s by default) and a client may
    /// ping the server. The answer is `"pong"`.
    Ping,
    "ping",
    PingParams,
    String
);

/// `ping` takes no parameters (`{}` or none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingParams {}

// Clients -----------------------------------------------------------------------------------

method!(
    /// Starts a job; `job_done` follows when it ends.
    CreateJob,
    "create_job",
    CreateJobParams,
    CreateJobResult
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateJobParams {
    /// The workflow's name.
    pub wfname: String,
    /// The workflow's inputs, a JSON object.
    #[serde(default = "empty_object")]
    pub inargs: Value,
    /// Version tags to try in order, `a:b` (then the untagged versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vtag: Option<String>,
    /// Seconds to wait for the job: past that `job_done` comes with `{"error": "timeout"}`
    /// (the job itself goes on). None or 0: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<f64>,
    /// The client's environment, stored as `clenv` in the job's environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clenv: Option<Value>,
    /// Idempotency key: another `create_job` of the same workflow with the same key while
    /// its job lives, or within the `job_key_retention` setting after it ended, answers that
    /// job's id and creates nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The job's priority, -1000 to 1000 (default 0): its tasks are served before those of
    /// lower priorities, bounded by aging (the `priority_aging` setting); child jobs inherit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
}

/// `[job_id, null]`, or `[null, message]` when the job could not be created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateJobResult(pub Option<i64>, pub Option<String>);

notify!(
    /// A job the client created (or asked about with `notify`) has ended.
    JobDone,
    "job_done",
    JobDoneParams
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDoneParams {
    pub job_id: i64,
    /// The job's outputs; `{"error": …}` for a job in error.
    pub outargs: Value,
}

method!(
    /// The job's output once it has ended, with `notify` a `job_done` when it ends.
    GetJobStatus,
    "get_job_status",
    GetJobStatusParams,
    JobStatus
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetJobStatusParams {
    #[serde(deserialize_with = "job_id::deserialize")]
    pub job_id: i64,
    /// Also send `job_done` when the job ends — at once when it has ended already.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<bool>,
}

/// `[job_id, outargs]`, outargs `null` while the job runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus(pub i64, pub Option<Value>);

method!(
    /// The ids of the caller's jobs whose arguments contain `filter`.
    FindJobs,
    "find_jobs",
    FindJobsParams,
    Vec<i64>
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindJobsParams {
    /// A JSON object, or a string holding one (the original Perl client sends that).
    pub filter: Value,
    /// Only jobs in this state (e.g. `error`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

method!(
    /// Whether some job holds a lock.
    CheckIfLockExists,
    "check_if_lock_exists",
    CheckIfLockExistsParams,
    bool
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIfLockExistsParams {
    pub locktype: String,
    pub lockvalue: String,
}

method!(
    /// Ours: cancels one of the caller's live jobs (it ends in error, class `abort`).
    CancelJob,
    "cancel_job",
    CancelJobParams,
    bool
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelJobParams {
    #[serde(deserialize_with = "job_id::deserialize")]
    pub job_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

method!(
    /// Ours: restarts one of the caller's jobs that ended in error.
    RetryJob,
    "retry_job",
    RetryJobParams,
    bool
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryJobParams {
    #[serde(deserialize_with = "job_id::deserialize")]
    pub job_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

method!(
    /// Ours: publishes an event to every subscription whose mask it contains.
    RaiseEvent,
    "raise_event",
    RaiseEventParams,
    i64
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaiseEventParams {
    /// The event data, a JSON object.
    pub event: Value,
}

method!(
    /// Ours: one of the caller's jobs in detail, with its step log.
    GetJob,
    "get_job",
    GetJobParams,
    JobInfo
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetJobParams {
    #[serde(deserialize_with = "job_id::deserialize")]
    pub job_id: i64,
}

/// A job, live or archived. Times are RFC 3339 strings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobInfo {
    pub job_id: i64,
    pub workflow: String,
    pub version: i32,
    pub state: String,
    pub arguments: Value,
    /// The output once ended (`{"error": …}` in error), else null.
    pub output: Option<Value>,
    pub parentjob_id: Option<i64>,
    pub created: String,
    pub finished: Option<String>,
    pub archived: bool,
    pub steps: Vec<StepLog>,
}

/// One row of the job's step log (`job_task_log`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    pub task_id: i32,
    pub state: String,
    pub inargs: Option<Value>,
    pub outargs: Option<Value>,
    /// The variables when the step changed them.
    pub variables: Option<Value>,
    pub task_entered: Option<String>,
    pub task_started: Option<String>,
    pub task_completed: String,
    pub worker_id: Option<i64>,
    pub task_state: Option<Value>,
}

// Workers -----------------------------------------------------------------------------------

method!(
    /// A slot group: several actions of one worker sharing a number of slots.
    CreateSlotgroup,
    "create_slotgroup",
    CreateSlotgroupParams,
    bool
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSlotgroupParams {
    pub name: String,
    pub slots: u32,
}

method!(
    /// The worker performs `actionname` with `slots` tasks at once (default 1) or in a slot
    /// group; with a `filter` it only gets tasks whose inputs contain it.
    Announce,
    "announce",
    AnnounceParams,
    AnnounceResult
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnounceParams {
    pub actionname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slots: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slotgroup: Option<String>,
    /// Defaults to the worker's earlier name on this connection, else the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workername: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
}

/// `[true, "success"]` or `[false, why]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnounceResult(pub bool, pub String);

method!(
    /// The worker no longer performs `actionname`.
    Withdraw,
    "withdraw",
    WithdrawParams,
    bool
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithdrawParams {
    pub actionname: String,
}

/// A job id, or the server's poll token (a string the worker hands back to `get_task`
/// unchanged; it asks for the oldest ready task).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum JobRef {
    Id(i64),
    Token(String),
}

notify!(
    /// A task is ready for the worker: take it with `get_task` (within 10 s, else it is
    /// offered to another worker).
    TaskReady,
    "task_ready",
    TaskReadyParams
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskReadyParams {
    pub actionname: String,
    pub job_id: JobRef,
}

method!(
    /// Takes the offered task; `null` when it is gone (another worker was faster).
    GetTask,
    "get_task",
    GetTaskParams,
    Option<TaskGiven>
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTaskParams {
    pub actionname: String,
    pub job_id: JobRef,
}

/// `[job_id, cookie, inargs, env]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskGiven(pub i64, pub String, pub Value, pub Option<Value>);

notify!(
    /// The task holding `cookie` is done; an `error` key in `outargs` means it failed.
    TaskDone,
    "task_done",
    TaskDoneParams
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDoneParams {
    pub cookie: String,
    pub outargs: Value,
}

method!(
    /// Ours: takes up to `count` ready tasks of `actionname` at once (the oldest first, as
    /// `get_task` with a poll token takes them); none when there is none.
    GetTasks,
    "get_tasks",
    GetTasksParams,
    Vec<TaskGiven>
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetTasksParams {
    pub actionname: String,
    /// At most this many (the worker's free slots); the gateway gives no more than the
    /// worker's slots allow.
    pub count: u32,
}

method!(
    /// Ours: finishes many tasks in one call; one [`DoneOutcome`] per result, in order. A
    /// result that fails (an unknown cookie, a task taken elsewhere) fails alone.
    TasksDone,
    "tasks_done",
    TasksDoneParams,
    Vec<DoneOutcome>
);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasksDoneParams {
    /// The results, each as `task_done`'s params.
    pub results: Vec<TaskDoneParams>,
}

/// What became of one result of `tasks_done`: `{"cookie": …, "ok": true}` when it was
/// applied (outputs that do not fit the action fail its task, as with `task_done`), else
/// `{"cookie": …, "ok": false, "error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneOutcome {
    pub cookie: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorObject>,
}

/// Every method and notification name, for dispatch tables and fuzzing.
pub const NAMES: [&str; 20] = [
    Greetings::NAME,
    Hello::NAME,
    Ping::NAME,
    CreateJob::NAME,
    JobDone::NAME,
    GetJobStatus::NAME,
    FindJobs::NAME,
    CheckIfLockExists::NAME,
    CancelJob::NAME,
    RetryJob::NAME,
    RaiseEvent::NAME,
    GetJob::NAME,
    CreateSlotgroup::NAME,
    Announce::NAME,
    Withdraw::NAME,
    TaskReady::NAME,
    GetTask::NAME,
    TaskDone::NAME,
    GetTasks::NAME,
    TasksDone::NAME,
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn shapes_match_the_original_protocol() {
        assert_eq!(
            serde_json::to_value(HelloResult(true, "welcome".into())).unwrap(),
            json!([true, "welcome"])
        );
        assert_eq!(
            serde_json::to_value(CreateJobResult(None, Some("no workflow".into()))).unwrap(),
            json!([null, "no workflow"])
        );
        let t: Option<TaskGiven> =
            serde_json::from_value(json!([3, "c00k1e", {"a": 1}, null])).unwrap();
        assert_eq!(
            t,
            Some(TaskGiven(3, "c00k1e".into(), json!({"a": 1}), None))
        );
        let t: Option<TaskGiven> = serde_json::from_value(json!(null)).unwrap();
        assert_eq!(t, None);
        let p: GetTaskParams =
            serde_json::from_value(json!({"actionname": "a", "job_id": "poll:1"})).unwrap();
        assert_eq!(p.job_id, JobRef::Token("poll:1".into()));
        let p: CreateJobParams = serde_json::from_value(json!({"wfname": "w"})).unwrap();
        assert_eq!(p.inargs, json!({}));
        assert_eq!(
            serde_json::to_value(JobStatus(4, None)).unwrap(),
            json!([4, null])
        );
    }

    #[test]
    fn a_job_id_may_come_as_a_string_of_digits() {
        for given in [
            json!({"job_id": 12}),
            json!({"job_id": "12"}),
            json!([" 12"]),
        ] {
            let p: GetJobStatusParams = serde_json::from_value(given.clone()).unwrap();
            assert_eq!(p.job_id, 12, "{given}");
        }
        for bad in [
            json!({"job_id": "twelve"}),
            json!({"job_id": 1.5}),
            json!({}),
        ] {
            assert!(
                serde_json::from_value::<GetJobStatusParams>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let e = serde_json::from_value::<CancelJobParams>(json!({"job_id": "x1"})).unwrap_err();
        assert!(e.to_string().contains("a job id"), "{e}");
    }
}
