//! The API server's defaulting of a Job (`SetDefaults_Job`, `pkg/apis/batch/v1/defaults.go`),
//! which runs before validation: a manifest is validated as the cluster stores it. An
//! `onPodConditions` pattern without `status` means `"True"`, an Indexed Job without
//! `completions` nor `parallelism` runs one index, and so on.

use super::Job;

/// A copy of `job` with `SetDefaults_Job`'s defaults filled in.
pub fn with_api_defaults(job: &Job) -> Job {
    let mut job = job.clone();
    let spec = &mut job.spec;
    // A non-parallel Job may leave both unset; both are then 1.
    if spec.completions.is_none() && spec.parallelism.is_none() {
        spec.completions = Some(1);
    }
    spec.parallelism.get_or_insert(1);
    if spec.backoff_limit.is_none() {
        // With per-index limits the global one is effectively off.
        spec.backoff_limit = Some(if spec.backoff_limit_per_index.is_some() { i32::MAX } else { 6 });
    }
    if job.metadata.labels.is_empty() && !spec.template.metadata.labels.is_empty() {
        job.metadata.labels = spec.template.metadata.labels.clone();
    }
    spec.completion_mode.get_or_insert_with(|| "NonIndexed".into());
    spec.suspend.get_or_insert(false);
    if let Some(policy) = &mut spec.pod_failure_policy {
        for rule in &mut policy.rules {
            for pattern in rule.on_pod_conditions.iter_mut().flatten() {
                // `status` is a plain string upstream: unset and "" are the same.
                if pattern.status.as_deref().is_none_or(str::is_empty) {
                    pattern.status = Some("True".into());
                }
            }
        }
    }
    if spec.pod_replacement_policy.is_none() {
        let policy = if spec.pod_failure_policy.is_some() { "Failed" } else { "TerminatingOrFailed" };
        spec.pod_replacement_policy = Some(policy.into());
    }
    job
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{OnPodConditionsPattern, PodFailurePolicy, PodFailurePolicyRule};

    /// `TestSetDefaultJob` (pkg/apis/batch/v1/defaults_test.go): "All unspecified".
    #[test]
    fn all_unspecified() {
        let job = with_api_defaults(&Job::default());
        assert_eq!(job.spec.completions, Some(1));
        assert_eq!(job.spec.parallelism, Some(1));
        assert_eq!(job.spec.backoff_limit, Some(6));
        assert_eq!(job.spec.completion_mode.as_deref(), Some("NonIndexed"));
        assert_eq!(job.spec.suspend, Some(false));
        assert_eq!(job.spec.pod_replacement_policy.as_deref(), Some("TerminatingOrFailed"));
    }

    /// "parallelism set, completions unset": a work queue keeps `completions` nil.
    #[test]
    fn only_parallelism_keeps_completions_unset() {
        let mut job = Job::default();
        job.spec.parallelism = Some(3);
        job.spec.backoff_limit_per_index = Some(1);
        let job = with_api_defaults(&job);
        assert_eq!(job.spec.completions, None);
        assert_eq!(job.spec.backoff_limit, Some(i32::MAX));
    }

    /// "Pod failure policy with some field values unspecified -> set default values".
    #[test]
    fn on_pod_conditions_status_defaults_to_true() {
        let mut job = Job::default();
        let pattern = |status: Option<&str>| OnPodConditionsPattern {
            type_: "DisruptionTarget".into(),
            status: status.map(Into::into),
        };
        job.spec.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PodFailurePolicyRule {
                action: "Ignore".into(),
                on_pod_conditions: Some(vec![pattern(None), pattern(Some("")), pattern(Some("False"))]),
                ..Default::default()
            }],
        });
        let job = with_api_defaults(&job);
        let policy = job.spec.pod_failure_policy.unwrap();
        let statuses: Vec<_> =
            policy.rules[0].on_pod_conditions.iter().flatten().map(|p| p.status.clone().unwrap()).collect();
        assert_eq!(statuses, ["True", "True", "False"]);
        assert_eq!(job.spec.pod_replacement_policy.as_deref(), Some("Failed"));
    }
}
