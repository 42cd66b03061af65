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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::pod::PodId;
    use crate::controller::test_support::spec;
    use std::time::Duration;

    fn pod(index: Option<u32>, failures: u32, ignored: u32) -> Pod {
        let mut pod = Pod::new(PodId(7), "foobar-x".into(), index, Duration::ZERO);
        pod.index_failure_count = failures;
        pod.index_ignored_failure_count = ignored;
        pod
    }

    fn pairs(entries: &[(&str, &str)]) -> Vec<(String, String)> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn pods_carry_their_jobs_entries_then_their_own() {
        let mut per_index = spec(1, Some(4), 0, true);
        per_index.labels = pairs(&[("job-name", "foobar")]);
        per_index.annotations = pairs(&[("team", "a")]);
        per_index.backoff_limit_per_index = Some(2);
        let indexed = pod(Some(3), 1, 2);
        assert_eq!(
            pod_labels(&per_index, &indexed),
            pairs(&[("job-name", "foobar"), (JOB_COMPLETION_INDEX_KEY, "3")])
        );
        assert_eq!(
            pod_annotations(&per_index, &indexed),
            pairs(&[
                ("team", "a"),
                (JOB_COMPLETION_INDEX_KEY, "3"),
                (JOB_INDEX_FAILURE_COUNT_KEY, "1"),
                (JOB_INDEX_IGNORED_FAILURE_COUNT_KEY, "2"),
            ])
        );
        // The ignored count only when non-zero; no counts without backoffLimitPerIndex.
        let own = |counts: bool, p: &Pod| pod_own_annotations(counts, p).collect::<Vec<_>>();
        assert_eq!(
            own(true, &pod(Some(0), 0, 0)),
            [(JOB_COMPLETION_INDEX_KEY, 0), (JOB_INDEX_FAILURE_COUNT_KEY, 0)]
        );
        assert_eq!(own(false, &indexed), [(JOB_COMPLETION_INDEX_KEY, 3)]);
        // A NonIndexed pod has nothing of its own.
        let plain = pod(None, 0, 0);
        assert_eq!(own(true, &plain), []);
        assert_eq!(pod_own_labels(&plain).count(), 0);
        assert_eq!(pod_labels(&spec(1, None, 0, false), &plain), []);
    }
}
