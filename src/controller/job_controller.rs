//! The Job controller: `syncJob`, `manageJob` and `trackJobStatusAndRemoveFinalizers` of
//! `pkg/controller/job/job_controller.go` (reference §4), plus the small part of the kubelet
//! that a pod needs locally (in-place restarts, §5.1) and the deletion cascade (§6.3).
//!
//! Pure: the runtime feeds [`Event`]s and the current [`Time`] in, and carries out the
//! [`Action`]s that come back. Nothing here reads a clock or touches a process.

use super::backoff::{self, BackoffRecord};
use super::defaults::{EffectiveSpec, PodReplacementPolicy, RestartPolicy};
use super::indexed::first_pending_indexes;
use super::names::{generate_name, generate_name_with_index, SuffixGenerator};
use super::pod::{ContainerState, Pod, PodId, PodPhase};
use crate::status::{ConditionType, IndexSet, JobStatus, Time};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// `MaxPodCreateDeletePerSync`: at most this many creations or deletions per sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT_EXCEEDED: &str = "Job has reached the specified backoff limit";
pub const REASON_COMPLETIONS_REACHED: &str = "CompletionsReached";
pub const MESSAGE_COMPLETIONS_REACHED: &str = "Reached expected number of succeeded pods";
/// Container exit code a container runtime reports when the process could not be started.
pub const START_ERROR_EXIT_CODE: i32 = 128;

/// Something that happened to the Job or one of its pods.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    ContainerStarted {
        pod: PodId,
        at: Time,
    },
    ContainerExited {
        pod: PodId,
        exit_code: i32,
        at: Time,
    },
    /// The process could not be started at all (missing executable, bad working directory).
    ContainerStartFailed {
        pod: PodId,
        message: String,
        at: Time,
    },
    SetSuspend(bool),
}

/// Something the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the first process of a new pod.
    CreatePod(PodId),
    /// Start the pod's process again in place (`restartPolicy: OnFailure`).
    RestartContainer(PodId),
    /// SIGTERM the pod's process group, SIGKILL after `grace` (at once when zero).
    KillPod { pod: PodId, grace: Duration },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Sync again at this time even if nothing happens before.
    pub wake_at: Option<Time>,
}

impl Plan {
    fn wake_no_later_than(&mut self, at: Time) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// A finished criterion found in this sync: interim condition first, terminal one later.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Finish {
    success: bool,
    reason: String,
    message: String,
}

impl Finish {
    fn interim(&self) -> ConditionType {
        if self.success {
            ConditionType::SuccessCriteriaMet
        } else {
            ConditionType::FailureTarget
        }
    }

    fn terminal(&self) -> ConditionType {
        if self.success {
            ConditionType::Complete
        } else {
            ConditionType::Failed
        }
    }
}

/// Pod counts of one sync, adjusted as pods are deleted.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    active: u32,
    ready: u32,
    terminating: u32,
}

pub struct Controller {
    spec: EffectiveSpec,
    status: JobStatus,
    /// Every pod ever created; `PodId(n)` lives at position `n`.
    pods: Vec<Pod>,
    /// Pods the controller still has to look at: not yet counted, or still running.
    unsettled: BTreeSet<PodId>,
    backoff: BackoffRecord,
    names: SuffixGenerator,
    deleting: bool,
    /// Pods this sync asked to stop. Like upstream, which works on the pods it listed before
    /// deleting, the sync that deletes a pod does not yet see it as terminating.
    killed_this_sync: HashSet<PodId>,
}

impl Controller {
    pub fn new(spec: EffectiveSpec) -> Self {
        let names = SuffixGenerator::new(&spec.uid);
        Self {
            spec,
            status: JobStatus::default(),
            pods: Vec::new(),
            unsettled: BTreeSet::new(),
            backoff: BackoffRecord::default(),
            names,
            deleting: false,
            killed_this_sync: HashSet::new(),
        }
    }

