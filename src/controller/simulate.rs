//! `kjob simulate`: the real controller on a virtual clock (issue 17 §3).
//!
//! The simulator plays the runtime's part without processes: it starts every pod the
//! controller asks for, ends it as the caller's outcome for its (index, attempt) says, and
//! jumps the clock straight to the next thing that can happen (a pod's end, or the time the
//! controller asked to be woken at: a backoff delay's expiry, `activeDeadlineSeconds`, the
//! TTL after finishing). So backoff delays, deadlines and TTLs take their real values and cost
//! nothing: a 10-minute backoff is one step.
//!
//! Pure like the rest of `controller/`: no clock, no I/O. Killing a pod (`KillPod`) ends its
//! process at once with SIGTERM (exit code 143), as a process that does not trap SIGTERM does.

use super::defaults::EffectiveSpec;
use super::job_controller::{Action, Controller, Event, Plan};
use super::pod::{Pod, PodException, PodId, PodPhase, ProcessEnd};
use crate::status::Time;
use std::collections::BTreeMap;
use std::time::Duration;

/// SIGTERM: what a killed pod's process dies of.
const SIGTERM: i32 = 15;

/// How one run of a pod's container ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The container's exit code (0: success).
    pub exit_code: i32,
    /// A callable pod's exception: its class and bases by qualified name, most derived first
    /// (what `onExceptions` rules match). The pod exits with `exit_code` after raising it.
    pub exception: Option<Vec<String>>,
    /// `true` when the pod is evicted (`DisruptionTarget`, `EvictionByEvictionAPI`) after
    /// `duration` instead of ending by itself.
    pub disruption: bool,
    /// How long the container runs; `None`: until something kills it.
    pub duration: Option<Duration>,
}

impl Default for Outcome {
    /// Kubernetes' happy path: success after one second.
    fn default() -> Self {
        Self { exit_code: 0, exception: None, disruption: false, duration: Some(Duration::from_secs(1)) }
    }
}

/// What a pod counted as, as the timeline colours it (`python/kjob/_timeline.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CountedAs {
    /// Phase `Succeeded`.
    Succeeded,
    /// Phase `Failed`, counted in `status.failed` (toward the backoff limits).
    Failed,
    /// Failed, but a `podFailurePolicy` `Ignore` rule kept it out of the counters.
    Ignored,
    /// Ended by the Job: deleted because it failed, finished, was suspended or scaled down.
    Killed,
    /// Not ended (yet).
    Active,
}

impl CountedAs {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Ignored => "ignored",
            Self::Killed => "killed",
            Self::Active => "active",
        }
    }

    /// How `controller` counted `pod`.
    pub fn of(controller: &Controller, pod: &Pod) -> Self {
        match pod.phase {
            PodPhase::Succeeded => Self::Succeeded,
            PodPhase::Pending | PodPhase::Running => Self::Active,
            PodPhase::Failed => {
                let evicted = pod.conditions.iter().any(|c| c.type_ == "DisruptionTarget");
                if controller.is_failure_ignored(pod) {
                    Self::Ignored
                } else if pod.deletion_requested_at.is_some() && !evicted && !pod.deadline_exceeded {
                    Self::Killed
                } else {
                    Self::Failed
                }
            }
        }
    }
}

/// Why a simulation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Nothing more can happen: the Job finished (and, with a TTL, was deleted) or waits for
    /// nothing that will come (a suspended Job, pods that run forever).
    Settled,
    /// The simulation made `max_pods` pods and stopped there.
    PodLimit,
    /// The virtual clock passed `max_time`.
    TimeLimit,
}

/// Bounds that keep a simulation of a Job that never ends finite.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_pods: usize,
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        // A year of virtual time; ten million pods.
        Self { max_pods: 10_000_000, max_time: Duration::from_secs(365 * 24 * 3600) }
    }
}

/// The result: the controller as the simulation left it (status, pods, events), when it
/// stopped and why.
pub struct Simulation {
    pub controller: Controller,
    pub end: Time,
    pub stop: Stop,
    /// The Job was deleted (its TTL after finishing expired).
    pub deleted: bool,
}

/// A pending end of one container run: which pod, which run of it (a pod restarted in place
/// under `restartPolicy: OnFailure` runs again; the ends of earlier runs are stale).
type PendingEnd = (PodId, u32);

struct Simulator<F> {
    controller: Controller,
    outcomes: F,
    /// Pending ends by time. Pods tend to end together (a table gives whole groups one
    /// duration), so one entry per instant keeps a 100,000-pod Job cheap.
    ends: BTreeMap<Time, Vec<PendingEnd>>,
    /// Per pod (by id): the number of its current run and the outcome of that run.
    runs: Vec<(u32, Outcome)>,
    now: Time,
    deleted: bool,
}

/// Runs `spec` on a virtual clock from time zero. `outcomes(index, attempt)` says how each
/// container run ends: `attempt` is the pod's number among its index's attempts (for
/// NonIndexed Jobs, among the Job's failed pods so far), plus its restarts in place.
pub fn simulate<F>(spec: EffectiveSpec, outcomes: F, limits: Limits) -> Simulation
where
    F: FnMut(Option<u32>, u32) -> Outcome,
{
    let mut sim = Simulator {
        controller: Controller::new(spec),
        outcomes,
        ends: BTreeMap::new(),
        runs: Vec::new(),
        now: Time::ZERO,
        deleted: false,
    };
    let stop = sim.run(limits);
    Simulation { end: sim.now, stop, deleted: sim.deleted, controller: sim.controller }
}

