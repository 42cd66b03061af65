//! Python callables as pods: a pool of worker interpreters (`python kjob/_worker.py`) that run
//! one pod at a time each, fed over a pipe protocol (see `python/kjob/_worker.py`).
//!
//! Workers are fresh interpreters started with `posix_spawn`, never forks of the user's
//! process. A Job takes up to `max_workers` of them; pods beyond that wait, `Pending`, in the
//! Job's queue, as pods wait for node capacity. Each worker also gets pods ahead of time
//! (up to `PREFETCH`; they stay `Pending` until the worker reaches them), so dispatch is
//! pipelined. Idle workers are kept for the next Job. Killing a running pod kills its worker's
//! process group; a fresh worker replaces it.
//!
//! A worker runs its pods in the order it got them and reports only their ends (`D`), in
//! batches when pods are quick, so the pod it runs is the oldest one not reported done (a
//! pod sent to a worker with nothing else to do is running from then on). For
//! the moments when that is not enough (a kill, the worker's death, reports still buffered in
//! it), the worker also keeps the pod it is running in a shared "slot": eight bytes of a file
//! it maps, which this side reads.

use super::env_snapshot::EnvSnapshot;
use super::executor::{
    Ended, ExecEvent, Executor, ExecutorContext, ExecutorLink, ExecutorNote, KillSwitch, Payload, PodLaunch,
};
use super::frames::{FromWorker, ToWorker};
use super::pod_queue::PodQueue;
use super::process::{self, ProcessHandle};
use super::tokio_runtime;
use crate::controller::{PodId, ProcessEnd};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Pods sent to one worker ahead of time (including the one it runs): enough quick pods
/// (~1 ms of work) to keep it busy through a sync of a Job with thousands of live pods.
const PREFETCH: usize = 256;
/// How often, after a cancel, this side checks that the worker did not start the pod anyway
/// (until the worker confirms the cancel, reports the pod done, or dies).
const CANCEL_RECHECK: Duration = Duration::from_millis(20);
/// Idle workers kept for later Jobs.
const MAX_IDLE_WORKERS: usize = 64;
/// Workers of a Job that died in a row before they ran any pod (a broken interpreter, a crash
/// while loading the function): after this many, the Job's waiting pods fail with a start
/// error instead of waiting for workers that die the same way.
const MAX_EARLY_DEATHS: u32 = 3;
/// The first delay before a worker is started again after one died early; it doubles with
/// each early death in a row.
const RESPAWN_DELAY: Duration = Duration::from_millis(50);

/// How a Job runs its callable.
#[derive(Clone, Debug)]
pub struct CallableConfig {
    /// The worker command: the Python interpreter and `kjob/_worker.py`.
    pub worker_argv: Vec<String>,
    /// The pickled init dict the worker loads the callable from.
    pub init: Vec<u8>,
    pub max_workers: usize,
    /// `false`: every pod runs in a fresh worker of its own, which exits after it
    /// (`reuse_workers=False`).
    pub reuse_workers: bool,
}

/// What a worker reports.
#[derive(Debug)]
pub enum WorkerEvent {
    Done {
        worker: u64,
        pod: PodId,
        exit_code: i32,
        log: (u64, u64),
        payload: Payload,
        at: Instant,
    },
    Cancelled {
        worker: u64,
        pod: PodId,
        at: Instant,
    },
    /// The worker died as `end` says; `running` is the pod its slot named then.
    Exited {
        worker: u64,
        end: ProcessEnd,
        running: Option<PodId>,
        at: Instant,
    },
    /// The worker's imported modules changed on disk: it exits without running pods.
    Retiring {
        worker: u64,
    },
    /// A delayed worker start is due (see [`RESPAWN_DELAY`]).
    RespawnDue,
}

