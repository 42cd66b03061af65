//! Defaulting (`pkg/apis/batch/v1/defaults.go`, docs/semantics.md §1.1): a validated manifest
//! becomes the typed, fully defaulted spec the controller runs.

use super::failure_policy::PodFailurePolicy;
use super::success_policy::SuccessRule;
use crate::spec::{self, FieldError, FieldErrors};
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

/// What the pod runs: the first container of the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, EnvValue)>,
    pub working_dir: Option<String>,
}

/// An env var's value: written out, or read from the pod (`valueFrom.fieldRef.fieldPath`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    Literal(String),
    FieldRef(String),
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
    pub container: ContainerSpec,
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
        let env = container
            .env
            .iter()
            .map(|var| {
                let value = match var.value_from.as_ref().and_then(|f| f.field_ref.as_ref()) {
                    Some(selector) => EnvValue::FieldRef(selector.field_path.clone()),
                    None => EnvValue::Literal(var.value.clone().unwrap_or_default()),
                };
                (var.name.clone(), value)
            })
            .collect();
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
            namespace: job.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
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
            container: ContainerSpec {
                name: container.name.clone(),
                command: container.command.clone(),
                args: container.args.clone(),
                env,
                working_dir: container.working_dir.clone(),
            },
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
