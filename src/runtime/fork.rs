//! `fork()` of a process that uses kjob (`os.fork`, a `multiprocessing` fork pool).
//!
//! The child is a copy of the parent's memory with one thread: the runtime thread is gone,
//! yet the child holds copies of everything the runtime owns (the Job registry, the idle
//! workers, the session token) and of its file descriptors. Those descriptors are shared
//! with the parent: the epoll instance of the parent's runtime is the same open file
//! description in both processes, so deregistering a descriptor in the child would silence
//! it in the parent. The child therefore touches none of the parent's objects: it forgets
//! them (they are leaked, never dropped), and builds its own runtime, registry and pool on
//! first use. The parent's Jobs refuse every call in the child (`RuntimeError::Forked`).
//!
//! The locks the child will need are held across the fork (taken in [`before_fork`],
//! released in [`after_fork_in_parent`] and [`after_fork_in_child`]), so that the child
//! never inherits one locked by the runtime thread, which does not exist there to unlock it.
//! Python calls the three through `os.register_at_fork`.

use super::{job, pod_names, process, workers};
use std::cell::RefCell;
use std::sync::MutexGuard;

struct Held {
    init: MutexGuard<'static, ()>,
    locks: job::ForkLocks,
    idle: workers::IdleGuard,
    names: pod_names::LiveGuard,
    oom: process::OomCacheGuard,
}

thread_local! {
    /// The guards, from `before_fork` to the `after_fork_*` call in the same thread (the
    /// child's only thread is a copy of the thread that forked).
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Takes the locks the child will need (always in this order: see the module doc).
pub fn before_fork() {
    let init = super::thread::RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner());
    let locks = job::ForkLocks::take();
    let idle = workers::IdleGuard::take();
    let names = pod_names::LiveGuard::take();
    let oom = process::OomCacheGuard::take();
    HELD.with(|held| *held.borrow_mut() = Some(Held { init, locks, idle, names, oom }));
}

/// In the parent after a fork: everything goes on as before.
pub fn after_fork_in_parent() {
    HELD.with(|held| drop(held.borrow_mut().take()));
}

/// In the child after a fork: forgets the parent's runtime, Jobs and workers, and the
/// session token (the child gets its own shepherd and token).
pub fn after_fork_in_child() {
    let held = HELD.with(|held| held.borrow_mut().take());
    let Held { init, locks, idle, names, oom } = held.unwrap_or_else(|| {
        // A fork that did not go through `before_fork` (a hook registered in between):
        // take the locks now, which is as good as it gets.
        Held {
            init: super::thread::RUNTIME_INIT.lock().unwrap_or_else(|e| e.into_inner()),
            locks: job::ForkLocks::take(),
            idle: workers::IdleGuard::take(),
            names: pod_names::LiveGuard::take(),
            oom: process::OomCacheGuard::take(),
        }
    });
    super::thread::forget_runtime();
    locks.forget_parent();
    idle.forget_workers();
    names.forget_parent();
    drop(oom);
    drop(init);
}