    pub fn spec(&self) -> &EffectiveSpec {
        &self.spec
    }

    pub fn status(&self) -> &JobStatus {
        &self.status
    }

    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    pub fn pod(&self, id: PodId) -> Option<&Pod> {
        self.pods.get(id.0 as usize)
    }

    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    pub fn is_deleting(&self) -> bool {
        self.deleting
    }

    /// Whether any pod may still have a process; a deleted Job is gone once this is false.
    pub fn has_live_processes(&self) -> bool {
        self.unsettled
            .iter()
            .any(|id| self.pods[id.0 as usize].has_process())
    }

    /// Folds one event into the controller's view of the world. Call [`Controller::sync`] after
    /// a batch of events.
    pub fn observe(&mut self, event: Event) {
        match event {
            Event::ContainerStarted { pod, at } => {
                let Some(p) = self.pods.get_mut(pod.0 as usize) else {
                    return;
                };
                if p.container != ContainerState::Starting {
                    return;
                }
                p.container = ContainerState::Running;
                if p.phase == PodPhase::Pending {
                    p.phase = PodPhase::Running;
                }
                p.started_at.get_or_insert(at);
                p.ready = true;
                p.ready_since = Some(at);
                p.reason = None;
                p.message = None;
            }
            Event::ContainerExited { pod, exit_code, at } => {
                self.container_terminated(pod, exit_code, None, at);
            }
            Event::ContainerStartFailed { pod, message, at } => {
                let why = Some(("StartError".to_string(), message));
                self.container_terminated(pod, START_ERROR_EXIT_CODE, why, at);
            }
            Event::SetSuspend(suspend) => self.spec.suspend = suspend,
        }
    }

    /// Deletes the Job with its pods (the garbage collector's cascade, §6.3): every pod is
    /// asked to stop; from now on the controller only counts, it never creates or deletes.
    pub fn delete(&mut self, now: Time) -> Plan {
        let mut plan = Plan::default();
        self.deleting = true;
        let mut counts = self.count_pods();
        for id in self.active_pod_ids() {
            self.delete_pod(id, now, &mut counts, &mut plan);
        }
        plan
    }

    /// The kubelet's part: a container ended. With `OnFailure` a failed container restarts in
    /// place after the crash-loop delay, unless its pod is being deleted.
    fn container_terminated(
        &mut self,
        pod: PodId,
        exit_code: i32,
        why: Option<(String, String)>,
        at: Time,
    ) {
        let restart_policy = self.spec.restart_policy;
        let backoff_config = self.spec.backoff;
        let Some(p) = self.pods.get_mut(pod.0 as usize) else {
            return;
        };
        if p.phase.is_terminal() {
            return;
        }
        let (reason, message) = why.map_or((None, None), |(r, m)| (Some(r), Some(m)));
        p.reason = reason;
        p.message = message;
        let restart_in_place = exit_code != 0
            && restart_policy == RestartPolicy::OnFailure
            && p.deletion_requested_at.is_none();
        if !restart_in_place {
            p.terminate(exit_code, at);
            return;
        }
        // A container that ran long enough before failing starts a fresh crash loop.
        let ran = p
            .ready_since
            .map_or(Duration::ZERO, |s| at.saturating_sub(s));
        if ran >= backoff::restart_reset_after(backoff_config) {
            p.restart_streak = 0;
        }
        p.restart_streak += 1;
        p.restart_count += 1;
        p.exit_code = Some(exit_code);
        p.ready = false;
        p.ready_since = None;
        let delay = backoff::restart_delay(backoff_config, p.restart_streak);
        p.container = ContainerState::WaitingRestart { at: at + delay };
    }

