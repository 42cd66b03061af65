//! The kubelet's life of a pod with several containers (docs/semantics.md §5.1, KEP-753):
//! init containers in order, each to success; native sidecars (init containers with
//! `restartPolicy: Always`) started in order before what follows them, kept running, restarted
//! when they exit, and stopped once every main container has ended; then every main container
//! together. The pod's phase follows the kubelet's `getPhase`: `Succeeded` once every main
//! container exited 0, `Failed` when one failed under `restartPolicy: Never`.
//!
//! A pod with one container (the common case) has no [`PodContainers`]: `kubelet.rs` runs it.
//! This module is the per-pod state machine ([`PodContainers`], pure and clocked by the
//! caller) and the controller's glue that feeds it container events and turns what it wants
//! into [`Action`]s.
//!
//! One deliberate difference (README, "Differences from Kubernetes"): when a container fails
//! under `restartPolicy: Never`, the kubelet lets the others run to their end; kjob stops them
//! (SIGTERM, then the grace period), so that a pod whose work has failed does not hold its slot
//! for a helper that never exits.

use super::backoff;
use super::defaults::{BackoffConfig, RestartPolicy};
use super::job_controller::{Action, Controller, Event, Plan, START_ERROR_EXIT_CODE};
use super::kubelet::{POD_DEADLINE_MESSAGE, POD_DEADLINE_REASON};
use super::pod::{ContainerState, PodId, PodPhase};
use crate::status::Time;
use std::sync::Arc;
use std::time::Duration;

/// What part a container plays in its pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerKind {
    /// An init container: runs to success before anything after it starts.
    Init,
    /// An init container with `restartPolicy: Always`: a native sidecar.
    Sidecar,
    /// One of the pod's `containers`.
    Main,
}

/// Where one container is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Not started yet (its turn has not come).
    Waiting,
    /// A process was asked for and has not been reported started yet.
    Starting,
    Running,
    /// Waiting for its crash-loop delay before it starts again in place.
    WaitingRestart {
        at: Time,
    },
    Terminated,
}

/// One container's status, as `kubectl get pod -o yaml` shows it in `containerStatuses`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerStatus {
    pub state: RunState,
    /// The exit code of its last termination (`128 + signal` for a signal).
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub restart_count: u32,
    /// Consecutive quick crashes, which set the next restart delay.
    streak: u32,
    running_since: Option<Time>,
    /// The kubelet stopped it (a sidecar after the main containers, the pod failing or being
    /// deleted): it is not restarted, whatever its exit code.
    stop_requested: bool,
}

impl ContainerStatus {
    fn new() -> Self {
        Self {
            state: RunState::Waiting,
            exit_code: None,
            reason: None,
            message: None,
            restart_count: 0,
            streak: 0,
            running_since: None,
            stop_requested: false,
        }
    }

    fn has_process(&self) -> bool {
        matches!(self.state, RunState::Starting | RunState::Running)
    }

    /// Terminated with a non-zero code.
    fn failed(&self) -> bool {
        self.state == RunState::Terminated && self.exit_code.is_some_and(|c| c != 0)
    }
}

/// What the pod's containers need from the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerAction {
    Start(usize),
    Stop(usize),
}

/// How a container ended, as the controller's events say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEnd {
    pub exit_code: i32,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// The containers of one pod: their kinds (init containers first, in order, then the main
/// ones; shared by every pod of the Job) and their statuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodContainers {
    pub kinds: Arc<[ContainerKind]>,
    pub names: Arc<[String]>,
    pub statuses: Vec<ContainerStatus>,
    /// The container whose failure (under `Never`) fails the pod.
    pub failed: Option<usize>,
    /// The pod stops (deleted, out of time, failed): nothing starts any more.
    stopping: bool,
}

