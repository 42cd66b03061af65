//! A randomized property test of the whole controller: random Job shapes driven by random event
//! sequences on a virtual clock. Whatever happens, no panic (debug assertions of the status
//! invariants included), and the status invariants of docs/semantics.md §1.7 hold after every
//! sync.

use super::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
use super::job_controller::{Action, Controller, Event, Plan};
use super::pod::{PodId, PodPhase};
use super::success_policy::SuccessRule;
use super::test_support::spec;
use crate::controller::defaults::{PodReplacementPolicy, RestartPolicy};
use crate::spec::FieldErrors;
use crate::status::{ConditionType, Time};
use std::collections::BTreeSet;
use std::time::Duration;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A random Job of up to `size - 1` pods at once and `size - 1` completions.
fn random_controller(rng: &mut Rng, size: u64) -> Controller {
    let indexed = rng.chance(50);
    let completions = if indexed || rng.chance(70) { Some(rng.below(size) as u32) } else { None };
    let mut s = spec(rng.below(size - 1) as u32, completions, rng.below(4) as u32, indexed);
    s.backoff.initial = Duration::from_millis(rng.below(3) * 10);
    s.backoff.max = Duration::from_millis(100);
    s.termination_grace_period = Duration::from_millis(rng.below(2) * 50);
    if rng.chance(20) {
        s.restart_policy = RestartPolicy::OnFailure;
    }
    if indexed && rng.chance(40) {
        s.backoff_limit_per_index = Some(rng.below(3) as u32);
        s.backoff_limit = u32::MAX / 2;
        if rng.chance(50) {
            s.max_failed_indexes = Some(rng.below(3) as u32);
        }
    }
    if s.restart_policy == RestartPolicy::Never && rng.chance(30) {
        let actions = [PfpAction::FailJob, PfpAction::Ignore, PfpAction::Count, PfpAction::FailIndex];
        let action = actions[rng.below(4) as usize];
        if action != PfpAction::FailIndex || s.backoff_limit_per_index.is_some() {
            s.pod_failure_policy = Some(PodFailurePolicy {
                rules: vec![PfpRule {
                    action: Some(action),
                    requirement: Requirement::ExitCodes {
                        container_name: None,
                        not_in: false,
                        values: vec![2, 3],
                    },
                }],
            });
            s.pod_replacement_policy = PodReplacementPolicy::Failed;
        }
    }
    if indexed && rng.chance(30) {
        s.success_policy =
            Some(vec![SuccessRule { succeeded_indexes: Some("0-1".into()), succeeded_count: None }]);
    }
    if rng.chance(20) {
        s.active_deadline = Some(Duration::from_millis(200 + rng.below(500)));
    }
    if rng.chance(15) {
        s.pod_active_deadline = Some(Duration::from_millis(50 + rng.below(200)));
    }
    if rng.chance(20) {
        s.ttl_after_finished = Some(Duration::from_millis(rng.below(100)));
    }
    s.suspend = rng.chance(10);
    Controller::new(s)
}

/// Two controllers of one spec fed the same calls: `fast` sets idle pods aside, `plain` never
/// does. Every answer, status, pod and event must be the same: idling is only a shortcut.
struct Twin {
    fast: Controller,
    plain: Controller,
}

impl Twin {
    fn new(rng: &mut Rng, size: u64) -> Self {
        let mut twin_rng = Rng(rng.0);
        let fast = random_controller(rng, size);
        let mut plain = random_controller(&mut twin_rng, size);
        plain.never_idle = true;
        Self { fast, plain }
    }

    fn same<T: PartialEq + std::fmt::Debug>(&self, fast: T, plain: T) -> T {
        assert_eq!(fast, plain, "idling changed an answer");
        assert_eq!(self.fast.status(), self.plain.status(), "idling changed the status");
        assert_eq!(self.fast.pods(), self.plain.pods(), "idling changed a pod");
        let events = |c: &Controller| format!("{:?}", c.events().iter().collect::<Vec<_>>());
        assert_eq!(events(&self.fast), events(&self.plain), "idling changed the events");
        fast
    }

    fn sync(&mut self, now: Time) -> Plan {
        let (a, b) = (self.fast.sync(now), self.plain.sync(now));
        self.same(a, b)
    }

    /// The next call's comparison shows what an event changed.
    fn observe(&mut self, event: Event) {
        self.fast.observe(event.clone());
        self.plain.observe(event);
    }

    fn scale(&mut self, parallelism: Option<i64>, completions: Option<i64>) -> Result<(), FieldErrors> {
        let (a, b) = (self.fast.scale(parallelism, completions), self.plain.scale(parallelism, completions));
        self.same(a, b)
    }

    fn evict(&mut self, name: &str, now: Time) -> Result<Plan, String> {
        let (a, b) = (self.fast.evict(name, now), self.plain.evict(name, now));
        self.same(a, b)
    }

