//! Scenarios on a virtual clock for the policies of docs/semantics.md §5.4–§7: each test drives
//! the controller through events and checks counters, index strings, reasons, messages and the
//! order of conditions, with expected values taken from the rules.

use super::job_controller::{Action, Controller, Event, Plan};
use super::pod::{PodId, PodPhase};
use super::test_support::{apply, ignoring_disruptions, secs, spec};
use crate::controller::defaults::PodReplacementPolicy;
use crate::controller::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
use crate::controller::success_policy::SuccessRule;
use crate::status::ConditionType::{self, *};
use std::time::Duration;

fn conditions(c: &Controller) -> Vec<(ConditionType, bool, String, String)> {
    c.status().conditions.iter().map(|x| (x.type_, x.status, x.reason.clone(), x.message.clone())).collect()
}

fn types(c: &Controller) -> Vec<ConditionType> {
    c.status().conditions.iter().map(|x| x.type_).collect()
}

fn exit_rule(action: PfpAction, values: &[i32]) -> PfpRule {
    PfpRule {
        action: Some(action),
        requirement: Requirement::ExitCodes { container_name: None, not_in: false, values: values.to_vec() },
    }
}

/// Starts every pod the plan creates; returns them.
fn start(c: &mut Controller, plan: &Plan, now: Duration) -> Vec<PodId> {
    apply(c, plan, now).0
}

fn exit(c: &mut Controller, pod: PodId, code: i32, at: Duration) -> Plan {
    c.observe(Event::ContainerExited { pod, exit_code: code, at });
    c.sync(at)
}

#[test]
fn pod_failure_policy_fail_job_uses_the_upstream_message() {
    let mut s = spec(2, Some(2), 6, false);
    s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::FailJob, &[42])] });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    let plan = exit(&mut c, pods[0], 42, secs(1));
    assert_eq!(plan.actions, vec![Action::KillPod { pod: pods[1], grace: secs(30) }]);
    let name = c.pod(pods[0]).unwrap().name.clone();
    let message = format!(
        "Container c for pod default/{name} failed with exit code 42 matching FailJob rule at index 0"
    );
    assert_eq!(conditions(&c), vec![(FailureTarget, true, "PodFailurePolicy".into(), message.clone())]);
    assert_eq!((c.status().failed, c.status().terminating), (2, 1));
    exit(&mut c, pods[1], 143, secs(2));
    assert_eq!(types(&c), vec![FailureTarget, Failed]);
    assert_eq!(c.status().conditions[1].message, message);
    assert_eq!(c.status().failed, 2);
}

#[test]
fn pod_failure_policy_ignore_is_not_counted_but_delays_recreation() {
    let mut s = spec(1, Some(1), 0, false);
    s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::Ignore, &[3])] });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    let plan = exit(&mut c, pod, 3, secs(1));
    assert!(plan.actions.is_empty(), "the replacement waits for the backoff delay");
    assert_eq!(plan.wake_at, Some(secs(11)));
    assert_eq!(c.status().failed, 0, "ignored failures are not counted, even with backoffLimit 0");
    assert!(!c.is_finished());
    let plan = c.sync(secs(11));
    let pod = start(&mut c, &plan, secs(11))[0];
    exit(&mut c, pod, 0, secs(12));
    assert_eq!((c.status().succeeded, c.status().failed), (1, 0));
    assert!(c.status().has_true(Complete));
}

#[test]
fn eviction_sets_disruption_target_and_on_pod_conditions_can_ignore_it() {
    let mut s = ignoring_disruptions();
    s.backoff.initial = Duration::from_millis(1);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    let name = c.pod(pod).unwrap().name.clone();
    let plan = c.evict(&name, secs(1)).unwrap();
    assert_eq!(plan.actions, vec![Action::KillPod { pod, grace: secs(30) }]);
    let cond = &c.pod(pod).unwrap().conditions[0];
    assert_eq!(
        (cond.type_.as_str(), cond.status, cond.reason.as_str()),
        ("DisruptionTarget", true, "EvictionByEvictionAPI")
    );
    // With podReplacementPolicy Failed the evicted pod holds its slot until it is gone.
    assert!(c.sync(secs(1)).actions.is_empty());
    assert_eq!(c.status().terminating, 1);
    let plan = exit(&mut c, pod, 143, secs(2));
    assert_eq!(c.status().failed, 0);
    assert_eq!(plan.wake_at, Some(secs(2) + Duration::from_millis(1)));
    let plan = c.sync(secs(3));
    assert_eq!(plan.actions.len(), 1, "a replacement for the evicted pod");
    assert_eq!(c.evict("nope", secs(3)).unwrap_err(), "pods \"nope\" not found");
}

