//! The runtime: one lazily started tokio runtime per process hosts every Job's actor, the
//! pod processes' exit watchers and the kill timers.

mod job;
mod notify;
pub mod process;
mod spawn_raw;
mod workers;

pub use job::{kill_all_jobs, set_session_token, Job, PodView, RuntimeError, JOB_UID_ENV, SESSION_ENV};
pub use notify::ChangeFd;
pub use workers::{kill_idle_workers, CallableConfig};

use std::sync::OnceLock;
use tokio::runtime::Runtime;

/// The shared runtime, built on first use. Two workers are plenty: the work is waiting.
pub fn tokio_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kjob-runtime")
            .enable_io()
            .enable_time()
            .build()
            .expect("failed to build the kjob tokio runtime")
    })
}
