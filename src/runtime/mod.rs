//! The runtime: one lazily started tokio runtime per process, on one thread, hosts every
//! Job's owner task (`owner`: the controller and its executor, stepped in phases), the
//! executors' tasks (pod exit watchers, worker readers) and the kill timers. The handle the
//! bindings use is `job::Job`; how pods run is behind `executor::Executor`, implemented by
//! `subprocess` (a process per pod) and `workers` (Python callables in a worker pool).
//!
//! # Process-wide state
//!
//! Everything else belongs to one Job (its owner, its executor). What is global, and why:
//!
//! - `thread::RUNTIME`, `thread::RUNTIME_INIT`: one runtime thread serves every Job of the process.
//! - `job::GENERATION`: bumped by a fork, so that a child refuses its parent's Jobs.
//! - `job::REGISTRY`: every live Job, for interpreter exit (`kill_all_jobs`), which must
//!   reach Jobs whose handles it does not hold.
//! - `job::SESSION`: the interpreter's session token, which every pod and worker carries for
//!   the shepherd; set once per interpreter.
//! - `pod_names::LIVE`: pod names are unique across every Job of a namespace, as the API
//!   server keeps them.
//! - `workers::IDLE`: idle workers outlive their Job and serve the next one;
//!   `workers::NEXT_WORKER` and `workers::NEXT_JOB_KEY` number workers and Jobs uniquely
//!   across the Jobs that share those workers.
//! - `spawn_pool::SHARED`: the spawner threads every subprocess Job hands its spawns to (a
//!   forked child starts its own).
//! - `executor::node_name`'s cache: the host name, asked once.
//! - `process::DEV_NULL` and `process::OOM_KILLS` (the spawn side's): an open `/dev/null`
//!   and a cache of the kernel's OOM-kill count.
//!
//! The locks among them that the runtime thread takes are held across a fork (`fork`).

mod agent;
mod env_snapshot;
mod executor;
mod fork;
pub mod frames;
mod job;
mod notify;
mod owner;
mod pod_names;
mod pod_queue;
pub mod process;
mod remote;
mod remote_frames;
mod results_log;
pub mod spawn_pool;
mod spawn_raw;
mod subprocess;
mod thread;
mod workers;

#[cfg(test)]
mod owner_tests;
#[cfg(test)]
mod remote_tests;

pub use agent::Agent;
pub use env_snapshot::EnvSnapshot;
pub use executor::{
    node_name, Ended, ExecEvent, Executor, ExecutorContext, ExecutorFactory, ExecutorLink, ExecutorNote,
    KillSwitch, LogRange, Payload, PodLaunch,
};
pub use fork::{after_fork_in_child, after_fork_in_parent, before_fork};
pub use job::{
    kill_all_jobs, set_session_token, Job, PodView, PodViews, RuntimeError, JOB_UID_ENV, OWNERS_ENV,
    SESSION_ENV, SHEPHERD_ENV,
};
pub use notify::ChangeFd;
pub use remote::{AgentSpec, RemoteNodes};
pub use thread::tokio_runtime;
pub use workers::{kill_idle_workers, CallableConfig};

use thread::stay_awake;