    /// One reconcile pass (`syncJob`). Idempotent: calling it again with nothing new observed
    /// and the same time yields no actions.
    pub fn sync(&mut self, now: Time) -> Plan {
        let mut plan = Plan::default();
        if self.status.is_finished() {
            return plan;
        }
        self.killed_this_sync.clear();
        #[cfg(debug_assertions)]
        let before = (
            self.status.succeeded,
            self.status.failed,
            self.status.completion_time,
        );

        if self.status.start_time.is_none() && !self.spec.suspend {
            self.status.start_time = Some(now);
        }

        // Pods that finished since the last sync and have not been counted yet.
        let mut new_succeeded_times = Vec::new();
        let mut new_failed_times = Vec::new();
        let mut succeeded_indexes = self.status.completed_indexes.clone();
        for id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.counted || !self.has_valid_index(pod) {
                continue;
            }
            if pod.phase == PodPhase::Succeeded {
                new_succeeded_times.push(pod.finish_time());
                if let Some(ix) = pod.index {
                    succeeded_indexes.insert(ix);
                }
            } else if self.is_pod_failed(pod) {
                new_failed_times.push(pod.finish_time());
            }
        }
        self.backoff.update(&new_succeeded_times, &new_failed_times);
        let failed = self.status.failed + new_failed_times.len() as u32;
        let succeeded = if self.spec.is_indexed() {
            succeeded_indexes.total() as u32
        } else {
            self.status.succeeded + new_succeeded_times.len() as u32
        };

        let mut finished = self.existing_finish();
        if finished.is_none()
            && (failed > self.spec.backoff_limit || self.past_backoff_limit_on_failure())
        {
            finished = Some(Finish {
                success: false,
                reason: REASON_BACKOFF_LIMIT_EXCEEDED.into(),
                message: MESSAGE_BACKOFF_LIMIT_EXCEEDED.into(),
            });
        }

        let mut counts = self.count_pods();
        if finished.is_some() {
            for id in self.active_pod_ids() {
                self.delete_pod(id, now, &mut counts, &mut plan);
            }
        } else {
            let manage_called = !self.deleting;
            if manage_called {
                self.manage_job(now, succeeded, &succeeded_indexes, &mut counts, &mut plan);
            }
            let complete = match self.spec.completions {
                None => succeeded > 0 && counts.active == 0,
                Some(c) => succeeded >= c && counts.active == 0,
            };
            if complete {
                finished = Some(Finish {
                    success: true,
                    reason: REASON_COMPLETIONS_REACHED.into(),
                    message: MESSAGE_COMPLETIONS_REACHED.into(),
                });
            } else if manage_called {
                self.update_suspended_condition(now);
            }
        }
        self.status.active = counts.active;
        self.status.ready = counts.ready;
        self.status.terminating = counts.terminating;
        self.track_status(now, finished.as_ref());
        self.restart_due_containers(now, &mut plan);