#[test]
fn backoff_limit_per_index_fails_the_index_and_the_job_with_failed_indexes() {
    // §5.4: backoffLimitPerIndex 1 allows one retry per index; index 1 fails twice.
    let mut s = spec(3, Some(3), i32::MAX as u32, true);
    s.backoff_limit_per_index = Some(1);
    s.backoff.initial = Duration::from_millis(10);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    exit(&mut c, pods[0], 0, secs(1));
    let plan = exit(&mut c, pods[1], 1, secs(1));
    // The failed pod of index 1 is not counted until its replacement exists.
    assert_eq!((c.status().failed, c.status().active), (0, 1));
    assert_eq!(c.status().failed_indexes.as_ref().map(ToString::to_string).as_deref(), Some(""));
    assert_eq!(plan.wake_at, Some(secs(1) + Duration::from_millis(10)));
    let plan = c.sync(secs(2));
    let retry = start(&mut c, &plan, secs(2));
    assert_eq!(retry.len(), 1);
    // Like upstream, the sync after the creation counts the replaced pod.
    assert_eq!(c.status().failed, 0);
    c.sync(secs(2));
    let p = c.pod(retry[0]).unwrap();
    assert_eq!((p.index, p.index_failure_count, p.index_ignored_failure_count), (Some(1), 1, 0));
    assert_eq!(c.status().failed, 1, "counted once the replacement exists");
    exit(&mut c, retry[0], 1, secs(3));
    assert_eq!(c.status().failed_indexes.as_ref().unwrap().to_string(), "1");
    assert!(c.sync(secs(10)).actions.is_empty(), "a failed index is never retried");
    exit(&mut c, pods[2], 0, secs(11));
    let st = c.status();
    assert_eq!((st.succeeded, st.failed, st.completed_indexes.to_string()), (2, 2, "0,2".into()));
    assert_eq!(
        conditions(&c),
        vec![
            (FailureTarget, true, "FailedIndexes".into(), "Job has failed indexes".into()),
            (Failed, true, "FailedIndexes".into(), "Job has failed indexes".into()),
        ]
    );
}

#[test]
fn max_failed_indexes_exceeded_fails_at_once() {
    let mut s = spec(2, Some(4), i32::MAX as u32, true);
    s.backoff_limit_per_index = Some(0);
    s.max_failed_indexes = Some(0);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    let plan = exit(&mut c, pods[0], 1, secs(1));
    assert_eq!(plan.actions, vec![Action::KillPod { pod: pods[1], grace: secs(30) }]);
    assert_eq!(
        conditions(&c),
        vec![(
            FailureTarget,
            true,
            "MaxFailedIndexesExceeded".into(),
            "Job has exceeded the specified maximal number of failed indexes".into()
        )]
    );
    assert_eq!(c.status().failed_indexes.as_ref().unwrap().to_string(), "0");
    exit(&mut c, pods[1], 143, secs(2));
    assert_eq!(types(&c), vec![FailureTarget, Failed]);
    assert_eq!(c.status().failed, 2);
}

#[test]
fn fail_index_action_fails_only_that_index() {
    let mut s = spec(2, Some(2), i32::MAX as u32, true);
    s.backoff_limit_per_index = Some(5);
    s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::FailIndex, &[7])] });
    s.pod_replacement_policy = PodReplacementPolicy::Failed;
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    exit(&mut c, pods[0], 7, secs(1));
    assert_eq!(c.status().failed_indexes.as_ref().unwrap().to_string(), "0");
    assert!(c.sync(secs(100)).actions.is_empty());
    exit(&mut c, pods[1], 0, secs(101));
    assert_eq!(c.status().conditions.last().unwrap().reason, "FailedIndexes");
    assert_eq!((c.status().failed, c.status().succeeded), (1, 1));
}

