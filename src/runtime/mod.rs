//! The runtime: one lazily started tokio runtime per process hosts every Job's actor, the
//! pod processes' exit watchers and the kill timers.

mod job;
mod notify;
mod pod_names;
pub mod process;
mod spawn_raw;
mod workers;

pub use job::{kill_all_jobs, set_session_token, Job, PodView, RuntimeError, JOB_UID_ENV, SESSION_ENV};
pub use notify::ChangeFd;
pub use workers::{kill_idle_workers, CallableConfig};

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::Notify;

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

/// How long the runtime thread keeps polling after a step (see [`stay_awake`]).
const STAY_AWAKE: Duration = Duration::from_micros(50);

/// Called after a step that left callable pods running. When steps come in quick succession
/// (quick pods at low parallelism: a worker reports every few microseconds), the runtime
/// thread keeps polling for `STAY_AWAKE` instead of sleeping: the next report usually comes
/// within that, and waking a sleeping thread costs more than the poll. Steps further apart
/// (slow pods) let it sleep at once.
pub(crate) fn stay_awake() {
    struct Spinner {
        notify: Arc<Notify>,
        last_step: Mutex<Option<Instant>>,
    }
    static SPINNER: OnceLock<Spinner> = OnceLock::new();
    let spinner = SPINNER.get_or_init(|| {
        let notify = Arc::new(Notify::new());
        let wait = Arc::clone(&notify);
        tokio_runtime().spawn(async move {
            loop {
                wait.notified().await;
                let until = Instant::now() + STAY_AWAKE;
                while Instant::now() < until {
                    // Each yield lets the scheduler poll for I/O without blocking.
                    tokio::task::yield_now().await;
                }
            }
        });
        Spinner { notify, last_step: Mutex::new(None) }
    });
    let now = Instant::now();
    let previous = spinner.last_step.lock().unwrap_or_else(|e| e.into_inner()).replace(now);
    if previous.is_some_and(|p| now.duration_since(p) < 2 * STAY_AWAKE) {
        spinner.notify.notify_one();
    }
}