impl PodContainers {
    pub fn new(kinds: Arc<[ContainerKind]>, names: Arc<[String]>) -> Self {
        let statuses = kinds.iter().map(|_| ContainerStatus::new()).collect();
        Self { kinds, names, statuses, failed: None, stopping: false }
    }

    fn mains(&self) -> impl Iterator<Item = (usize, &ContainerStatus)> {
        self.statuses.iter().enumerate().filter(|(i, _)| self.kinds[*i] == ContainerKind::Main)
    }

    /// Every main container has ended for good: the sidecars' work is done.
    fn mains_done(&self) -> bool {
        self.mains().all(|(_, s)| s.state == RunState::Terminated)
    }

    /// Whether any container has a process (that must be killed rather than just marked).
    pub fn has_process(&self) -> bool {
        self.statuses.iter().any(ContainerStatus::has_process)
    }

    /// The pod's node is gone (`node_lost.rs`): so is every process, and nothing starts again.
    pub fn node_lost(&mut self) {
        self.stopping = true;
        for status in &mut self.statuses {
            if status.state != RunState::Waiting {
                status.state = RunState::Terminated;
            }
        }
    }

    /// A main container has started: the pod is initialised (`Running`).
    pub fn initialized(&self) -> bool {
        self.mains().any(|(_, s)| s.state != RunState::Waiting)
    }

    /// Ready as a pod without probes is: every main container and sidecar runs.
    pub fn ready(&self) -> bool {
        self.statuses
            .iter()
            .zip(self.kinds.iter())
            .filter(|(_, k)| **k != ContainerKind::Init)
            .all(|(s, _)| s.state == RunState::Running)
    }

    /// Restarts of every container (`pastBackoffLimitOnFailure` sums init and main ones).
    pub fn restart_count(&self) -> u32 {
        self.statuses.iter().map(|s| s.restart_count).sum()
    }

    /// The earliest pending in-place restart, for the pod's aggregate state.
    fn next_restart(&self) -> Option<Time> {
        self.statuses
            .iter()
            .filter_map(|s| match s.state {
                RunState::WaitingRestart { at } => Some(at),
                _ => None,
            })
            .min()
    }

    /// What is to start or stop now (the kubelet's `computePodActions`): in-place restarts
    /// that are due, the next init container or sidecar, the main containers, and the stop
    /// of the sidecars (or of every container of a failing pod). `wake` gets the next
    /// restart time.
    pub fn advance(&mut self, now: Time, wake: &mut Option<Time>) -> Vec<ContainerAction> {
        let mut actions = Vec::new();
        if self.stopping {
            self.stop_all(&mut actions);
            return actions;
        }
        let mains_done = self.mains_done();
        for i in 0..self.statuses.len() {
            let sidecar = self.kinds[i] == ContainerKind::Sidecar;
            let status = &mut self.statuses[i];
            if let RunState::WaitingRestart { at } = status.state {
                if sidecar && mains_done {
                    status.state = RunState::Terminated;
                } else if at <= now {
                    status.state = RunState::Starting;
                    actions.push(ContainerAction::Start(i));
                } else {
                    *wake = Some(wake.map_or(at, |w| w.min(at)));
                }
            }
        }
        // Init containers and sidecars in order: each waits for the one before it to have
        // succeeded (an init container) or started (a sidecar).
        let mut initialized = true;
        for i in 0..self.statuses.len() {
            let status = &mut self.statuses[i];
            let ready_to_go_on = match self.kinds[i] {
                ContainerKind::Main => continue,
                ContainerKind::Sidecar => !matches!(status.state, RunState::Waiting | RunState::Starting),
                ContainerKind::Init => status.state == RunState::Terminated && status.exit_code == Some(0),
            };
            if status.state == RunState::Waiting {
                status.state = RunState::Starting;
                actions.push(ContainerAction::Start(i));
            }
            if !ready_to_go_on {
                initialized = false;
                break;
            }
        }
        if initialized {
            for i in 0..self.statuses.len() {
                if self.kinds[i] == ContainerKind::Main && self.statuses[i].state == RunState::Waiting {
                    self.statuses[i].state = RunState::Starting;
                    actions.push(ContainerAction::Start(i));
                }
            }
        }
        if self.mains_done() {
            // The main containers are done: the sidecars are stopped, in reverse order of
            // their start (KEP-753), and none restarts.
            for i in (0..self.statuses.len()).rev() {
                if self.kinds[i] == ContainerKind::Sidecar {
                    self.stop(i, &mut actions);
                }
            }
        }
        actions
    }

