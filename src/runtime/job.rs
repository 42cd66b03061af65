//! A Job's handle: what the bindings use to start, observe, wait for and delete a Job.
//!
//! The Job itself lives in its owner (see `super::owner`): the handle sends it messages and
//! asks it questions, and reads what it publishes after every step (status, spec, whether
//! the Job finished or is gone). Waiters for the end of the Job are woken through a condvar.

use super::env_snapshot::EnvSnapshot;
use super::executor::{ExecutorContext, ExecutorFactory, ExecutorLink};
use super::notify::{ChangeFd, Watchers};
use super::owner::{self, Msg, Owner, Published, Shared, Slot};
use super::remote::{self, AgentSpec, RemoteExecutor, RemoteNodes};
use super::remote_frames::Work;
use super::subprocess::SubprocessExecutor;
use super::tokio_runtime;
use super::workers::{CallableConfig, CallableExecutor};
use crate::controller::{Controller, EffectiveSpec, JobEvent, Pod};
use crate::status::{JobStatus, Time};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{error::SendError, unbounded_channel};

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
    #[error("cannot open the results log {0:?}: {1}")]
    ResultsLog(PathBuf, #[source] std::io::Error),
    #[error(
        "Job {namespace}/{name} has spec.managedBy {managed_by:?}: another controller owns it, so kjob's \
         controller (kubernetes.io/job-controller) does not run it"
    )]
    ManagedElsewhere { namespace: String, name: String, managed_by: String },
    #[error("{0}")]
    NotFound(String),
    /// The Job's remote executor cannot run it (no agent could be reached).
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Invalid(#[from] crate::spec::FieldErrors),
    #[error(
        "Job '{name}' belongs to process {pid}, which forked this process: a forked child cannot use \
         its parent's Jobs (create a new Job in the child)"
    )]
    Forked { name: String, pid: u32 },
}

/// A pod as the user sees it. Its labels and annotations are its Job's (in [`PodViews`], once
/// for all pods) and its own ([`pod_own_labels`], [`pod_own_annotations`]):
/// a Job of 100,000 pods lists them without a million small allocations.
///
/// [`pod_own_labels`]: crate::controller::labels::pod_own_labels
/// [`pod_own_annotations`]: crate::controller::labels::pod_own_annotations
#[derive(Clone, Debug)]
pub struct PodView {
    pub pod: Pod,
    /// Shared by callable pods of one worker, and then not copied per pod.
    pub log_path: Arc<Path>,
    /// Callable pods share a worker's log file: their output is this byte range of it.
    pub log_range: Option<(u64, u64)>,
    pub pid: Option<i32>,
    /// How the controller counted the pod (`CountedAs`: succeeded, failed, ignored, killed,
    /// active), the same rule a simulation's timeline uses.
    pub counted_as: &'static str,
}

/// Every pod of a Job, oldest first (they deref to a slice of [`PodView`]s), with what their
/// labels and annotations share.
#[derive(Clone, Debug, Default)]
pub struct PodViews {
    pub pods: Vec<PodView>,
    /// The Job's labels (the template's and the selector's), which every pod carries.
    pub job_labels: Vec<(String, String)>,
    /// The template's annotations, which every pod carries.
    pub job_annotations: Vec<(String, String)>,
    /// The Job sets `backoffLimitPerIndex`: see [`pod_own_annotations`].
    ///
    /// [`pod_own_annotations`]: crate::controller::labels::pod_own_annotations
    pub counts_per_index: bool,
}

impl std::ops::Deref for PodViews {
    type Target = [PodView];

