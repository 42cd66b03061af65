//! Helpers shared by the controller's tests.

use super::defaults::{
    BackoffConfig, CompletionMode, ContainerSpec, EffectiveSpec, PodReplacementPolicy, RestartPolicy,
};
use super::job_controller::{Action, Controller, Event, Plan};
use super::pod::PodId;
use crate::status::Time;
use std::time::Duration;

/// A Job `default/foobar` with one container `c`, as upstream's `newJob(p, c, bl, mode)`.
pub fn spec(parallelism: u32, completions: Option<u32>, backoff_limit: u32, indexed: bool) -> EffectiveSpec {
    EffectiveSpec {
        name: "foobar".into(),
        namespace: "default".into(),
        uid: "uid".into(),
        labels: vec![],
        annotations: vec![],
        parallelism,
        completions,
        completion_mode: if indexed { CompletionMode::Indexed } else { CompletionMode::NonIndexed },
        backoff_limit,
        restart_policy: RestartPolicy::Never,
        termination_grace_period: Duration::from_secs(30),
        pod_replacement_policy: PodReplacementPolicy::TerminatingOrFailed,
        suspend: false,
        backoff: BackoffConfig::default(),
        container: ContainerSpec {
            name: "c".into(),
            command: vec!["true".into()],
            args: vec![],
            env: vec![],
            working_dir: None,
            config_error: None,
        },
        container_layout: None,
        active_deadline: None,
        pod_active_deadline: None,
        ttl_after_finished: None,
        backoff_limit_per_index: None,
        max_failed_indexes: None,
        pod_failure_policy: None,
        success_policy: None,
        managed_by: None,
    }
}

/// A one-pod Job, `backoffLimit: 0`, whose `podFailurePolicy` ignores `DisruptionTarget`.
pub fn ignoring_disruptions() -> EffectiveSpec {
    use super::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
    let mut s = spec(1, Some(1), 0, false);
    s.pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![PfpRule {
            action: Some(PfpAction::Ignore),
            requirement: Requirement::PodConditions(vec![("DisruptionTarget".into(), "True".into())]),
        }],
    });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    s
}

pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Runs every create/restart action as "started at `now`" and returns the pods that were
/// created, restarted and killed.
pub fn apply(c: &mut Controller, plan: &Plan, now: Time) -> (Vec<PodId>, Vec<PodId>, Vec<PodId>) {
    let (mut created, mut restarted, mut killed) = (vec![], vec![], vec![]);
    for action in &plan.actions {
        match action {
            Action::CreatePod(id) => {
                created.push(*id);
                c.observe(Event::ContainerStarted { pod: *id, at: now });
            }
            Action::RestartContainer(id) => {
                restarted.push(*id);
                c.observe(Event::ContainerStarted { pod: *id, at: now });
            }
            Action::KillPod { pod, .. } => killed.push(*pod),
            Action::StartContainer { .. } | Action::KillContainer { .. } => {
                unreachable!("one container per pod here (see pod_containers_tests.rs)")
            }
        }
    }
    (created, restarted, killed)
}
