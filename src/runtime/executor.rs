//! The executor seam: how a Job's pods run, behind one trait.
//!
//! A Job's owner (see `super::owner`) turns the controller's actions into calls of an
//! [`Executor`]: start a pod, kill a pod with a grace period. Everything the executor learns
//! about its pods (started, could not start, ended with a status, a log range, a result
//! payload, a warning) comes back as [`ExecEvent`]s, either at once (pushed to the `out`
//! vector a call gets) or later, sent through the [`ExecutorLink`] from whatever task or
//! thread saw it. So `start` may complete asynchronously: an executor that hands spawns to
//! another thread, or to a remote worker, reports `Started` (or `StartFailed`) when it knows.
//!
//! Implementations: local subprocesses (`super::subprocess`) and the callable worker pool
//! (`super::workers`). Later ones (a store-backed executor, pods on remote Dask workers, an
//! executor written in Python and adapted by the bindings) implement the same trait; neither
//! the controller nor the owner knows which executor runs a pod. Node-level facts fit the same
//! events: where a pod ran can travel with `Started`, and a lost node ends its pods with an
//! `Ended` event the controller already understands.

use super::env_snapshot::EnvSnapshot;
use super::owner::Msg;
use super::process::SpawnRequest;
use crate::controller::container_env::{container_argv, container_env, PodFields};
use crate::controller::{labels, EffectiveSpec, Pod, PodId, ProcessEnd};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What an executor learned about one of its pods.
#[derive(Debug)]
pub enum ExecEvent {
    /// The pod's container runs.
    Started { pod: PodId, at: Instant },
    /// The container could not be started (missing executable, no worker could start).
    StartFailed { pod: PodId, message: String, at: Instant },
    /// Deleted before its container ever started (a queued pod).
    Cancelled { pod: PodId, at: Instant },
    /// The container ended.
    Ended(Ended),
    /// Something the Job's events should say (a `Warning`): reason, message.
    Warning { reason: &'static str, message: String },
    /// The pod was placed on a node other than this machine (`spec.nodeName`): a remote
    /// executor's machine.
    Bound { pod: PodId, node: Arc<str> },
    /// The pod's node is gone (its machine died, or the connection to it was lost): the pod
    /// fails as PodGC fails the pods of a deleted node (`controller/node_lost.rs`). Its
    /// processes are gone with the node, or killed there.
    NodeLost { pod: PodId, at: Instant },
    /// The event is about container `.0` of a pod with several containers (events without
    /// this wrapper are about a pod's only container).
    InContainer(usize, Box<ExecEvent>),
}

impl ExecEvent {
    /// `self` about container `container` of a pod with several (see [`ExecEvent::InContainer`]).
    pub fn in_container(self, container: Option<usize>) -> Self {
        match container {
            Some(c) => Self::InContainer(c, Box::new(self)),
            None => self,
        }
    }
}

/// How a pod's container ended, with what it left behind.
#[derive(Debug)]
pub struct Ended {
    pub pod: PodId,
    pub exit_code: i32,
    /// How the process ended, when the pod ended with it (always, for a subprocess).
    pub end: Option<ProcessEnd>,
    pub payload: Payload,
    /// Where the pod's output is when it is not the pod's own log file: a byte range of a
    /// shared file.
    pub log: Option<LogRange>,
    pub at: Instant,
}

/// A byte range of a log file shared by many pods (a worker's log).
pub type LogRange = (Arc<Path>, u64, u64);

/// What a pod's container handed back besides its exit code (a worker's `D` frame carries it).
pub use super::frames::Payload;

/// A message an executor sends to itself: its own tasks' news (a worker's reports), folded
/// back in by [`Executor::on_note`] on the owner, where the executor's state lives.
pub type ExecutorNote = Box<dyn Any + Send>;

/// Kills every process of an executor at once, from any thread (interpreter exit): it must
/// not wait for the owner, which may be busy or gone.
pub type KillSwitch = Arc<dyn Fn() + Send + Sync>;

/// The way back from an executor's tasks to the Job's owner. Cheap to clone; sends fail
/// quietly once the owner is gone (a pod's news after its Job was deleted has no reader).
#[derive(Clone)]
pub struct ExecutorLink {
    tx: UnboundedSender<Msg>,
}

impl ExecutorLink {
    pub(super) fn new(tx: UnboundedSender<Msg>) -> Self {
        Self { tx }
    }

    /// Hands events to the owner, which folds them into the controller.
    pub fn report(&self, events: Vec<ExecEvent>) {
        let _ = self.tx.send(Msg::Executor(events));
    }