#[test]
fn success_policy_completes_and_does_not_count_killed_pods() {
    // §7: the lingering pods are killed and not counted as failed.
    let mut s = spec(3, Some(3), 6, true);
    s.success_policy = Some(vec![SuccessRule { succeeded_indexes: Some("0".into()), succeeded_count: None }]);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    let plan = exit(&mut c, pods[0], 0, secs(1));
    assert_eq!(plan.actions.len(), 2);
    assert_eq!(
        conditions(&c),
        vec![(SuccessCriteriaMet, true, "SuccessPolicy".into(), "Matched rules at index 0".into())]
    );
    assert_eq!((c.status().failed, c.status().terminating, c.status().succeeded), (0, 2, 1));
    exit(&mut c, pods[1], 143, secs(2));
    assert!(!c.is_finished(), "Complete waits for every terminating pod");
    exit(&mut c, pods[2], 143, secs(3));
    assert_eq!(types(&c), vec![SuccessCriteriaMet, Complete]);
    assert_eq!(c.status().conditions[1].message, "Matched rules at index 0");
    assert_eq!(c.status().completion_time, Some(secs(3)));
    assert_eq!(c.status().failed, 0);
}

#[test]
fn active_deadline_fails_the_job_after_backoff_limit_is_checked() {
    let mut s = spec(1, Some(1), 6, false);
    s.active_deadline = Some(secs(5));
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    assert_eq!(plan.wake_at, Some(secs(5)));
    let pod = start(&mut c, &plan, secs(0))[0];
    assert!(c.sync(secs(4)).actions.is_empty());
    let plan = c.sync(secs(5));
    assert_eq!(plan.actions, vec![Action::KillPod { pod, grace: secs(30) }]);
    assert_eq!(
        conditions(&c),
        vec![(
            FailureTarget,
            true,
            "DeadlineExceeded".into(),
            "Job was active longer than specified deadline".into()
        )]
    );
    exit(&mut c, pod, 143, secs(6));
    assert_eq!(types(&c), vec![FailureTarget, Failed]);
    assert_eq!(c.status().failed, 1);

    // "activeDeadlineSeconds with backofflimit reach": both hold, backoffLimit wins.
    let mut s = spec(1, Some(1), 0, false);
    s.active_deadline = Some(secs(1));
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    exit(&mut c, pod, 1, secs(2));
    assert_eq!(c.status().conditions[0].reason, "BackoffLimitExceeded");
}

#[test]
fn suspend_stops_the_deadline_clock_and_resume_restarts_it() {
    let mut s = spec(2, Some(4), 6, false);
    s.active_deadline = Some(secs(10));
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    c.observe(Event::SetSuspend(true));
    let plan = c.sync(secs(1));
    assert_eq!(plan.actions.len(), 2, "suspending kills the active pods");
    assert_eq!(conditions(&c), vec![(Suspended, true, "JobSuspended".into(), "Job suspended".into())]);
    for p in &pods {
        c.observe(Event::ContainerExited { pod: *p, exit_code: 143, at: secs(2) });
    }
    let plan = c.sync(secs(2));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.wake_at, None, "no deadline while suspended");
    assert!(c.sync(secs(50)).actions.is_empty());
    assert!(!c.is_finished());
    c.observe(Event::SetSuspend(false));
    let plan = c.sync(secs(60));
    assert_eq!(plan.actions.len(), 2, "resuming creates pods again");
    assert_eq!(conditions(&c), vec![(Suspended, false, "JobResumed".into(), "Job resumed".into())]);
    assert_eq!(c.status().start_time, Some(secs(60)));
    assert_eq!(plan.wake_at, Some(secs(70)));
    let reasons: Vec<&str> = c.events().iter().map(|e| e.reason.as_str()).collect();
    assert!(reasons.contains(&"Suspended") && reasons.contains(&"Resumed"), "{reasons:?}");
}

#[test]
fn created_suspended_makes_no_pods_and_sets_no_start_time() {
    let mut s = spec(2, Some(2), 6, false);
    s.suspend = true;
    let mut c = Controller::new(s);
    assert!(c.sync(secs(0)).actions.is_empty());
    assert_eq!(c.status().start_time, None);
    assert_eq!(types(&c), vec![Suspended]);
}

