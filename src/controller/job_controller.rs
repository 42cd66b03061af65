//! The Job controller: `syncJob`, `manageJob` and `trackJobStatusAndRemoveFinalizers` of
//! `pkg/controller/job/job_controller.go` (docs/semantics.md §4–§7), the deletion cascade
//! (§6.3) and the TTL-after-finished controller (§6.4). The kubelet's share lives in
//! `kubelet.rs`.
//!
//! Pure: the runtime feeds [`Event`]s and the current [`Time`] in, and carries out the
//! [`Action`]s that come back. Nothing here reads a clock or touches a process.

use super::backoff::{self, BackoffRecord};
use super::defaults::{EffectiveSpec, PodReplacementPolicy, RestartPolicy};
use super::env_sources::{CREATE_CONTAINER_CONFIG_ERROR, FAILED_TO_CREATE_CONTAINER};
use super::events::{EventLog, EventType};
use super::failure_policy::{match_pod_failure_policy, PfpAction, PfpMatch};
use super::idle::{idle_index_bound, IdlePods};
use super::indexed::{first_pending_indexes, IndexBits};
use super::names::{generate_name, generate_name_with_index, NameClaim, SuffixGenerator, UsedNames};
use super::pod::{ContainerState, Pod, PodCondition, PodException, PodId, PodPhase, ProcessEnd};
use super::success_policy::{match_success_policy, REASON_SUCCESS_POLICY};
use crate::spec::FieldErrors;
use crate::status::{ConditionType, IndexSet, JobStatus, Time};
use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

/// `MaxPodCreateDeletePerSync`: at most this many creations or deletions per sync.
const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

pub const REASON_BACKOFF_LIMIT_EXCEEDED: &str = "BackoffLimitExceeded";
pub const MESSAGE_BACKOFF_LIMIT_EXCEEDED: &str = "Job has reached the specified backoff limit";
pub const REASON_DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
pub const MESSAGE_DEADLINE_EXCEEDED: &str = "Job was active longer than specified deadline";
pub const REASON_POD_FAILURE_POLICY: &str = "PodFailurePolicy";
pub const REASON_MAX_FAILED_INDEXES_EXCEEDED: &str = "MaxFailedIndexesExceeded";
pub const MESSAGE_MAX_FAILED_INDEXES_EXCEEDED: &str =
    "Job has exceeded the specified maximal number of failed indexes";
pub const REASON_FAILED_INDEXES: &str = "FailedIndexes";
pub const MESSAGE_FAILED_INDEXES: &str = "Job has failed indexes";
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
    /// The container exited with this code (`128 + signal` when a signal ended it). The
    /// runtime reports what it saw with [`Event::ContainerEnded`]; this shorter form remains
    /// for callers that only know a code.
    ContainerExited {
        pod: PodId,
        exit_code: i32,
        at: Time,
    },
    /// The container's process ended as `end` says: the pod gets its exit code, and a message
    /// (and, for `OOMKilled` or a lost status, a reason) saying how it ended.
    ContainerEnded {
        pod: PodId,
        end: ProcessEnd,
        at: Time,
    },
    /// The container ended with this code for a reason the runtime can say in words (a
    /// callable pod whose return value could not be sent back).
    ContainerFailed {
        pod: PodId,
        exit_code: i32,
        reason: String,
        message: String,
        at: Time,
    },
    /// The process could not be started at all (missing executable, bad working directory).
    ContainerStartFailed {
        pod: PodId,
        message: String,
        at: Time,
    },
    /// The pod was deleted before its container ever started (a queued callable pod).
    ContainerCancelled {
        pod: PodId,
        at: Time,
    },
    /// A callable pod raised: recorded before its `ContainerExited`.
    ContainerRaised {
        pod: PodId,
        exception: PodException,
    },
    SetSuspend(bool),
    /// The pod was placed on a node (`spec.nodeName`): a remote executor's machine.
    Bound {
        pod: PodId,
        node: std::sync::Arc<str>,
    },
    /// The pod's node is gone (a remote machine died or lost its connection): PodGC fails the
    /// pod with `DisruptionTarget` and force-deletes it (see `node_lost.rs`).
    NodeLost {
        pod: PodId,
        at: Time,
    },
    /// `event` happened to container `container` of a pod with several (see
    /// `pod_containers.rs`); an event without this wrapper is about container 0.
    OfContainer {
        container: usize,
        event: Box<Event>,
    },
}

/// Something the runtime must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start the first process of a new pod.
    CreatePod(PodId),
    /// Start the pod's process again in place (`restartPolicy: OnFailure`).
    RestartContainer(PodId),
    /// SIGTERM the process groups of every container of the pod, SIGKILL after `grace` (at
    /// once when zero).
    KillPod { pod: PodId, grace: Duration },
    /// Start one container of a pod with several (an init container's turn, the main ones
    /// after them, an in-place restart).
    StartContainer { pod: PodId, container: usize },
    /// Stop one container of a pod with several (a sidecar once the main containers ended,
    /// the others of a failed pod), as `KillPod` does.
    KillContainer { pod: PodId, container: usize, grace: Duration },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    /// Sync again at this time even if nothing happens before.
    pub wake_at: Option<Time>,
}

