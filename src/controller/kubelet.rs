//! The kubelet's share of a pod's life that a local runner must play too: container start and
//! exit, in-place restarts for `restartPolicy: OnFailure` (docs/semantics.md §5.1), and the
//! pod-level `activeDeadlineSeconds` (§6.1).

use super::backoff;
use super::defaults::RestartPolicy;
use super::job_controller::{Action, Controller, Plan};
use super::pod::{ContainerState, PodId, PodPhase};
use crate::status::Time;

/// The kubelet's reason and message for a pod that outlived its `activeDeadlineSeconds`.
pub const POD_DEADLINE_REASON: &str = "DeadlineExceeded";
pub const POD_DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

impl Controller {
    pub(super) fn container_started(&mut self, pod: PodId, at: Time) {
        let Some(p) = self.pods.get_mut(pod.0 as usize) else {
            return;
        };
        if p.container != ContainerState::Starting {
            return;
        }
        p.container = ContainerState::Running;
        if p.phase.is_terminal() {
            // Failed (deadline) while starting: the kill is on its way.
            return;
        }
        if p.phase == PodPhase::Pending {
            p.phase = PodPhase::Running;
        }
        p.started_at.get_or_insert(at);
        p.ready = true;
        p.ready_since = Some(at);
        p.reason = None;
        p.message = None;
    }

    /// A container ended. With `OnFailure` a failed container restarts in place after the
    /// crash-loop delay, unless its pod is being deleted.
    pub(super) fn container_terminated(
        &mut self,
        pod: PodId,
        exit_code: i32,
        why: Option<(Option<String>, String)>,
        at: Time,
    ) {
        let restart_policy = self.spec.restart_policy;
        let backoff_config = self.spec.backoff;
        let Some(p) = self.pods.get_mut(pod.0 as usize) else {
            return;
        };
        if p.phase.is_terminal() {
            // Already finished (a pod failed while waiting to restart): only the container's
            // end is news.
            p.container = ContainerState::Terminated;
            p.exit_code.get_or_insert(exit_code);
            return;
        }
        if p.deadline_exceeded {
            // Killed for its deadline: Failed now that its container stopped, whatever the
            // exit code, with the kubelet's reason.
            p.terminate(exit_code, at);
            p.phase = PodPhase::Failed;
            p.reason = Some(POD_DEADLINE_REASON.into());
            p.message = Some(POD_DEADLINE_MESSAGE.into());
            self.note_failed(pod);
            return;
        }
        let (reason, message) = why.map_or((None, None), |(r, m)| (r, Some(m)));
        p.reason = reason;
        p.message = message;
        let restart_in_place =
            exit_code != 0 && restart_policy == RestartPolicy::OnFailure && p.deletion_requested_at.is_none();
        if !restart_in_place {
            p.terminate(exit_code, at);
            if exit_code != 0 {
                self.note_failed(pod);
            }
            return;
        }
        // A container that ran long enough before failing starts a fresh crash loop.
        let ran = p.ready_since.map_or(std::time::Duration::ZERO, |s| at.saturating_sub(s));
        if ran >= backoff::restart_reset_after(backoff_config) {
            p.restart_streak = 0;
        }
        p.restart_streak += 1;
        p.restart_count += 1;
        p.exit_code = Some(exit_code);
        p.ready = false;
        p.ready_since = None;
        let delay = backoff::restart_delay(backoff_config, p.restart_streak);
        p.container = ContainerState::WaitingRestart { at: at.saturating_add(delay) };
    }

    /// Containers whose crash-loop delay is over start again.
    pub(super) fn restart_due_containers(&mut self, now: Time, plan: &mut Plan) {
        // Only OnFailure restarts containers in place: spare Never Jobs the pass over pods.
        if self.spec.restart_policy != RestartPolicy::OnFailure {
            return;
        }
        for id in &self.unsettled {
            let pod = &mut self.pods[id.0 as usize];
            let ContainerState::WaitingRestart { at } = pod.container else {
                continue;
            };
            if pod.containers.is_some() {
                // Its containers restart themselves (`pod_containers.rs`).
                continue;
            }
            if pod.deletion_requested_at.is_some() || pod.phase.is_terminal() {
                continue;
            }
            if at <= now {
                pod.container = ContainerState::Starting;
                plan.actions.push(Action::RestartContainer(*id));
            } else {
                plan.wake_no_later_than(at);
            }
        }
    }