#[test]
fn pod_active_deadline_fails_just_that_pod() {
    let mut s = spec(1, Some(1), 1, false);
    s.pod_active_deadline = Some(secs(3));
    s.backoff.initial = Duration::from_millis(1);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    assert_eq!(c.sync(secs(1)).wake_at, Some(secs(3)));
    let plan = c.sync(secs(3));
    assert_eq!(plan.actions, vec![Action::KillPod { pod, grace: secs(30) }]);
    // The pod keeps its slot until its process is gone (kubelet ≥ 1.27).
    assert_eq!(c.pod(pod).unwrap().phase, PodPhase::Running);
    assert!(c.sync(secs(3)).actions.is_empty(), "killed once");
    assert_eq!((c.status().active, c.status().failed), (1, 0));
    exit(&mut c, pod, 0, secs(4));
    let p = c.pod(pod).unwrap();
    assert_eq!(
        (p.phase, p.reason.as_deref(), p.exit_code),
        (PodPhase::Failed, Some("DeadlineExceeded"), Some(0))
    );
    assert_eq!(p.message.as_deref(), Some("Pod was active on the node longer than the specified deadline"));
    assert_eq!(c.status().failed, 1);
    assert!(!c.is_finished(), "a pod deadline is an ordinary pod failure");
}

#[test]
fn ttl_after_finished_deletes_the_job() {
    let mut s = spec(1, Some(1), 6, false);
    s.ttl_after_finished = Some(secs(5));
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    let plan = exit(&mut c, pod, 0, secs(1));
    assert!(c.is_finished());
    assert_eq!(plan.wake_at, Some(secs(6)));
    assert!(!c.is_deleting());
    c.sync(secs(6));
    assert!(c.is_deleting());
}

#[test]
fn scale_refuses_counts_beyond_int32_with_the_api_message_and_changes_nothing() {
    let mut c = Controller::new(spec(4, None, 6, false));
    let err = c.scale(Some(i64::from(i32::MAX) + 1), None).unwrap_err();
    assert_eq!(
        err.messages(),
        vec!["spec.parallelism: Invalid value: 2147483648: must be less than or equal to 2147483647"]
    );
    let err = c.scale(Some(-1), None).unwrap_err();
    assert_eq!(
        err.messages(),
        vec!["spec.parallelism: Invalid value: -1: must be greater than or equal to 0"]
    );
    assert_eq!(c.spec().parallelism, 4);
}

#[test]
fn elastic_indexed_scale_down_drops_out_of_range_indexes() {
    let mut c = Controller::new(spec(4, Some(4), 6, true));
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    exit(&mut c, pods[3], 0, secs(1));
    assert_eq!(c.status().completed_indexes.to_string(), "3");
    let err = c.scale(Some(3), Some(2)).unwrap_err();
    assert_eq!(
        err.messages(),
        vec!["spec.completions: Invalid value: 2: can only be modified in tandem with spec.parallelism"]
    );
    c.scale(Some(2), Some(2)).unwrap();
    let plan = c.sync(secs(2));
    assert_eq!(plan.actions, vec![Action::KillPod { pod: pods[2], grace: secs(30) }]);
    assert_eq!((c.status().succeeded, c.status().completed_indexes.to_string()), (0, String::new()));
    exit(&mut c, pods[0], 0, secs(3));
    exit(&mut c, pods[1], 0, secs(3));
    exit(&mut c, pods[2], 143, secs(3));
    assert!(c.status().has_true(Complete));
    assert_eq!(c.status().succeeded, 2);

    let mut c = Controller::new(spec(2, Some(4), 6, false));
    let err = c.scale(None, Some(5)).unwrap_err();
    assert_eq!(err.messages(), vec!["spec.completions: Invalid value: 5: field is immutable"]);
    c.scale(Some(3), None).unwrap();
    assert_eq!(c.sync(secs(0)).actions.len(), 3);
}

#[test]
fn a_job_managed_by_another_controller_is_left_alone() {
    let mut s = spec(1, Some(1), 6, false);
    s.managed_by = Some("example.com/other".into());
    let mut c = Controller::new(s);
    assert!(c.sync(secs(0)).actions.is_empty());
    assert_eq!(c.status().start_time, None);
}

