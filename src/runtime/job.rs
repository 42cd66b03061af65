//! One running Job: an actor task that owns the controller's clock and turns its actions into
//! processes, and a handle the bindings use to start, observe, wait for and delete it.
//!
//! The controller sits behind a mutex shared by the tasks that step it (the actor, pod exit
//! watchers, worker readers) and readers (status snapshots, pod lists). Waiters for the end of
//! the Job are woken through a condvar when it finishes or is deleted.

use super::env_snapshot::EnvSnapshot;
use super::notify::{ChangeFd, Watchers};
use super::process::{self, ProcessHandle, SpawnRequest};
use super::tokio_runtime;
use super::workers::{CallableConfig, CallableExecutor, Outcome, Payload, Sink, WorkerEvent};
use crate::controller::container_env::{container_argv, container_env, PodFields};
use crate::controller::{
    labels, Action, Controller, EffectiveSpec, Event, JobEvent, Plan, Pod, PodException, PodId, PodPhase,
    ProcessEnd,
};
use crate::status::{JobStatus, Time};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// The environment variable every pod process carries, naming its Job's UID. It lets tools
/// (and kjob's own leak tests) find a Job's processes from `/proc`.
pub const JOB_UID_ENV: &str = "KJOB_JOB_UID";
/// Carried by every pod and worker process: the interpreter's session token, which the
/// shepherd (`python/kjob/_shepherd.py`) looks for when the interpreter dies.
pub const SESSION_ENV: &str = "KJOB_SESSION";
/// Carried by every pod and worker process: the Job UIDs and session tokens of its own Job
/// and session and of every Job and session enclosing them, comma-separated. A pod that runs
/// kjob itself (a nested Job) starts processes with their own `KJOB_JOB_UID` and
/// `KJOB_SESSION`; this list keeps the outer ones findable, so an outer Job's sweep and an
/// outer interpreter's shepherd reach processes at any depth of nesting.
pub const OWNERS_ENV: &str = "KJOB_OWNERS";
/// Carried by a shepherd (and only by it, which carries none of the markers above, so that
/// the sweeps of outer Jobs leave it to finish its work): the owners of the interpreter it
/// watches. An outer Job's sweep waits for these shepherds to end.
pub const SHEPHERD_ENV: &str = "KJOB_SHEPHERD_FOR";

static SESSION: Mutex<Option<String>> = Mutex::new(None);

/// Bumped in a forked child: Jobs made in an earlier generation belong to the parent.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Sets the token every later pod and worker carries in `KJOB_SESSION`.
pub fn set_session_token(token: &str) {
    *SESSION.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.to_string());
}

/// The markers of a process this interpreter starts (`job_uid` for a pod, `None` for a
/// worker, which serves many Jobs): `KJOB_SESSION` and `KJOB_OWNERS`. The enclosing Jobs and
/// sessions are read from the environment of the Job that starts it, as of its start,
/// because a worker interpreter that runs kjob changes its `KJOB_JOB_UID` with every Job it
/// serves.
pub(super) fn marker_env(job_uid: Option<&str>, environ: &EnvSnapshot) -> Vec<(String, String)> {
    let token = SESSION.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut owners: Vec<String> = Vec::new();
    let mut add = |value: &str| {
        if !value.is_empty() && !owners.iter().any(|o| o == value) {
            owners.push(value.to_string());
        }
    };
    if let Some(inherited) = environ.get_str(OWNERS_ENV) {
        inherited.split(',').for_each(&mut add);
    }
    for name in [JOB_UID_ENV, SESSION_ENV] {
        if let Some(value) = environ.get_str(name) {
            add(value);
        }
    }
    job_uid.into_iter().chain(token.as_deref()).for_each(&mut add);
    let mut env = vec![(OWNERS_ENV.to_string(), owners.join(","))];
    if let Some(token) = token {
        env.push((SESSION_ENV.to_string(), token));
    }
    env
}

/// The locks a forked child needs, held across the fork (see `super::fork`).
pub(super) struct ForkLocks {
    registry: MutexGuard<'static, Vec<Weak<Shared>>>,
    session: MutexGuard<'static, Option<String>>,
}

impl ForkLocks {
    pub(super) fn take() -> Self {
        let registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        let session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
        Self { registry, session }
    }

