//! Defaulting (`pkg/apis/batch/v1/defaults.go`, docs/semantics.md §1.1): a validated manifest
//! becomes the typed, fully defaulted spec the controller runs.

use super::env_sources::EnvSources;
use super::failure_policy::PodFailurePolicy;
use super::pod_containers::ContainerKind;
use super::success_policy::SuccessRule;
use crate::spec::{self, FieldError, FieldErrors};
use std::sync::Arc;
use std::time::Duration;

/// `DefaultTerminationGracePeriodSeconds` in core/v1.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: Duration = Duration::from_secs(30);
/// `backoffLimit` default without `backoffLimitPerIndex`.
pub const DEFAULT_BACKOFF_LIMIT: u32 = 6;
/// `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff` in job_controller.go.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(600);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionMode {
    NonIndexed,
    Indexed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Never,
    OnFailure,
}

impl RestartPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "Never",
            Self::OnFailure => "OnFailure",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodReplacementPolicy {
    TerminatingOrFailed,
    Failed,
}

impl PodReplacementPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TerminatingOrFailed => "TerminatingOrFailed",
            Self::Failed => "Failed",
        }
    }
}

/// The delays of pod re-creation (§5.3) and, halved, of in-place restarts (§5.1). Kubernetes
/// fixes them at 10 s doubling up to 10 min; kjob lets users and tests shorten them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackoffConfig {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self { initial: DEFAULT_BACKOFF_INITIAL, max: DEFAULT_BACKOFF_MAX }
    }
}

/// One container of the pod: what its process runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub working_dir: Option<String>,
    /// Why the kubelet could not make the container's configuration (a missing ConfigMap or
    /// Secret, see `env_sources`): its pods wait in `CreateContainerConfigError`.
    pub config_error: Option<String>,
}

/// A pod with more than one container (init containers, sidecars, several main ones): every
/// container, init containers first in order, then the main ones. Container `i` of a pod's
/// events and actions is `containers[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerLayout {
    pub containers: Vec<ContainerSpec>,
    pub kinds: Arc<[ContainerKind]>,
    pub names: Arc<[String]>,
}

impl ContainerLayout {
    /// `None` for a pod of one container (the common case, run by `kubelet.rs` alone).
    fn of(pod: &spec::PodSpec, sources: &EnvSources, namespace: &str) -> Option<Self> {
        if pod.init_containers.is_empty() && pod.containers.len() <= 1 {
            return None;
        }
        let init = pod.init_containers.iter().map(|c| {
            let sidecar = c.restart_policy.as_deref() == Some(spec::CONTAINER_RESTART_POLICY_ALWAYS);
            (if sidecar { ContainerKind::Sidecar } else { ContainerKind::Init }, c)
        });
        let all: Vec<(ContainerKind, &spec::Container)> =
            init.chain(pod.containers.iter().map(|c| (ContainerKind::Main, c))).collect();
        Some(Self {
            containers: all.iter().map(|(_, c)| container_spec(c, sources, namespace)).collect(),
            kinds: all.iter().map(|(k, _)| *k).collect(),
            names: all.iter().map(|(_, c)| c.name.clone()).collect(),
        })
    }

    /// The first main container: its log is the pod's log.
    pub fn first_main(&self) -> usize {
        self.kinds.iter().position(|k| *k == ContainerKind::Main).unwrap_or(0)
    }
}

/// One container as the kubelet makes it: its env resolved against the ConfigMaps and Secrets
/// (`env_sources`), or the reason it cannot be made (its pods wait in
/// `CreateContainerConfigError`).
fn container_spec(container: &spec::Container, sources: &EnvSources, namespace: &str) -> ContainerSpec {
    let (env, config_error) = match sources.resolve(container, namespace) {
        Ok(env) => (env, None),
        Err(message) => (Vec::new(), Some(message)),
    };
    ContainerSpec {
        name: container.name.clone(),
        command: container.command.clone(),
        args: container.args.clone(),
        env,
        working_dir: container.working_dir.clone(),
        config_error,
    }
}

