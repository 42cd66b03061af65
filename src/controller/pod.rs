//! The controller's record of one pod: one attempt of the Job's work, with the facts the
//! Kubernetes rules read (phase, deletion, exit code, restarts, finish time).

use crate::status::Time;

/// Pods are numbered in creation order; the number is the pod's UID within its Job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    /// Created; its process has not been seen running yet.
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Running => "Running",
            Self::Succeeded => "Succeeded",
            Self::Failed => "Failed",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// A pod condition kjob sets: `DisruptionTarget` when a pod is evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodCondition {
    pub type_: String,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl PodCondition {
    pub fn disruption_target(reason: &str, message: &str) -> Self {
        Self {
            type_: "DisruptionTarget".into(),
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn status_str(&self) -> &'static str {
        if self.status {
            "True"
        } else {
            "False"
        }
    }
}

/// Where the pod's single container is in its life (the kubelet's view). For a pod with several
/// containers: whether any process may exist (`Running`), none does for now
/// (`WaitingRestart`), or none will (`Terminated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// A process was asked for and has not been reported started yet.
    Starting,
    Running,
    /// `restartPolicy: OnFailure`: waiting for the crash-loop delay before restarting in place.
    WaitingRestart {
        at: Time,
    },
    /// The kubelet cannot make the container's configuration (`CreateContainerConfigError`,
    /// the pod's `reason` and `message` say why): no process, and none will start.
    ConfigError,
    Terminated,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pod {
    pub id: PodId,
    pub name: String,
    pub index: Option<u32>,
    pub phase: PodPhase,
    pub container: ContainerState,
    /// No readiness probes locally: a pod is ready while its container runs.
    pub ready: bool,
    pub created_at: Time,
    pub started_at: Option<Time>,
    pub ready_since: Option<Time>,
    pub finished_at: Option<Time>,
    /// Set when the controller (or a delete) asked the pod to stop: `deletionTimestamp`.
    pub deletion_requested_at: Option<Time>,
    pub exit_code: Option<i32>,
    /// Why the container last terminated when not by exiting (e.g. `StartError`).
    pub reason: Option<String>,
    pub message: Option<String>,
    pub restart_count: u32,
    /// Consecutive quick crashes, which set the next in-place restart delay.
    pub restart_streak: u32,
    /// The pod's finish was folded into the Job's counters (the tracking finalizer is gone).
    pub counted: bool,
    pub conditions: Vec<PodCondition>,
    /// `batch.kubernetes.io/job-index-failure-count`: counted failures of this index before
    /// this pod (only with `backoffLimitPerIndex`).
    pub index_failure_count: u32,
    /// `batch.kubernetes.io/job-index-ignored-failure-count`: failures matched by `Ignore`.
    pub index_ignored_failure_count: u32,
    /// Earlier failed attempts of this index (Indexed) or of the Job (NonIndexed).
    pub attempt: u32,
    /// Callable pods: the exception that failed the pod.
    pub exception: Option<PodException>,
    /// The kubelet is killing it for exceeding the template's `activeDeadlineSeconds`.
    pub deadline_exceeded: bool,
    /// A pod with several containers: theirs states (`pod_containers.rs`). `None` for the
    /// one-container pod, whose container is the fields above.
    pub containers: Option<Box<super::pod_containers::PodContainers>>,
    /// `spec.nodeName`: the machine a remote executor placed the pod on. `None` for a pod
    /// of this machine (whose host name the bindings show).
    pub node_name: Option<std::sync::Arc<str>>,
}

/// An exception that ended a callable pod: its class and bases by qualified name (most
/// derived first), its message and its formatted traceback (empty when there is none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodException {
    pub types: Vec<String>,
    pub message: String,
    pub traceback: String,
}

/// How a container's process ended, as the runtime observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    /// It exited with this code (`exit`, `os._exit`).
    Exited(i32),
    /// A signal ended it. `oom_killed` when the kernel's OOM killer sent it.
    Signaled { signal: i32, oom_killed: bool },
    /// Its exit status cannot be known (another waiter reaped the process): why.
    Unknown(String),
}

/// The kubelet's terminated reason for a container the kernel's OOM killer ended.
pub const OOM_KILLED_REASON: &str = "OOMKilled";
/// The kubelet's reason (and exit code) for a container whose status could not be found
/// (`ContainerStatusUnknown`, reported with exit code 137 by `kubelet_pods.go`).
pub const STATUS_UNKNOWN_REASON: &str = "ContainerStatusUnknown";
pub const STATUS_UNKNOWN_EXIT_CODE: i32 = 137;

