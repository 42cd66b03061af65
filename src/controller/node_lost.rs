//! Pods of a lost node: PodGC's `gcOrphaned` (`pkg/controller/podgc/gc_controller.go`). A pod
//! bound to a node that no longer exists is patched `Failed` with the condition
//! `DisruptionTarget=True` (reason `DeletionByPodGC`, message `PodGC: node no longer exists`)
//! and force-deleted (grace 0), in `markFailedAndDeletePodWithCondition`. The Job controller
//! then counts it as any failed pod: a `podFailurePolicy` rule on `DisruptionTarget` can
//! ignore it (keep it out of the backoff limit), or fail the Job.
//!
//! A remote executor reports a lost machine (a Dask worker that died, a dropped connection)
//! with [`super::Event::NodeLost`]: the pod's processes are gone with the machine, or are
//! being killed there, so nothing is left to kill from here.

use super::job_controller::Controller;
use super::pod::{ContainerState, PodCondition, PodId, PodPhase};
use crate::status::Time;

/// The `DisruptionTarget` reason PodGC sets on the pods of a node that is gone.
pub const NODE_LOST_REASON: &str = "DeletionByPodGC";
/// The `DisruptionTarget` message PodGC sets on the pods of a node that is gone.
pub const NODE_LOST_MESSAGE: &str = "PodGC: node no longer exists";

impl Controller {
    /// `gcOrphaned` for one pod: `Failed` (unless already terminal) with `DisruptionTarget`,
    /// deleted with grace 0; its containers are gone with the node.
    pub(super) fn node_lost(&mut self, pod: PodId, at: Time) {
        let Some(p) = self.pods.get_mut(pod.0 as usize) else { return };
        p.container = ContainerState::Terminated;
        if let Some(containers) = p.containers.as_deref_mut() {
            containers.node_lost();
        }
        p.deletion_requested_at.get_or_insert(at);
        // `markFailedAndDeletePodWithCondition` patches only pods not yet terminal.
        if p.phase.is_terminal() {
            return;
        }
        p.conditions.push(PodCondition::disruption_target(NODE_LOST_REASON, NODE_LOST_MESSAGE));
        p.phase = PodPhase::Failed;
        p.ready = false;
        p.ready_since = None;
        p.finished_at = Some(at);
        self.note_failed(pod);
    }
}

#[cfg(test)]
mod tests {
    use super::super::defaults::PodReplacementPolicy;
    use super::super::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
    use super::super::job_controller::{Action, Event};
    use super::super::test_support::{apply, secs, spec};
    use super::*;
    use crate::status::ConditionType;
    use std::time::Duration;

    fn disruption_rule(action: PfpAction) -> PodFailurePolicy {
        PodFailurePolicy {
            rules: vec![PfpRule {
                action: Some(action),
                requirement: Requirement::PodConditions(vec![("DisruptionTarget".into(), "True".into())]),
            }],
        }
    }

    fn started(c: &mut Controller) -> Vec<PodId> {
        let plan = c.sync(secs(0));
        apply(c, &plan, secs(0)).0
    }

    /// gc_controller_test.go `TestGCOrphaned`: the orphan ends `Failed` with the condition.
    #[test]
    fn a_lost_node_fails_its_running_pod_with_the_podgc_condition() {
        let mut c = Controller::new(spec(1, Some(1), 6, false));
        let pod = started(&mut c)[0];
        c.observe(Event::Bound { pod, node: "tcp://10.0.0.7:4321".into() });
        c.observe(Event::NodeLost { pod, at: secs(2) });
        let p = c.pod(pod).unwrap();
        assert_eq!(p.phase, PodPhase::Failed);
        assert_eq!(p.node_name.as_deref(), Some("tcp://10.0.0.7:4321"));
        assert_eq!(p.exit_code, None, "no container status: onExitCodes rules cannot match it");
        assert_eq!(p.deletion_requested_at, Some(secs(2)));
        assert!(!p.has_process(), "nothing is left to kill: the node is gone");
        let cond = &p.conditions[0];
        assert_eq!(
            (cond.type_.as_str(), cond.status, cond.reason.as_str(), cond.message.as_str()),
            ("DisruptionTarget", true, "DeletionByPodGC", "PodGC: node no longer exists")
        );
        // Without a pod failure policy the failure counts, and the replacement waits for the
        // backoff delay (10 s after the failure).
        let plan = c.sync(secs(2));
        assert_eq!(c.status().failed, 1);
        assert!(plan.actions.is_empty());
        assert_eq!(plan.wake_at, Some(secs(12)));
        assert!(!c.has_live_processes());
    }