/// An env var's value: written out, read from the pod (`valueFrom.fieldRef.fieldPath`), or
/// read from a ConfigMap or Secret (taken as it is: no `$(VAR)` expansion).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    FieldRef(String),
    Resolved(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveSpec {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub labels: Vec<(String, String)>,
    /// The pod template's annotations (pods get these plus the controller's own).
    pub annotations: Vec<(String, String)>,
    pub parallelism: u32,
    /// `None` is a work-queue Job.
    pub completions: Option<u32>,
    pub completion_mode: CompletionMode,
    pub backoff_limit: u32,
    pub restart_policy: RestartPolicy,
    pub termination_grace_period: Duration,
    pub pod_replacement_policy: PodReplacementPolicy,
    pub suspend: bool,
    pub backoff: BackoffConfig,
    /// The pod's (first) main container.
    pub container: ContainerSpec,
    /// Every container, when the pod has more than one.
    pub container_layout: Option<ContainerLayout>,
    /// Job-level `activeDeadlineSeconds`, measured from `startTime`.
    pub active_deadline: Option<Duration>,
    /// The pod template's `activeDeadlineSeconds`, measured from each pod's start.
    pub pod_active_deadline: Option<Duration>,
    pub ttl_after_finished: Option<Duration>,
    pub backoff_limit_per_index: Option<u32>,
    pub max_failed_indexes: Option<u32>,
    pub pod_failure_policy: Option<PodFailurePolicy>,
    pub success_policy: Option<Vec<SuccessRule>>,
    /// `None` and `kubernetes.io/job-controller` mean the local controller runs the Job.
    pub managed_by: Option<String>,
}

impl EffectiveSpec {
    /// Defaults (as the API server does), validates, then resolves a manifest into the spec the
    /// controller runs. `uid` identifies this Job (the runtime makes one).
    pub fn from_manifest(job: &spec::Job, uid: &str, backoff: BackoffConfig) -> Result<Self, FieldErrors> {
        Self::from_manifest_with_sources(job, uid, backoff, &EnvSources::default())
    }

    /// [`EffectiveSpec::from_manifest`] with the ConfigMaps and Secrets the container's env
    /// may read.
    pub fn from_manifest_with_sources(
        job: &spec::Job,
        uid: &str,
        backoff: BackoffConfig,
        sources: &EnvSources,
    ) -> Result<Self, FieldErrors> {
        // The API server defaults (`SetDefaults_Job`) before it validates.
        let job = &spec::with_api_defaults(job);
        spec::validate_job(job)?;
        let s = &job.spec;
        // Both unset: one pod, once. Only parallelism unset: 1. Only completions unset: work queue.
        let (parallelism, completions) = match (s.parallelism, s.completions) {
            (None, None) => (1, Some(1)),
            (p, c) => (p.unwrap_or(1), c),
        };
        let pod = &s.template.spec;
        let container = pod
            .containers
            .first()
            .ok_or_else(|| FieldErrors(vec![FieldError::required("spec.template.spec.containers", "")]))?;
        let namespace = job.metadata.namespace.clone().unwrap_or_else(|| "default".into());
        let container_layout = ContainerLayout::of(pod, sources, &namespace);
        let container = container_spec(container, sources, &namespace);
        let name = job.metadata.name.clone().unwrap_or_default();
        let mut labels: Vec<(String, String)> =
            s.template.metadata.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        // What the API server adds to the template when it generates the selector (§1.2).
        labels.push(("batch.kubernetes.io/controller-uid".into(), uid.to_string()));
        labels.push(("batch.kubernetes.io/job-name".into(), name.clone()));
        labels.push(("controller-uid".into(), uid.to_string()));
        labels.push(("job-name".into(), name.clone()));
        Ok(Self {
            name,
            namespace,
            uid: uid.to_string(),
            labels,
            annotations: s
                .template
                .metadata
                .annotations
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            parallelism: to_u32(parallelism),
            completions: completions.map(to_u32),
            completion_mode: match s.completion_mode.as_deref() {
                Some("Indexed") => CompletionMode::Indexed,
                _ => CompletionMode::NonIndexed,
            },
            // With per-index limits the global limit defaults to MaxInt32 (§1.1).
            backoff_limit: s.backoff_limit.map(to_u32).unwrap_or(if s.backoff_limit_per_index.is_some() {
                i32::MAX as u32
            } else {
                DEFAULT_BACKOFF_LIMIT
            }),
            restart_policy: match pod.restart_policy.as_deref() {
                Some("OnFailure") => RestartPolicy::OnFailure,
                _ => RestartPolicy::Never,
            },
            termination_grace_period: pod
                .termination_grace_period_seconds
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD),
            pod_replacement_policy: match s.pod_replacement_policy.as_deref() {
                Some("Failed") => PodReplacementPolicy::Failed,
                Some(_) => PodReplacementPolicy::TerminatingOrFailed,
                // Defaulting: `Failed` with a pod failure policy, else `TerminatingOrFailed`.
                None if s.pod_failure_policy.is_some() => PodReplacementPolicy::Failed,
                None => PodReplacementPolicy::TerminatingOrFailed,
            },
            suspend: s.suspend.unwrap_or(false),
            backoff,
            container,
            container_layout,
            active_deadline: s.active_deadline_seconds.map(seconds),
            pod_active_deadline: pod.active_deadline_seconds.map(seconds),
            ttl_after_finished: s.ttl_seconds_after_finished.map(|t| seconds(i64::from(t))),
            backoff_limit_per_index: s.backoff_limit_per_index.map(to_u32),
            max_failed_indexes: s.max_failed_indexes.map(to_u32),
            pod_failure_policy: s.pod_failure_policy.as_ref().map(PodFailurePolicy::from_spec),
            success_policy: s.success_policy.as_ref().map(|p| {
                p.rules
                    .iter()
                    .map(|r| SuccessRule {
                        succeeded_indexes: r.succeeded_indexes.clone(),
                        succeeded_count: r.succeeded_count.map(to_u32),
                    })
                    .collect()
            }),
            managed_by: s.managed_by.clone(),
        })
    }

    /// Whether pods run more than one container (see [`ContainerLayout`]).
    pub fn has_several_containers(&self) -> bool {
        self.container_layout.is_some()
    }

    /// Container `i` of a pod (the only one, when there is one).
    pub fn container_spec(&self, i: usize) -> &ContainerSpec {
        self.container_layout.as_ref().and_then(|l| l.containers.get(i)).unwrap_or(&self.container)
    }

    /// Why the kubelet cannot make a container of this Job's pods, if it cannot (the first
    /// container's, init containers first): such a pod waits in `CreateContainerConfigError`
    /// and none of its containers starts.
    pub fn config_error(&self) -> Option<&str> {
        let mut containers: Box<dyn Iterator<Item = &ContainerSpec>> = match &self.container_layout {
            Some(layout) => Box::new(layout.containers.iter()),
            None => Box::new(std::iter::once(&self.container)),
        };
        containers.find_map(|c| c.config_error.as_deref())
    }

    pub fn is_indexed(&self) -> bool {
        self.completion_mode == CompletionMode::Indexed
    }

    /// Whether the local controller (`kubernetes.io/job-controller`) owns this Job.
    pub fn is_managed_locally(&self) -> bool {
        self.managed_by.as_deref().is_none_or(|m| m == crate::spec::JOB_CONTROLLER_NAME)
    }
}

fn seconds(s: i64) -> Duration {
    Duration::from_secs(s.max(0) as u64)
}

/// Validation has already rejected negatives; clamp defensively rather than wrap.
fn to_u32(v: i32) -> u32 {
    v.max(0) as u32
}