    /// In a forked child: the Jobs are the parent's, and so is the token. The registry's
    /// entries are leaked rather than dropped (nothing of the parent's is dropped in the child).
    pub(super) fn forget_parent(mut self) {
        GENERATION.fetch_add(1, Ordering::SeqCst);
        std::mem::forget(std::mem::take(&mut *self.registry));
        *self.session = None;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the Job has already been started")]
    AlreadyStarted,
    #[error("the Job has been deleted")]
    Deleted,
    #[error("failed to create the log folder {0:?}: {1}")]
    LogDir(PathBuf, #[source] std::io::Error),
    #[error(
        "Job {namespace}/{name} has spec.managedBy {managed_by:?}: another controller owns it, so kjob's \
         controller (kubernetes.io/job-controller) does not run it"
    )]
    ManagedElsewhere { namespace: String, name: String, managed_by: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(#[from] crate::spec::FieldErrors),
    #[error(
        "Job '{name}' belongs to process {pid}, which forked this process: a forked child cannot use \
         its parent's Jobs (create a new Job in the child)"
    )]
    Forked { name: String, pid: u32 },
}

/// A pod as the user sees it.
#[derive(Clone, Debug)]
pub struct PodView {
    pub pod: Pod,
    pub log_path: PathBuf,
    /// Callable pods share a worker's log file: their output is this byte range of it.
    pub log_range: Option<(u64, u64)>,
    pub pid: Option<i32>,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
}

enum Msg {
    Exited {
        pod: PodId,
        end: ProcessEnd,
        at: Instant,
    },
    Suspend(bool),
    /// Evict the named pod (the local Eviction API).
    Evict(String),
    /// Something changed the controller's spec: sync now.
    Wake,
    Worker(WorkerEvent),
    Delete,
}

struct State {
    controller: Controller,
    log_dir: PathBuf,
    /// A private log folder is removed with the Job.
    owns_log_dir: bool,
    procs: HashMap<PodId, ProcessHandle>,
    /// Set for Jobs whose pods are Python callables.
    callable: Option<CallableConfig>,
    executor: Option<CallableExecutor>,
    /// Callable pods: where their output is, and their pickled return values in the order
    /// they succeeded.
    log_ranges: HashMap<PodId, (Arc<Path>, u64, u64)>,
    results: Vec<(PodId, Vec<u8>)>,
    sender: Option<UnboundedSender<Msg>>,
    deleted: bool,
    /// Events were folded in since the last sync.
    needs_sync: bool,
    /// Syncs are batched until then (see [`step`]).
    next_sync: Instant,
    /// The controller asked to be synced again at this time.
    wake_at: Option<Instant>,
    /// The time the actor sleeps toward.
    actor_target: Option<Instant>,
    /// Escaped descendants are swept once the Job has ended (see [`Sweep`]).
    swept: Sweep,
    /// The environment its pods and workers inherit, taken by `start()` (see `env_snapshot`).
    environ: EnvSnapshot,
}

/// The sweep of a Job's escaped descendants: a deleted Job is gone only once it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    NotYet,
    Running,
    Done,
}

impl State {
    /// When the actor must step next even without news: when the batched sync is due, or
    /// the controller's wake time, but never before the batching window ends (a step inside
    /// it would not sync, and the actor would spin on a wake time already past).
    fn timer_target(&self) -> Option<Instant> {
        actor_target(self.needs_sync, self.next_sync, self.wake_at)
    }
}

/// See [`State::timer_target`].
fn actor_target(needs_sync: bool, next_sync: Instant, wake_at: Option<Instant>) -> Option<Instant> {
    if needs_sync {
        Some(next_sync)
    } else {
        wake_at.map(|w| w.max(next_sync))
    }
}