    #[test]
    fn pfp_ignore_on_disruption_target_keeps_a_lost_pod_out_of_the_backoff_limit() {
        let mut s = spec(1, Some(1), 0, false);
        s.pod_failure_policy = Some(disruption_rule(PfpAction::Ignore));
        s.pod_replacement_policy = PodReplacementPolicy::Failed;
        s.backoff.initial = Duration::from_millis(1);
        let mut c = Controller::new(s);
        let pod = started(&mut c)[0];
        c.observe(Event::NodeLost { pod, at: secs(1) });
        let plan = c.sync(secs(1));
        assert_eq!(c.status().failed, 0, "ignored: backoffLimit 0 is not exceeded");
        assert!(!c.is_finished());
        let plan = c.sync(plan.wake_at.unwrap());
        let replacement = apply(&mut c, &plan, secs(2)).0;
        assert_eq!(replacement.len(), 1, "a replacement on another node");
        assert_ne!(replacement[0], pod);
        c.observe(Event::ContainerExited { pod: replacement[0], exit_code: 0, at: secs(3) });
        c.sync(secs(3));
        assert!(c.status().has_true(ConditionType::Complete));
        assert_eq!((c.status().succeeded, c.status().failed), (1, 0));
    }

    #[test]
    fn pfp_fail_job_on_disruption_target_fails_the_job() {
        let mut s = spec(2, Some(2), 6, false);
        s.pod_failure_policy = Some(disruption_rule(PfpAction::FailJob));
        let mut c = Controller::new(s);
        let pods = started(&mut c);
        c.observe(Event::NodeLost { pod: pods[0], at: secs(1) });
        let plan = c.sync(secs(1));
        let name = c.pod(pods[0]).unwrap().name.clone();
        assert_eq!(plan.actions, vec![Action::KillPod { pod: pods[1], grace: secs(30) }]);
        let failure = c.status().condition(ConditionType::FailureTarget).unwrap();
        assert_eq!(
            failure.message,
            format!("Pod default/{name} has condition DisruptionTarget matching FailJob rule at index 0")
        );
    }

    #[test]
    fn a_pending_pod_of_a_lost_node_fails_too_and_a_finished_one_keeps_its_phase() {
        let mut c = Controller::new(spec(2, Some(2), 6, true));
        let plan = c.sync(secs(0));
        let pods: Vec<PodId> = plan
            .actions
            .iter()
            .map(|a| match a {
                Action::CreatePod(p) => *p,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        // pods[0] never started (queued on the lost machine); pods[1] succeeded before.
        c.observe(Event::ContainerStarted { pod: pods[1], at: secs(0) });
        c.observe(Event::ContainerExited { pod: pods[1], exit_code: 0, at: secs(1) });
        c.observe(Event::NodeLost { pod: pods[0], at: secs(2) });
        c.observe(Event::NodeLost { pod: pods[1], at: secs(2) });
        assert_eq!(c.pod(pods[0]).unwrap().phase, PodPhase::Failed);
        assert_eq!(c.pod(pods[1]).unwrap().phase, PodPhase::Succeeded);
        assert!(c.pod(pods[1]).unwrap().conditions.is_empty());
        c.sync(secs(2));
        assert_eq!((c.status().succeeded, c.status().failed), (1, 1));
        assert_eq!(c.status().completed_indexes.to_string(), "1");
        // The same news twice changes nothing.
        c.observe(Event::NodeLost { pod: pods[0], at: secs(3) });
        c.sync(secs(3));
        assert_eq!(c.status().failed, 1);
        assert_eq!(c.pod(pods[0]).unwrap().conditions.len(), 1);
    }
}
