//! Rebuilding a controller from a stored Job: what "resume after a crash" means.
//!
//! A Kubernetes Job outlives its controller: when `kube-controller-manager` restarts, the
//! new controller lists the Job's status and pods and carries on. kjob's store keeps the
//! same facts (the status, every pod), and this module turns them back into a controller:
//!
//! - the status's counters, indexes, start time and conditions are taken as stored (a
//!   deadline keeps counting from the stored start time);
//! - finished pods come back as they were, already counted (their finalizer is gone), so the
//!   next pods' `attempt` and per-index failure counts go on from them;
//! - pods that were active when the owner died are gone with it, as the pods of a node that
//!   no longer exists: PodGC marks them `Failed` with `DisruptionTarget` (`node_lost.rs`),
//!   and the next sync counts them by the normal rules, so a `podFailurePolicy` `Ignore` on
//!   `DisruptionTarget` keeps them out of the backoff count.
//!
//! The backoff record starts empty: replacements are not delayed by failures before the
//! restart (upstream rebuilds its record from pods' finish times; a documented difference).

use super::job_controller::Controller;
use super::pod::{ContainerState, Pod, PodCondition, PodId, PodPhase};
use crate::status::{Condition, ConditionType, IndexSet, Time};

/// A stored pod, as the restored controller needs it.
#[derive(Clone, Debug, Default)]
pub struct PriorPod {
    pub name: String,
    pub index: Option<u32>,
    /// `Succeeded` or `Failed` for a finished pod; anything else was active.
    pub phase: Option<PodPhase>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub created_at: Time,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub deletion_requested_at: Option<Time>,
    pub restart_count: u32,
    pub index_failure_count: u32,
    pub index_ignored_failure_count: u32,
    pub attempt: u32,
    /// `(type, reason, message)` of the pod's `True` conditions (`DisruptionTarget`).
    pub conditions: Vec<(String, String, String)>,
    pub node_name: Option<String>,
}

/// A stored Job's state: its status and its pods, oldest first.
#[derive(Clone, Debug, Default)]
pub struct Prior {
    pub succeeded: u32,
    pub failed: u32,
    pub completed_indexes: IndexSet,
    pub failed_indexes: Option<IndexSet>,
    pub start_time: Option<Time>,
    pub completion_time: Option<Time>,
    /// `(type, status, reason, message, lastTransitionTime)`.
    pub conditions: Vec<(ConditionType, bool, String, String, Time)>,
    pub pods: Vec<PriorPod>,
}

