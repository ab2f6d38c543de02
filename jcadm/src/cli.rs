//! The command line: global options and one subcommand per view or operation.

use clap::{Parser, Subcommand, ValueEnum};

/// jobcenter's admin tool: what the engine is doing, and the operator's operations.
#[derive(Debug, Parser)]
#[command(name = "jcadm", version, about)]
pub struct Cli {
    /// libpq connection string of the jobcenter database (every command but `gateway`).
    #[arg(long, env = "JC_DSN", hide_env_values = true)]
    pub dsn: Option<String>,
    /// Print JSON (one document) instead of tables, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// A job state, as the engine names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "lower")]
pub enum State {
    Ready,
    Working,
    Eventwait,
    Childwait,
    Sleeping,
    Lockwait,
    Retrywait,
    Done,
    Plotting,
    Zombie,
    Finished,
    Error,
}

impl State {
    /// The engine's name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Working => "working",
            State::Eventwait => "eventwait",
            State::Childwait => "childwait",
            State::Sleeping => "sleeping",
            State::Lockwait => "lockwait",
            State::Retrywait => "retrywait",
            State::Done => "done",
            State::Plotting => "plotting",
            State::Zombie => "zombie",
            State::Finished => "finished",
            State::Error => "error",
        }
    }
}

/// The output format of `graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Dot,
    Svg,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Jobs, newest first (live; with --archived, archived ones too).
    Jobs {
        /// Only jobs in these states.
        #[arg(long = "state", value_enum)]
        states: Vec<State>,
        /// Only jobs of this workflow (any version).
        #[arg(long)]
        workflow: Option<String>,
        /// Only jobs created since: a time (2026-01-31, 2026-01-31 12:00+01) or an interval
        /// before now (2h, 30 minutes, 3 days).
        #[arg(long)]
        since: Option<String>,
        /// At most this many jobs.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only jobs older than this job id (the next page: the `next_before` of the last one).
        #[arg(long)]
        before: Option<i64>,
        /// Include archived jobs.
        #[arg(long)]
        archived: bool,
    },
    /// Jobs in error: class, message, workflow, task and source line.
    Errors {
        /// Only these workflows.
        workflows: Vec<String>,
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// Locks: holders (with inheritance) and the jobs waiting for them.
    Locks,
    /// Live workers: announced actions, filters, tasks in hand, last ping.
    Workers,
    /// Newest workflow versions calling an older version of an action or workflow.
    Stale,
    /// Schedules: cron, next and last run, last error.
    Schedules,
    /// Event subscriptions of waiting jobs and the events queued for them.
    Events,
    /// One job: state, inputs, variables, outputs and its step log as a timeline.
    Job { id: i64 },
    /// A job's family: its top-level ancestor and every descendant, with states.
    Tree { id: i64 },
    /// The source of the workflow version a job runs, its current line marked.
    Source { id: i64 },
    /// A workflow version's compiled task graph, with a job's path through it.
    Graph {
        /// NAME or NAME:VERSION (the newest version without one).
        workflow: String,
        /// Mark the path this job took and the task it is at.
        #[arg(long)]
        job: Option<i64>,
        #[arg(long, value_enum, default_value_t = Format::Dot)]
        format: Format,
    },
    /// Cancel live jobs (an abort error; their children are aborted too).
    Cancel {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long, default_value = "cancelled by jcadm")]
        reason: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Restart jobs in error from their start.
    Retry {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long, default_value = "retried by jcadm")]
        reason: String,
        #[arg(long)]
        yes: bool,
    },
    /// Make jobs waiting to retry (retrywait) ready now, skipping the back-off.
    RetryNow {
        #[arg(required = true)]
        ids: Vec<i64>,
        #[arg(long)]
        yes: bool,
    },
    /// Disable an action or workflow version (a disabled workflow starts no new jobs).
    Disable {
        /// NAME or NAME:VERSION (the newest version without one).
        name: String,
        /// When an action and a workflow share the name: which one.
        #[arg(long, value_parser = ["action", "procedure", "workflow"])]
        kind: Option<String>,
        #[arg(long)]
        yes: bool,
    },
    /// Enable an action or workflow version again.
    Enable {
        name: String,
        #[arg(long, value_parser = ["action", "procedure", "workflow"])]
        kind: Option<String>,
        #[arg(long)]
        yes: bool,
    },
    /// Archive ended job trees past their retention now, instead of at the maestro's next run.
    Archive {
        #[arg(long)]
        yes: bool,
    },
    /// The gateway's live view: connected clients and workers, their slots, announced
    /// actions, offers in flight and tasks in hand (jcapi's `/admin/gateway`, for users with
    /// `console = "admin"`).
    Gateway {
        /// The gateway's HTTP listener.
        #[arg(long, env = "JC_GATEWAY_URL", default_value = "http://127.0.0.1:6524")]
        url: String,
        /// A gateway user with console = "admin".
        #[arg(long, env = "JC_GATEWAY_USER")]
        user: String,
        /// That user's password or API token (better in the environment than on the
        /// command line).
        #[arg(long, env = "JC_GATEWAY_PASSWORD", hide_env_values = true)]
        password: String,
        /// For an https URL: the PEM file of the certificate authority that signed the
        /// gateway's certificate (default: the web's public roots).
        #[arg(long, env = "JC_GATEWAY_CACERT")]
        cacert: Option<std::path::PathBuf>,
    },
}