    /// Stops every container that may have a process; none starts again.
    fn stop_all(&mut self, actions: &mut Vec<ContainerAction>) {
        for i in (0..self.statuses.len()).rev() {
            self.stop(i, actions);
        }
    }

    fn stop(&mut self, i: usize, actions: &mut Vec<ContainerAction>) {
        let status = &mut self.statuses[i];
        match status.state {
            RunState::Starting | RunState::Running if !status.stop_requested => {
                status.stop_requested = true;
                actions.push(ContainerAction::Stop(i));
            }
            RunState::WaitingRestart { .. } => status.state = RunState::Terminated,
            _ => {}
        }
    }

    /// The pod is being deleted or killed for its deadline: the runtime kills every process;
    /// nothing starts any more.
    pub fn stop_pod(&mut self) {
        self.stopping = true;
        for status in &mut self.statuses {
            if status.has_process() {
                status.stop_requested = true;
            }
            if matches!(status.state, RunState::WaitingRestart { .. } | RunState::Waiting) {
                status.state = RunState::Terminated;
            }
        }
    }

    pub fn started(&mut self, i: usize, at: Time) {
        let Some(status) = self.statuses.get_mut(i) else { return };
        if status.state == RunState::Starting {
            status.state = RunState::Running;
            status.running_since = Some(at);
        }
    }

    /// A container ended. Under `OnFailure` a failed init or main container restarts in place
    /// after the crash-loop delay, and a sidecar restarts whatever its exit code; under
    /// `Never` a failed one fails the pod.
    pub fn ended(
        &mut self,
        i: usize,
        end: ContainerEnd,
        at: Time,
        policy: RestartPolicy,
        config: BackoffConfig,
    ) {
        let kind = self.kinds.get(i).copied();
        let stopping = self.stopping;
        let mains_done = self.mains_done();
        let Some(status) = self.statuses.get_mut(i) else { return };
        status.exit_code = Some(end.exit_code);
        status.reason = end.reason;
        status.message = end.message;
        let ran = status.running_since.take().map_or(Duration::ZERO, |s| at.saturating_sub(s));
        let restart = match kind {
            _ if status.stop_requested || stopping => false,
            Some(ContainerKind::Sidecar) => !mains_done,
            Some(_) => end.exit_code != 0 && policy == RestartPolicy::OnFailure,
            None => false,
        };
        if !restart {
            status.state = RunState::Terminated;
            if end.exit_code != 0 && kind != Some(ContainerKind::Sidecar) && !status.stop_requested {
                // `Never`: the pod fails; the others are stopped by the next `advance`, and
                // those not started yet never start.
                self.failed.get_or_insert(i);
                self.stopping = true;
                for status in &mut self.statuses {
                    if status.state == RunState::Waiting {
                        status.state = RunState::Terminated;
                    }
                }
            }
            return;
        }
        if ran >= backoff::restart_reset_after(config) {
            status.streak = 0;
        }
        status.streak += 1;
        status.restart_count += 1;
        status.state =
            RunState::WaitingRestart { at: at.saturating_add(backoff::restart_delay(config, status.streak)) };
    }

    /// The start was called off before the process existed (the pod was deleted meanwhile).
    pub fn cancelled(&mut self, i: usize) {
        if let Some(status) = self.statuses.get_mut(i) {
            status.state = RunState::Terminated;
        }
    }