struct Shared {
    state: Mutex<State>,
    /// The fork generation (see [`GENERATION`]) and the process the Job was made in.
    generation: u64,
    pid: u32,
    name: String,
    changed: Condvar,
    /// Watchers are woken after every step, not only at the end.
    watchers: Watchers,
    origin: Instant,
    origin_wall: SystemTime,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every Job of this process, so that interpreter exit can kill all their pods.
static REGISTRY: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// The handle. Dropping it deletes the Job (gracefully, in the background).
pub struct Job {
    shared: Arc<Shared>,
}

impl Job {
    pub fn new(spec: EffectiveSpec, log_dir: PathBuf, owns_log_dir: bool) -> Self {
        let name = spec.name.clone();
        // Pod names are unique among the live Jobs of the namespace, not only within this one.
        let names = super::pod_names::JobNames::new(&spec.namespace);
        let mut controller = Controller::new(spec);
        controller.set_name_claim(Box::new(move |name| names.claim(name)));
        let shared = Arc::new(Shared {
            generation: GENERATION.load(Ordering::SeqCst),
            pid: std::process::id(),
            name,
            state: Mutex::new(State {
                controller,
                log_dir,
                owns_log_dir,
                procs: HashMap::new(),
                callable: None,
                executor: None,
                log_ranges: HashMap::new(),
                results: Vec::new(),
                sender: None,
                deleted: false,
                needs_sync: true,
                next_sync: Instant::now(),
                wake_at: None,
                actor_target: None,
                swept: Sweep::NotYet,
                environ: EnvSnapshot::default(),
            }),
            changed: Condvar::new(),
            watchers: Watchers::default(),
            origin: Instant::now(),
            origin_wall: SystemTime::now(),
        });
        let mut registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
        registry.retain(|w| w.strong_count() > 0);
        registry.push(Arc::downgrade(&shared));
        Self { shared }
    }

    /// Fails in a forked child: the Job is the parent's. Every entry point of the bindings
    /// asks this first, before any lock (the parent's runtime thread may have held one when it
    /// forked, and nothing in the child would ever release it).
    pub fn check_process(&self) -> Result<(), RuntimeError> {
        if self.is_foreign() {
            return Err(RuntimeError::Forked { name: self.shared.name.clone(), pid: self.shared.pid });
        }
        Ok(())
    }

    /// Whether the Job was made by the parent of a fork.
    pub fn is_foreign(&self) -> bool {
        self.shared.generation != GENERATION.load(Ordering::SeqCst)
    }

    pub fn spec(&self) -> EffectiveSpec {
        self.shared.lock().controller.spec().clone()
    }

    /// Makes the pods run a Python callable in worker processes instead of the command.
    pub fn set_callable(&self, config: CallableConfig) -> Result<(), RuntimeError> {
        let mut st = self.shared.lock();
        if st.sender.is_some() {
            return Err(RuntimeError::AlreadyStarted);
        }
        st.callable = Some(config);
        Ok(())
    }

    /// Visits the pickled return values of succeeded callable pods, in completion order, with
    /// the pod's index. `visit` runs under the Job's lock: it must only copy.
    pub fn visit_results<T>(&self, mut visit: impl FnMut(Option<u32>, &[u8]) -> T) -> Vec<T> {
        let st = self.shared.lock();
        st.results
            .iter()
            .map(|(pod, bytes)| visit(st.controller.pod(*pod).and_then(|p| p.index), bytes))
            .collect()
    }

    pub fn start(&self) -> Result<(), RuntimeError> {
        let mut st = self.shared.lock();
        if st.deleted {
            return Err(RuntimeError::Deleted);
        }
        if st.sender.is_some() {
            return Err(RuntimeError::AlreadyStarted);
        }
        let spec = st.controller.spec();
        if !spec.is_managed_locally() {
            return Err(RuntimeError::ManagedElsewhere {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                managed_by: spec.managed_by.clone().unwrap_or_default(),
            });
        }
        // Once here, rather than before every pod's log file is opened.
        std::fs::create_dir_all(&st.log_dir).map_err(|e| RuntimeError::LogDir(st.log_dir.clone(), e))?;
        // The bindings call this with the GIL held: no Python thread changes the environment
        // while it is copied.
        st.environ = EnvSnapshot::capture();
        let (tx, rx) = unbounded_channel();
        st.sender = Some(tx.clone());
        if let Some(config) = st.callable.clone() {
            let weak = Arc::downgrade(&self.shared);
            let route: Sink = Arc::new(move |events: Vec<WorkerEvent>| {
                if let Some(shared) = weak.upgrade() {
                    step(&shared, events.into_iter().map(Msg::Worker).collect());
                }
            });
            let name = st.controller.spec().name.clone();
            st.executor = Some(CallableExecutor::new(config, &st.log_dir, &name, route, st.environ.clone()));
        }
        drop(st);
        let shared = Arc::clone(&self.shared);
        let _ = tx.send(Msg::Wake);
        tokio_runtime().spawn(run_actor(shared, rx));
        Ok(())
    }