    /// Hands a note to the executor itself, on the owner (see [`ExecutorNote`]).
    pub fn note(&self, note: ExecutorNote) {
        let _ = self.tx.send(Msg::Note(note));
    }
}

/// What an executor is made with, when the Job starts.
pub struct ExecutorContext {
    pub link: ExecutorLink,
    pub log_dir: PathBuf,
    pub job_name: String,
    /// The environment the Job's processes inherit, taken by `start()` (see `env_snapshot`).
    pub environ: EnvSnapshot,
}

/// Makes a Job's executor when the Job starts (the link to the owner exists only then).
pub type ExecutorFactory = Box<dyn FnOnce(ExecutorContext) -> Box<dyn Executor> + Send>;

/// How a Job's pods run. Every method runs on the Job's owner; events learned during a call
/// go to `out`, later ones through the [`ExecutorLink`].
pub trait Executor: Send {
    /// Starts (or queues) the pod's container. `Started` or `StartFailed` may come at once
    /// or later; a pod the executor holds back is still the executor's to cancel on `kill`.
    fn start(&mut self, pod: &PodLaunch<'_>, out: &mut Vec<ExecEvent>);

    /// Stops a pod: SIGTERM (or the executor's equivalent), SIGKILL after `grace` (at once
    /// when zero); a pod not started yet is cancelled (`Cancelled`). Every container of a pod
    /// with several.
    fn kill(&mut self, pod: PodId, grace: Duration, out: &mut Vec<ExecEvent>);

    /// Stops one container of a pod with several, as [`Executor::kill`] stops a pod. An
    /// executor of one-container pods has only the pod to stop.
    fn kill_container(&mut self, pod: PodId, _container: usize, grace: Duration, out: &mut Vec<ExecEvent>) {
        self.kill(pod, grace, out);
    }

    /// Carries out what `start` calls queued, once per round of actions (an executor may
    /// batch its hand-offs: one write per worker).
    fn flush(&mut self, _out: &mut Vec<ExecEvent>) {}

    /// Folds a note sent through [`ExecutorLink::note`].
    fn on_note(&mut self, _note: ExecutorNote, _out: &mut Vec<ExecEvent>) {}

    /// No pod is queued or running: no pod event can come.
    fn is_idle(&self) -> bool;

    /// Pods report their ends within microseconds of each other (a warm worker pool): the
    /// runtime thread then polls briefly instead of sleeping (see `super::stay_awake`).
    fn reports_quickly(&self) -> bool {
        false
    }

    /// The process running the pod, if any.
    fn pid(&self, _pod: PodId) -> Option<i32> {
        None
    }

    /// The Job is over (finished or deleted, no pod left running): give back what is shared.
    fn release(&mut self) {}

    /// See [`KillSwitch`].
    fn kill_switch(&self) -> KillSwitch;
}

/// A pod to start, and what is needed to build its container.
pub struct PodLaunch<'a> {
    pub pod: &'a Pod,
    pub spec: &'a EffectiveSpec,
    pub log_dir: &'a Path,
    /// The environment the container inherits (see [`ExecutorContext::environ`]).
    pub environ: &'a EnvSnapshot,
    /// Which container of a pod with several (`EffectiveSpec::container_layout`); `None` for
    /// a pod's only container.
    pub container: Option<usize>,
}

impl PodLaunch<'_> {
    /// The container's log file: the pod's own for its first main container (as before pods
    /// had several), `<pod>_<container>.log` for the others.
    pub fn log_path(&self) -> PathBuf {
        match (self.container, &self.spec.container_layout) {
            (Some(c), Some(layout)) if c != layout.first_main() => {
                container_log_path(self.log_dir, &self.pod.name, &layout.names[c])
            }
            _ => pod_log_path(self.log_dir, &self.pod.name),
        }
    }

    /// The container this launch starts.
    fn container_spec(&self) -> &crate::controller::ContainerSpec {
        self.spec.container_spec(self.container.unwrap_or(0))
    }

    /// The container as a process to spawn: its command line and environment as the
    /// kubelet makes them (built on demand: an executor of callables never needs them).
    pub fn process_request(&self) -> SpawnRequest {
        self.process_request_on(node_name(), "127.0.0.1")
    }

    /// [`PodLaunch::process_request`] for a pod placed on node `node_name` at `host_ip`
    /// (the downward API's `spec.nodeName` and `status.hostIP`).
    pub fn process_request_on(&self, node_name: &str, host_ip: &str) -> SpawnRequest {
        let (spec, pod) = (self.spec, self.pod);
        let labels = labels::pod_labels(spec, pod);
        let annotations = labels::pod_annotations(spec, pod);
        let uid = format!("{}-{}", spec.uid, pod.id.0);
        let fields = PodFields {
            name: &pod.name,
            namespace: &spec.namespace,
            uid: &uid,
            labels: &labels,
            annotations: &annotations,
            node_name,
            host_ip,
        };
        let container = self.container_spec();
        let mut env = container_env(container, pod.index, &fields);
        let argv = container_argv(container, &env);
        env.push((super::job::JOB_UID_ENV.to_string(), spec.uid.clone()));
        env.extend(super::job::marker_env(Some(&spec.uid), self.environ));
        SpawnRequest {
            argv,
            env,
            environ: self.environ.clone(),
            working_dir: container.working_dir.as_ref().map(PathBuf::from),
            log_path: self.log_path(),
        }
    }
}

/// Where a pod's output goes when its executor does not say otherwise.
pub(super) fn pod_log_path(log_dir: &Path, pod_name: &str) -> PathBuf {
    log_dir.join(format!("{pod_name}.log"))
}

/// The log of a pod's container other than its first main one (`kubectl logs -c`).
pub(super) fn container_log_path(log_dir: &Path, pod_name: &str, container: &str) -> PathBuf {
    log_dir.join(format!("{pod_name}_{container}.log"))
}

/// This machine's host name: the node every local pod runs on (`spec.nodeName`).
pub fn node_name() -> &'static str {
    // Process-wide: asked once, the host name does not change under a running process.
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