    fn deref(&self) -> &[PodView] {
        &self.pods
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
        let published = Published {
            status: Arc::new(controller.status().clone()),
            spec: Arc::new(controller.spec().clone()),
            started: false,
            finished: controller.is_finished(),
            deleted: false,
        };
        let owner = Owner::new(controller, log_dir, owns_log_dir, Instant::now());
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::Parked(Box::new(owner))),
            published: Mutex::new(published),
            changed: Condvar::new(),
            results: Mutex::new(Vec::new()),
            kill_switch: Mutex::new(None),
            watchers: Watchers::default(),
            generation: GENERATION.load(Ordering::SeqCst),
            pid: std::process::id(),
            name,
            origin_wall: Mutex::new(SystemTime::now()),
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
        let spec = Arc::clone(&self.shared.published().spec);
        (*spec).clone()
    }

    /// Makes the pods run a Python callable in worker processes instead of the command.
    pub fn set_callable(&self, config: CallableConfig) -> Result<(), RuntimeError> {
        self.set_executor(Box::new(move |context| Box::new(CallableExecutor::new(config, context))))
    }

    /// Makes the pods run on remote agents (`super::remote`): connects to them now, and
    /// fails when none can be reached. `callable`: the pods run this Python callable (its
    /// `max_workers` is each agent's `capacity` there). The answer reaches the connections
    /// from any thread (see [`RemoteNodes`]).
    pub fn set_remote(
        &self,
        agents: &[AgentSpec],
        callable: Option<CallableConfig>,
        timeout: Duration,
    ) -> Result<Arc<RemoteNodes>, RuntimeError> {
        let connected = remote::connect(agents, timeout).map_err(RuntimeError::Remote)?;
        let nodes = Arc::new(remote::nodes_of(&connected));
        let work = match callable {
            Some(c) => Work::Callable { init: c.init, max_workers: 0, reuse_workers: c.reuse_workers },
            None => Work::Commands,
        };
        let uid = self.spec().uid;
        let shared = Arc::clone(&nodes);
        self.set_executor(Box::new(move |context| {
            Box::new(RemoteExecutor::new(connected, shared, &work, &uid, &context))
        }))?;
        Ok(nodes)
    }

    /// Makes the pods run in the executor `make` makes when the Job starts (instead of
    /// subprocesses).
    pub fn set_executor(&self, make: ExecutorFactory) -> Result<(), RuntimeError> {
        match &mut *self.shared.slot() {
            Slot::Parked(owner) => {
                owner.factory = Some(make);
                Ok(())
            }
            Slot::Running(_) => Err(RuntimeError::AlreadyStarted),
        }
    }

    /// Takes over a stored Job before it starts (see `controller/restore.rs`): `origin_wall`
    /// is the stored Job's origin, the controller's times are measured from it, and
    /// `results` are the results its log holds.
    pub fn restore(
        &self,
        prior: crate::controller::restore::Prior,
        origin_wall: SystemTime,
        results: Vec<(Option<u32>, Vec<u8>)>,
    ) -> Result<(), RuntimeError> {
        let mut slot = self.shared.slot();
        let Slot::Parked(owner) = &mut *slot else { return Err(RuntimeError::AlreadyStarted) };
        let elapsed = SystemTime::now().duration_since(origin_wall).unwrap_or_default();
        owner.restore(prior, elapsed);
        *self.shared.origin_wall.lock().unwrap_or_else(|e| e.into_inner()) = origin_wall;
        *self.shared.results.lock().unwrap_or_else(|e| e.into_inner()) = results;
        let was_finished = self.shared.published().finished;
        owner.publish(&self.shared, was_finished);
        Ok(())
    }

    /// Appends every succeeded pod's result to the log at `path` before the pod counts
    /// (see `results_log.rs`).
    pub fn set_results_log(&self, path: &Path) -> Result<(), RuntimeError> {
        let log = super::results_log::ResultsLog::open(path)
            .map_err(|e| RuntimeError::ResultsLog(path.to_path_buf(), e))?;
        match &mut *self.shared.slot() {
            Slot::Parked(owner) => {
                owner.set_results_log(log);
                Ok(())
            }
            Slot::Running(_) => Err(RuntimeError::AlreadyStarted),
        }
    }

    /// Visits the pickled return values of succeeded callable pods, in completion order, with
    /// the pod's index. `visit` runs under the results' lock: it must only copy.
    pub fn visit_results<T>(&self, mut visit: impl FnMut(Option<u32>, &[u8]) -> T) -> Vec<T> {
        let results = self.shared.results.lock().unwrap_or_else(|e| e.into_inner());
        results.iter().map(|(index, bytes)| visit(*index, bytes)).collect()
    }

    pub fn start(&self) -> Result<(), RuntimeError> {
        let mut slot = self.shared.slot();
        let Slot::Parked(owner) = &mut *slot else { return Err(RuntimeError::AlreadyStarted) };
        if owner.deleted {
            return Err(RuntimeError::Deleted);
        }
        let spec = owner.controller().spec();
        if !spec.is_managed_locally() {
            return Err(RuntimeError::ManagedElsewhere {
                namespace: spec.namespace.clone(),
                name: spec.name.clone(),
                managed_by: spec.managed_by.clone().unwrap_or_default(),
            });
        }
        // Once here, rather than before every pod's log file is opened.
        std::fs::create_dir_all(&owner.log_dir)
            .map_err(|e| RuntimeError::LogDir(owner.log_dir.clone(), e))?;
        // The bindings call this with the GIL held: no Python thread changes the environment
        // while it is copied. Every pod and worker of the Job inherits this copy.
        let environ = EnvSnapshot::capture();
        let (tx, rx) = unbounded_channel();
        let context = ExecutorContext {
            link: ExecutorLink::new(tx.clone()),
            log_dir: owner.log_dir.clone(),
            job_name: spec.name.clone(),
            environ: environ.clone(),
        };
        owner.environ = environ;
        let executor = match owner.factory.take() {
            Some(make) => make(context),
            None => Box::new(SubprocessExecutor::new(context.link)),
        };
        *self.shared.kill_switch.lock().unwrap_or_else(|e| e.into_inner()) = Some(executor.kill_switch());
        owner.begin(executor, tx.clone());
        let Slot::Parked(owner) = std::mem::replace(&mut *slot, Slot::Running(tx)) else {
            unreachable!("the slot was parked above, under the same lock")
        };
        self.shared.published().started = true;
        drop(slot);
        tokio_runtime().spawn(owner::run(owner, Arc::clone(&self.shared), rx));
        Ok(())
    }

    pub fn is_started(&self) -> bool {
        self.shared.published().started
    }

    pub fn is_deleted(&self) -> bool {
        self.shared.published().deleted
    }

    pub fn status(&self) -> JobStatus {
        let status = Arc::clone(&self.shared.published().status);
        (*status).clone()
    }

    /// Wall-clock time of a controller time.
    pub fn wall_time(&self, t: Time) -> SystemTime {
        *self.shared.origin_wall.lock().unwrap_or_else(|e| e.into_inner()) + t
    }

    pub fn pods(&self) -> PodViews {
        self.ask(|owner| owner.pods()).unwrap_or_default()
    }

    /// Suspends or resumes. Before `start()` it sets what the Job starts with.
    pub fn suspend(&self, suspend: bool) {
        self.tell(Msg::Suspend(suspend), |owner| owner.suspend(suspend));
    }

    /// The local Eviction API: the pod gets `DisruptionTarget=True` and is deleted.
    pub fn evict(&self, pod_name: &str) -> Result<(), RuntimeError> {
        let name = pod_name.to_string();
        self.ask(move |owner| owner.evict(&name))
            .ok_or(RuntimeError::Deleted)?
            .map_err(RuntimeError::NotFound)
    }

    /// Changes `parallelism` and (Indexed Jobs, in tandem) `completions`.
    pub fn scale(&self, parallelism: Option<i64>, completions: Option<i64>) -> Result<(), RuntimeError> {
        self.ask(move |owner| owner.scale(parallelism, completions)).ok_or(RuntimeError::Deleted)??;
        Ok(())
    }

    /// The kept events with sequence number `since` or later, and the next number.
    pub fn events(&self, since: u64) -> (Vec<JobEvent>, u64) {
        self.ask(move |owner| owner.events(since)).unwrap_or((Vec::new(), since))
    }

    /// Asks for deletion and returns at once; [`Job::wait_deleted`] waits for the processes.
    pub fn request_delete(&self) {
        // A Job that never started has no process to wait for: it is gone at once.
        self.tell(Msg::Delete, |owner| owner.deleted = true);
    }

    /// SIGKILLs every pod process now, without a grace period, and deletes the Job.
    pub fn kill_all(&self) {
        let kill_switch = self.shared.kill_switch.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(kill) = kill_switch {
            kill();
        }
        self.request_delete();
    }

    /// Sends `msg` to the running owner, or does `parked` on the parked one (and publishes).
    fn tell(&self, msg: Msg, parked: impl FnOnce(&mut Owner)) {
        let mut slot = self.shared.slot();
        match &mut *slot {
            Slot::Running(tx) => {
                // A send fails only once the owner has parked itself, which it does under
                // this lock: it cannot happen while we hold it.
                let _ = tx.send(msg);
            }
            Slot::Parked(owner) => {
                parked(owner);
                let was_finished = self.shared.published().finished;
                owner.publish(&self.shared, was_finished);
            }
        }
    }

    /// Runs `question` on the owner and returns its answer: at once on a parked owner, else
    /// between two of the owner task's folds. `None` only if the owner task died (a bug).
    fn ask<T: Send + 'static>(&self, question: impl FnOnce(&mut Owner) -> T + Send + 'static) -> Option<T> {
        let tx = match &mut *self.shared.slot() {
            Slot::Parked(owner) => {
                let answer = question(owner);
                let was_finished = self.shared.published().finished;
                owner.publish(&self.shared, was_finished);
                return Some(answer);
            }
            Slot::Running(tx) => tx.clone(),
        };
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        let ask: owner::Ask = Box::new(move |owner| {
            let _ = reply.send(question(owner));
        });
        if let Err(SendError(Msg::Ask(ask))) = tx.send(Msg::Ask(ask)) {
            // The owner parked itself between the look and the send.
            if let Slot::Parked(owner) = &mut *self.shared.slot() {
                ask(owner);
            }
        }
        answer.recv().ok()
    }

    /// An eventfd that becomes readable after every change of the Job (see [`notify`]).
    ///
    /// [`notify`]: super::notify
    pub fn subscribe(&self) -> std::io::Result<Arc<ChangeFd>> {
        self.shared.watchers.subscribe()
    }

    /// Blocks up to `slice` for the Job to finish (or be deleted). Returns whether it has.
    pub fn wait_finished(&self, slice: Duration) -> bool {
        self.wait_until(slice, |p| p.deleted || p.finished)
    }

    /// Blocks up to `slice` for the deletion to complete (every process reaped).
    pub fn wait_deleted(&self, slice: Duration) -> bool {
        self.wait_until(slice, |p| p.deleted)
    }

    fn wait_until(&self, slice: Duration, done: impl Fn(&Published) -> bool) -> bool {
        let published = self.shared.published();
        let (published, _) = self
            .shared
            .changed
            .wait_timeout_while(published, slice, |p| !done(p))
            .unwrap_or_else(|e| e.into_inner());
        done(&published)
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if self.is_foreign() {
            // The parent's Job, dropped in a forked child: its state is leaked, not dropped
            // (dropping its pipes would deregister them from the epoll set shared with the
            // parent), and nothing is sent to its owner, which does not run here.
            std::mem::forget(Arc::clone(&self.shared));
            return;
        }
        if let Slot::Running(tx) = &*self.shared.slot() {
            let _ = tx.send(Msg::Delete);
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