    fn delete(&mut self, now: Time) -> Plan {
        let (a, b) = (self.fast.delete(now), self.plain.delete(now));
        self.same(a, b)
    }
}

fn check_invariants(c: &Controller, previous_failed: u32) {
    let st = c.status();
    assert!(!(st.has_true(ConditionType::Complete) && st.has_true(ConditionType::Failed)));
    assert!(!(st.has_true(ConditionType::Complete) && st.has_true(ConditionType::FailureTarget)));
    assert!(!(st.has_true(ConditionType::SuccessCriteriaMet) && st.has_true(ConditionType::FailureTarget)));
    assert!(st.failed >= previous_failed, "failed decreased");
    if let Some(failed) = &st.failed_indexes {
        assert!(failed.iter().all(|ix| !st.completed_indexes.contains(ix)));
    }
    if st.has_true(ConditionType::Complete) {
        assert!(st.completion_time.is_some());
    } else {
        assert!(st.completion_time.is_none());
    }
    if c.is_finished() {
        assert_eq!(st.active, 0, "a finished Job has no active pods");
    }
}

#[test]
fn random_jobs_and_events_keep_the_invariants() {
    drive_random_jobs(0x2545_f491_4f6c_dd1d, 3_000, 6);
}

/// Past `MaxPodCreateDeletePerSync` (500): pods created and deleted over several syncs, many
/// idle at once.
#[test]
fn random_large_jobs_keep_the_invariants() {
    drive_random_jobs(0x9e37_79b9_7f4a_7c15, 20, 1_500);
}

fn drive_random_jobs(seed: u64, rounds: usize, size: u64) {
    let mut rng = Rng(seed);
    for round in 0..rounds {
        let mut c = Twin::new(&mut rng, size);
        let mut now = Duration::ZERO;
        let mut running: BTreeSet<PodId> = BTreeSet::new();
        let mut failed = 0;
        for _ in 0..60 {
            let plan = c.sync(now);
            check_invariants(&c.fast, failed);
            failed = c.fast.status().failed;
            for action in &plan.actions {
                match action {
                    Action::CreatePod(id) | Action::RestartContainer(id) => {
                        if rng.chance(5) {
                            c.observe(Event::ContainerStartFailed {
                                pod: *id,
                                message: "nope".into(),
                                at: now,
                            });
                        } else {
                            c.observe(Event::ContainerStarted { pod: *id, at: now });
                            running.insert(*id);
                        }
                    }
                    // Killed processes end within their grace period, here at once.
                    Action::KillPod { pod, .. } => {
                        if running.remove(pod) {
                            c.observe(Event::ContainerExited { pod: *pod, exit_code: 143, at: now });
                        }
                    }
                    Action::StartContainer { .. } | Action::KillContainer { .. } => {
                        unreachable!("one container per pod here")
                    }
                }
            }
            now += Duration::from_millis(1 + rng.below(40));
            for _ in 0..=size / 30 {
                let nth = rng.below(running.len().max(1) as u64) as usize;
                if let Some(pod) = running.iter().nth(nth).copied() {
                    if rng.chance(60) {
                        running.remove(&pod);
                        let code = [0, 0, 0, 1, 2, 3, 137][rng.below(7) as usize];
                        c.observe(Event::ContainerExited { pod, exit_code: code, at: now });
                    }
                }
            }
            match rng.below(40) {
                0 => c.observe(Event::SetSuspend(true)),
                1 => c.observe(Event::SetSuspend(false)),
                2 => {
                    let p = rng.below(size) as i64;
                    let _ = c.scale(Some(p), if rng.chance(50) { Some(p) } else { None });
                }
                3 => {
                    if let Some(name) =
                        c.fast.pods().iter().find(|p| !p.phase.is_terminal()).map(|p| p.name.clone())
                    {
                        let plan = c.evict(&name, now).unwrap();
                        for a in plan.actions {
                            if let Action::KillPod { pod, .. } = a {
                                if running.remove(&pod) {
                                    c.observe(Event::ContainerExited { pod, exit_code: 143, at: now });
                                }
                            }
                        }
                    }
                }
                4 if rng.chance(20) => {
                    let plan = c.delete(now);
                    for a in plan.actions {
                        if let Action::KillPod { pod, .. } = a {
                            running.remove(&pod);
                            c.observe(Event::ContainerExited { pod, exit_code: 143, at: now });
                        }
                    }
                }
                _ => {}
            }
        }
        // Pods still "running" here are the ones the test never ended.
        let c = &c.fast;
        for p in c.pods() {
            if p.phase.is_terminal() {
                assert!(p.finished_at.is_some(), "round {round}: {p:?}");
            }
            if !running.contains(&p.id) && p.phase == PodPhase::Running && !c.is_deleting() {
                assert!(
                    p.has_process()
                        || matches!(p.container, super::pod::ContainerState::WaitingRestart { .. })
                );
            }
        }
    }
}