    pub fn is_started(&self) -> bool {
        self.shared.lock().sender.is_some()
    }

    pub fn is_deleted(&self) -> bool {
        self.shared.lock().deleted
    }

    pub fn status(&self) -> JobStatus {
        self.shared.lock().controller.status().clone()
    }

    /// Wall-clock time of a controller time.
    pub fn wall_time(&self, t: Time) -> SystemTime {
        self.shared.origin_wall + t
    }

    pub fn pods(&self) -> Vec<PodView> {
        let st = self.shared.lock();
        let spec = st.controller.spec();
        st.controller
            .pods()
            .iter()
            .map(|pod| PodView {
                pod: pod.clone(),
                log_path: match st.log_ranges.get(&pod.id) {
                    Some((path, _, _)) => path.to_path_buf(),
                    None => log_path(&st.log_dir, &pod.name),
                },
                log_range: st.log_ranges.get(&pod.id).map(|(_, a, b)| (*a, *b)),
                pid: st
                    .procs
                    .get(&pod.id)
                    .map(|h| h.pid)
                    .or_else(|| st.executor.as_ref().and_then(|e| e.worker_pid(pod.id))),
                labels: labels::pod_labels(spec, pod),
                annotations: labels::pod_annotations(spec, pod),
            })
            .collect()
    }

    /// Suspends or resumes. Before `start()` it sets what the Job starts with.
    pub fn suspend(&self, suspend: bool) {
        let mut st = self.shared.lock();
        if st.sender.is_none() {
            st.controller.observe(Event::SetSuspend(suspend));
            return;
        }
        drop(st);
        self.send(Msg::Suspend(suspend));
    }

    /// The local Eviction API: the pod gets `DisruptionTarget=True` and is deleted.
    pub fn evict(&self, pod_name: &str) -> Result<(), RuntimeError> {
        let st = self.shared.lock();
        match st.controller.pod_by_name(pod_name) {
            None => Err(RuntimeError::NotFound(format!("pods {pod_name:?} not found"))),
            Some(_) => {
                drop(st);
                self.send(Msg::Evict(pod_name.to_string()));
                Ok(())
            }
        }
    }

    /// Changes `parallelism` and (Indexed Jobs, in tandem) `completions`.
    pub fn scale(&self, parallelism: Option<i64>, completions: Option<i64>) -> Result<(), RuntimeError> {
        self.shared.lock().controller.scale(parallelism, completions)?;
        self.send(Msg::Wake);
        Ok(())
    }

    /// The kept events with sequence number `since` or later, and the next number.
    pub fn events(&self, since: u64) -> (Vec<JobEvent>, u64) {
        let st = self.shared.lock();
        let log = st.controller.events();
        (log.since(since).cloned().collect(), log.next_sequence())
    }

    /// Asks for deletion and returns at once; [`Job::wait_deleted`] waits for the processes.
    pub fn request_delete(&self) {
        let mut st = self.shared.lock();
        if st.sender.is_none() {
            st.deleted = true;
            self.shared.changed.notify_all();
            return;
        }
        drop(st);
        self.send(Msg::Delete);
    }

    /// SIGKILLs every pod process group now, without a grace period, and deletes the Job.
    pub fn kill_all(&self) {
        let st = self.shared.lock();
        for handle in st.procs.values() {
            handle.signal_group(libc::SIGKILL);
        }
        if let Some(executor) = &st.executor {
            executor.kill_all();
        }
        drop(st);
        self.request_delete();
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = &self.shared.lock().sender {
            let _ = tx.send(msg);
        }
    }

    /// An eventfd that becomes readable after every change of the Job (see [`notify`]).
    ///
    /// [`notify`]: super::notify
    pub fn subscribe(&self) -> std::io::Result<Arc<ChangeFd>> {
        self.shared.watchers.subscribe()
    }

    /// Blocks up to `slice` for the Job to finish (or be deleted). Returns whether it has.
    pub fn wait_finished(&self, slice: Duration) -> bool {
        self.wait_until(slice, |st| st.deleted || st.controller.is_finished())
    }

    /// Blocks up to `slice` for the deletion to complete (every process reaped).
    pub fn wait_deleted(&self, slice: Duration) -> bool {
        self.wait_until(slice, |st| st.deleted)
    }

