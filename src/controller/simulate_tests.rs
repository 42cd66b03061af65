//! The simulator on the policies of docs/semantics.md §5–§7, with Kubernetes' real delays.

use super::*;
use crate::controller::defaults::PodReplacementPolicy;
use crate::controller::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
use crate::controller::success_policy::SuccessRule;
use crate::controller::test_support::{ignoring_disruptions, secs, spec};
use crate::status::ConditionType::{self, self as T};

fn fail(code: i32, after: u64) -> Outcome {
    Outcome { exit_code: code, duration: Some(secs(after)), ..Outcome::default() }
}

fn ok(after: u64) -> Outcome {
    fail(0, after)
}

/// `(index, attempt, created, finished, counted as)` of a pod, times in whole seconds.
type Row = (Option<u32>, u32, u64, Option<u64>, CountedAs);

/// Every pod's [`Row`], in creation order.
fn rows(sim: &Simulation) -> Vec<Row> {
    let c = &sim.controller;
    c.pods()
        .iter()
        .map(|p| {
            let attempt = p.attempt + p.restart_count;
            let finished = p.finished_at.map(|t| t.as_secs());
            (p.index, attempt, p.created_at.as_secs(), finished, CountedAs::of(c, p))
        })
        .collect()
}

fn conditions(sim: &Simulation) -> Vec<(ConditionType, String, u64)> {
    let s = sim.controller.status();
    s.conditions.iter().map(|c| (c.type_, c.reason.clone(), c.last_transition_time.as_secs())).collect()
}

fn exit_rule(action: PfpAction, values: &[i32]) -> PfpRule {
    PfpRule {
        action: Some(action),
        requirement: Requirement::ExitCodes { container_name: None, not_in: false, values: values.to_vec() },
    }
}

/// `backoff_utils.go` `getRemainingTimeForFailuresCount`: 10 s, 20 s, 40 s, ... after each
/// failure, counted from the failed pod's finish, on the virtual clock.
#[test]
fn backoff_delays_take_their_real_values() {
    let sim = simulate(spec(1, Some(1), 3, false), |_, _| fail(1, 5), Limits::default());
    use CountedAs::Failed;
    assert_eq!(
        rows(&sim),
        vec![
            (None, 0, 0, Some(5), Failed),
            (None, 1, 15, Some(20), Failed),
            (None, 2, 40, Some(45), Failed),
            (None, 3, 85, Some(90), Failed),
        ]
    );
    let expected = vec![
        (T::FailureTarget, "BackoffLimitExceeded".to_string(), 90),
        (T::Failed, "BackoffLimitExceeded".to_string(), 90),
    ];
    assert_eq!(conditions(&sim), expected);
    assert_eq!((sim.controller.status().failed, sim.stop, sim.end.as_secs()), (4, Stop::Settled, 90));
}

/// The delay doubles up to its 10-minute cap (`DefaultJobPodFailureBackOff`,
/// `MaxJobPodFailureBackOff`): the 8th failure waits 600 s, not 1280 s. Costs no real time.
#[test]
fn backoff_is_capped_at_ten_minutes() {
    let sim = simulate(spec(1, Some(1), 8, false), |_, _| fail(1, 0), Limits::default());
    let created: Vec<u64> = rows(&sim).iter().map(|r| r.2).collect();
    assert_eq!(created, vec![0, 10, 30, 70, 150, 310, 630, 1230, 1830]);
}

/// A success resets the backoff count (`newBackoffRecord`).
#[test]
fn second_attempt_succeeds() {
    let sim = simulate(
        spec(1, Some(1), 6, false),
        |_, a| if a == 0 { fail(1, 2) } else { ok(3) },
        Limits::default(),
    );
    use CountedAs::*;
    assert_eq!(rows(&sim), vec![(None, 0, 0, Some(2), Failed), (None, 1, 12, Some(15), Succeeded)]);
    let expected = vec![
        (T::SuccessCriteriaMet, "CompletionsReached".into(), 15),
        (T::Complete, "CompletionsReached".into(), 15),
    ];
    assert_eq!(conditions(&sim), expected);
    let s = sim.controller.status();
    assert_eq!((s.succeeded, s.failed, s.completion_time), (1, 1, Some(secs(15))));
}