impl Plan {
    pub(super) fn wake_no_later_than(&mut self, at: Time) {
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
    fn failure(reason: &str, message: &str) -> Self {
        Self { success: false, reason: reason.into(), message: message.into() }
    }

    fn success(reason: &str, message: &str) -> Self {
        Self { success: true, reason: reason.into(), message: message.into() }
    }

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
pub(super) struct Counts {
    pub(super) active: u32,
    pub(super) ready: u32,
    pub(super) terminating: u32,
}

/// Index bookkeeping of one sync of an Indexed Job.
#[derive(Default)]
struct IndexState {
    succeeded: IndexSet,
    /// `Some` only with `backoffLimitPerIndex`.
    failed: Option<IndexSet>,
    /// Per index, the failed pod whose counting waits for its replacement (§5.4).
    delayed: HashMap<u32, PodId>,
}

pub struct Controller {
    pub(super) spec: EffectiveSpec,
    pub(super) status: JobStatus,
    /// Every pod ever created; `PodId(n)` lives at position `n`.
    pub(super) pods: Vec<Pod>,
    /// Pods the controller still has to look at: not yet counted, or with a process left.
    /// Idle pods (`idle`) are the exception: not counted yet, but only their totals matter.
    pub(super) unsettled: BTreeSet<PodId>,
    /// Active pods with nothing new since a sync set them aside; see `idle.rs`.
    pub(super) idle: IdlePods,
    /// Tests run twin controllers, one that never sets pods aside, to show idling changes
    /// nothing a caller sees.
    #[cfg(test)]
    pub(super) never_idle: bool,
    pub(super) backoff: BackoffRecord,
    names: SuffixGenerator,
    /// Names already handed out: a new pod never gets one of them.
    used_names: UsedNames,
    pub(super) deleting: bool,
    /// Pods this sync asked to stop. Like upstream, which works on the pods it listed before
    /// deleting, the sync that deletes a pod does not yet see it as terminating.
    killed_this_sync: HashSet<PodId>,
    pub(super) events: EventLog,
    /// Failed pods so far, per index and in all: a new pod's `attempt`.
    failed_per_index: HashMap<u32, u32>,
    failed_total: u32,
}

impl Controller {
    pub fn new(spec: EffectiveSpec) -> Self {
        let names = SuffixGenerator::new(&spec.uid);
        let idle = IdlePods::new(idle_index_bound(&spec), spec.pod_active_deadline);
        Self {
            idle,
            #[cfg(test)]
            never_idle: false,
            spec,
            status: JobStatus::default(),
            pods: Vec::new(),
            unsettled: BTreeSet::new(),
            backoff: BackoffRecord::default(),
            names,
            used_names: UsedNames::default(),
            deleting: false,
            killed_this_sync: HashSet::new(),
            events: EventLog::default(),
            failed_per_index: HashMap::new(),
            failed_total: 0,
        }
    }

    /// Pod names must also be free outside this Job (in its namespace): `claim` says whether
    /// a name is, and takes it. The controller stays pure; the runtime's hook holds the state.
    pub fn set_name_claim(&mut self, claim: NameClaim) {
        self.used_names.set_claim(claim);
    }

    /// Records that a pod ended `Failed` (for the `attempt` of later pods). Pods the
    /// controller itself deleted (suspend, scale-down) were not failed attempts.
    pub(super) fn note_failed(&mut self, pod: PodId) {
        let p = &self.pods[pod.0 as usize];
        if p.counted
            && p.deletion_requested_at.is_some()
            && !self.status.has_true(ConditionType::FailureTarget)
        {
            return;
        }
        self.failed_total += 1;
        if let Some(ix) = self.pods[pod.0 as usize].index {
            *self.failed_per_index.entry(ix).or_default() += 1;
        }
    }

    /// A name a restored pod had: never handed out again (see `restore.rs`).
    pub(super) fn reserve_name(&mut self, name: &str) {
        self.used_names.reserve(name);
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

    pub fn pod_by_name(&self, name: &str) -> Option<&Pod> {
        self.pods.iter().find(|p| p.name == name)
    }

    pub fn events(&self) -> &EventLog {
        &self.events
    }

    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    pub fn is_deleting(&self) -> bool {
        self.deleting
    }

    /// Whether any pod may still have a process; a deleted Job is gone once this is false.
    pub fn has_live_processes(&self) -> bool {
        // Idle pods all have a process (see `can_idle`).
        !self.idle.is_empty() || self.unsettled.iter().any(|id| self.pods[id.0 as usize].has_process())
    }

    /// Folds one event into the controller's view of the world. Call [`Controller::sync`] after
    /// a batch of events.
    pub fn observe(&mut self, event: Event) {
        let (container, event) = match event {
            Event::OfContainer { container, event } => (container, *event),
            event => (0, event),
        };
        match &event {
            Event::ContainerStarted { pod, .. }
            | Event::ContainerExited { pod, .. }
            | Event::ContainerEnded { pod, .. }
            | Event::ContainerFailed { pod, .. }
            | Event::ContainerStartFailed { pod, .. }
            | Event::ContainerCancelled { pod, .. }
            | Event::ContainerRaised { pod, .. } => {
                self.wake(*pod);
                if self.pods.get(pod.0 as usize).is_some_and(|p| p.containers.is_some()) {
                    return self.observe_container(container, event);
                }
            }
            Event::SetSuspend(_) => self.wake_all(),
            Event::OfContainer { .. } => return,
            Event::Bound { pod, node } => {
                if let Some(p) = self.pods.get_mut(pod.0 as usize) {
                    p.node_name = Some(node.clone());
                }
                return;
            }
            Event::NodeLost { pod, at } => {
                self.wake(*pod);
                return self.node_lost(*pod, *at);
            }
        }
        match event {
            Event::ContainerStarted { pod, at } => self.container_started(pod, at),
            Event::ContainerExited { pod, exit_code, at } => {
                self.container_terminated(pod, exit_code, None, at);
            }
            Event::ContainerEnded { pod, end, at } => {
                let why = end.message().map(|m| (end.reason().map(String::from), m));
                self.container_terminated(pod, end.exit_code(), why, at);
            }
            Event::ContainerFailed { pod, exit_code, reason, message, at } => {
                self.container_terminated(pod, exit_code, Some((Some(reason), message)), at);
            }
            Event::ContainerStartFailed { pod, message, at } => {
                let why = Some((Some("StartError".to_string()), message));
                self.container_terminated(pod, START_ERROR_EXIT_CODE, why, at);
            }
            Event::ContainerCancelled { pod, at } => {
                let Some(p) = self.pods.get_mut(pod.0 as usize) else { return };
                if p.phase.is_terminal() {
                    p.container = super::pod::ContainerState::Terminated;
                    return;
                }
                p.cancel(at);
                self.note_failed(pod);
            }
            Event::ContainerRaised { pod, exception } => {
                if let Some(p) = self.pods.get_mut(pod.0 as usize) {
                    p.exception = Some(exception);
                }
            }
            Event::SetSuspend(suspend) => self.spec.suspend = suspend,
            Event::OfContainer { .. } | Event::Bound { .. } | Event::NodeLost { .. } => {}
        }
    }

    /// Deletes the Job with its pods (the garbage collector's cascade, §6.3): every pod is
    /// asked to stop; from now on the controller only counts, it never creates or deletes.
    /// Records a `Warning` event the runtime observed about the Job's pods (e.g. Python
    /// workers that could not start), as the kubelet reports events of its own.
    pub fn warn(&mut self, now: Time, reason: &str, message: String) {
        self.events.record(now, EventType::Warning, reason, message);
    }

    pub fn delete(&mut self, now: Time) -> Plan {
        let mut plan = Plan::default();
        self.deleting = true;
        self.wake_all();
        let mut counts = self.count_pods();
        for id in self.active_pod_ids() {
            self.delete_pod(id, now, &mut counts, &mut plan);
        }
        plan
    }

    /// The Eviction API for one pod: it gets `DisruptionTarget=True` (reason
    /// `EvictionByEvictionAPI`) and is deleted with its grace period.
    pub fn evict(&mut self, name: &str, now: Time) -> Result<Plan, String> {
        let Some(id) = self.pod_by_name(name).map(|p| p.id) else {
            return Err(format!("pods {name:?} not found"));
        };
        let mut plan = Plan::default();
        let pod = &mut self.pods[id.0 as usize];
        if pod.phase.is_terminal() || pod.deletion_requested_at.is_some() {
            return Ok(plan);
        }
        pod.conditions
            .push(PodCondition::disruption_target("EvictionByEvictionAPI", "Eviction API: evicting"));
        let mut counts = self.count_pods();
        self.delete_pod(id, now, &mut counts, &mut plan);
        Ok(plan)
    }

    /// Elastic Indexed Jobs (§1.2): `parallelism` may change at any time; `completions` only
    /// for Indexed Jobs and only together with an equal `parallelism`.
    pub fn scale(&mut self, parallelism: Option<i64>, completions: Option<i64>) -> Result<(), FieldErrors> {
        crate::spec::validate_scale(
            self.spec.is_indexed(),
            self.spec.completions.map(i64::from),
            parallelism.or(Some(i64::from(self.spec.parallelism))),
            completions,
        )?;
        if let Some(p) = parallelism {
            self.spec.parallelism = validated_count(p);
        }
        if let Some(c) = completions {
            let c = validated_count(c);
            self.spec.completions = Some(c);
            self.status.completed_indexes.truncate(c);
            if let Some(failed) = &mut self.status.failed_indexes {
                failed.truncate(c);
            }
        }
        // Indexes past new completions are no longer valid: the next sync sees every pod.
        self.wake_all();
        Ok(())
    }

    /// One reconcile pass (`syncJob`). Idempotent: calling it again with nothing new observed
    /// and the same time yields no actions.
    pub fn sync(&mut self, now: Time) -> Plan {
        let mut plan = Plan::default();
        self.killed_this_sync.clear();
        if !self.spec.is_managed_locally() {
            return plan;
        }
        if self.status.is_finished() {
            self.collect_finished(now, &mut plan);
            return plan;
        }
        #[cfg(debug_assertions)]
        let before = (self.status.succeeded, self.status.failed, self.status.completion_time);

        self.enforce_pod_deadlines(now, &mut plan);
        if self.status.start_time.is_none() && !self.spec.suspend {
            self.status.start_time = Some(now);
        }

        // Pods that finished since the last sync and have not been counted yet.
        let mut new_succeeded_times = Vec::new();
        let mut new_failed_times = Vec::new();
        let mut new_failed_counted = 0u32;
        let mut ix = IndexState { succeeded: self.status.completed_indexes.clone(), ..Default::default() };
        for id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.counted || !self.has_valid_index(pod) {
                continue;
            }
            if pod.phase == PodPhase::Succeeded {
                new_succeeded_times.push(pod.finish_time());
                if let Some(i) = pod.index {
                    ix.succeeded.insert(i);
                }
            } else if self.is_pod_failed(pod) {
                // Ignored failures still delay re-creation; only the counter leaves them out.
                new_failed_times.push(pod.finish_time());
                new_failed_counted += u32::from(self.pfp_match(pod).count_failed);
            }
        }
        self.backoff.update(&new_succeeded_times, &new_failed_times);
        let failed = self.status.failed + new_failed_counted;
        let indexed = self.spec.is_indexed();
        let succeeded = if indexed {
            ix.succeeded.total() as u32
        } else {
            self.status.succeeded + new_succeeded_times.len() as u32
        };

        let mut finished = self.existing_finish();
        if finished.is_none() {
            if let Some(message) = self.fail_job_message() {
                finished = Some(Finish::failure(REASON_POD_FAILURE_POLICY, &message));
            }
        }
        if finished.is_none() {
            if failed > self.spec.backoff_limit || self.past_backoff_limit_on_failure() {
                finished =
                    Some(Finish::failure(REASON_BACKOFF_LIMIT_EXCEEDED, MESSAGE_BACKOFF_LIMIT_EXCEEDED));
            } else if self.past_active_deadline(now) {
                finished = Some(Finish::failure(REASON_DEADLINE_EXCEEDED, MESSAGE_DEADLINE_EXCEEDED));
            } else if let (Some(deadline), Some(start), false) =
                (self.spec.active_deadline, self.status.start_time, self.spec.suspend)
            {
                // A resumed Job gets its new startTime below; its deadline counts from now.
                let resumed = self.status.has_true(ConditionType::Suspended);
                let start = if resumed { now } else { start };
                plan.wake_no_later_than(start.saturating_add(deadline));
            }
        }
        if indexed {
            let completions = self.spec.completions.unwrap_or(0);
            if self.spec.backoff_limit_per_index.is_some() {
                let failed_ix = self.calculate_failed_indexes();
                if finished.is_none() {
                    let total = failed_ix.total();
                    if self.spec.max_failed_indexes.is_some_and(|m| total > u64::from(m)) {
                        finished = Some(Finish::failure(
                            REASON_MAX_FAILED_INDEXES_EXCEEDED,
                            MESSAGE_MAX_FAILED_INDEXES_EXCEEDED,
                        ));
                    } else if total > 0 && total + ix.succeeded.total() >= u64::from(completions) {
                        finished = Some(Finish::failure(REASON_FAILED_INDEXES, MESSAGE_FAILED_INDEXES));
                    }
                }
                ix.failed = Some(failed_ix);
                ix.delayed = self.pods_with_delayed_deletion(&ix);
            }
            if finished.is_none() {
                if let Some(rules) = &self.spec.success_policy {
                    if let Some(message) = match_success_policy(rules, completions, &ix.succeeded) {
                        finished = Some(Finish::success(REASON_SUCCESS_POLICY, &message));
                    }
                }
            }
        }

        let mut counts = self.count_pods();
        if finished.is_some() {
            for id in self.active_pod_ids() {
                self.delete_pod(id, now, &mut counts, &mut plan);
            }
        } else {
            let manage_called = !self.deleting;
            if manage_called {
                self.manage_job(now, succeeded, &ix, &mut counts, &mut plan);
            }
            let complete = match self.spec.completions {
                None => succeeded > 0 && counts.active == 0,
                Some(c) => succeeded >= c && counts.active == 0,
            };
            if complete {
                finished = Some(Finish::success(REASON_COMPLETIONS_REACHED, MESSAGE_COMPLETIONS_REACHED));
            } else if manage_called {
                self.update_suspended_condition(now);
            }
        }
        self.status.active = counts.active;
        self.status.ready = counts.ready;
        self.status.terminating = counts.terminating;
        self.track_status(now, finished.as_ref(), &ix);
        self.restart_due_containers(now, &mut plan);
        self.advance_pod_containers(now, &mut plan);
        if self.status.is_finished() {
            self.collect_finished(now, &mut plan);
        }

        self.set_idle_pods_aside();

        #[cfg(debug_assertions)]
        self.assert_invariants(before);
        plan
    }

    /// An interim condition recorded by an earlier sync decides the outcome (§3.3).
    fn existing_finish(&self) -> Option<Finish> {
        [ConditionType::SuccessCriteriaMet, ConditionType::FailureTarget]
            .into_iter()
            .find_map(|t| self.status.condition(t).filter(|c| c.status))
            .map(|c| Finish {
                success: c.type_ == ConditionType::SuccessCriteriaMet,
                reason: c.reason.clone(),
                message: c.message.clone(),
            })
    }

    /// `getFailJobMessage`: the first failed pod that matches a `FailJob` rule.
    fn fail_job_message(&self) -> Option<String> {
        self.spec.pod_failure_policy.as_ref()?;
        self.unsettled
            .iter()
            .map(|id| &self.pods[id.0 as usize])
            .filter(|p| !p.counted && self.is_pod_failed(p))
            .find_map(|p| self.pfp_match(p).fail_job_message)
    }

    /// A failed pod whose failure a `podFailurePolicy` `Ignore` rule leaves out of
    /// `status.failed` (`pod_failure_policy.go`, `matchPodFailurePolicy`: count = false).
    pub fn is_failure_ignored(&self, pod: &Pod) -> bool {
        self.spec.pod_failure_policy.is_some() && self.is_pod_failed(pod) && !self.pfp_match(pod).count_failed
    }

    fn pfp_match(&self, pod: &Pod) -> PfpMatch {
        match_pod_failure_policy(
            self.spec.pod_failure_policy.as_ref(),
            pod,
            &self.spec.namespace,
            &self.spec.container.name,
        )
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
            .sum::<u64>()
            + self.idle.restarts();
        if self.spec.backoff_limit == 0 {
            restarts > 0
        } else {
            restarts >= u64::from(self.spec.backoff_limit)
        }
    }

    /// `pastActiveDeadline` (§6.1): measured from `startTime`, never while suspended. The sync
    /// that resumes a Job (its `Suspended` condition still `True`) restarts the timer rather
    /// than judging the old one: "this timer will effectively be stopped and reset when the
    /// Job is resumed again" (types.go).
    fn past_active_deadline(&self, now: Time) -> bool {
        if self.spec.suspend || self.status.has_true(ConditionType::Suspended) {
            return false;
        }
        match (self.spec.active_deadline, self.status.start_time) {
            (Some(deadline), Some(start)) => now.saturating_sub(start) >= deadline,
            _ => false,
        }
    }

    /// `isPodFailed`: failed, or (unless only failed pods are replaced) being deleted.
    pub(super) fn is_pod_failed(&self, pod: &Pod) -> bool {
        if pod.phase == PodPhase::Failed {
            return true;
        }
        if self.spec.pod_replacement_policy == PodReplacementPolicy::Failed {
            return false;
        }
        pod.deletion_requested_at.is_some() && pod.phase != PodPhase::Succeeded
    }

    /// Indexed pods count only with an index below `completions` (`getCompletionIndex`).
    pub(super) fn has_valid_index(&self, pod: &Pod) -> bool {
        if !self.spec.is_indexed() {
            return true;
        }
        matches!((pod.index, self.spec.completions), (Some(ix), Some(c)) if ix < c)
    }

    /// `isIndexFailed` (§2.2): a counted failure at the per-index limit, or `FailIndex`.
    fn is_index_failed(&self, pod: &Pod) -> bool {
        let Some(limit) = self.spec.backoff_limit_per_index else {
            return false;
        };
        if !self.is_pod_failed(pod) {
            return false;
        }
        let m = self.pfp_match(pod);
        if m.action == Some(PfpAction::FailIndex) {
            return true;
        }
        m.count_failed && pod.index_failure_count >= limit
    }

    /// `calculateFailedIndexes`: earlier failed indexes plus those failed by uncounted pods.
    fn calculate_failed_indexes(&self) -> IndexSet {
        let mut failed = self.status.failed_indexes.clone().unwrap_or_default();
        for id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.counted || !self.has_valid_index(pod) {
                continue;
            }
            // An index that succeeded (say, through a pod that finished after its
            // replacement was created) is never also failed.
            let done = |ix: u32| self.status.completed_indexes.contains(ix);
            if let Some(ix) = pod.index.filter(|ix| !done(*ix) && self.is_index_failed(pod)) {
                failed.insert(ix);
            }
        }
        failed
    }

    /// `getPodsWithDelayedDeletionPerIndex` (§5.4): per index neither succeeded, failed nor
    /// active, the failed pod whose annotations the replacement will continue from.
    fn pods_with_delayed_deletion(&self, ix: &IndexState) -> HashMap<u32, PodId> {
        let active: HashSet<u32> = self
            .unsettled
            .iter()
            .map(|id| &self.pods[id.0 as usize])
            .filter(|p| p.is_active())
            .filter_map(|p| p.index)
            .collect();
        let mut delayed: HashMap<u32, PodId> = HashMap::new();
        for id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.counted || !self.has_valid_index(pod) || !self.is_pod_failed(pod) {
                continue;
            }
            let Some(i) = pod.index else { continue };
            if ix.succeeded.contains(i)
                || ix.failed.as_ref().is_some_and(|f| f.contains(i))
                || active.contains(&i)
                || self.idle.indexes().contains(i)
            {
                continue;
            }
            let replace = match delayed.get(&i) {
                None => true,
                Some(prev) => {
                    let prev = &self.pods[prev.0 as usize];
                    absolute_failures(prev) <= absolute_failures(pod)
                        && pod.finish_time() >= prev.finish_time()
                }
            };
            if replace {
                delayed.insert(i, *id);
            }
        }
        delayed
    }

