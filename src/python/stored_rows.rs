//! What the store records of a running Job's pods and events, as JSON made here, without the
//! GIL: 10,000 pods take milliseconds, where building the Python snapshots and pickling them
//! took a third of a second (issue 15 allows the store 10 % of a 10,000-pod Job's time).
//!
//! The fields are those of `kjob.Pod` and `kjob.Event` (see `snapshots.rs`), times as epoch
//! seconds; `python/kjob/_store.py` reads them back. What pods share (labels, annotations,
//! log files) is written once per list.

use crate::controller::{JobEvent, PodPhase};
use crate::runtime::{PodView, PodViews};
use crate::status::Time;
use serde::Serialize;

#[derive(Serialize)]
struct StoredPods<'a> {
    job_labels: &'a [(String, String)],
    job_annotations: &'a [(String, String)],
    /// The node of pods without one of their own: this machine.
    host: &'a str,
    /// The pods' own labels and annotations follow from their index and failure counts
    /// (`controller::labels`); this says whether the counts are annotations.
    counts_per_index: bool,
    /// Log files, each once: a pod names its file by position (callable pods share one per
    /// worker).
    log_paths: Vec<&'a str>,
    pods: Vec<StoredPod<'a>>,
}

/// A pod as a JSON array (no key repeated 10,000 times), in this order; see
/// `python/kjob/_store.py` `pods_from_json`, which reads it.
#[derive(Serialize)]
struct StoredPod<'a>(
    &'a str,                                        // name
    Option<u32>,                                    // index
    &'static str,                                   // phase
    Option<i32>,                                    // exit_code
    u32,                                            // restart_count
    Option<f64>,                                    // start_time
    Option<f64>,                                    // finish_time
    f64,                                            // creation_time
    Option<f64>,                                    // deletion_time
    &'static str,                                   // counted_as
    usize,                                          // log path, by position
    Option<(u64, u64)>,                             // log_range
    Option<i32>,                                    // pid
    Option<&'a str>,                                // reason
    Option<&'a str>,                                // message
    u32,                                            // index_failure_count
    u32,                                            // index_ignored_failure_count
    u32,                                            // attempt
    Vec<(&'a str, &'static str, &'a str, &'a str)>, // conditions (type, status, reason, message)
    Option<(String, &'a str)>,                      // exception ("<type>: <message>", traceback)
    Vec<(String, i32)>,                             // container_exit_codes
    Option<&'a str>,                                // failed_container
    Option<&'a str>,                                // node_name (None: `host`)
);

fn stored_pod<'a>(v: &'a PodView, log_path: usize, wall: &impl Fn(Time) -> f64) -> StoredPod<'a> {
    let p = &v.pod;
    // As `snapshots.rs`: a running pod's last exit (OnFailure restarts) is history.
    let running = matches!(p.phase, PodPhase::Running | PodPhase::Pending);
    let mut container_exit_codes = Vec::new();
    let mut failed_container = None;
    if let Some(containers) = &p.containers {
        container_exit_codes =
            containers.exit_codes().into_iter().map(|(name, code)| (name.to_string(), code)).collect();
        if p.phase == PodPhase::Failed {
            failed_container =
                containers.outcome().and_then(|(_, i)| i).map(|i| containers.names[i].as_str());
        }
    }
    StoredPod(
        &p.name,
        p.index,
        p.phase.as_str(),
        if running { None } else { p.exit_code },
        p.restart_count,
        p.started_at.map(wall),
        p.finished_at.map(wall),
        wall(p.created_at),
        p.deletion_requested_at.map(wall),
        v.counted_as,
        log_path,
        v.log_range,
        v.pid,
        p.reason.as_deref(),
        p.message.as_deref(),
        p.index_failure_count,
        p.index_ignored_failure_count,
        p.attempt,
        p.conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status_str(), c.reason.as_str(), c.message.as_str()))
            .collect(),
        p.exception.as_ref().map(|e| {
            (format!("{}: {}", e.types.first().map_or("", String::as_str), e.message), e.traceback.as_str())
        }),
        container_exit_codes,
        failed_container,
        p.node_name.as_deref(),
    )
}

/// Every pod, as JSON (see the module's comment).
pub(super) fn pods_json(views: &PodViews, host: &str, wall: impl Fn(Time) -> f64) -> Vec<u8> {
    let mut log_paths: Vec<&str> = Vec::new();
    let mut last: Option<(&std::path::Path, usize)> = None;
    let mut pods = Vec::with_capacity(views.len());
    for v in views.iter() {
        let path: &std::path::Path = &v.log_path;
        // Pods of one worker come in runs: a look at the last path finds most at once.
        let at = match last {
            Some((p, at)) if p == path => at,
            _ => {
                let text = path.to_str().unwrap_or("");
                let at = log_paths.iter().position(|known| *known == text).unwrap_or_else(|| {
                    log_paths.push(text);
                    log_paths.len() - 1
                });
                last = Some((path, at));
                at
            }
        };
        pods.push(stored_pod(v, at, &wall));
    }
    let stored = StoredPods {
        job_labels: &views.job_labels,
        job_annotations: &views.job_annotations,
        host,
        counts_per_index: views.counts_per_index,
        log_paths,
        pods,
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

/// Events numbered from `first`, as JSON `[[seq, type, reason, message, time], ...]`.
pub(super) fn events_json(events: &[JobEvent], first: u64, wall: impl Fn(Time) -> f64) -> Vec<u8> {
    let rows: Vec<_> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            (first + i as u64, e.type_.as_str(), e.reason.as_str(), e.message.as_str(), wall(e.time))
        })
        .collect();
    serde_json::to_vec(&rows).unwrap_or_default()
}
