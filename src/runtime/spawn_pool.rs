//! Spawning off the runtime thread.
//!
//! A vfork-style spawn (`spawn_raw`) suspends the calling thread until the child has exec'd:
//! tens of microseconds per pod during which the runtime thread, which drives every Job,
//! would do nothing else. A `SpawnPool` hands spawns to a few threads of its own, so that the
//! runtime thread goes on with exits and syncs while children start, and two children can
//! start at once on two cores. The result comes back through a callback, on the spawner
//! thread that started the process.

use super::process::{self, SpawnRequest, Spawned};
use std::collections::VecDeque;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Told how a spawn went: the started process, or why it could not start.
pub type OnDone = Box<dyn FnOnce(io::Result<Spawned>) + Send>;

struct Task {
    request: SpawnRequest,
    on_done: OnDone,
}

#[derive(Default)]
struct Queue {
    tasks: VecDeque<Task>,
    /// The pool is being dropped: threads finish what is queued, then end.
    closed: bool,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Threads that start processes for whoever submits them.
pub struct SpawnPool {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
    /// The process that made the pool: its threads do not exist in a forked child.
    pid: u32,
}

impl SpawnPool {
    /// Starts `threads` spawner threads (at least one).
    pub fn new(threads: usize) -> io::Result<Self> {
        // Opened here, not by a spawner thread's first spawn: a fork while a spawner thread
        // is inside that first open would leave the child a OnceLock forever initialising.
        process::dev_null_fd()?;
        let inner = Arc::new(Inner::default());
        let mut pool = Self { inner, threads: Vec::new(), pid: std::process::id() };
        for i in 0..threads.max(1) {
            let inner = Arc::clone(&pool.inner);
            let thread = std::thread::Builder::new()
                .name(format!("kjob-spawn-{i}"))
                // The child of a vfork runs on a stack of its own (`spawn_raw`): this
                // thread's needs are small.
                .stack_size(256 * 1024)
                .spawn(move || serve(&inner))?;
            // On an error above, dropping `pool` ends the threads already started.
            pool.threads.push(thread);
        }
        Ok(pool)
    }