    /// The pod's final phase and the container that decided it, once no process is left:
    /// `Failed` by the failed container (or, for a pod stopped from outside, the first
    /// container with a non-zero exit, main containers first), `Succeeded` when every main
    /// container exited 0.
    pub fn outcome(&self) -> Option<(PodPhase, Option<usize>)> {
        if self.has_process() {
            return None;
        }
        if let Some(i) = self.failed {
            return Some((PodPhase::Failed, Some(i)));
        }
        let all_mains_succeeded =
            self.mains().all(|(_, s)| s.state == RunState::Terminated && s.exit_code == Some(0));
        if all_mains_succeeded {
            return Some((PodPhase::Succeeded, None));
        }
        if !self.stopping {
            return None;
        }
        let first_failed = self
            .mains()
            .map(|(i, _)| i)
            .chain((0..self.statuses.len()).filter(|i| self.kinds[*i] != ContainerKind::Main))
            .find(|i| self.statuses[*i].failed());
        Some((PodPhase::Failed, first_failed))
    }

    /// Each terminated container's last exit code, by name (`Pod.container_exit_codes`).
    pub fn exit_codes(&self) -> Vec<(&str, i32)> {
        self.names
            .iter()
            .zip(&self.statuses)
            .filter_map(|(name, s)| s.exit_code.map(|c| (name.as_str(), c)))
            .collect()
    }
}

impl Controller {
    /// Folds an event about container `container` of a pod that has several.
    pub(super) fn observe_container(&mut self, container: usize, event: Event) {
        let policy = self.spec.restart_policy;
        let config = self.spec.backoff;
        let (pod, end, at) = match event {
            Event::ContainerStarted { pod, at } => {
                self.container_of_pod_started(pod, container, at);
                return;
            }
            Event::ContainerExited { pod, exit_code, at } => {
                (pod, ContainerEnd { exit_code, reason: None, message: None }, at)
            }
            Event::ContainerEnded { pod, end, at } => (
                pod,
                ContainerEnd {
                    exit_code: end.exit_code(),
                    reason: end.reason().map(String::from),
                    message: end.message(),
                },
                at,
            ),
            Event::ContainerFailed { pod, exit_code, reason, message, at } => {
                (pod, ContainerEnd { exit_code, reason: Some(reason), message: Some(message) }, at)
            }
            Event::ContainerStartFailed { pod, message, at } => (
                pod,
                ContainerEnd {
                    exit_code: START_ERROR_EXIT_CODE,
                    reason: Some("StartError".into()),
                    message: Some(message),
                },
                at,
            ),
            Event::ContainerCancelled { pod, at } => {
                if let Some(c) = self.pod_containers_mut(pod) {
                    c.cancelled(container);
                }
                self.settle_pod_containers(pod, at);
                return;
            }
            Event::ContainerRaised { .. }
            | Event::SetSuspend(_)
            | Event::OfContainer { .. }
            | Event::Bound { .. }
            | Event::NodeLost { .. } => return,
        };
        let Some(p) = self.pods.get_mut(pod.0 as usize) else { return };
        let stopping = p.deletion_requested_at.is_some() || p.deadline_exceeded || p.phase.is_terminal();
        let Some(c) = p.containers.as_deref_mut() else { return };
        if stopping {
            // Killed with its pod: not restarted, not the pod's failure.
            c.stop_pod();
        }
        c.ended(container, end, at, policy, config);
        self.settle_pod_containers(pod, at);
    }

    fn pod_containers_mut(&mut self, pod: PodId) -> Option<&mut PodContainers> {
        self.pods.get_mut(pod.0 as usize)?.containers.as_deref_mut()
    }

