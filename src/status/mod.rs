//! `JobStatus` and conditions, as the controller reports them (docs/semantics.md §2, §3).

mod index_set;

pub use index_set::{IndexSet, Interval};

use std::time::Duration;

/// A point in time, measured from the Job's own origin (its creation). The controller never
/// reads a clock: the runtime passes these in and maps them to wall-clock time for display.
pub type Time = Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConditionType {
    SuccessCriteriaMet,
    Complete,
    FailureTarget,
    Failed,
    Suspended,
}

impl ConditionType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuccessCriteriaMet => "SuccessCriteriaMet",
            Self::Complete => "Complete",
            Self::FailureTarget => "FailureTarget",
            Self::Failed => "Failed",
            Self::Suspended => "Suspended",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: ConditionType,
    /// `True` or `False`; kjob never produces `Unknown`.
    pub status: bool,
    pub reason: String,
    pub message: String,
    pub last_transition_time: Time,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobStatus {
    pub conditions: Vec<Condition>,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    pub active: u32,
    pub ready: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub terminating: u32,
    /// Indexed Jobs only; empty otherwise.
    pub completed_indexes: IndexSet,
    /// Set only when `backoffLimitPerIndex` is set, as in Kubernetes.
    pub failed_indexes: Option<IndexSet>,
}

impl JobStatus {
    pub fn condition(&self, type_: ConditionType) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether a condition of this type is present with status `True`.
    pub fn has_true(&self, type_: ConditionType) -> bool {
        self.condition(type_).is_some_and(|c| c.status)
    }

    /// `IsJobFinished`: `Complete=True` or `Failed=True`.
    pub fn is_finished(&self) -> bool {
        self.has_true(ConditionType::Complete) || self.has_true(ConditionType::Failed)
    }

    /// `ensureJobConditionStatus` (§3.2): update a condition in place when anything changed,
    /// append a new one only when its status is `True`. Returns whether the list changed.
    pub fn ensure_condition(
        &mut self,
        type_: ConditionType,
        status: bool,
        reason: &str,
        message: &str,
        now: Time,
    ) -> bool {
        let fresh = Condition {
            type_,
            status,
            reason: reason.to_string(),
            message: message.to_string(),
            last_transition_time: now,
        };
        if let Some(existing) = self.conditions.iter_mut().find(|c| c.type_ == type_) {
            if existing.status != status || existing.reason != reason || existing.message != message {
                *existing = fresh;
                return true;
            }
            return false;
        }
        if status {
            self.conditions.push(fresh);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_condition_never_appends_false_and_updates_in_place() {
        let mut status = JobStatus::default();
        let t = Duration::from_secs(1);
        assert!(!status.ensure_condition(ConditionType::Suspended, false, "JobResumed", "Job resumed", t));
        assert!(status.conditions.is_empty());
        assert!(status.ensure_condition(ConditionType::Suspended, true, "JobSuspended", "Job suspended", t));
        assert!(!status.ensure_condition(
            ConditionType::Suspended,
            true,
            "JobSuspended",
            "Job suspended",
            t * 2
        ));
        assert_eq!(status.conditions[0].last_transition_time, t);
        assert!(status.ensure_condition(ConditionType::Suspended, false, "JobResumed", "Job resumed", t * 3));
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].reason, "JobResumed");
        assert_eq!(status.conditions[0].last_transition_time, t * 3);
    }
}
