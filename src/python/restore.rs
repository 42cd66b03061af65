//! A stored Job's state, from the dict `python/kjob/_store.py` builds, as the controller's
//! [`Prior`] (see `controller/restore.rs`). Times are seconds from the Job's origin.

use super::errors::BindingError;
use crate::controller::restore::{Prior, PriorPod};
use crate::controller::PodPhase;
use crate::status::{ConditionType, IndexSet, Time};
use pyo3::prelude::*;
use serde::Deserialize;

#[derive(Deserialize)]
struct PriorIn {
    succeeded: u32,
    failed: u32,
    completed_indexes: String,
    failed_indexes: Option<String>,
    start_time: Option<f64>,
    completion_time: Option<f64>,
    /// `(type, status, reason, message, lastTransitionTime)`.
    conditions: Vec<(String, bool, String, String, f64)>,
    pods: Vec<PodIn>,
}

#[derive(Deserialize)]
struct PodIn {
    name: String,
    index: Option<u32>,
    phase: String,
    exit_code: Option<i32>,
    reason: Option<String>,
    message: Option<String>,
    created: f64,
    started: Option<f64>,
    finished: Option<f64>,
    deleted: Option<f64>,
    restart_count: u32,
    index_failure_count: u32,
    index_ignored_failure_count: u32,
    attempt: u32,
    /// `(type, reason, message)` of its `True` conditions.
    conditions: Vec<(String, String, String)>,
    node_name: Option<String>,
}

fn time(seconds: f64) -> Time {
    if seconds.is_finite() && seconds > 0.0 {
        Time::from_secs_f64(seconds)
    } else {
        Time::ZERO
    }
}

fn condition_type(name: &str) -> Result<ConditionType, BindingError> {
    Ok(match name {
        "SuccessCriteriaMet" => ConditionType::SuccessCriteriaMet,
        "Complete" => ConditionType::Complete,
        "FailureTarget" => ConditionType::FailureTarget,
        "Failed" => ConditionType::Failed,
        "Suspended" => ConditionType::Suspended,
        other => return Err(BindingError::Shape(format!("stored status: unknown condition type {other:?}"))),
    })
}

fn phase(name: &str) -> Option<PodPhase> {
    match name {
        "Succeeded" => Some(PodPhase::Succeeded),
        "Failed" => Some(PodPhase::Failed),
        "Running" => Some(PodPhase::Running),
        _ => None,
    }
}

/// Reads the dict; `completions` bounds the index sets (as `parseIndexesFromString` does).
pub(super) fn prior_from_py(prior: &Bound<'_, PyAny>, completions: u32) -> Result<Prior, BindingError> {
    let given: PriorIn =
        pythonize::depythonize(prior).map_err(|e| BindingError::Shape(format!("stored state: {e}")))?;
    let conditions = given
        .conditions
        .into_iter()
        .map(|(type_, status, reason, message, at)| {
            Ok((condition_type(&type_)?, status, reason, message, time(at)))
        })
        .collect::<Result<_, BindingError>>()?;
    let pods = given
        .pods
        .into_iter()
        .map(|p| PriorPod {
            phase: phase(&p.phase),
            name: p.name,
            index: p.index,
            exit_code: p.exit_code,
            reason: p.reason,
            message: p.message,
            created_at: time(p.created),
            started_at: p.started.map(time),
            finished_at: p.finished.map(time),
            deletion_requested_at: p.deleted.map(time),
            restart_count: p.restart_count,
            index_failure_count: p.index_failure_count,
            index_ignored_failure_count: p.index_ignored_failure_count,
            attempt: p.attempt,
            conditions: p.conditions,
            node_name: p.node_name,
        })
        .collect();
    Ok(Prior {
        succeeded: given.succeeded,
        failed: given.failed,
        completed_indexes: IndexSet::parse_lenient(&given.completed_indexes, completions),
        failed_indexes: given.failed_indexes.map(|text| IndexSet::parse_lenient(&text, completions)),
        start_time: given.start_time.map(time),
        completion_time: given.completion_time.map(time),
        conditions,
        pods,
    })
}
