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
use tokio::runtime::Handle;

/// The shared runtime, built on first use: one thread drives every Job. The work is mostly
/// waiting, and a single thread saves the wake-ups between threads (and the contention for
/// a Job's lock) that a multi-threaded scheduler costs on every pod event.
pub fn tokio_runtime() -> &'static Handle {
    static HANDLE: OnceLock<Handle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .expect("failed to build the kjob tokio runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("kjob-runtime".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("failed to start the kjob runtime thread");
        handle
    })
}