/// The pod a worker is running, as the worker writes it into a shared memory file: a
/// little-endian u64, the pod id + 1, or 0 between pods. The file has no name (a memfd, or
/// an `O_TMPFILE` where memfds are missing): the worker inherits it as a descriptor
/// (`--slot-fd N`) and maps it, so no file can outlive the two processes, whatever kills them.
/// Its page is allocated up front: a full `/dev/shm` fails the worker's start instead of
/// raising SIGBUS in the worker when it first writes the slot.
struct Slot {
    file: std::fs::File,
}

impl Slot {
    fn create() -> io::Result<Self> {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create takes a NUL-terminated name and flags, and returns a new fd.
        let fd = unsafe { libc::memfd_create(c"kjob-slot".as_ptr(), libc::MFD_CLOEXEC) };
        let file = if fd >= 0 {
            // SAFETY: a fresh descriptor that nothing else owns.
            unsafe { std::fs::File::from_raw_fd(fd) }
        } else {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_TMPFILE)
                .mode(0o600)
                .open(std::env::temp_dir())?
        };
        file.set_len(8)?;
        // SAFETY: fallocate on a descriptor we own, within the 8 bytes set above.
        if unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, 8) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { file })
    }

    fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.file)
    }

    fn running(&self) -> Option<PodId> {
        use std::os::unix::fs::FileExt;
        let mut bytes = [0u8; 8];
        self.file.read_exact_at(&mut bytes, 0).ok()?;
        u64::from_le_bytes(bytes).checked_sub(1).map(PodId)
    }
}

/// Where a worker's reports go: the owner of the Job it works for, as a batch.
type Sink = Arc<dyn Fn(Vec<WorkerEvent>) + Send + Sync>;
type Route = Arc<Mutex<Option<Sink>>>;

/// Frames to a worker's stdin. Writes go straight to the pipe when nothing is queued ahead of
/// them (the common case: task frames are small), and through a writer task otherwise.
struct WorkerWriter {
    pipe: Arc<tokio::net::unix::pipe::Sender>,
    /// Frames waiting for the writer task, and whether it is writing one now.
    backlog: Arc<Mutex<(VecDeque<Vec<u8>>, bool)>>,
    notify: Arc<tokio::sync::Notify>,
}

impl WorkerWriter {
    fn send(&self, bytes: Vec<u8>) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        if backlog.0.is_empty() && !backlog.1 {
            match self.pipe.try_write(&bytes) {
                Ok(n) if n == bytes.len() => return,
                Ok(n) => backlog.0.push_back(bytes[n..].to_vec()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => backlog.0.push_back(bytes),
                // The worker is gone; its exit is reported on its own.
                Err(_) => return,
            }
        } else {
            backlog.0.push_back(bytes);
        }
        drop(backlog);
        self.notify.notify_one();
    }
}

/// One worker process and the channels to it.
struct WorkerProc {
    id: u64,
    handle: ProcessHandle,
    slot: Arc<Slot>,
    frames: WorkerWriter,
    /// Where its events go: the Job using it, or nowhere while idle.
    route: Route,
    /// Job keys whose callable this worker has loaded.
    loaded: Vec<u32>,
    /// Pods whose cancel the worker has not answered yet (see [`CallableExecutor::kill`]).
    cancels: Arc<Mutex<Vec<PodId>>>,
}

impl WorkerProc {
    /// The worker answered about a pod: done or cancelled.
    fn cancel_answered(&self, pod: PodId) {
        let mut cancels = self.cancels.lock().unwrap_or_else(|e| e.into_inner());
        if !cancels.is_empty() {
            cancels.retain(|p| *p != pod);
        }
    }

