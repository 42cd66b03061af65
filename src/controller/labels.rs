//! Labels and annotations the Job controller puts on its pods (reference §1.2, §4.4).

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

/// Indexed pods carry their completion index as an annotation too.
pub fn pod_annotations(_spec: &EffectiveSpec, pod: &Pod) -> Vec<(String, String)> {
    pod.index
        .map(|ix| vec![(JOB_COMPLETION_INDEX_KEY.to_string(), ix.to_string())])
        .unwrap_or_default()
}