impl Controller {
    /// Takes over a stored Job at `now` (see the module's comment). Call before the first
    /// sync, once the name claim is set.
    pub fn restore(&mut self, prior: Prior, now: Time) {
        self.status.succeeded = prior.succeeded;
        self.status.failed = prior.failed;
        self.status.completed_indexes = prior.completed_indexes;
        if self.spec.backoff_limit_per_index.is_some() {
            self.status.failed_indexes = Some(prior.failed_indexes.unwrap_or_default());
        }
        self.status.start_time = prior.start_time;
        self.status.completion_time = prior.completion_time;
        self.status.conditions = prior
            .conditions
            .into_iter()
            .map(|(type_, status, reason, message, last_transition_time)| Condition {
                type_,
                status,
                reason,
                message,
                last_transition_time,
            })
            .collect();
        let mut lost = Vec::new();
        for prior_pod in prior.pods {
            let id = PodId(self.pods.len() as u64);
            self.reserve_name(&prior_pod.name);
            let finished = matches!(prior_pod.phase, Some(PodPhase::Succeeded | PodPhase::Failed));
            let mut pod = Pod::new(id, prior_pod.name, prior_pod.index, prior_pod.created_at);
            pod.exit_code = prior_pod.exit_code;
            pod.reason = prior_pod.reason;
            pod.message = prior_pod.message;
            pod.started_at = prior_pod.started_at;
            pod.deletion_requested_at = prior_pod.deletion_requested_at;
            pod.restart_count = prior_pod.restart_count;
            pod.index_failure_count = prior_pod.index_failure_count;
            pod.index_ignored_failure_count = prior_pod.index_ignored_failure_count;
            pod.attempt = prior_pod.attempt;
            pod.node_name = prior_pod.node_name.map(Into::into);
            pod.conditions = prior_pod
                .conditions
                .into_iter()
                .map(|(type_, reason, message)| PodCondition { type_, status: true, reason, message })
                .collect();
            if finished {
                pod.phase = prior_pod.phase.unwrap_or(PodPhase::Failed);
                pod.container = ContainerState::Terminated;
                pod.finished_at = prior_pod.finished_at.or(Some(now));
                pod.counted = true;
                let failed = pod.phase == PodPhase::Failed;
                self.pods.push(pod);
                if failed {
                    self.note_failed(id);
                }
            } else {
                // Seen running last; its process died with the owner.
                pod.phase = PodPhase::Running;
                pod.container = ContainerState::Running;
                self.pods.push(pod);
                self.unsettled.insert(id);
                lost.push(id);
            }
        }
        for id in lost {
            self.node_lost(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
    use super::super::job_controller::Event;
    use super::super::test_support::{apply, secs, spec};
    use super::*;
    use crate::controller::{NODE_LOST_MESSAGE, NODE_LOST_REASON};

    fn running(name: &str, index: u32) -> PriorPod {
        PriorPod {
            name: name.into(),
            index: Some(index),
            phase: Some(PodPhase::Running),
            created_at: secs(1),
            started_at: Some(secs(1)),
            ..PriorPod::default()
        }
    }

    fn succeeded(name: &str, index: u32) -> PriorPod {
        PriorPod {
            phase: Some(PodPhase::Succeeded),
            exit_code: Some(0),
            finished_at: Some(secs(2)),
            ..running(name, index)
        }
    }

    /// An Indexed Job of 4 whose owner died with index 0 done and indexes 1 and 2 running.
    fn prior() -> Prior {
        Prior {
            succeeded: 1,
            completed_indexes: IndexSet::from_indexes([0]),
            start_time: Some(secs(1)),
            pods: vec![succeeded("job-0-aaaaa", 0), running("job-1-bbbbb", 1), running("job-2-ccccc", 2)],
            ..Prior::default()
        }
    }

    #[test]
    fn pods_active_at_the_crash_fail_as_pods_of_a_lost_node_and_count_toward_the_backoff_limit() {
        let mut c = Controller::new(spec(2, Some(4), 6, true));
        c.restore(prior(), secs(10));
        let plan = c.sync(secs(10));
        let status = c.status();
        assert_eq!(status.succeeded, 1);
        assert_eq!(status.failed, 2, "gcOrphaned pods are failed pods");
        assert_eq!(status.completed_indexes.to_string(), "0");
        assert_eq!(status.start_time, Some(secs(1)), "the deadline counts from the stored start");
        for name in ["job-1-bbbbb", "job-2-ccccc"] {
            let pod = c.pod_by_name(name).unwrap();
            assert_eq!(pod.phase, PodPhase::Failed);
            let condition = &pod.conditions[0];
            assert_eq!(
                (condition.type_.as_str(), condition.reason.as_str(), condition.message.as_str()),
                ("DisruptionTarget", NODE_LOST_REASON, NODE_LOST_MESSAGE)
            );
        }
        // Indexes 1 and 2 are retried (parallelism 2) once the backoff delay of the two new
        // failures has passed (10 s, doubled per failure), and index 0 is never run again.
        assert!(apply(&mut c, &plan, secs(10)).0.is_empty());
        let later = secs(100);
        let plan = c.sync(later);
        let (created, _, _) = apply(&mut c, &plan, later);
        let indexes: Vec<_> = created.iter().map(|id| c.pod(*id).unwrap().index).collect();
        assert_eq!(indexes, vec![Some(1), Some(2)]);
        assert!(created.iter().all(|id| c.pod(*id).unwrap().attempt == 1));
    }

    #[test]
    fn an_ignore_rule_on_disruption_target_keeps_the_lost_pods_out_of_the_failed_count() {
        let mut s = spec(2, Some(4), 0, true);
        s.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![PfpRule {
                action: Some(PfpAction::Ignore),
                requirement: Requirement::PodConditions(vec![("DisruptionTarget".into(), "True".into())]),
            }],
        });
        let mut c = Controller::new(s);
        c.restore(prior(), secs(10));
        c.sync(secs(10));
        assert_eq!(c.status().failed, 0);
        assert!(!c.is_finished(), "backoffLimit 0 is not exceeded by ignored failures");
    }

    #[test]
    fn a_restored_job_finishes_when_the_remaining_indexes_succeed() {
        let mut c = Controller::new(spec(2, Some(2), 6, true));
        let mut p = prior();
        p.pods.truncate(2);
        c.restore(p, secs(10));
        c.sync(secs(10));
        let plan = c.sync(secs(100));
        let (created, _, _) = apply(&mut c, &plan, secs(100));
        assert_eq!(created.len(), 1);
        c.observe(Event::ContainerExited { pod: created[0], exit_code: 0, at: secs(101) });
        c.sync(secs(101));
        assert!(c.status().has_true(ConditionType::Complete));
        assert_eq!(c.status().succeeded, 2);
        assert_eq!(c.pods().len(), 3, "the stored pods stay in the pod list");
    }
}