    /// Pods running longer than the template's `activeDeadlineSeconds` fail with reason
    /// `DeadlineExceeded`, and their processes are killed with the grace period.
    pub(super) fn enforce_pod_deadlines(&mut self, now: Time, plan: &mut Plan) {
        let Some(deadline) = self.spec.pod_active_deadline else {
            return;
        };
        // Idle pods are looked at once their deadline has come; until then the earliest of
        // them sets the wake time, as the pass below does for the others.
        for id in self.idle.due_by(now) {
            self.wake(id);
        }
        if let Some(due) = self.idle.next_due() {
            plan.wake_no_later_than(due);
        }
        let grace = self.spec.termination_grace_period;
        let mut failed = Vec::new();
        for id in &self.unsettled {
            let pod = &mut self.pods[id.0 as usize];
            let Some(started) = pod.started_at else {
                continue;
            };
            if pod.phase.is_terminal() || pod.deletion_requested_at.is_some() || pod.deadline_exceeded {
                continue;
            }
            let due = started.saturating_add(deadline);
            if now < due {
                plan.wake_no_later_than(due);
                continue;
            }
            // Since Kubernetes 1.27 the kubelet makes a pod terminal only once its containers
            // have stopped: until then it keeps its slot.
            if pod.has_process() {
                pod.deadline_exceeded = true;
                pod.ready = false;
                plan.actions.push(Action::KillPod { pod: *id, grace });
            } else {
                pod.fail(POD_DEADLINE_REASON, POD_DEADLINE_MESSAGE, now);
                failed.push(*id);
            }
        }
        for id in failed {
            self.note_failed(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::pod::ProcessEnd;
    use super::super::test_support::{apply, secs, spec};
    use super::*;
    use crate::controller::Event;

    /// How a process ended, then the pod's phase, exit code, reason and message.
    type Case = (ProcessEnd, PodPhase, i32, Option<&'static str>, Option<&'static str>);

    /// One pod per case, each ended as the runtime saw it: its phase, exit code, reason and
    /// message as `kjob.Pod` shows them.
    #[test]
    fn a_pod_says_how_its_container_ended() {
        let cases: Vec<Case> = vec![
            (ProcessEnd::Exited(0), PodPhase::Succeeded, 0, None, None),
            (ProcessEnd::Exited(5), PodPhase::Failed, 5, None, Some("exited with code 5")),
            (
                ProcessEnd::Signaled { signal: 11, oom_killed: false },
                PodPhase::Failed,
                139,
                None,
                Some("killed by signal 11 (SIGSEGV)"),
            ),
            // The kubelet's terminated reason for the OOM killer.
            (
                ProcessEnd::Signaled { signal: 9, oom_killed: true },
                PodPhase::Failed,
                137,
                Some("OOMKilled"),
                Some("killed by signal 9 (SIGKILL)"),
            ),
            (
                ProcessEnd::Signaled { signal: 40, oom_killed: false },
                PodPhase::Failed,
                168,
                None,
                Some("killed by signal 40"),
            ),
            // Never a success when the status is unknown (kubelet's ContainerStatusUnknown).
            (
                ProcessEnd::Unknown("exit status lost: test".into()),
                PodPhase::Failed,
                137,
                Some("ContainerStatusUnknown"),
                Some("exit status lost: test"),
            ),
        ];
        for (end, phase, code, reason, message) in cases {
            let mut c = Controller::new(spec(1, Some(1), 0, false));
            let plan = c.sync(secs(0));
            let (created, ..) = apply(&mut c, &plan, secs(0));
            c.observe(Event::ContainerEnded { pod: created[0], end: end.clone(), at: secs(1) });
            let p = c.pod(created[0]).expect("the pod");
            assert_eq!(
                (p.phase, p.exit_code, p.reason.as_deref(), p.message.as_deref()),
                (phase, Some(code), reason, message),
                "{end:?}"
            );
        }
    }

    /// A container restarted in place (`OnFailure`) is ready again once its process runs, as
    /// a container without a readiness probe is on a node (issue 13 §5): `ready` is 0 only
    /// while it waits out its crash-loop delay. Syncs in between let the pod go idle.
    #[test]
    fn a_container_restarted_in_place_is_ready_again() {
        let mut s = spec(1, Some(1), 6, false);
        s.restart_policy = RestartPolicy::OnFailure;
        let mut c = Controller::new(s);
        let plan = c.sync(secs(0));
        let pod = apply(&mut c, &plan, secs(0)).0[0];
        let ready = |c: &mut Controller, at: u64| {
            c.sync(secs(at));
            c.sync(secs(at));
            (c.status().active, c.status().ready, c.pod(pod).map(|p| p.ready))
        };
        assert_eq!(ready(&mut c, 0), (1, 1, Some(true)));
        for (round, exited_at) in [(1u32, 1u64), (2, 30)] {
            c.observe(Event::ContainerExited { pod, exit_code: 1, at: secs(exited_at) });
            assert_eq!(ready(&mut c, exited_at), (1, 0, Some(false)), "waiting to restart ({round})");
            let restart_at = exited_at + 10 * u64::from(round);
            let plan = c.sync(secs(restart_at));
            assert_eq!(plan.actions, vec![Action::RestartContainer(pod)], "restart {round}");
            apply(&mut c, &plan, secs(restart_at));
            assert_eq!(ready(&mut c, restart_at), (1, 1, Some(true)), "running again ({round})");
            assert_eq!(c.pod(pod).unwrap().restart_count, round);
        }
    }
}