    fn container_of_pod_started(&mut self, pod: PodId, container: usize, at: Time) {
        let Some(p) = self.pods.get_mut(pod.0 as usize) else { return };
        let Some(c) = p.containers.as_deref_mut() else { return };
        c.started(container, at);
        // `status.startTime`: when the kubelet began running the pod.
        p.started_at.get_or_insert(at);
        p.container = ContainerState::Running;
        if p.phase.is_terminal() {
            return;
        }
        if c.initialized() {
            p.phase = PodPhase::Running;
        }
        let ready = c.ready();
        if ready && !p.ready {
            p.ready_since = Some(at);
        }
        p.ready = ready;
    }

    /// Brings the pod's own fields in line with its containers: restarts, readiness, and the
    /// terminal phase once no process is left.
    fn settle_pod_containers(&mut self, pod: PodId, at: Time) {
        let Some(p) = self.pods.get_mut(pod.0 as usize) else { return };
        let Some(c) = p.containers.as_deref() else { return };
        p.restart_count = c.restart_count();
        p.ready = c.ready() && !p.phase.is_terminal();
        if !p.ready {
            p.ready_since = None;
        }
        // The pod's own state says only whether a process may exist (and so must be killed):
        // between two containers, or waiting for a restart, none does. The containers time
        // their own restarts (`kubelet.rs` leaves these pods alone).
        p.container = if c.has_process() {
            ContainerState::Running
        } else if p.phase.is_terminal() {
            ContainerState::Terminated
        } else {
            ContainerState::WaitingRestart { at: c.next_restart().unwrap_or(at) }
        };
        if p.phase.is_terminal() {
            return;
        }
        let Some((phase, decided_by)) = c.outcome() else { return };
        let status = decided_by.map(|i| &c.statuses[i]);
        let exit_code =
            status.and_then(|s| s.exit_code).unwrap_or(if phase == PodPhase::Succeeded { 0 } else { 1 });
        let (reason, message) = status.map_or((None, None), |s| (s.reason.clone(), s.message.clone()));
        p.terminate(exit_code, at);
        p.phase = phase;
        p.reason = reason;
        p.message = message;
        if p.deadline_exceeded {
            p.phase = PodPhase::Failed;
            p.reason = Some(POD_DEADLINE_REASON.into());
            p.message = Some(POD_DEADLINE_MESSAGE.into());
        }
        if p.phase == PodPhase::Failed {
            self.note_failed(pod);
        }
    }

    /// Every sync: what the pods with several containers must start or stop.
    pub(super) fn advance_pod_containers(&mut self, now: Time, plan: &mut Plan) {
        if !self.spec.has_several_containers() {
            return;
        }
        let grace = self.spec.termination_grace_period;
        let ids: Vec<PodId> = self.unsettled.iter().copied().collect();
        for id in ids {
            let p = &mut self.pods[id.0 as usize];
            let Some(c) = p.containers.as_deref_mut() else { continue };
            if p.phase.is_terminal() && !c.has_process() {
                continue;
            }
            if p.deletion_requested_at.is_some() || p.deadline_exceeded || p.phase.is_terminal() {
                // The runtime kills the whole pod (`KillPod`); nothing starts again.
                c.stop_pod();
            }
            let mut wake = None;
            for action in c.advance(now, &mut wake) {
                plan.actions.push(match action {
                    ContainerAction::Start(container) => Action::StartContainer { pod: id, container },
                    ContainerAction::Stop(container) => Action::KillContainer { pod: id, container, grace },
                });
            }
            if let Some(at) = wake {
                plan.wake_no_later_than(at);
            }
            self.settle_pod_containers(id, now);
        }
    }

    /// A new pod of a Job with several containers: its container machine.
    pub(super) fn new_pod_containers(&self) -> Option<Box<PodContainers>> {
        let layout = self.spec.container_layout.as_ref()?;
        Some(Box::new(PodContainers::new(Arc::clone(&layout.kinds), Arc::clone(&layout.names))))
    }
}

#[cfg(test)]
#[path = "pod_containers_tests.rs"]
mod tests;
