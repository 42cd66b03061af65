//! The runtime thread: one current-thread tokio runtime per process, built on first use, on
//! a thread of its own, plus a spinner task that keeps that thread awake between close steps.

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// One runtime: its handle and the spinner task that keeps its thread awake between close
/// steps (see [`stay_awake`]).
struct Runtime {
    handle: Handle,
    spinner: Spinner,
}

struct Spinner {
    notify: Arc<Notify>,
    last_step: Mutex<Option<Instant>>,
}

/// The current runtime, leaked on purpose: it lives as long as the process. A forked child
/// starts a new one (see `super::fork`): the parent's, copied by fork without its thread, is
/// never used again, nor dropped (its epoll descriptor is shared with the parent).
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(std::ptr::null_mut());
/// Serialises building the runtime.
pub(super) static RUNTIME_INIT: Mutex<()> = Mutex::new(());

fn current() -> &'static Runtime {
    let ptr = RUNTIME.load(Ordering::Acquire);
    if !ptr.is_null() {
        // SAFETY: a non-null pointer always comes from `Box::leak` below and is never freed.
        return unsafe { &*ptr };
    }
    let _guard = RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner());
    let ptr = RUNTIME.load(Ordering::Acquire);
    if !ptr.is_null() {
        // SAFETY: as above.
        return unsafe { &*ptr };
    }
    let runtime: &'static Runtime = Box::leak(Box::new(build()));
    RUNTIME.store(std::ptr::from_ref(runtime).cast_mut(), Ordering::Release);
    runtime
}

/// Builds the runtime and its thread: one thread drives every Job. The work is mostly
/// waiting, and a single thread saves the wake-ups between threads (and the contention for a
/// Job's lock) that a multi-threaded scheduler costs on every pod event.
fn build() -> Runtime {
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
    let notify = Arc::new(Notify::new());
    let wait = Arc::clone(&notify);
    handle.spawn(async move {
        loop {
            wait.notified().await;
            let until = Instant::now() + STAY_AWAKE;
            while Instant::now() < until {
                // Each yield lets the scheduler poll for I/O without blocking.
                tokio::task::yield_now().await;
            }
        }
    });
    Runtime { handle, spinner: Spinner { notify, last_step: Mutex::new(None) } }
}

/// The shared runtime, built on first use.
pub fn tokio_runtime() -> &'static Handle {
    &current().handle
}

/// How long the runtime thread keeps polling after a step (see [`stay_awake`]).
const STAY_AWAKE: Duration = Duration::from_micros(50);

/// Called after an owner step that left pods running on an executor that reports quickly
/// (the callable worker pool). When steps come in quick succession (quick pods at low
/// parallelism: a worker reports every few microseconds), the runtime thread keeps polling
/// for `STAY_AWAKE` instead of sleeping: the next report usually comes within that, and
/// waking a sleeping thread costs more than the poll. Steps further apart (slow pods) let it
/// sleep at once.
pub(crate) fn stay_awake() {
    let spinner = &current().spinner;
    let now = Instant::now();
    let previous = spinner.last_step.lock().unwrap_or_else(|e| e.into_inner()).replace(now);
    if previous.is_some_and(|p| now.duration_since(p) < 2 * STAY_AWAKE) {
        spinner.notify.notify_one();
    }
}

/// A forked child forgets the parent's runtime (see `super::fork`); the next use builds its own.
pub(super) fn forget_runtime() {
    RUNTIME.store(std::ptr::null_mut(), Ordering::Release);
}