#[test]
fn events_record_creations_deletions_and_completion() {
    let mut c = Controller::new(spec(1, Some(1), 6, false));
    let plan = c.sync(secs(0));
    let pod = start(&mut c, &plan, secs(0))[0];
    exit(&mut c, pod, 0, secs(1));
    let name = c.pod(pod).unwrap().name.clone();
    let got: Vec<(String, String, String)> = c
        .events()
        .iter()
        .map(|e| (e.type_.as_str().to_string(), e.reason.clone(), e.message.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("Normal".into(), "SuccessfulCreate".into(), format!("Created pod: {name}")),
            ("Normal".into(), "Completed".into(), "Job completed".into()),
        ]
    );
}

#[test]
fn pods_deleted_by_suspend_or_scale_down_are_never_counted() {
    // `deleteJobPods` removes the tracking finalizer first: suspending 7 pods with
    // backoffLimit 6 must not fail the Job, and resuming creates pods at once (no backoff).
    let mut c = Controller::new(spec(7, Some(7), 6, false));
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    c.observe(Event::SetSuspend(true));
    c.sync(secs(1));
    for p in &pods {
        c.observe(Event::ContainerExited { pod: *p, exit_code: 143, at: secs(2) });
    }
    c.sync(secs(2));
    assert_eq!((c.status().failed, c.status().terminating), (0, 0));
    assert_eq!(types(&c), vec![Suspended]);
    c.observe(Event::SetSuspend(false));
    let plan = c.sync(secs(3));
    assert_eq!(plan.actions.len(), 7, "resumed pods are created without backoff");
    assert!(c.pods()[7..].iter().all(|p| p.attempt == 0), "suspension is not a failed attempt");

    let mut c = Controller::new(spec(3, None, 0, false));
    let plan = c.sync(secs(0));
    let pods = start(&mut c, &plan, secs(0));
    c.scale(Some(1), None).unwrap();
    assert_eq!(c.sync(secs(1)).actions.len(), 2);
    c.sync(secs(1));
    // Newest first: pods 2 and 1 were deleted; they exit 0 on SIGTERM.
    exit(&mut c, pods[2], 0, secs(2));
    exit(&mut c, pods[1], 0, secs(2));
    assert!(!c.is_finished(), "a work queue still has its running pod");
    assert_eq!((c.status().failed, c.status().succeeded), (0, 0), "deleted pods count neither way");
}

#[test]
fn huge_deadlines_do_not_overflow() {
    let mut s = spec(1, Some(1), 6, false);
    s.active_deadline = Some(Duration::from_secs(i64::MAX as u64));
    s.pod_active_deadline = Some(Duration::from_secs(i64::MAX as u64));
    s.ttl_after_finished = Some(Duration::MAX);
    let mut c = Controller::new(s);
    let plan = c.sync(secs(1));
    let pod = start(&mut c, &plan, secs(1))[0];
    c.sync(secs(2));
    exit(&mut c, pod, 0, secs(3));
    assert!(c.is_finished());
    assert_eq!(c.sync(secs(4)).wake_at, Some(Duration::MAX));
}

/// What the timeline colours `ignored`: the failed pods an `Ignore` rule left out of
/// `status.failed` (`pod_failure_policy.go`, `matchPodFailurePolicy` returning count = false).
#[test]
fn is_failure_ignored_names_the_failed_pods_an_ignore_rule_left_uncounted() {
    for policy in [true, false] {
        let mut s = spec(2, Some(2), 6, false);
        if policy {
            s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![exit_rule(PfpAction::Ignore, &[3])] });
        }
        let mut c = Controller::new(s);
        let plan = c.sync(secs(0));
        let pods = start(&mut c, &plan, secs(0));
        let ignored = |c: &Controller, id: PodId| c.is_failure_ignored(c.pod(id).unwrap());
        assert!(!ignored(&c, pods[0]), "a running pod");
        exit(&mut c, pods[0], 3, secs(1));
        exit(&mut c, pods[1], 1, secs(1));
        assert_eq!((ignored(&c, pods[0]), ignored(&c, pods[1])), (policy, false));
        assert_eq!(c.status().failed, if policy { 1 } else { 2 });
    }
}