    /// How many spawner threads the pool has.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Starts the process on a spawner thread, which then calls `on_done` with the result.
    /// Requests are taken in the order they were submitted; with several threads they may
    /// finish out of order.
    pub fn submit(&self, request: SpawnRequest, on_done: impl FnOnce(io::Result<Spawned>) + Send + 'static) {
        self.inner.lock().tasks.push_back(Task { request, on_done: Box::new(on_done) });
        self.inner.ready.notify_one();
    }
}

impl Drop for SpawnPool {
    /// Waits for the queued spawns to be done (their callbacks called), then for the threads.
    fn drop(&mut self) {
        self.inner.lock().closed = true;
        self.inner.ready.notify_all();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A spawner thread's loop.
fn serve(inner: &Inner) {
    block_signals_but_sigchld();
    loop {
        let task = {
            let mut queue = inner.lock();
            loop {
                if let Some(task) = queue.tasks.pop_front() {
                    break task;
                }
                if queue.closed {
                    return;
                }
                queue = inner.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
        };
        let result = process::spawn(&task.request);
        // A callback that panics loses its own result, not the pool's thread: the spawns
        // queued behind it must still be done, or their submitters would wait forever.
        let _ = catch_unwind(AssertUnwindSafe(move || (task.on_done)(result)));
    }
}

/// Signals meant for the process (Ctrl-C's SIGINT, a SIGTERM) go to the threads that expect
/// them, not to a spawner thread, whose syscalls they would only interrupt. SIGCHLD stays
/// open, as in `spawn_raw`'s threads: with its default disposition the kernel drops it at
/// once, where a SIGCHLD blocked everywhere would be routed to, and wake, Python's main
/// thread.
fn block_signals_but_sigchld() {
    // SAFETY: the sets are plain values on this stack, initialised by sigfillset before use;
    // pthread_sigmask changes only this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigdelset(&mut set, libc::SIGCHLD);
        libc::pthread_sigmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// How many threads the shared pool has: two per core, at most four. A spawner thread
/// sleeps while its child is between clone and exec, so more threads than cores keep the
/// cores busy: on the 2-core VM four threads did 0.92-1.30x the spawns of two (median
/// 1.11x, six measurements: `cargo bench --bench spawn_limit`, README "Performance"); more
/// than four was not measured.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| (2 * n.get()).min(4))
}

/// The pool of this process, started on first use.
static SHARED: AtomicPtr<SpawnPool> = AtomicPtr::new(std::ptr::null_mut());

/// The process-wide pool, started on first use. A forked child gets a pool of its own: the
/// parent's is left alone (leaked), its threads exist only in the parent.
pub fn shared() -> io::Result<&'static SpawnPool> {
    let me = std::process::id();
    loop {
        let current = SHARED.load(Ordering::Acquire);
        // SAFETY: a non-null pointer comes from `Box::into_raw` below and is never freed.
        if let Some(pool) = unsafe { current.as_ref() } {
            if pool.pid == me {
                return Ok(pool);
            }
        }
        let fresh = Box::into_raw(Box::new(SpawnPool::new(default_threads())?));
        match SHARED.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // The pool `current` pointed to (if any) was a forked parent's: leaked on purpose.
            // SAFETY: just stored, and never freed.
            Ok(_) => return Ok(unsafe { &*fresh }),
            // SAFETY: `fresh` came from `Box::into_raw` above and was never shared.
            Err(_) => drop(unsafe { Box::from_raw(fresh) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::EnvSnapshot;
    use std::sync::mpsc;

    fn request(dir: &std::path::Path, n: usize) -> SpawnRequest {
        SpawnRequest {
            argv: vec!["sh".into(), "-c".into(), "echo \"pod $N\"; exit $((N % 7))".into()],
            env: vec![("N".into(), n.to_string())],
            environ: EnvSnapshot::from_vars([("PATH", "/usr/bin:/bin")]),
            working_dir: None,
            log_path: dir.join(format!("pod-{n}.log")),
        }
    }

    /// Reaps the process and returns its exit code.
    fn exit_code(pid: i32) -> i32 {
        let mut status = 0;
        // SAFETY: `pid` is our own child, reaped here only; waitpid writes only `status`.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::__WALL) };
        assert_eq!(r, pid);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        libc::WEXITSTATUS(status)
    }

    #[test]
    fn pods_submitted_from_several_threads_all_start_and_write_their_logs() {
        let dir = std::env::temp_dir().join(format!("kjob-spawn-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = SpawnPool::new(2).unwrap();
        assert_eq!(pool.threads(), 2);
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|s| {
            for submitter in 0..4 {
                let (pool, tx, dir) = (&pool, tx.clone(), &dir);
                s.spawn(move || {
                    for i in 0..50 {
                        let n = submitter * 50 + i;
                        let tx = tx.clone();
                        pool.submit(request(dir, n), move |r| tx.send((n, r.map(|s| s.handle.pid))).unwrap());
                    }
                });
            }
        });
        drop(tx);
        let mut seen = [false; 200];
        for (n, pid) in rx {
            let pid = pid.unwrap_or_else(|e| panic!("pod {n} failed to start: {e}"));
            assert_eq!(exit_code(pid), (n % 7) as i32, "pod {n}");
            assert!(!std::mem::replace(&mut seen[n], true), "pod {n} reported twice");
        }
        assert!(seen.iter().all(|s| *s), "every pod reported");
        for n in 0..200 {
            let log = std::fs::read_to_string(dir.join(format!("pod-{n}.log"))).unwrap();
            assert_eq!(log, format!("pod {n}\n"));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shared_pool_is_started_once() {
        let pool = shared().unwrap();
        assert_eq!(pool.threads(), default_threads());
        assert!(std::ptr::eq(pool, shared().unwrap()));
    }

    #[test]
    fn a_failed_start_and_a_panicking_callback_leave_the_pool_working() {
        let dir = std::env::temp_dir().join(format!("kjob-spawn-pool-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = SpawnPool::new(1).unwrap();
        let (tx, rx) = mpsc::channel();
        let mut missing = request(&dir, 0);
        missing.argv = ["kjob-no-such-program".into()].into();
        let t = tx.clone();
        pool.submit(missing, move |r| t.send(r.err().map(|e| e.kind())).unwrap());
        pool.submit(request(&dir, 1), |_| panic!("a callback's bug"));
        pool.submit(request(&dir, 2), move |r| {
            let pid = r.unwrap().handle.pid;
            tx.send(Some(io::ErrorKind::Other).filter(|_| exit_code(pid) != 2)).unwrap();
        });
        // Dropping the pool waits for the queued spawns.
        drop(pool);
        assert_eq!(rx.recv().unwrap(), Some(io::ErrorKind::NotFound));
        assert_eq!(rx.recv().unwrap(), None);
        // The process whose callback panicked ran all the same (it stays a zombie of the test
        // process: reaping "any child" here could take another test's).
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
