//! Labels and annotations the Job controller puts on its pods (docs/semantics.md §1.2, §4.4).

use super::defaults::EffectiveSpec;
use super::pod::Pod;

pub const JOB_COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The template's labels, the selector labels the API server adds, and for Indexed pods the
/// completion index (`PodIndexLabel`).
pub fn pod_labels(spec: &EffectiveSpec, pod: &Pod) -> Vec<(String, String)> {
    let mut labels = spec.labels.clone();
    if let Some(ix) = pod.index {
        labels.push((JOB_COMPLETION_INDEX_KEY.to_string(), ix.to_string()));
    }
    labels
}

pub const JOB_INDEX_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
pub const JOB_INDEX_IGNORED_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// The template's annotations. Indexed pods carry their completion index as an annotation too; with
/// `backoffLimitPerIndex`, their index's failure count always and the ignored count when
/// non-zero (§4.4).
pub fn pod_annotations(spec: &EffectiveSpec, pod: &Pod) -> Vec<(String, String)> {
    let mut annotations = spec.annotations.clone();
    let Some(ix) = pod.index else { return annotations };
    annotations.push((JOB_COMPLETION_INDEX_KEY.to_string(), ix.to_string()));
    if spec.backoff_limit_per_index.is_some() {
        annotations.push((JOB_INDEX_FAILURE_COUNT_KEY.to_string(), pod.index_failure_count.to_string()));
        if pod.index_ignored_failure_count > 0 {
            annotations.push((
                JOB_INDEX_IGNORED_FAILURE_COUNT_KEY.to_string(),
                pod.index_ignored_failure_count.to_string(),
            ));
        }
    }
    annotations
}