/// `activeDeadlineSeconds`: the running pod is killed at the deadline (SIGTERM, 143) and counts
/// as killed; the Job fails with `DeadlineExceeded` at that virtual time.
#[test]
fn job_deadline_kills_running_pods() {
    let mut s = spec(2, Some(2), 6, false);
    s.active_deadline = Some(secs(100));
    let sim = simulate(s, |_, _| Outcome { duration: None, ..Outcome::default() }, Limits::default());
    use CountedAs::Killed;
    assert_eq!(rows(&sim), vec![(None, 0, 0, Some(100), Killed), (None, 0, 0, Some(100), Killed)]);
    assert_eq!(sim.controller.pods()[0].exit_code, Some(143));
    let expected =
        vec![(T::FailureTarget, "DeadlineExceeded".into(), 100), (T::Failed, "DeadlineExceeded".into(), 100)];
    assert_eq!(conditions(&sim), expected);
    assert_eq!(sim.stop, Stop::Settled);
}

/// `backoffLimitPerIndex`: each index backs off and fails alone; the Job fails with
/// `FailedIndexes` once every index is done, `failedIndexes` listing the failed ones.
#[test]
fn per_index_backoff() {
    let mut s = spec(3, Some(3), i32::MAX as u32, true);
    s.backoff_limit_per_index = Some(1);
    let sim = simulate(s, |ix, _| if ix == Some(1) { fail(1, 1) } else { ok(4) }, Limits::default());
    use CountedAs::*;
    assert_eq!(
        rows(&sim),
        vec![
            (Some(0), 0, 0, Some(4), Succeeded),
            (Some(1), 0, 0, Some(1), Failed),
            (Some(2), 0, 0, Some(4), Succeeded),
            (Some(1), 1, 11, Some(12), Failed),
        ]
    );
    let st = sim.controller.status();
    assert_eq!(
        (st.completed_indexes.to_string(), st.failed_indexes.as_ref().map(|f| f.to_string())),
        ("0,2".into(), Some("1".into()))
    );
    let expected =
        vec![(T::FailureTarget, "FailedIndexes".into(), 12), (T::Failed, "FailedIndexes".into(), 12)];
    assert_eq!(conditions(&sim), expected);
}

/// `podFailurePolicy` `FailJob`: the matching pod fails the Job at once; the other pod is
/// killed, and the 10 s backoff never comes into play.
#[test]
fn pod_failure_policy_fail_job() {
    let mut s = spec(2, Some(2), 6, true);
    s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::FailJob, &[42])] });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let sim = simulate(s, |ix, _| if ix == Some(0) { fail(42, 3) } else { ok(60) }, Limits::default());
    use CountedAs::*;
    assert_eq!(rows(&sim), vec![(Some(0), 0, 0, Some(3), Failed), (Some(1), 0, 0, Some(3), Killed)]);
    let reasons: Vec<_> = conditions(&sim).into_iter().map(|c| (c.0, c.1, c.2)).collect();
    assert_eq!(
        reasons,
        vec![(T::FailureTarget, "PodFailurePolicy".into(), 3), (T::Failed, "PodFailurePolicy".into(), 3)]
    );
    assert_eq!(sim.controller.status().failed, 2);
}

/// `Ignore`: the failure is not counted (backoffLimit 0 holds) and the pod is replaced; `Count`
/// then fails the Job.
#[test]
fn pod_failure_policy_ignore_and_count() {
    let mut s = spec(1, Some(1), 0, false);
    s.pod_failure_policy = Some(PodFailurePolicy {
        rules: vec![exit_rule(PfpAction::Ignore, &[3]), exit_rule(PfpAction::Count, &[4])],
    });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let mut runs = 0;
    let outcome = move |_: Option<u32>, _: u32| {
        runs += 1;
        fail(if runs < 3 { 3 } else { 4 }, 2)
    };
    let sim = simulate(s, outcome, Limits::default());
    use CountedAs::*;
    // Ignored failures are attempts too, and they still delay the replacement (only the
    // counter leaves them out; see `Controller::sync`).
    assert_eq!(
        rows(&sim),
        vec![
            (None, 0, 0, Some(2), Ignored),
            (None, 1, 12, Some(14), Ignored),
            (None, 2, 34, Some(36), Failed)
        ]
    );
    let expected = vec![
        (T::FailureTarget, "BackoffLimitExceeded".into(), 36),
        (T::Failed, "BackoffLimitExceeded".into(), 36),
    ];
    assert_eq!(conditions(&sim), expected);
    assert_eq!(sim.controller.status().failed, 1);
}