impl<F: FnMut(Option<u32>, u32) -> Outcome> Simulator<F> {
    fn run(&mut self, limits: Limits) -> Stop {
        loop {
            // Sync until the controller has nothing more to do at this instant (the runtime
            // syncs again after creating pods, as upstream's informer reports them).
            // A wake for now with nothing done gets one more sync, not an endless loop.
            let mut idle_rounds = 0;
            let wake_at = loop {
                let plan = self.controller.sync(self.now);
                let acted = !plan.actions.is_empty();
                self.execute(&plan);
                if self.controller.pods().len() > limits.max_pods {
                    return Stop::PodLimit;
                }
                idle_rounds = if acted { 0 } else { idle_rounds + 1 };
                let due = plan.wake_at.filter(|t| *t > self.now);
                if !acted && (idle_rounds > 1 || plan.wake_at.is_none_or(|t| t > self.now)) {
                    break due;
                }
            };
            self.deleted |= self.controller.is_deleting();
            let Some(next) = self.next_end().into_iter().chain(wake_at).min() else {
                return Stop::Settled;
            };
            if next > limits.max_time {
                return Stop::TimeLimit;
            }
            self.now = next;
            self.end_due_runs();
        }
    }

    /// The time of the next live pending end, stale ones dropped.
    fn next_end(&mut self) -> Option<Time> {
        while let Some(mut entry) = self.ends.first_entry() {
            let runs = &self.runs;
            let controller = &self.controller;
            entry.get_mut().retain(|&(pod, run)| is_current(runs, controller, pod, run));
            if !entry.get().is_empty() {
                return Some(*entry.key());
            }
            entry.remove();
        }
        None
    }

    /// Ends every run due now, as its outcome says, in the order they were started.
    fn end_due_runs(&mut self) {
        let Some(due) = self.ends.first_entry().filter(|e| *e.key() <= self.now).map(|e| e.remove()) else {
            return;
        };
        for (pod, run) in due {
            if !is_current(&self.runs, &self.controller, pod, run) {
                continue;
            }
            let outcome = self.runs[pod.0 as usize].1.clone();
            if outcome.disruption {
                let name = self.controller.pod(pod).map(|p| p.name.clone()).unwrap_or_default();
                if let Ok(plan) = self.controller.evict(&name, self.now) {
                    self.execute(&plan);
                }
                continue;
            }
            if let Some(types) = outcome.exception {
                let message = format!("simulated {}", types.first().map_or("exception", String::as_str));
                let exception = PodException { types, message, traceback: String::new() };
                self.controller.observe(Event::ContainerRaised { pod, exception });
            }
            let end = ProcessEnd::Exited(outcome.exit_code);
            self.controller.observe(Event::ContainerEnded { pod, end, at: self.now });
        }
    }

    fn execute(&mut self, plan: &Plan) {
        for action in &plan.actions {
            match *action {
                Action::CreatePod(pod) | Action::RestartContainer(pod) => self.start(pod),
                Action::KillPod { pod, .. } => {
                    let end = ProcessEnd::Signaled { signal: SIGTERM, oom_killed: false };
                    if self.controller.pod(pod).is_some_and(|p| p.has_process()) {
                        self.controller.observe(Event::ContainerEnded { pod, end, at: self.now });
                    }
                }
                // Refused up front (`check_supported`): pods of several containers.
                Action::StartContainer { .. } | Action::KillContainer { .. } => {}
            }
        }
    }

    /// Starts a run of `pod`'s container now and schedules its end.
    fn start(&mut self, pod: PodId) {
        let Some(p) = self.controller.pod(pod) else { return };
        let outcome = (self.outcomes)(p.index, p.attempt + p.restart_count);
        let slot = pod.0 as usize;
        if self.runs.len() <= slot {
            self.runs.resize(slot + 1, (0, Outcome::default()));
        }
        let run = self.runs[slot].0 + 1;
        if let Some(d) = outcome.duration {
            self.ends.entry(self.now.saturating_add(d)).or_default().push((pod, run));
        }
        self.runs[slot] = (run, outcome);
        self.controller.observe(Event::ContainerStarted { pod, at: self.now });
    }
}

/// Whether `run` is the live run of `pod`: its latest, and the pod still has a process.
fn is_current(runs: &[(u32, Outcome)], controller: &Controller, pod: PodId, run: u32) -> bool {
    runs.get(pod.0 as usize).is_some_and(|(r, _)| *r == run)
        && controller.pod(pod).is_some_and(|p| p.has_process())
}

/// Why `spec` cannot be simulated, if it cannot: pods of several containers (init containers,
/// sidecars) are not simulated.
pub fn check_supported(spec: &EffectiveSpec) -> Result<(), String> {
    if spec.container_layout.is_some() {
        return Err(
            "simulate: pods with several containers (initContainers, sidecars) are not supported".into()
        );
    }
    Ok(())
}

#[cfg(test)]
#[path = "simulate_tests.rs"]
mod tests;