    pub(super) fn count_pods(&self) -> Counts {
        let mut counts = Counts { active: self.idle.len(), ready: self.idle.ready(), terminating: 0 };
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

    /// Active pods, idle ones included, in creation order.
    pub(super) fn active_pod_ids(&self) -> Vec<PodId> {
        let mut ids: Vec<PodId> =
            self.unsettled.iter().copied().filter(|id| self.pods[id.0 as usize].is_active()).collect();
        if !self.idle.is_empty() {
            ids.extend(self.idle.ids().iter().copied());
            ids.sort_unstable();
        }
        ids
    }

    /// Asks a pod to stop (sets its `deletionTimestamp`). A pod with no process (waiting to
    /// restart) is finished on the spot.
    pub(super) fn delete_pod(&mut self, id: PodId, now: Time, counts: &mut Counts, plan: &mut Plan) {
        let grace = self.spec.termination_grace_period;
        self.wake(id);
        let pod = &mut self.pods[id.0 as usize];
        if pod.deletion_requested_at.is_some() || pod.phase.is_terminal() {
            return;
        }
        counts.active = counts.active.saturating_sub(1);
        counts.ready = counts.ready.saturating_sub(u32::from(pod.ready));
        pod.deletion_requested_at = Some(now);
        self.killed_this_sync.insert(id);
        let name = pod.name.clone();
        if pod.has_process() {
            counts.terminating += 1;
            plan.actions.push(Action::KillPod { pod: id, grace });
        } else {
            let code = pod.exit_code.unwrap_or(0).max(1);
            pod.terminate(code, now);
            self.note_failed(id);
        }
        if !self.deleting {
            self.events.record(now, EventType::Normal, "SuccessfulDelete", format!("Deleted pod: {name}"));
        }
    }

    /// `deleteJobPods`: manageJob's own deletions (suspend, surplus, duplicate or out-of-range
    /// indexes) drop the tracking finalizer before deleting, so such a pod is never counted as
    /// failed or succeeded.
    fn delete_job_pod(&mut self, id: PodId, now: Time, counts: &mut Counts, plan: &mut Plan) {
        self.delete_pod(id, now, counts, plan);
        self.pods[id.0 as usize].counted = true;
    }

    /// `manageJob` (§4.3): create or delete pods so that `active` matches what the spec wants.
    fn manage_job(
        &mut self,
        now: Time,
        succeeded: u32,
        ix: &IndexState,
        counts: &mut Counts,
        plan: &mut Plan,
    ) {
        if self.spec.suspend {
            for id in self.active_pod_ids() {
                self.delete_job_pod(id, now, counts, plan);
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
        // The active pods are only listed when some must go (a sync of a big Job otherwise
        // spares itself the list).
        let irregular = self.spec.is_indexed() && self.has_irregular_indexes();
        let mut to_delete = if rm_at_least > 0 || irregular {
            self.pods_for_removal(self.active_pod_ids(), rm_at_least, irregular)
        } else {
            vec![]
        };
        to_delete.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
        if !to_delete.is_empty() {
            // Deletions take precedence: nothing is created in the same sync.
            for id in to_delete {
                self.delete_job_pod(id, now, counts, plan);
            }
            return;
        }
        let terminating_for_replacement = match self.spec.pod_replacement_policy {
            PodReplacementPolicy::Failed => counts.terminating,
            PodReplacementPolicy::TerminatingOrFailed => 0,
        };
        let diff = i64::from(want_active) - i64::from(terminating_for_replacement) - i64::from(active);
        if diff <= 0 {
            return;
        }
        if self.spec.backoff_limit_per_index.is_none() {
            let remaining = self.backoff.remaining(self.spec.backoff, now);
            if !remaining.is_zero() {
                plan.wake_no_later_than(now.saturating_add(remaining));
                return;
            }
        }
        let mut diff = diff as usize;
        if diff > MAX_POD_CREATE_DELETE_PER_SYNC {
            diff = MAX_POD_CREATE_DELETE_PER_SYNC;
            // The rest is created by the next sync, right away.
            plan.wake_no_later_than(now);
        }
        if !self.spec.is_indexed() {
            for _ in 0..diff {
                self.create_pod(None, (0, 0), now, counts, plan);
            }
            return;
        }
        let completions = self.spec.completions.unwrap_or(0);
        let busy = self.busy_indexes();
        let indexes = first_pending_indexes(diff, completions, &ix.succeeded, ix.failed.as_ref(), &busy);
        for i in indexes {
            let replaced = ix.delayed.get(&i).map(|id| &self.pods[id.0 as usize]);
            if let Some(pod) = replaced {
                // Per-index re-creation delay (`getRemainingTimePerIndex`).
                let failures = absolute_failures(pod) + 1;
                let remaining = backoff::remaining_for_failures(
                    self.spec.backoff,
                    failures,
                    Some(pod.finish_time()),
                    now,
                );
                if !remaining.is_zero() {
                    plan.wake_no_later_than(now.saturating_add(remaining));
                    continue;
                }
            }
            let counts_for_new = replaced.map_or((0, 0), |p| self.new_index_failure_counts(p));
            self.create_pod(Some(i), counts_for_new, now, counts, plan);
        }
    }

    /// `getNewIndexFailureCounts`: the replaced pod's counts, plus its own failure.
    fn new_index_failure_counts(&self, replaced: &Pod) -> (u32, u32) {
        if !self.is_pod_failed(replaced) {
            return (replaced.index_failure_count, replaced.index_ignored_failure_count);
        }
        if self.pfp_match(replaced).count_failed {
            (replaced.index_failure_count + 1, replaced.index_ignored_failure_count)
        } else {
            (replaced.index_failure_count, replaced.index_ignored_failure_count + 1)
        }
    }

    /// Indexes held by a pod: active pods, and terminating ones when they are not replaced early.
    fn busy_indexes(&self) -> IndexBits {
        let include_terminating = self.spec.pod_replacement_policy == PodReplacementPolicy::Failed;
        let mut busy = IndexBits::with_bound(self.spec.completions.unwrap_or(0));
        busy.union_with(self.idle.indexes());
        for id in &self.unsettled {
            let p = &self.pods[id.0 as usize];
            if p.is_active() || (include_terminating && p.is_terminating()) {
                if let Some(ix) = p.index {
                    busy.insert(ix);
                }
            }
        }
        busy
    }

    /// Whether any active pod of an Indexed Job has no valid index or shares its index: only
    /// then is the (costlier) duplicate removal needed.
    fn has_irregular_indexes(&self) -> bool {
        let completions = self.spec.completions.unwrap_or(0);
        // Idle pods hold valid indexes, one pod each.
        let mut seen = IndexBits::with_bound(completions);
        seen.union_with(self.idle.indexes());
        self.unsettled.iter().map(|id| &self.pods[id.0 as usize]).filter(|p| p.is_active()).any(|p| {
            match p.index {
                Some(ix) if ix < completions => !seen.insert(ix),
                _ => true,
            }
        })
    }

    /// `activePodsForRemoval`: for Indexed Jobs, out-of-range and duplicate-index pods first;
    /// then, to reach `rm_at_least`, pods in `ActivePods` deletion order (§4.7).
    /// Only the first `MAX_POD_CREATE_DELETE_PER_SYNC` are worked out (the caller keeps no
    /// more), so scaling a Job of 100,000 pods down costs a selection per sync, not a sort.
    /// `irregular`: some active pod has an invalid or shared index (else none is grouped).
    fn pods_for_removal(&self, mut active: Vec<PodId>, rm_at_least: usize, irregular: bool) -> Vec<PodId> {
        let mut remove = Vec::new();
        if self.spec.is_indexed() && irregular {
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
                if let Some(best) = group.pop() {
                    keep.push(best);
                }
                remove.extend(group);
            }
            active = keep;
        }
        let wanted = rm_at_least.min(MAX_POD_CREATE_DELETE_PER_SYNC).saturating_sub(remove.len());
        if wanted > 0 {
            // `deletion_order` is total (ties go by id): the `wanted` first pods are the same
            // whether the rest is sorted or not.
            let order = |a: &PodId, b: &PodId| self.deletion_order(*a, *b);
            if wanted < active.len() {
                active.select_nth_unstable_by(wanted, order);
                active.truncate(wanted);
            }
            active.sort_by(order);
            remove.extend(active);
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

    fn create_pod(
        &mut self,
        index: Option<u32>,
        failure_counts: (u32, u32),
        now: Time,
        counts: &mut Counts,
        plan: &mut Plan,
    ) {
        let id = PodId(self.pods.len() as u64);
        let prefix = match index {
            Some(ix) => generate_name_with_index(&self.spec.name, ix),
            None => generate_name(&self.spec.name),
        };
        let name = self.used_names.unique(&prefix, &mut self.names);
        let mut pod = Pod::new(id, name.clone(), index, now);
        pod.attempt = match index {
            Some(ix) => self.failed_per_index.get(&ix).copied().unwrap_or(0),
            None => self.failed_total,
        };
        (pod.index_failure_count, pod.index_ignored_failure_count) = failure_counts;
        let config_error = self.spec.config_error().map(str::to_owned);
        if let Some(message) = &config_error {
            // The kubelet's side (env_sources.rs): the pod exists, its containers never start.
            pod.container = ContainerState::ConfigError;
            pod.reason = Some(CREATE_CONTAINER_CONFIG_ERROR.into());
            pod.message = Some(message.clone());
        } else {
            pod.containers = self.new_pod_containers();
        }
        let several = pod.containers.is_some();
        self.pods.push(pod);
        self.unsettled.insert(id);
        counts.active += 1;
        self.events.record(now, EventType::Normal, "SuccessfulCreate", format!("Created pod: {name}"));
        match config_error {
            // A pod of several containers starts them in this sync's pass over such pods.
            None if several => {}
            None => plan.actions.push(Action::CreatePod(id)),
            Some(message) => self.events.record(
                now,
                EventType::Warning,
                FAILED_TO_CREATE_CONTAINER,
                format!("Error: {message}"),
            ),
        }
    }

    /// The `Suspended` condition, written only when `manageJob` ran (§6.2).
    fn update_suspended_condition(&mut self, now: Time) {
        if self.spec.suspend {
            if self.status.ensure_condition(
                ConditionType::Suspended,
                true,
                "JobSuspended",
                "Job suspended",
                now,
            ) {
                self.events.record(now, EventType::Normal, "Suspended", "Job suspended".into());
            }
        } else if self.status.ensure_condition(
            ConditionType::Suspended,
            false,
            "JobResumed",
            "Job resumed",
            now,
        ) {
            self.events.record(now, EventType::Normal, "Resumed", "Job resumed".into());
            // Resuming restarts the activeDeadlineSeconds clock.
            self.status.start_time = Some(now);
        }
    }

    /// `trackJobStatusAndRemoveFinalizers` (§4.6): counts finished pods exactly once, then
    /// records the interim condition and, once no pod is terminating, the terminal one.
    fn track_status(&mut self, now: Time, finished: Option<&Finish>, ix: &IndexState) {
        let failing = finished.is_some_and(|f| !f.success);
        let indexed = self.spec.is_indexed();
        // First find the pods to count and those to forget (a few, usually, among many live
        // ones), then change them: no copy of the whole live set per sync.
        let mut settled = Vec::new();
        let mut to_count = Vec::new();
        for &id in &self.unsettled {
            let pod = &self.pods[id.0 as usize];
            if pod.counted {
                if pod.phase.is_terminal() && !pod.has_process() {
                    settled.push(id);
                }
                continue;
            }
            let consider_failed = self.is_pod_failed(pod) && !self.killed_this_sync.contains(&id);
            let delayed = pod.index.is_some_and(|i| ix.delayed.get(&i) == Some(&id));
            let can_count = self.deleting
                || finished.is_some()
                || pod.phase == PodPhase::Succeeded
                || (consider_failed && !delayed);
            if can_count {
                to_count.push((id, consider_failed));
            }
        }
        for (id, consider_failed) in to_count {
            let pod = &self.pods[id.0 as usize];
            let valid = self.has_valid_index(pod);
            if pod.phase == PodPhase::Succeeded {
                if valid {
                    match pod.index {
                        Some(i) if indexed => {
                            self.status.completed_indexes.insert(i);
                        }
                        _ => self.status.succeeded += 1,
                    }
                }
            } else if (consider_failed || failing) && valid && self.pfp_match(pod).count_failed {
                // "When the job is considered finished, every non-terminated pod is
                // considered failed."
                self.status.failed += 1;
            }
            let pod = &mut self.pods[id.0 as usize];
            pod.counted = true;
            if pod.phase.is_terminal() && !pod.has_process() {
                settled.push(id);
            }
        }
        for id in settled {
            self.unsettled.remove(&id);
        }
        if indexed {
            if let Some(c) = self.spec.completions {
                self.status.completed_indexes.truncate(c);
            }
            self.status.succeeded = self.status.completed_indexes.total() as u32;
            if let Some(failed) = &ix.failed {
                self.status.failed_indexes = Some(failed.clone());
            }
        }
        let Some(finish) = finished else { return };
        self.status.ensure_condition(finish.interim(), true, &finish.reason, &finish.message, now);
        if self.status.terminating == 0 {
            let terminal = finish.terminal();
            self.status.ensure_condition(terminal, true, &finish.reason, &finish.message, now);
            if finish.success {
                self.status.completion_time = Some(now);
                self.events.record(now, EventType::Normal, "Completed", "Job completed".into());
                if self.spec.completions.is_some_and(|c| self.status.succeeded > c) {
                    self.events.record(
                        now,
                        EventType::Warning,
                        "TooManySucceededPods",
                        "Too many succeeded pods running after completion count reached".into(),
                    );
                }
            } else {
                self.events.record(now, EventType::Warning, &finish.reason, finish.message.clone());
            }
        }
    }

    /// After the terminal condition: reap what is left and let the TTL-after-finished
    /// controller delete the Job when its time comes (§6.4).
    fn collect_finished(&mut self, now: Time, plan: &mut Plan) {
        debug_assert!(self.idle.is_empty(), "a finished Job has no active pods");
        self.unsettled.retain(|id| {
            let pod = &self.pods[id.0 as usize];
            !(pod.counted && pod.phase.is_terminal() && !pod.has_process())
        });
        let (Some(ttl), false) = (self.spec.ttl_after_finished, self.deleting) else {
            return;
        };
        let finished_at = [ConditionType::Complete, ConditionType::Failed]
            .into_iter()
            .find_map(|t| self.status.condition(t).filter(|c| c.status))
            .map(|c| c.last_transition_time);
        let Some(finished_at) = finished_at else {
            return;
        };
        let expire_at = finished_at.saturating_add(ttl);
        if now >= expire_at {
            let deletion = self.delete(now);
            plan.actions.extend(deletion.actions);
        } else {
            plan.wake_no_later_than(expire_at);
        }
    }

    /// The status invariants the API server enforces (§1.7).
    #[cfg(debug_assertions)]
    fn assert_invariants(&self, before: (u32, u32, Option<Time>)) {
        self.idle.assert_consistent(&self.pods);
        for id in self.idle.ids() {
            debug_assert!(!self.unsettled.contains(id), "pod {id:?} both idle and unsettled");
            debug_assert!(self.can_idle(&self.pods[id.0 as usize]), "pod {id:?} idle but changed");
        }
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
            debug_assert_eq!(s.completion_time, before.2, "completionTime cannot be updated");
        }
        if let Some(failed) = &s.failed_indexes {
            debug_assert!(
                failed.iter().all(|ix| !s.completed_indexes.contains(ix)),
                "failed and completed indexes overlap"
            );
        }
    }
}

/// `getIndexAbsoluteFailureCount`: counted plus ignored failures of the index so far.
fn absolute_failures(pod: &Pod) -> u32 {
    pod.index_failure_count + pod.index_ignored_failure_count
}

/// A count `validate_scale` accepted (between 0 and `i32::MAX`), as the spec holds it.
fn validated_count(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

#[cfg(test)]
#[path = "job_controller_tests.rs"]
mod tests;