        #[cfg(debug_assertions)]
        self.assert_invariants(before);
        plan
    }

    /// An interim condition recorded by an earlier sync decides the outcome (§3.3).
    fn existing_finish(&self) -> Option<Finish> {
        [
            ConditionType::SuccessCriteriaMet,
            ConditionType::FailureTarget,
        ]
        .into_iter()
        .find_map(|t| self.status.condition(t).filter(|c| c.status))
        .map(|c| Finish {
            success: c.type_ == ConditionType::SuccessCriteriaMet,
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
    }

    /// `pastBackoffLimitOnFailure` (§5.2): restarts of pods still pending or running.
    fn past_backoff_limit_on_failure(&self) -> bool {
        if self.spec.restart_policy != RestartPolicy::OnFailure {
            return false;
        }
        let restarts: u64 = self
            .unsettled
            .iter()
            .map(|id| &self.pods[id.0 as usize])
            .filter(|p| !p.phase.is_terminal())
            .map(|p| u64::from(p.restart_count))
            .sum();
        if self.spec.backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= u64::from(self.spec.backoff_limit)
        }
    }

    /// `isPodFailed`: failed, or (unless only failed pods are replaced) being deleted.
    fn is_pod_failed(&self, pod: &Pod) -> bool {
        if pod.phase == PodPhase::Failed {
            return true;
        }
        if self.spec.pod_replacement_policy == PodReplacementPolicy::Failed {
            return false;
        }
        pod.deletion_requested_at.is_some() && pod.phase != PodPhase::Succeeded
    }

    /// Indexed pods count only with an index below `completions` (`getCompletionIndex`).
    fn has_valid_index(&self, pod: &Pod) -> bool {
        if !self.spec.is_indexed() {
            return true;
        }
        matches!((pod.index, self.spec.completions), (Some(ix), Some(c)) if ix < c)
    }

    fn count_pods(&self) -> Counts {
        let mut counts = Counts::default();
        for id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.is_active() {
                counts.active += 1;
                counts.ready += u32::from(pod.ready);
            } else if pod.is_terminating() {
                counts.terminating += 1;
            }
        }
        counts
    }

    fn active_pod_ids(&self) -> Vec<PodId> {
        self.unsettled
            .iter()
            .copied()
            .filter(|id| self.pods[id.0 as usize].is_active())
            .collect()
    }

    /// Asks a pod to stop (sets its `deletionTimestamp`). A pod with no process (waiting to
    /// restart) is finished on the spot.
    fn delete_pod(&mut self, id: PodId, now: Time, counts: &mut Counts, plan: &mut Plan) {
        let grace = self.spec.termination_grace_period;
        let pod = &mut self.pods[id.0 as usize];
        if pod.deletion_requested_at.is_some() || pod.phase.is_terminal() {
            return;
        }
        counts.active = counts.active.saturating_sub(1);
        counts.ready = counts.ready.saturating_sub(u32::from(pod.ready));
        pod.deletion_requested_at = Some(now);
        self.killed_this_sync.insert(id);
        if pod.has_process() {
            counts.terminating += 1;
            plan.actions.push(Action::KillPod { pod: id, grace });
        } else {
            let code = pod.exit_code.unwrap_or(0).max(1);
            pod.terminate(code, now);
        }
    }

    /// `manageJob` (§4.3): create or delete pods so that `active` matches what the spec wants.
    fn manage_job(
        &mut self,
        now: Time,
        succeeded: u32,
        succeeded_indexes: &IndexSet,
        counts: &mut Counts,
        plan: &mut Plan,
    ) {
        let active_ids = self.active_pod_ids();
        if self.spec.suspend {
            for id in active_ids {
                self.delete_pod(id, now, counts, plan);
            }
            return;
        }
        let active = counts.active;
        let want_active = match self.spec.completions {
            None if succeeded > 0 => active,
            None => self.spec.parallelism,
            Some(c) => c.saturating_sub(succeeded).min(self.spec.parallelism),
        };
        let rm_at_least = active.saturating_sub(want_active) as usize;
        let mut to_delete = self.pods_for_removal(active_ids, rm_at_least);
        to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !to_delete.is_empty() {
            // Deletions take precedence: nothing is created in the same sync.
            for id in to_delete {
                self.delete_pod(id, now, counts, plan);
            }
            return;
        }
        let terminating_for_replacement = match self.spec.pod_replacement_policy {
            PodReplacementPolicy::Failed => counts.terminating,
            PodReplacementPolicy::TerminatingOrFailed => 0,
        };
        let diff =
            i64::from(want_active) - i64::from(terminating_for_replacement) - i64::from(active);
        if diff <= 0 {
            return;
        }
        let remaining = self.backoff.remaining(self.spec.backoff, now);
        if !remaining.is_zero() {
            plan.wake_no_later_than(now + remaining);
            return;
        }
        let mut diff = diff as usize;
        if diff > MAX_POD_CREATE_DELETE_PER_SYNC {
            diff = MAX_POD_CREATE_DELETE_PER_SYNC;
            // The rest is created by the next sync, right away.
            plan.wake_no_later_than(now);
        }
        if self.spec.is_indexed() {
            let completions = self.spec.completions.unwrap_or(0);
            let busy = self.busy_indexes();
            let indexes = first_pending_indexes(diff, completions, succeeded_indexes, None, &busy);
            for ix in indexes {
                self.create_pod(Some(ix), now, counts, plan);
            }
        } else {
            for _ in 0..diff {
                self.create_pod(None, now, counts, plan);
            }
        }
    }

    /// Indexes held by a pod: active pods, and terminating ones when they are not replaced early.
    fn busy_indexes(&self) -> HashSet<u32> {
        let include_terminating = self.spec.pod_replacement_policy == PodReplacementPolicy::Failed;
        self.unsettled
            .iter()
            .map(|id| &self.pods[id.0 as usize])
            .filter(|p| p.is_active() || (include_terminating && p.is_terminating()))
            .filter_map(|p| p.index)
            .collect()
    }

    /// `activePodsForRemoval`: for Indexed Jobs, out-of-range and duplicate-index pods first;
    /// then, to reach `rm_at_least`, pods in `ActivePods` deletion order (§4.7).
    fn pods_for_removal(&self, mut active: Vec<PodId>, rm_at_least: usize) -> Vec<PodId> {
        let mut remove = Vec::new();
        if self.spec.is_indexed() {
            let completions = self.spec.completions.unwrap_or(0);
            let mut by_index: HashMap<u32, Vec<PodId>> = HashMap::new();
            for id in &active {
                match self.pods[id.0 as usize].index {
                    Some(ix) if ix < completions => by_index.entry(ix).or_default().push(*id),
                    _ => remove.push(*id),
                }
            }
            let mut keep = Vec::with_capacity(by_index.len());
            for (_, mut group) in by_index {
                group.sort_by(|a, b| self.deletion_order(*a, *b));
                let best = group.pop().expect("groups are never empty");
                remove.extend(group);
                keep.push(best);
            }
            active = keep;
        }
        if remove.len() < rm_at_least {
            active.sort_by(|a, b| self.deletion_order(*a, *b));
            remove.extend(active.into_iter().take(rm_at_least - remove.len()));
        }
        remove
    }

    /// `controller.ActivePods.Less`: `Less` pods are deleted first.
    fn deletion_order(&self, a: PodId, b: PodId) -> Ordering {
        let (pa, pb) = (&self.pods[a.0 as usize], &self.pods[b.0 as usize]);
        let phase_rank = |p: &Pod| u8::from(p.phase != PodPhase::Pending);
        phase_rank(pa)
            .cmp(&phase_rank(pb))
            .then_with(|| pa.ready.cmp(&pb.ready))
            // Both ready: the one ready for the shorter time (later `ready_since`) goes first.
            .then_with(|| pb.ready_since.cmp(&pa.ready_since))
            .then_with(|| pb.restart_count.cmp(&pa.restart_count))
            .then_with(|| pb.created_at.cmp(&pa.created_at))
            .then_with(|| b.cmp(&a))
    }

    fn create_pod(&mut self, index: Option<u32>, now: Time, counts: &mut Counts, plan: &mut Plan) {
        let id = PodId(self.pods.len() as u64);
        let prefix = match index {
            Some(ix) => generate_name_with_index(&self.spec.name, ix),
            None => generate_name(&self.spec.name),
        };
        let name = format!("{prefix}{}", self.names.suffix());
        self.pods.push(Pod::new(id, name, index, now));
        self.unsettled.insert(id);
        counts.active += 1;
        plan.actions.push(Action::CreatePod(id));
    }

    /// The `Suspended` condition, written only when `manageJob` ran (§6.2).
    fn update_suspended_condition(&mut self, now: Time) {
        if self.spec.suspend {
            self.status.ensure_condition(
                ConditionType::Suspended,
                true,
                "JobSuspended",
                "Job suspended",
                now,
            );
        } else if self.status.ensure_condition(
            ConditionType::Suspended,
            false,
            "JobResumed",
            "Job resumed",
            now,
        ) {
            // Resuming restarts the activeDeadlineSeconds clock.
            self.status.start_time = Some(now);
        }
    }

    /// `trackJobStatusAndRemoveFinalizers` (§4.6): counts finished pods exactly once, then
    /// records the interim condition and, once no pod is terminating, the terminal one.
    fn track_status(&mut self, now: Time, finished: Option<&Finish>) {
        let failing = finished.is_some_and(|f| !f.success);
        let completions = self.spec.completions;
        let indexed = self.spec.is_indexed();
        let ids: Vec<PodId> = self.unsettled.iter().copied().collect();
        for id in ids {
            let pod = &self.pods[id.0 as usize];
            if pod.counted {
                if pod.phase.is_terminal() {
                    self.unsettled.remove(&id);
                }
                continue;
            }
            let consider_failed = self.is_pod_failed(pod) && !self.killed_this_sync.contains(&id);
            let can_count = self.deleting
                || finished.is_some()
                || pod.phase == PodPhase::Succeeded
                || consider_failed;
            if !can_count {
                continue;
            }
            let valid = self.has_valid_index(pod);
            if pod.phase == PodPhase::Succeeded {
                if valid {
                    match pod.index {
                        Some(ix) if indexed => {
                            self.status.completed_indexes.insert(ix);
                        }
                        _ => self.status.succeeded += 1,
                    }
                }
            } else if (consider_failed || failing) && valid {
                // "When the job is considered finished, every non-terminated pod is
                // considered failed."
                self.status.failed += 1;
            }
            let pod = &mut self.pods[id.0 as usize];
            pod.counted = true;
            if pod.phase.is_terminal() {
                self.unsettled.remove(&id);
            }
        }
        if indexed {
            if let Some(c) = completions {
                self.status.completed_indexes.truncate(c);
            }
            self.status.succeeded = self.status.completed_indexes.total() as u32;
        }
        let Some(finish) = finished else { return };
        self.status
            .ensure_condition(finish.interim(), true, &finish.reason, &finish.message, now);
        if self.status.terminating == 0 {
            let terminal = finish.terminal();
            self.status
                .ensure_condition(terminal, true, &finish.reason, &finish.message, now);
            if finish.success {
                self.status.completion_time = Some(now);
            }
        }
    }

    /// The kubelet's part again: containers whose crash-loop delay is over start again.
    fn restart_due_containers(&mut self, now: Time, plan: &mut Plan) {
        for id in &self.unsettled {
            let pod = &mut self.pods[id.0 as usize];
            let ContainerState::WaitingRestart { at } = pod.container else {
                continue;
            };
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

    /// The status invariants the API server enforces (§1.7).
    #[cfg(debug_assertions)]
    fn assert_invariants(&self, before: (u32, u32, Option<Time>)) {
        let s = &self.status;
        debug_assert!(
            !(s.has_true(ConditionType::Complete) && s.has_true(ConditionType::Failed)),
            "cannot set Complete=True and Failed=true conditions"
        );
        debug_assert!(
            !(s.has_true(ConditionType::Complete) && s.has_true(ConditionType::FailureTarget)),
            "cannot be Complete and FailureTarget"
        );
        debug_assert!(s.failed >= before.1, "cannot decrease the failed counter");
        if !self.spec.is_indexed() {
            debug_assert!(s.succeeded >= before.0, "succeeded decreased");
        }
        if before.2.is_some() {
            debug_assert_eq!(
                s.completion_time, before.2,
                "completionTime cannot be updated"
            );
        }
        if let Some(failed) = &s.failed_indexes {
            debug_assert!(
                failed.iter().all(|ix| !s.completed_indexes.contains(ix)),
                "failed and completed indexes overlap"
            );
        }
    }
}

#[cfg(test)]
#[path = "job_controller_tests.rs"]
mod tests;
