//! Labels and annotations the Job controller puts on its pods (docs/semantics.md §1.2, §4.4).

use super::defaults::EffectiveSpec;
use super::pod::Pod;

pub const JOB_COMPLETION_INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";

/// The template's labels, the selector labels the API server adds, and for Indexed pods the
/// completion index (`PodIndexLabel`).
pub fn pod_labels(spec: &EffectiveSpec, pod: &Pod) -> Vec<(String, String)> {
    with_own(&spec.labels, pod_own_labels(pod))
}

/// The labels a pod carries besides its Job's (`spec.labels`), with numbers for values: a
/// reader of many pods shares the Job's and adds these, without allocating per pod.
pub fn pod_own_labels(pod: &Pod) -> impl Iterator<Item = (&'static str, u32)> {
    pod.index.map(|ix| (JOB_COMPLETION_INDEX_KEY, ix)).into_iter()
}

fn with_own(
    shared: &[(String, String)],
    own: impl Iterator<Item = (&'static str, u32)>,
) -> Vec<(String, String)> {
    let mut entries = shared.to_vec();
    entries.extend(own.map(|(key, value)| (key.to_string(), value.to_string())));
    entries
}

pub const JOB_INDEX_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
pub const JOB_INDEX_IGNORED_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// The template's annotations. Indexed pods carry their completion index as an annotation too; with
/// `backoffLimitPerIndex`, their index's failure count always and the ignored count when
/// non-zero (§4.4).
pub fn pod_annotations(spec: &EffectiveSpec, pod: &Pod) -> Vec<(String, String)> {
    with_own(&spec.annotations, pod_own_annotations(spec.backoff_limit_per_index.is_some(), pod))
}

/// The annotations a pod carries besides its Job's (`spec.annotations`), as
/// [`pod_own_labels`]; `counts_per_index` is whether the Job sets `backoffLimitPerIndex`.
pub fn pod_own_annotations(counts_per_index: bool, pod: &Pod) -> impl Iterator<Item = (&'static str, u32)> {
    let counts = counts_per_index && pod.index.is_some();
    let ignored = pod.index_ignored_failure_count;
    pod.index
        .map(|ix| (JOB_COMPLETION_INDEX_KEY, ix))
        .into_iter()
        .chain(counts.then_some((JOB_INDEX_FAILURE_COUNT_KEY, pod.index_failure_count)))
        .chain((counts && ignored > 0).then_some((JOB_INDEX_IGNORED_FAILURE_COUNT_KEY, ignored)))
}