impl ProcessEnd {
    /// The exit code as container runtimes report it: the code, or `128 + signal`.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Exited(code) => *code,
            Self::Signaled { signal, .. } => 128 + signal,
            Self::Unknown(_) => STATUS_UNKNOWN_EXIT_CODE,
        }
    }

    /// The container's terminated reason, when it is not an ordinary exit.
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Signaled { oom_killed: true, .. } => Some(OOM_KILLED_REASON),
            Self::Unknown(_) => Some(STATUS_UNKNOWN_REASON),
            _ => None,
        }
    }

    /// How it ended, in words (`exited with code 5`, `killed by signal 11 (SIGSEGV)`); nothing
    /// for a successful exit, which needs no explaining.
    pub fn message(&self) -> Option<String> {
        match self {
            Self::Exited(0) => None,
            Self::Exited(code) => Some(format!("exited with code {code}")),
            Self::Signaled { signal, .. } => Some(match signal_name(*signal) {
                Some(name) => format!("killed by signal {signal} ({name})"),
                None => format!("killed by signal {signal}"),
            }),
            Self::Unknown(why) => Some(why.clone()),
        }
    }
}

/// The conventional name of a Linux signal number.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(signal).ok().and_then(|s| s.checked_sub(1)).and_then(|i| NAMES.get(i).copied())
}

impl Pod {
    pub fn new(id: PodId, name: String, index: Option<u32>, now: Time) -> Self {
        Self {
            id,
            name,
            index,
            phase: PodPhase::Pending,
            container: ContainerState::Starting,
            ready: false,
            created_at: now,
            started_at: None,
            ready_since: None,
            finished_at: None,
            deletion_requested_at: None,
            exit_code: None,
            reason: None,
            message: None,
            restart_count: 0,
            restart_streak: 0,
            counted: false,
            conditions: Vec::new(),
            index_failure_count: 0,
            index_ignored_failure_count: 0,
            attempt: 0,
            exception: None,
            deadline_exceeded: false,
            containers: None,
            node_name: None,
        }
    }

    /// `FilterActivePods`: not finished and not being deleted.
    pub fn is_active(&self) -> bool {
        !self.phase.is_terminal() && self.deletion_requested_at.is_none()
    }

    /// `CountTerminatingPods`: being deleted and not finished.
    pub fn is_terminating(&self) -> bool {
        !self.phase.is_terminal() && self.deletion_requested_at.is_some()
    }

    /// Whether a process of this pod may exist (and so must be killed, not just marked).
    pub fn has_process(&self) -> bool {
        matches!(self.container, ContainerState::Starting | ContainerState::Running)
    }

    /// `getFinishedTime`: the exit time when known, else when deletion was requested
    /// (`deletionTimestamp - gracePeriod` upstream), else the creation time.
    pub fn finish_time(&self) -> Time {
        self.finished_at.or(self.deletion_requested_at).unwrap_or(self.created_at)
    }

    /// Fails the pod while its container may still run (the kubelet's pod-level deadline):
    /// the phase is final at once, the process is killed separately.
    pub fn fail(&mut self, reason: &str, message: &str, at: Time) {
        self.phase = PodPhase::Failed;
        self.reason = Some(reason.into());
        self.message = Some(message.into());
        self.ready = false;
        self.ready_since = None;
        self.finished_at = Some(at);
        if let ContainerState::WaitingRestart { .. } = self.container {
            self.container = ContainerState::Terminated;
        }
    }

    /// Ends a pod whose container never started (deleted while queued).
    pub fn cancel(&mut self, at: Time) {
        self.phase = PodPhase::Failed;
        self.container = ContainerState::Terminated;
        self.ready = false;
        self.ready_since = None;
        self.finished_at = Some(at);
        self.reason.get_or_insert_with(|| "Deleted".into());
    }

    /// Marks the pod finished with the container's last state.
    pub fn terminate(&mut self, exit_code: i32, at: Time) {
        self.exit_code = Some(exit_code);
        self.phase = if exit_code == 0 { PodPhase::Succeeded } else { PodPhase::Failed };
        self.container = ContainerState::Terminated;
        self.ready = false;
        self.ready_since = None;
        self.finished_at = Some(at);
    }
}
