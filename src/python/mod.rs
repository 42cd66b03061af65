//! PyO3 bindings: translation only. The friendly API lives in `python/kjob/`; this module
//! exposes a native Job handle that takes a manifest dict and returns typed snapshots, and the
//! constants and rules Python must not restate.

mod args;
mod change_feed;
mod env_sources;
mod errors;
mod manifest;
mod native_job;
mod remote;
mod restore;
mod simulate;
mod snapshots;
mod store;
mod stored_rows;
mod utc;

pub use change_feed::ChangeFeed;
pub use errors::KjobError;
pub use native_job::NativeJob;

use crate::runtime;
use pyo3::prelude::*;

/// Sets the token every later pod and worker process carries in `KJOB_SESSION`.
/// Without the GIL, as every binding that takes a lock a forking thread holds (see
/// `NativeJob`'s `Drop`).
#[pyfunction]
fn set_session_token(py: Python<'_>, token: &str) {
    py.detach(|| runtime::set_session_token(token));
}

/// The shepherd's sweep of a dead interpreter's session (`_shepherd.py`): SIGKILL to every
/// process that carries the session token, then a wait for the nested interpreters' shepherds.
/// Returns how many processes were signalled.
#[pyfunction]
fn sweep_session(py: Python<'_>, token: &str) -> usize {
    py.detach(|| runtime::process::sweep(token))
}

/// SIGKILL every pod of every Job in this interpreter (registered with `atexit`).
#[pyfunction]
fn kill_all_jobs(py: Python<'_>) {
    py.detach(|| {
        runtime::kill_all_jobs();
        runtime::kill_idle_workers();
    });
}

/// Stops the idle callable workers kept for later Jobs; returns how many there were.
#[pyfunction]
fn shutdown_workers(py: Python<'_>) -> usize {
    py.detach(runtime::kill_idle_workers)
}

/// `os.register_at_fork(before=...)`: holds the runtime's locks across the fork.
#[pyfunction]
fn before_fork() {
    runtime::before_fork();
}

/// `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
fn after_fork_in_parent() {
    runtime::after_fork_in_parent();
}

/// `os.register_at_fork(after_in_child=...)`: the child forgets the parent's runtime, Jobs,
/// workers and session token; its own are made on first use.
#[pyfunction]
fn after_fork_in_child() {
    runtime::after_fork_in_child();
}

#[pymodule(gil_used = false)]
mod _kjob {
    use crate::controller::{defaults, names};

    /// Kubernetes' delay before a failed pod is first replaced (it doubles with each failure).
    #[pymodule_export]
    const DEFAULT_BACKOFF_INITIAL_SECONDS: f64 = defaults::DEFAULT_BACKOFF_INITIAL.as_secs_f64();
    /// The cap of that delay.
    #[pymodule_export]
    const DEFAULT_BACKOFF_MAX_SECONDS: f64 = defaults::DEFAULT_BACKOFF_MAX.as_secs_f64();
    /// The alphabet of the random suffix of generated names (`generateName`).
    #[pymodule_export]
    const GENERATED_NAME_ALPHABET: &str = names::GENERATED_NAME_ALPHABET;
    /// How many random characters a generated name gets.
    #[pymodule_export]
    const GENERATED_NAME_SUFFIX_LENGTH: usize = names::SUFFIX_LEN;
    /// A `generateName` prefix is cut to this length, so the name fits in 63 characters.
    #[pymodule_export]
    const MAX_GENERATED_NAME_LENGTH: usize = names::MAX_GENERATED_NAME_LENGTH;
    /// The variable naming its Job's UID, on every pod process.
    #[pymodule_export]
    const JOB_UID_ENV: &str = crate::runtime::JOB_UID_ENV;
    /// The variable holding the interpreter's session token, on every pod and worker process.
    #[pymodule_export]
    const SESSION_ENV: &str = crate::runtime::SESSION_ENV;
    /// The variable listing the enclosing Jobs and sessions, on every pod and worker process.
    #[pymodule_export]
    const OWNERS_ENV: &str = crate::runtime::OWNERS_ENV;
    /// The variable listing the owners a shepherd watches for, on the shepherd only.
    #[pymodule_export]
    const SHEPHERD_ENV: &str = crate::runtime::SHEPHERD_ENV;

    #[pymodule_export]
    use super::after_fork_in_child;
    #[pymodule_export]
    use super::after_fork_in_parent;
    #[pymodule_export]
    use super::args::check_int;
    #[pymodule_export]
    use super::args::check_seconds;
    #[pymodule_export]
    use super::before_fork;
    #[pymodule_export]
    use super::env_sources::check_env_sources;
    #[pymodule_export]
    use super::kill_all_jobs;
    #[pymodule_export]
    use super::manifest::check_job_kind;
    #[pymodule_export]
    use super::manifest::prune_manifest;
    #[pymodule_export]
    use super::remote::Agent;
    #[pymodule_export]
    use super::remote::RemoteNodes;
    #[pymodule_export]
    use super::set_session_token;
    #[pymodule_export]
    use super::shutdown_workers;
    #[pymodule_export]
    use super::simulate::simulate_job;
    #[pymodule_export]
    use super::store::Store;
    #[pymodule_export]
    use super::sweep_session;
    #[pymodule_export]
    use super::ChangeFeed;
    #[pymodule_export]
    use super::KjobError;
    #[pymodule_export]
    use super::NativeJob;
}