    fn wait_until(&self, slice: Duration, done: impl Fn(&State) -> bool) -> bool {
        let st = self.shared.lock();
        let (st, _) = self
            .shared
            .changed
            .wait_timeout_while(st, slice, |st| !done(st))
            .unwrap_or_else(|e| e.into_inner());
        done(&st)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.is_foreign() {
            // The parent's Job, dropped in a forked child: its state is leaked, not dropped
            // (dropping its pipes would deregister them from the epoll set shared with the
            // parent), and nothing is sent to its actor, which does not run here.
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        let st = self.shared.lock();
        if st.sender.is_some() && !st.deleted {
            drop(st);
            self.send(Msg::Delete);
        }
    }
}

/// Kills every pod of every Job in this process (interpreter exit).
pub fn kill_all_jobs() {
    let jobs: Vec<Arc<Shared>> =
        REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
    for shared in jobs {
        Job { shared }.kill_all();
    }
}

fn log_path(log_dir: &Path, pod_name: &str) -> PathBuf {
    log_dir.join(format!("{pod_name}.log"))
}

/// The actor: waits for commands and for the controller's timers. Pod and worker events do
/// not go through it: whichever task observes them runs [`step`] itself, which saves the
/// thread hand-offs that would otherwise sit between a pod's exit and its replacement.
async fn run_actor(shared: Arc<Shared>, mut rx: UnboundedReceiver<Msg>) {
    let mut inbox: Vec<Msg> = Vec::new();
    loop {
        let target = {
            let mut st = shared.lock();
            if st.deleted {
                break;
            }
            let target = st.timer_target();
            st.actor_target = target;
            target
        };
        let received = match target {
            Some(at) => tokio::select! {
                msg = rx.recv() => msg.map(Some),
                _ = tokio::time::sleep_until(at.into()) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        let Some(first) = received else { break };
        inbox.extend(first);
        while let Ok(msg) = rx.try_recv() {
            inbox.push(msg);
        }
        step(&shared, std::mem::take(&mut inbox));
    }
    shared.lock().sender = None;
}

/// After a sync that took T, events are folded in for this many T before the next sync.
const SYNC_BATCH_FACTOR: u32 = 8;

/// The shortest batching window worth waiting for (tokio's timers tick in milliseconds).
const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Folds messages into the controller and, unless syncs are being batched, syncs and carries
/// out the plan. Runs on whichever task has news: the actor, a pod's exit watcher or a
/// worker's reader.
///
/// Syncs cost time in proportion to the Job's live pods. Like upstream's batching of pod
/// events (`SyncJobBatchPeriod`), but adaptive: after a sync that took T, events are only
/// folded in for the next 8T (`SYNC_BATCH_FACTOR`), so syncing takes at most about a ninth
/// of the time, and small Jobs (T under `MIN_BATCH_WINDOW` / 8) see no delay at all. No
/// window is kept while the controller has more to do at once, or when no pod is running.
fn step(shared: &Arc<Shared>, msgs: Vec<Msg>) {
    let origin = shared.origin;
    let mut st = shared.lock();
    if st.deleted {
        return;
    }
    let was_finished = st.controller.is_finished();
    let now = Instant::now().duration_since(origin);
    let mut plans: Vec<Plan> = Vec::new();
    let mut worker_news = false;
    for msg in msgs {
        match msg {
            Msg::Exited { pod, end, at } => {
                st.procs.remove(&pod);
                let at = at.duration_since(origin);
                st.controller.observe(Event::ContainerEnded { pod, end, at });
            }
            Msg::Suspend(suspend) => st.controller.observe(Event::SetSuspend(suspend)),
            Msg::Evict(name) => {
                if let Ok(plan) = st.controller.evict(&name, now) {
                    plans.push(plan);
                }
            }
            Msg::Wake => {}
            Msg::Delete => plans.push(st.controller.delete(now)),
            Msg::Worker(event) => {
                on_worker_event(&mut st, event, origin);
                worker_news = true;
            }
        }
        st.needs_sync = true;
    }
    // Workers that reported pods done have room for queued ones, sync or no sync. Once per
    // step, not per report: a batch of reports becomes one write per worker.
    if worker_news && dispatch_callables(&mut st, now) {
        st.needs_sync = true;
    }
    for plan in &plans {
        execute(&mut st, plan, now, shared);
    }
    let due = st.wake_at.is_some_and(|w| Instant::now() >= w);
    // A batching window shorter than the timer's resolution would cost more latency (the
    // actor's timer fires on millisecond ticks) than the sync it saves: sync at once then.
    // With no pod running there is no news left to batch with: sync at once too.
    let batching =
        st.next_sync.saturating_duration_since(Instant::now()) >= MIN_BATCH_WINDOW && !nothing_running(&st);
    if (st.needs_sync || due) && !batching {
        // A pod that could not start is an event too: sync until nothing new happens.
        // A few rounds at most: with no backoff delay, pods that fail to start could
        // otherwise be replaced forever within one step while it holds the lock.
        let mut plan;
        let mut sync_time = Duration::ZERO;
        let mut rounds = 0;
        st.needs_sync = false;
        loop {
            let started = Instant::now();
            plan = st.controller.sync(now);
            sync_time += started.elapsed();
            rounds += 1;
            if !execute(&mut st, &plan, now, shared) {
                break;
            }
            if rounds == 8 {
                st.needs_sync = true;
                break;
            }
        }
        // The window is measured on one round: a burst of rounds that created pods is work
        // the Job needed, not overhead to amortise. And when the controller wants to go on
        // at once (more pods to create than one sync may), it does not wait at all.
        let go_on = st.needs_sync || plan.wake_at.is_some_and(|t| t <= now);
        st.next_sync =
            if go_on { Instant::now() } else { Instant::now() + sync_time / rounds * SYNC_BATCH_FACTOR };
        // A wake beyond what an Instant can hold (a deadline of i64::MAX seconds) is never.
        st.wake_at = plan.wake_at.and_then(|t| origin.checked_add(t.max(now)));
    }
    // Only an ending Job asks whether processes are left (the answer costs a pass over the
    // Job's live pods).
    let ending = st.controller.is_finished() || st.controller.is_deleting();
    let settled = ending && !st.controller.has_live_processes();
    if settled {
        if let Some(executor) = &mut st.executor {
            executor.release();
        }
        if st.swept == Sweep::NotYet {
            // A container's processes end with it: whatever a pod left behind outside its
            // process group (a daemon that called setsid, the pods of a nested Job) goes
            // when the Job ends. A deleted Job is gone once that is done.
            st.swept = Sweep::Running;
            let uid = st.controller.spec().uid.clone();
            let weak = Arc::downgrade(shared);
            tokio_runtime().spawn_blocking(move || {
                process::sweep(&uid);
                if let Some(shared) = weak.upgrade() {
                    shared.lock().swept = Sweep::Done;
                    step(&shared, vec![Msg::Wake]);
                }
            });
        }
    }
    if st.controller.is_deleting() && settled && st.swept == Sweep::Done {
        st.deleted = true;
        if st.owns_log_dir {
            let _ = std::fs::remove_dir_all(&st.log_dir);
        }
    }
    // Wake the actor when it sleeps toward a later time than now needed (or must exit).
    let target = st.timer_target();
    let kick = st.deleted || target.is_some_and(|t| st.actor_target.is_none_or(|a| t < a));
    if kick {
        st.actor_target = target;
        if let Some(tx) = &st.sender {
            let _ = tx.send(Msg::Wake);
        }
    }
    // Blocked waiters only wait for the end (finished or deleted): waking them for every pod
    // would only make them fight this step for the lock.
    let news = st.deleted || st.controller.is_finished() != was_finished;
    let callables_running = st.executor.as_ref().is_some_and(|e| !e.is_idle());
    drop(st);
    if news {
        shared.changed.notify_all();
    }
    shared.watchers.notify();
    if callables_running {
        super::stay_awake();
    }
}

/// Whether no pod process runs or waits for a worker: no pod event can come that a batched
/// sync would fold in.
fn nothing_running(st: &State) -> bool {
    st.procs.is_empty() && st.executor.as_ref().is_none_or(CallableExecutor::is_idle)
}

/// Carries out a plan. Returns whether the controller has news to sync on: a container that
/// could not start, or created pods (upstream's informer reports new pods the same way).
fn execute(st: &mut State, plan: &Plan, now: Time, shared: &Arc<Shared>) -> bool {
    let mut observed = false;
    for action in &plan.actions {
        match action {
            Action::CreatePod(pod) | Action::RestartContainer(pod) if st.executor.is_some() => {
                if let Some(executor) = &mut st.executor {
                    executor.enqueue(*pod);
                }
                observed |= matches!(action, Action::CreatePod(_));
            }
            Action::CreatePod(pod) => {
                start_container(st, *pod, now, shared);
                observed = true;
            }
            Action::RestartContainer(pod) => {
                observed |= start_container(st, *pod, now, shared);
            }
            Action::KillPod { pod, grace } => {
                if let Some(handle) = st.procs.get(pod) {
                    kill(handle.clone(), *grace);
                } else if let Some(executor) = &mut st.executor {
                    if let Some(Outcome::Cancelled(pod, _)) = executor.kill(*pod, *grace) {
                        st.controller.observe(Event::ContainerCancelled { pod, at: now });
                        observed = true;
                    }
                }
            }
        }
    }
    observed | dispatch_callables(st, now)
}

/// Hands queued callable pods to workers. Returns whether a pod could not start (news to
/// sync on).
fn dispatch_callables(st: &mut State, now: Time) -> bool {
    let Some(executor) = &mut st.executor else { return false };
    let mut failed = false;
    for outcome in executor.dispatch(&st.controller) {
        match outcome {
            Outcome::Started(pod, _) => st.controller.observe(Event::ContainerStarted { pod, at: now }),
            Outcome::Unrunnable(pod, message) => {
                st.controller.observe(Event::ContainerStartFailed { pod, message, at: now });
                failed = true;
            }
            Outcome::Warning(reason, message) => st.controller.warn(now, reason, message),
            Outcome::Cancelled(..) | Outcome::Finished { .. } => {}
        }
    }
    failed
}

/// A worker's report becomes controller events (and results, and log ranges).
fn on_worker_event(st: &mut State, event: WorkerEvent, origin: Instant) {
    let Some(executor) = &mut st.executor else { return };
    let controller = &st.controller;
    let deleting = |pod: PodId| controller.pod(pod).is_some_and(|p| p.deletion_requested_at.is_some());
    let outcomes = executor.on_event(event, &deleting);
    for outcome in outcomes {
        match outcome {
            Outcome::Started(pod, at) => {
                st.controller.observe(Event::ContainerStarted { pod, at: at.duration_since(origin) });
            }
            Outcome::Cancelled(pod, at) => {
                st.controller.observe(Event::ContainerCancelled { pod, at: at.duration_since(origin) });
            }
            Outcome::Unrunnable(pod, message) => {
                let at = at_now(origin);
                st.controller.observe(Event::ContainerStartFailed { pod, message, at });
            }
            Outcome::Warning(reason, message) => st.controller.warn(at_now(origin), reason, message),
            Outcome::Finished { pod, exit_code, end, log, payload, at } => {
                if log.2 > log.1 || !st.log_ranges.contains_key(&pod) {
                    st.log_ranges.insert(pod, log);
                }
                // A pod that raised reports its exception, not how its code ended; one whose
                // return value could not be sent back says so.
                let raised = matches!(payload, Payload::Exception(..));
                let mut failed_because = None;
                match payload {
                    Payload::Result(bytes) if exit_code == 0 => st.results.push((pod, bytes)),
                    Payload::Exception(types, message, traceback) => {
                        let exception = PodException { types, message, traceback };
                        st.controller.observe(Event::ContainerRaised { pod, exception });
                    }
                    Payload::StartError(message) => {
                        // Set up failed in the worker: as a container that could not start.
                        let at = at.duration_since(origin);
                        st.controller.observe(Event::ContainerStartFailed { pod, message, at });
                        continue;
                    }
                    Payload::ResultError(types, message, reason) => {
                        let exception = PodException {
                            message: format!("{reason}: {message}"),
                            traceback: String::new(),
                            types: types.clone(),
                        };
                        st.controller.observe(Event::ContainerRaised { pod, exception });
                        let kind = types.first().map_or("", String::as_str);
                        failed_because = Some((reason.clone(), format!("{reason}: {kind}: {message}")));
                    }
                    _ => {}
                }
                let at = at.duration_since(origin);
                if let Some((reason, message)) = failed_because {
                    st.controller.observe(Event::ContainerFailed { pod, exit_code, reason, message, at });
                } else if raised {
                    st.controller.observe(Event::ContainerExited { pod, exit_code, at });
                } else {
                    // The worker died with the pod (`os._exit`, a signal), or the pod's code
                    // ended with this exit code (`sys.exit`).
                    let end = end.unwrap_or(ProcessEnd::Exited(exit_code));
                    st.controller.observe(Event::ContainerEnded { pod, end, at });
                }
            }
        }
    }
    // A result only counts for a pod that succeeded (a killed pod may still report one).
    if let Some((pod, _)) = st.results.last() {
        if st.controller.pod(*pod).is_some_and(|p| p.phase != PodPhase::Succeeded) {
            st.results.pop();
        }
    }
}

fn at_now(origin: Instant) -> Time {
    Instant::now().duration_since(origin)
}

fn start_container(st: &mut State, pod_id: PodId, now: Time, shared: &Arc<Shared>) -> bool {
    let Some(pod) = st.controller.pod(pod_id) else {
        return false;
    };
    let spec = st.controller.spec();
    let labels = labels::pod_labels(spec, pod);
    let annotations = labels::pod_annotations(spec, pod);
    let uid = format!("{}-{}", spec.uid, pod.id.0);
    let fields = PodFields {
        name: &pod.name,
        namespace: &spec.namespace,
        uid: &uid,
        labels: &labels,
        annotations: &annotations,
        node_name: node_name(),
        host_ip: "127.0.0.1",
    };
    let mut env = container_env(&spec.container, pod.index, &fields);
    let argv = container_argv(&spec.container, &env);
    env.push((JOB_UID_ENV.to_string(), spec.uid.clone()));
    env.extend(marker_env(Some(&spec.uid), &st.environ));
    let request = SpawnRequest {
        argv,
        env,
        environ: st.environ.clone(),
        working_dir: spec.container.working_dir.as_ref().map(PathBuf::from),
        log_path: log_path(&st.log_dir, &pod.name),
    };
    match process::spawn(&request) {
        Ok(spawned) => {
            st.procs.insert(pod_id, spawned.handle.clone());
            st.controller.observe(Event::ContainerStarted { pod: pod_id, at: now });
            let shared = Arc::downgrade(shared);
            tokio_runtime().spawn(async move {
                let end = process::wait_for_exit(spawned).await;
                if let Some(shared) = shared.upgrade() {
                    step(&shared, vec![Msg::Exited { pod: pod_id, end, at: Instant::now() }]);
                }
            });
            false
        }
        Err(e) => {
            let message = if e.get_ref().is_some_and(|inner| inner.is::<super::spawn_raw::WorkingDirError>())
            {
                e.to_string()
            } else {
                format!("failed to start {:?}: {e}", request.argv.first().map_or("", String::as_str))
            };
            process::append_to_log(&request.log_path, &format!("kjob: {message}"));
            st.controller.observe(Event::ContainerStartFailed { pod: pod_id, message, at: now });
            true
        }
    }
}

/// This machine's host name: the node every pod runs on (`spec.nodeName`).
fn node_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes into buf.
        let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
        let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if r == 0 {
            String::from_utf8_lossy(&buf[..len]).into_owned()
        } else {
            "localhost".into()
        }
    })
}

/// SIGTERM to the group, SIGKILL after the grace period (at once when it is zero).
pub(super) fn kill(handle: ProcessHandle, grace: Duration) {
    if grace.is_zero() {
        handle.signal_group(libc::SIGKILL);
        return;
    }
    handle.signal_group(libc::SIGTERM);
    tokio_runtime().spawn(async move {
        tokio::time::sleep(grace).await;
        handle.signal_group(libc::SIGKILL);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_waits_for_the_batching_window_even_when_a_wake_time_has_passed() {
        let now = Instant::now();
        let window_end = now + Duration::from_millis(3);
        let past = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
        // A wake time already past must not make the actor step (and find nothing to do)
        // again and again until the window ends.
        assert_eq!(actor_target(false, window_end, Some(past)), Some(window_end));
        assert_eq!(actor_target(true, window_end, Some(past)), Some(window_end));
        // Outside a window the wake time rules; with neither, the actor only waits for news.
        let later = now + Duration::from_secs(5);
        assert_eq!(actor_target(false, now, Some(later)), Some(later));
        assert_eq!(actor_target(true, now, None), Some(now));
        assert_eq!(actor_target(false, now, None), None);
    }
}