/// `successPolicy`: once index 0 succeeds the Job is `SuccessCriteriaMet`, the rest killed.
#[test]
fn success_policy_kills_the_rest() {
    let mut s = spec(3, Some(3), 6, true);
    s.success_policy = Some(vec![SuccessRule { succeeded_indexes: Some("0".into()), succeeded_count: None }]);
    let sim = simulate(s, |ix, _| if ix == Some(0) { ok(5) } else { ok(50) }, Limits::default());
    use CountedAs::*;
    assert_eq!(
        rows(&sim),
        vec![
            (Some(0), 0, 0, Some(5), Succeeded),
            (Some(1), 0, 0, Some(5), Killed),
            (Some(2), 0, 0, Some(5), Killed)
        ]
    );
    let expected =
        vec![(T::SuccessCriteriaMet, "SuccessPolicy".into(), 5), (T::Complete, "SuccessPolicy".into(), 5)];
    assert_eq!(conditions(&sim), expected);
}

/// An evicted pod gets `DisruptionTarget`; `onPodConditions` `Ignore` keeps it out of the
/// counters and it is replaced after the backoff delay.
#[test]
fn disruption_with_ignore_rule() {
    let s = ignoring_disruptions();
    let mut runs = 0;
    let outcome = move |_: Option<u32>, _: u32| {
        runs += 1;
        if runs == 1 {
            Outcome { disruption: true, duration: Some(secs(7)), ..Outcome::default() }
        } else {
            ok(1)
        }
    };
    let sim = simulate(s, outcome, Limits::default());
    use CountedAs::*;
    assert_eq!(rows(&sim), vec![(None, 0, 0, Some(7), Ignored), (None, 1, 17, Some(18), Succeeded)]);
    let p = &sim.controller.pods()[0];
    assert_eq!(p.conditions[0].reason, "EvictionByEvictionAPI");
    assert_eq!(sim.controller.status().failed, 0);
}

/// `ttlSecondsAfterFinished`: the Job is deleted that long after it finished, virtually.
#[test]
fn ttl_deletes_the_job() {
    let mut s = spec(1, Some(1), 6, false);
    s.ttl_after_finished = Some(secs(3600));
    let sim = simulate(s, |_, _| ok(2), Limits::default());
    assert!(sim.deleted);
    assert_eq!((sim.end.as_secs(), sim.stop), (3602, Stop::Settled));
}

/// Pods that never end and no deadline: the simulation stops, the pods are still active.
#[test]
fn pods_running_forever_settle_as_active() {
    let sim = simulate(
        spec(2, Some(2), 6, false),
        |_, _| Outcome { duration: None, ..Outcome::default() },
        Limits::default(),
    );
    assert_eq!(sim.stop, Stop::Settled);
    assert!(rows(&sim).iter().all(|r| r.4 == CountedAs::Active && r.3.is_none()));
    assert_eq!(sim.controller.status().active, 2);
}

/// A Job failing forever under an `Ignore` rule stops at the pod limit.
#[test]
fn pod_limit_stops_an_endless_job() {
    let mut s = spec(1, Some(1), 0, false);
    s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::Ignore, &[3])] });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let sim = simulate(s, |_, _| fail(3, 1), Limits { max_pods: 50, ..Limits::default() });
    assert_eq!((sim.stop, sim.controller.pods().len()), (Stop::PodLimit, 51));
}

/// `restartPolicy: OnFailure`: runs restart in place, each a new attempt of the outcome table.
#[test]
fn on_failure_restarts_in_place() {
    let mut s = spec(1, Some(1), 6, false);
    s.restart_policy = crate::controller::defaults::RestartPolicy::OnFailure;
    let sim = simulate(s, |_, a| if a < 2 { fail(1, 1) } else { ok(1) }, Limits::default());
    let p = &sim.controller.pods()[0];
    assert_eq!((sim.controller.pods().len(), p.restart_count, p.phase), (1, 2, PodPhase::Succeeded));
    assert!(sim.controller.status().has_true(T::Complete));
}

/// Complexity, not time: 100,000 indexes that succeed take one sync per 500 creations
/// (`MaxPodCreateDeletePerSync`) and end in one step; the outcome is asked once per pod.
#[test]
fn hundred_thousand_indexes() {
    let n = 100_000;
    let mut asked = 0u32;
    let sim = simulate(
        spec(n, Some(n), 6, true),
        |_, _| {
            asked += 1;
            ok(1)
        },
        Limits::default(),
    );
    assert_eq!(asked, n);
    let s = sim.controller.status();
    assert_eq!((s.succeeded, s.completed_indexes.to_string()), (n, format!("0-{}", n - 1)));
    assert_eq!(sim.end, secs(1));
    assert!(s.has_true(T::Complete));
}