    /// The worker died: no answer is awaited any more.
    fn forget_cancels(&self) {
        self.cancels.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

/// Idle workers, shared by every Job of the process.
static IDLE: Mutex<Vec<WorkerProc>> = Mutex::new(Vec::new());
static NEXT_WORKER: AtomicU64 = AtomicU64::new(1);
static NEXT_JOB_KEY: AtomicU32 = AtomicU32::new(1);

/// The pool's lock held across a fork (see `super::fork`).
pub(super) struct IdleGuard(std::sync::MutexGuard<'static, Vec<WorkerProc>>);

impl IdleGuard {
    pub(super) fn take() -> Self {
        Self(IDLE.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// In a forked child: the idle workers are the parent's. They are leaked, not dropped:
    /// dropping would deregister their pipes from the epoll instance the child shares with
    /// the parent.
    pub(super) fn forget_workers(mut self) {
        std::mem::forget(std::mem::take(&mut *self.0));
    }
}

/// Kills every idle worker (interpreter exit, `kjob.shutdown_workers()`). Returns how many.
pub fn kill_idle_workers() -> usize {
    let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    let count = idle.len();
    for w in idle.drain(..) {
        w.handle.signal_group(libc::SIGKILL);
    }
    count
}

fn spawn_worker(argv: &[String], environ: &EnvSnapshot) -> io::Result<WorkerProc> {
    let id = NEXT_WORKER.fetch_add(1, Ordering::Relaxed);
    let slot = Arc::new(Slot::create()?);
    let mut argv = argv.to_vec();
    argv.push("--slot-fd".into());
    argv.push(slot.fd().to_string());
    let (spawned, stdin, stdout) = process::spawn_piped(&argv, &[slot.fd()], environ)?;
    let handle = spawned.handle.clone();
    let route: Route = Arc::new(Mutex::new(None));
    let rt = tokio_runtime();
    let _guard = rt.enter();
    let pipe = Arc::new(tokio::net::unix::pipe::Sender::from_owned_fd(stdin)?);
    let mut reader = tokio::net::unix::pipe::Receiver::from_owned_fd(stdout)?;
    let writer = WorkerWriter {
        pipe: Arc::clone(&pipe),
        backlog: Arc::new(Mutex::new((VecDeque::new(), false))),
        notify: Arc::new(tokio::sync::Notify::new()),
    };
    let (backlog, notify) = (Arc::clone(&writer.backlog), Arc::clone(&writer.notify));
    rt.spawn(async move {
        loop {
            notify.notified().await;
            loop {
                let chunk = {
                    let mut b = backlog.lock().unwrap_or_else(|e| e.into_inner());
                    match b.0.pop_front() {
                        Some(chunk) => {
                            b.1 = true;
                            chunk
                        }
                        None => {
                            b.1 = false;
                            break;
                        }
                    }
                };
                if write_all(&pipe, &chunk).await.is_err() {
                    return;
                }
            }
        }
    });
    let read_route = Arc::clone(&route);
    let read_slot = Arc::clone(&slot);
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel::<ProcessEnd>();
    rt.spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
        let mut chunk = vec![0u8; 1 << 16];
        loop {
            let n = match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let at = Instant::now();
            let mut events = Vec::new();
            let mut pos = 0;
            while buf.len() - pos >= 4 {
                let size = u32::from_le_bytes(buf[pos..pos + 4].try_into().unwrap_or([0; 4])) as usize;
                if size == 0 || buf.len() - pos - 4 < size {
                    break;
                }
                let event = decode(id, buf[pos + 4], &buf[pos + 5..pos + 4 + size], at);
                pos += 4 + size;
                events.extend(event);
            }
            buf.drain(..pos);
            if !events.is_empty() {
                deliver(&read_route, events);
            }
        }
        // The exit is reported by the reader, after the last frame it read: a pod the worker
        // finished just before dying keeps its result.
        let end = exit_rx.await.unwrap_or(ProcessEnd::Signaled { signal: libc::SIGKILL, oom_killed: false });
        let running = read_slot.running();
        deliver(&read_route, vec![WorkerEvent::Exited { worker: id, end, running, at: Instant::now() }]);
    });
    rt.spawn(async move {
        let end = process::wait_for_exit(spawned).await;
        // An idle worker that died is simply dropped from the pool.
        IDLE.lock().unwrap_or_else(|e| e.into_inner()).retain(|w| w.id != id);
        let _ = exit_tx.send(end);
    });
    Ok(WorkerProc { id, handle, slot, frames: writer, route, loaded: Vec::new(), cancels: Arc::default() })
}

async fn write_all(pipe: &tokio::net::unix::pipe::Sender, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        pipe.writable().await?;
        match pipe.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn deliver(route: &Route, events: Vec<WorkerEvent>) {
    let target = route.lock().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(send) = target {
        send(events);
    }
}

/// Decodes one frame from a worker (`D`, `X`, `R`); `None` for anything malformed.
fn decode(worker: u64, kind: u8, body: &[u8], at: Instant) -> Option<WorkerEvent> {
    Some(match FromWorker::decode(kind, body)? {
        FromWorker::Retiring { .. } => WorkerEvent::Retiring { worker },
        FromWorker::Cancelled { pod, .. } => WorkerEvent::Cancelled { worker, pod: PodId(pod), at },
        FromWorker::Done { pod, exit_code, log, payload, .. } => {
            WorkerEvent::Done { worker, pod: PodId(pod), exit_code, log, payload, at }
        }
    })
}

/// A worker working for this Job.
struct Assigned {
    proc: WorkerProc,
    /// Pods sent to it and not finished, oldest first: it runs them in this order.
    inflight: VecDeque<PodId>,
    /// The oldest of them, which it is running (or about to run) as far as this side knows.
    running: Option<PodId>,
    /// Shared with every pod's log range (one allocation per worker, not per pod).
    log_path: Arc<Path>,
    /// Being killed, retiring, or done with its one pod: it gets no more pods.
    dying: bool,
    /// It reported something (a pod done or cancelled): it did not die early.
    reported: bool,
    /// Pods in it that were killed: if the worker dies with them, they end cancelled rather
    /// than go back to the queue.
    killed: Vec<PodId>,
}

impl Assigned {
    /// Forgets a pod the worker is done with (almost always the oldest: O(1) then).
    fn remove(&mut self, pod: PodId) {
        if self.inflight.front() == Some(&pod) {
            self.inflight.pop_front();
        } else {
            self.inflight.retain(|p| *p != pod);
        }
        self.proc.cancel_answered(pod);
    }

    /// After the pod it ran is over, the worker moves on to the next one it holds.
    fn next_running(&mut self, removed: PodId, at: Instant, out: &mut Vec<ExecEvent>) {
        if self.running.is_some_and(|ran| ran != removed) {
            return;
        }
        self.running = self.inflight.front().copied();
        if let Some(pod) = self.running {
            out.push(ExecEvent::Started { pod, at });
        }
    }
}

/// What a worker needs to run a queued pod.
struct Task {
    index: Option<u32>,
    attempt: u32,
    name: String,
}

/// Hashes pod ids for the task map, which every pod goes in and out of: ids are sequential
/// integers, which a multiplication spreads well at a fraction of SipHash's cost (and no
/// outsider chooses them).
#[derive(Default)]
struct PodIdHasher(u64);

impl Hasher for PodIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64((self.0 << 8) | u64::from(*byte));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // 2^64 / the golden ratio: Fibonacci hashing.
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The callable side of one Job: its queue and its workers.
pub struct CallableExecutor {
    config: CallableConfig,
    /// The environment of the Job, which the workers it starts inherit.
    environ: EnvSnapshot,
    key: u32,
    log_dir: PathBuf,
    job_name: String,
    queue: PodQueue,
    /// What each pod queued or in a worker needs to run (dropped when it ends).
    tasks: HashMap<PodId, Task, BuildHasherDefault<PodIdHasher>>,
    workers: Vec<Assigned>,
    route: Sink,
    /// Every worker process of this Job, for the kill switch (interpreter exit).
    live: Arc<Mutex<Vec<ProcessHandle>>>,
    next_log: u32,
    /// Workers that died in a row before running a pod (see [`MAX_EARLY_DEATHS`]).
    early_deaths: u32,
    /// No worker is started before then (after early deaths), and a wake-up is scheduled.
    respawn_after: Option<Instant>,
    /// Fewer workers than `max_workers` could be started (e.g. `RLIMIT_NOFILE`): said once.
    warned_short: bool,
}

impl CallableExecutor {
    pub fn new(config: CallableConfig, context: ExecutorContext) -> Self {
        let ExecutorContext { link, log_dir, job_name, environ } = context;
        Self {
            config,
            environ,
            key: NEXT_JOB_KEY.fetch_add(1, Ordering::Relaxed),
            log_dir,
            job_name,
            queue: PodQueue::default(),
            tasks: HashMap::default(),
            workers: Vec::new(),
            route: sink(link),
            live: Arc::default(),
            next_log: 0,
            early_deaths: 0,
            respawn_after: None,
            warned_short: false,
        }
    }

    /// Queues a pod (handed to a worker at `flush`): what `start` does, for a remote agent
    /// that gets the pod from the Job's owner (`super::agent`).
    pub(super) fn start_task(&mut self, pod: PodId, index: Option<u32>, attempt: u32, name: String) {
        self.tasks.insert(pod, Task { index, attempt, name });
        self.queue.push_back(pod);
    }

    /// No pod is queued or in a worker.
    fn idle(&self) -> bool {
        self.queue.is_empty() && self.workers.iter().all(|w| w.inflight.is_empty())
    }

    /// Hands queued pods to workers, starting workers up to `max_workers`. Returns the pods
    /// that started (a worker with nothing to do runs its first pod at once) and those that
    /// cannot run because no worker could be started.
    fn dispatch(&mut self) -> Vec<ExecEvent> {
        let mut out = Vec::new();
        let now = Instant::now();
        // Task frames per worker, written once at the end: one write per worker per dispatch.
        let mut batches: Vec<Vec<u8>> = vec![Vec::new(); self.workers.len()];
        // A worker that runs one pod gets no more ahead of time.
        let prefetch = if self.config.reuse_workers { PREFETCH } else { 1 };
        while !self.queue.is_empty() {
            // An idle worker first; then a new one while the cap allows; then prefetch into the
            // least loaded one.
            let live = self.workers.iter().filter(|w| !w.dying).count();
            let idle = self.workers.iter().position(|w| !w.dying && w.inflight.is_empty());
            let idx = match idle {
                Some(i) => i,
                None if live < self.config.max_workers && self.may_start_worker(now, &mut out) => {
                    match self.add_worker() {
                        Ok(i) => i,
                        Err(e) => {
                            if live == 0 {
                                let message = format!("failed to start a Python worker: {e}");
                                out.extend(self.queue.drain().into_iter().map(|pod| {
                                    ExecEvent::StartFailed { pod, message: message.clone(), at: now }
                                }));
                            } else if !self.warned_short {
                                // Pods still run, on fewer workers: say so once.
                                self.warned_short = true;
                                let message = format!(
                                    "running on {live} Python workers instead of {}: failed to start \
                                     another: {e}",
                                    self.config.max_workers
                                );
                                out.push(ExecEvent::Warning { reason: "FailedCreateWorker", message });
                            }
                            break;
                        }
                    }
                }
                None if live == 0 => break,
                None => {
                    let least = self
                        .workers
                        .iter()
                        .enumerate()
                        .filter(|(_, w)| !w.dying && w.inflight.len() < prefetch)
                        .min_by_key(|(_, w)| w.inflight.len());
                    match least {
                        Some((i, _)) => i,
                        None => break,
                    }
                }
            };
            let Some(pod_id) = self.queue.pop_front() else { break };
            let Some(pod) = self.tasks.get(&pod_id) else { continue };
            if batches.len() <= idx {
                batches.resize(idx + 1, Vec::new());
            }
            let task = ToWorker::Task {
                key: self.key,
                pod: pod_id.0,
                index: pod.index,
                attempt: pod.attempt,
                name: &pod.name,
            };
            task.encode_into(&mut batches[idx]);
            // A worker with nothing in flight runs the pod at once; the ones behind it start
            // as the ones before them are reported done.
            let worker = &mut self.workers[idx];
            worker.inflight.push_back(pod_id);
            if !self.config.reuse_workers {
                // Its one pod: the worker exits after it.
                worker.dying = true;
            }
            if worker.running.is_none() {
                worker.running = Some(pod_id);
                out.push(ExecEvent::Started { pod: pod_id, at: now });
            }
        }
        for (w, batch) in self.workers.iter().zip(batches) {
            if !batch.is_empty() {
                w.proc.frames.send(batch);
            }
        }
        out
    }

    /// Whether a worker may be started now: not while a delay after early deaths runs (a
    /// wake-up is scheduled for its end), and not at all once too many died in a row (the
    /// queued pods fail; the count is lowered so that their replacements try once more).
    fn may_start_worker(&mut self, now: Instant, out: &mut Vec<ExecEvent>) -> bool {
        if self.early_deaths >= MAX_EARLY_DEATHS {
            let message = format!(
                "the Python worker exited before it could run a pod, {} times in a row (see the \
                 Job's events and the worker log)",
                self.early_deaths
            );
            out.extend(self.queue.drain().into_iter().map(|pod| ExecEvent::StartFailed {
                pod,
                message: message.clone(),
                at: now,
            }));
            self.early_deaths = MAX_EARLY_DEATHS - 1;
            return false;
        }
        match self.respawn_after {
            Some(t) if t > now => false,
            _ => {
                self.respawn_after = None;
                true
            }
        }
    }

    /// Takes an idle worker (or starts one) and loads this Job's callable into it.
    fn add_worker(&mut self) -> io::Result<usize> {
        let idle = if self.config.reuse_workers {
            IDLE.lock().unwrap_or_else(|e| e.into_inner()).pop()
        } else {
            None
        };
        let mut proc = match idle {
            Some(p) => p,
            None => spawn_worker(&self.config.worker_argv, &self.environ)?,
        };
        *proc.route.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&self.route));
        let log_path = self.log_dir.join(format!("{}-worker-{}.log", self.job_name, self.next_log));
        self.next_log += 1;
        let path = log_path.to_string_lossy();
        proc.frames.send(ToWorker::Job { key: self.key, log_path: &path, init: &self.config.init }.encode());
        proc.loaded.push(self.key);
        self.live.lock().unwrap_or_else(|e| e.into_inner()).push(proc.handle.clone());
        self.workers.push(Assigned {
            proc,
            inflight: VecDeque::new(),
            running: None,
            log_path: Arc::from(log_path),
            dying: false,
            reported: false,
            killed: Vec::new(),
        });
        Ok(self.workers.len() - 1)
    }

    /// Stops a pod: drop it from the queue, cancel it in a worker that has not started it,
    /// or kill the worker running it (SIGTERM, SIGKILL after `grace`).
    fn cancel_or_kill(&mut self, pod: PodId, grace: Duration) -> Option<ExecEvent> {
        if self.queue.remove(pod) {
            return Some(ExecEvent::Cancelled { pod, at: Instant::now() });
        }
        for w in &mut self.workers {
            if !w.inflight.contains(&pod) {
                continue;
            }
            w.killed.push(pod);
            // The pod the worker is running goes with its process: the pid `pods()` shows is
            // gone after a delete. That is the pod its slot names or, while the slot names
            // none (the worker is still loading the Job's function, or between pods), the pod
            // reports say it runs. When the slot names another pod, this one has ended with
            // its report still in the worker: it is only cancelled, as a pod the worker has
            // not reached yet is, and the pod it runs now is spared.
            let in_slot = w.proc.slot.running();
            if in_slot == Some(pod) || (in_slot.is_none() && w.running == Some(pod)) {
                w.dying = true;
                super::subprocess::kill_with_grace(w.proc.handle.clone(), grace);
                return None;
            }
            w.proc.frames.send(ToWorker::Cancel { key: self.key, pod: pod.0 }.encode());
            // The worker may take the pod before it reads the cancel (a worker still loading
            // the Job's function can take a while): look again until it answers, and kill it
            // if the slot shows the pod.
            w.proc.cancels.lock().unwrap_or_else(|e| e.into_inner()).push(pod);
            let (slot, handle, cancels) =
                (Arc::clone(&w.proc.slot), w.proc.handle.clone(), Arc::clone(&w.proc.cancels));
            tokio_runtime().spawn(async move {
                loop {
                    tokio::time::sleep(CANCEL_RECHECK).await;
                    let answered = !cancels.lock().unwrap_or_else(|e| e.into_inner()).contains(&pod);
                    if answered || handle.is_reaped() {
                        return;
                    }
                    if slot.running() == Some(pod) {
                        super::subprocess::kill_with_grace(handle, grace);
                        return;
                    }
                }
            });
            return None;
        }
        None
    }

    /// Folds a worker's report into the queue and worker state; returns what the controller
    /// must hear. A pod whose worker died is finished with the worker's exit status; pods it
    /// had not started go back to the front of the queue.
    fn on_event(&mut self, event: WorkerEvent, out: &mut Vec<ExecEvent>) {
        match event {
            WorkerEvent::Done { worker, pod, exit_code, log, payload, at } => {
                self.early_deaths = 0;
                if let Some(w) = self.workers.iter_mut().find(|w| w.proc.id == worker) {
                    w.reported = true;
                    w.remove(pod);
                    let log = Some((w.log_path.clone(), log.0, log.1));
                    out.push(ExecEvent::Ended(Ended { pod, exit_code, end: None, payload, log, at }));
                    w.next_running(pod, at, out);
                }
            }
            WorkerEvent::Cancelled { worker, pod, at } => {
                if let Some(w) = self.workers.iter_mut().find(|w| w.proc.id == worker) {
                    w.reported = true;
                    w.remove(pod);
                    w.next_running(pod, at, out);
                }
                out.push(ExecEvent::Cancelled { pod, at });
            }
            WorkerEvent::Retiring { worker } => {
                if let Some(w) = self.workers.iter_mut().find(|w| w.proc.id == worker) {
                    // Its exit is not a crash: it runs nothing more and its pods go elsewhere.
                    w.dying = true;
                    w.reported = true;
                }
            }
            WorkerEvent::RespawnDue => {}
            WorkerEvent::Exited { worker, end, running, at } => {
                if let Some(pos) = self.workers.iter().position(|w| w.proc.id == worker) {
                    let w = self.workers.remove(pos);
                    w.proc.forget_cancels();
                    self.live
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .retain(|h| h.pid != w.proc.handle.pid);
                    if !w.reported && !w.dying && running.is_none() {
                        self.died_early(at, &end, out);
                    }
                    // Only the pod in the slot was running: pods before it ended with their
                    // reports still in the worker (they run again), pods after it never began.
                    for pod in w.inflight.iter().rev() {
                        if Some(*pod) == running {
                            out.push(ExecEvent::Ended(Ended {
                                pod: *pod,
                                exit_code: end.exit_code(),
                                end: Some(end.clone()),
                                payload: Payload::None,
                                log: Some((w.log_path.clone(), 0, 0)),
                                at,
                            }));
                        } else if w.killed.contains(pod) {
                            out.push(ExecEvent::Cancelled { pod: *pod, at });
                        } else {
                            self.queue.push_front(*pod);
                        }
                    }
                }
            }
        }
    }

    /// A worker died before it ran a pod: the next one starts after a delay that doubles
    /// with each such death in a row, so a worker that cannot start is not restarted in a
    /// tight loop.
    fn died_early(&mut self, at: Instant, end: &ProcessEnd, out: &mut Vec<ExecEvent>) {
        self.early_deaths += 1;
        let delay = RESPAWN_DELAY * 2u32.saturating_pow(self.early_deaths.saturating_sub(1).min(8));
        self.respawn_after = Some(at + delay);
        out.push(ExecEvent::Warning {
            reason: "WorkerDied",
            message: format!(
                "a Python worker {} before it ran a pod; another starts in {delay:?}",
                end.message().unwrap_or_else(|| "exited with code 0".into())
            ),
        });
        let route = Arc::clone(&self.route);
        tokio_runtime().spawn(async move {
            tokio::time::sleep(delay).await;
            route(vec![WorkerEvent::RespawnDue]);
        });
    }

    /// The Job is finished or deleted: idle workers go back to the pool (forgetting this
    /// Job's callable), busy ones are killed.
    fn give_back_workers(&mut self) {
        for mut w in self.workers.drain(..) {
            if w.dying || !w.inflight.is_empty() || !self.config.reuse_workers {
                w.proc.handle.signal_group(libc::SIGKILL);
                continue;
            }
            *w.proc.route.lock().unwrap_or_else(|e| e.into_inner()) = None;
            w.proc.frames.send(ToWorker::Forget { key: self.key }.encode());
            w.proc.loaded.retain(|k| *k != self.key);
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE_WORKERS {
                idle.push(w.proc);
            } else {
                w.proc.handle.signal_group(libc::SIGKILL);
            }
        }
        self.queue.clear();
        self.tasks.clear();
        // Workers back in the pool belong to no Job: this Job's kill switch must spare them.
        self.live.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Drops what was kept for the pods these events end.
    fn forget_ended(&mut self, events: &[ExecEvent]) {
        for event in events {
            if let ExecEvent::Ended(Ended { pod, .. })
            | ExecEvent::Cancelled { pod, .. }
            | ExecEvent::StartFailed { pod, .. } = event
            {
                self.tasks.remove(pod);
            }
        }
    }
}

/// A worker's reports go to the owner as a note for the executor (see [`ExecutorNote`]).
fn sink(link: ExecutorLink) -> Sink {
    Arc::new(move |events: Vec<WorkerEvent>| link.note(Box::new(events)))
}

impl Executor for CallableExecutor {
    fn start(&mut self, launch: &PodLaunch<'_>, _out: &mut Vec<ExecEvent>) {
        let pod = launch.pod;
        self.start_task(pod.id, pod.index, pod.attempt, pod.name.clone());
    }

    fn kill(&mut self, pod: PodId, grace: Duration, out: &mut Vec<ExecEvent>) {
        if let Some(event) = self.cancel_or_kill(pod, grace) {
            self.tasks.remove(&pod);
            out.push(event);
        }
    }

    /// Hands queued pods to workers (one write per worker).
    fn flush(&mut self, out: &mut Vec<ExecEvent>) {
        let first = out.len();
        out.extend(self.dispatch());
        self.forget_ended(&out[first..]);
    }

    fn on_note(&mut self, note: ExecutorNote, out: &mut Vec<ExecEvent>) {
        let Ok(events) = note.downcast::<Vec<WorkerEvent>>() else { return };
        let first = out.len();
        for event in *events {
            self.on_event(event, out);
        }
        self.forget_ended(&out[first..]);
    }

    fn is_idle(&self) -> bool {
        self.idle()
    }

    fn reports_quickly(&self) -> bool {
        true
    }

    /// The process running a pod, if a worker has started it.
    fn pid(&self, pod: PodId) -> Option<i32> {
        self.workers.iter().find(|w| w.running == Some(pod)).map(|w| w.proc.handle.pid)
    }

    fn release(&mut self) {
        self.give_back_workers();
    }

    /// Kills every worker of this Job now.
    fn kill_switch(&self) -> KillSwitch {
        let live = Arc::clone(&self.live);
        Arc::new(move || {
            for handle in live.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                handle.signal_group(libc::SIGKILL);
            }
        })
    }
}
