//! Table-driven tests of one `sync`, ported from upstream `TestControllerSyncJob`
//! (docs/semantics.md §8.A), plus multi-step scenarios on a virtual clock.
//!
//! Pod shorthand: `R` running, `R+` running and ready, `P` pending, `S` succeeded, `F` failed,
//! `T` terminating (running with a deletion request at "now"); an index prefix `3:R`; `-:R` is
//! a pod of an Indexed Job without a valid index (upstream's missing or unparsable annotation).

use super::*;
use crate::controller::failure_policy::PodFailurePolicy;
use crate::controller::pod::ContainerState;
use crate::controller::test_support::{apply, secs, spec};
use crate::status::Condition;

const NOW: Duration = Duration::from_secs(1_000_000);
/// Upstream's finished pods end at `0001-01-01T00:00:01Z`: long before "now".
const LONG_AGO: Duration = Duration::from_secs(1);

/// Adds a pod described by the shorthand, as if it had been created and observed earlier.
fn add_pod(c: &mut Controller, shorthand: &str) -> PodId {
    let (index, state) = match shorthand.split_once(':') {
        Some(("-", state)) => (None, state),
        Some((ix, state)) => (Some(ix.parse().unwrap()), state),
        None => (None, shorthand),
    };
    let id = PodId(c.pods.len() as u64);
    let mut pod = Pod::new(id, format!("pod-{}", id.0), index, LONG_AGO);
    match state {
        "P" => {}
        "R" | "R+" | "T" => {
            pod.phase = PodPhase::Running;
            pod.container = ContainerState::Running;
            pod.started_at = Some(LONG_AGO);
            if state == "R+" {
                pod.ready = true;
                pod.ready_since = Some(LONG_AGO);
            }
            if state == "T" {
                pod.deletion_requested_at = Some(NOW);
            }
        }
        "S" => pod.terminate(0, LONG_AGO),
        "F" => pod.terminate(1, LONG_AGO),
        other => panic!("unknown pod shorthand {other}"),
    }
    c.pods.push(pod);
    c.unsettled.insert(id);
    id
}

#[derive(Default)]
struct Case {
    name: &'static str,
    parallelism: u32,
    completions: Option<u32>,
    backoff_limit: u32,
    indexed: bool,
    replace_only_failed: bool,
    /// `podFailurePolicy: {}` (which also defaults podReplacementPolicy to `Failed`).
    empty_pod_failure_policy: bool,
    suspend: bool,
    deleting: bool,
    pods: &'static [&'static str],
    status_failed: u32,
    prior_conditions: Vec<Condition>,
    backoff: Option<BackoffRecord>,
    // Expectations.
    creates: usize,
    created_indexes: Option<Vec<u32>>,
    deletes: usize,
    active: u32,
    ready: u32,
    succeeded: u32,
    failed: u32,
    terminating: u32,
    completed_indexes: &'static str,
    /// (type, status, reason) in order.
    conditions: Vec<(ConditionType, bool, &'static str)>,
}

fn run(case: &Case) {
    let mut s = spec(case.parallelism, case.completions, case.backoff_limit, case.indexed);
    if case.replace_only_failed {
        s.pod_replacement_policy = PodReplacementPolicy::Failed;
    }
    if case.empty_pod_failure_policy {
        s.pod_failure_policy = Some(PodFailurePolicy { rules: vec![] });
        s.pod_replacement_policy = PodReplacementPolicy::Failed;
    }
    s.suspend = case.suspend;
    let mut c = Controller::new(s);
    for p in case.pods {
        add_pod(&mut c, p);
    }
    c.deleting = case.deleting;
    c.status.failed = case.status_failed;
    c.status.conditions = case.prior_conditions.clone();
    if let Some(record) = case.backoff {
        c.backoff = record;
    }
    let plan = c.sync(NOW);
    let created: Vec<PodId> = plan
        .actions
        .iter()
        .filter_map(|a| if let Action::CreatePod(id) = a { Some(*id) } else { None })
        .collect();
    let deleted = plan.actions.iter().filter(|a| matches!(a, Action::KillPod { .. })).count();
    let n = case.name;
    assert_eq!(created.len(), case.creates, "{n}: creates");
    if let Some(want) = &case.created_indexes {
        let got: Vec<u32> = created.iter().map(|id| c.pod(*id).unwrap().index.unwrap()).collect();
        assert_eq!(&got, want, "{n}: created indexes");
    }
    assert_eq!(deleted, case.deletes, "{n}: deletes");
    let st = c.status();
    assert_eq!(
        (st.active, st.ready, st.succeeded, st.failed, st.terminating),
        (case.active, case.ready, case.succeeded, case.failed, case.terminating),
        "{n}: (active, ready, succeeded, failed, terminating)"
    );
    assert_eq!(st.completed_indexes.to_string(), case.completed_indexes, "{n}: completedIndexes");
    let conditions: Vec<(ConditionType, bool, &str)> =
        st.conditions.iter().map(|c| (c.type_, c.status, c.reason.as_str())).collect();
    assert_eq!(conditions, case.conditions, "{n}: conditions");
    assert_eq!(st.start_time.is_some(), !case.suspend, "{n}: startTime set iff not suspended");
    for cond in &st.conditions {
        let want = match cond.reason.as_str() {
            "CompletionsReached" => "Reached expected number of succeeded pods",
            "BackoffLimitExceeded" => "Job has reached the specified backoff limit",
            "JobSuspended" => "Job suspended",
            "JobResumed" => "Job resumed",
            _ => continue,
        };
        assert_eq!(cond.message, want, "{n}: message of {:?}", cond.type_);
    }
    // A second sync at the same time with nothing new changes nothing (level-triggered). After
    // deletions it may: the deleted pods are then seen terminating, and counted as failed.
    if case.deletes == 0 {
        let again = c.sync(NOW);
        assert!(again.actions.is_empty(), "{n}: second sync acted: {:?}", again.actions);
    }
}

use ConditionType::{Complete, Failed, FailureTarget, SuccessCriteriaMet, Suspended};
const CR: &str = "CompletionsReached";
const BL: &str = "BackoffLimitExceeded";

fn manual(type_: ConditionType) -> Condition {
    Condition {
        type_,
        status: false,
        reason: "ConditionAddedManually".into(),
        message: "Testing".into(),
        last_transition_time: NOW,
    }
}

#[test]
fn controller_sync_job_table() {
    let cases = vec![
        Case {
            name: "A1 job start",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            creates: 2,
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A2 WQ job start",
            parallelism: 2,
            backoff_limit: 6,
            creates: 2,
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A3 pending pods",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["P", "P"],
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A4 correct # of pods",
            parallelism: 3,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R+", "R+", "R"],
            active: 3,
            ready: 2,
            ..Default::default()
        },
        Case {
            name: "A5 WQ job: correct # of pods",
            parallelism: 2,
            backoff_limit: 6,
            pods: &["R", "R"],
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A6 too few active pods",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R", "S"],
            creates: 1,
            active: 2,
            succeeded: 1,
            ..Default::default()
        },
        Case {
            name: "A7 WQ job: recreate pods when failed",
            parallelism: 1,
            backoff_limit: 6,
            replace_only_failed: true,
            pods: &["R", "F", "T"],
            active: 1,
            failed: 1,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A8 WQ job: policy not set counts terminating as failed",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            pods: &["R", "F", "T"],
            active: 1,
            failed: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A9 WQ job: recreate pods when terminating or failed",
            parallelism: 1,
            backoff_limit: 6,
            pods: &["R", "F", "T"],
            active: 1,
            failed: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A10 more terminating pods than parallelism",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            replace_only_failed: true,
            pods: &["R", "R", "T", "T", "T", "T"],
            deletes: 1,
            active: 1,
            terminating: 5,
            ..Default::default()
        },
        Case {
            name: "A11 more terminating pods than parallelism; PodFailurePolicy used",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            empty_pod_failure_policy: true,
            pods: &["R", "R", "T", "T", "T", "T"],
            deletes: 1,
            active: 1,
            terminating: 5,
            ..Default::default()
        },
        Case {
            name: "A12 too few active pods and active back-off",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            backoff: Some(BackoffRecord { failures_after_last_success: 1, last_failure_time: Some(NOW) }),
            ..Default::default()
        },
        Case {
            name: "A13 too few active pods and no back-offs",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            backoff: Some(BackoffRecord { failures_after_last_success: 0, last_failure_time: Some(NOW) }),
            creates: 1,
            active: 1,
            ..Default::default()
        },
        Case {
            name: "A14 too few active pods with a dynamic job",
            parallelism: 2,
            backoff_limit: 6,
            pods: &["R"],
            creates: 1,
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A16 too many active pods",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R", "R", "R"],
            deletes: 1,
            active: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A18 count ready pods when too many active pods",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R+", "R+", "R+"],
            deletes: 1,
            active: 2,
            ready: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A19 failed + succeed pods: reset backoff delay",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R", "S", "F"],
            creates: 1,
            active: 2,
            succeeded: 1,
            failed: 1,
            ..Default::default()
        },
        Case {
            name: "A20 new failed pod",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R", "F"],
            creates: 1,
            active: 2,
            failed: 1,
            ..Default::default()
        },
        Case {
            name: "A21 no new pod; failed pod already counted",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 6,
            pods: &["R"],
            status_failed: 1,
            active: 1,
            failed: 1,
            ..Default::default()
        },
        Case {
            name: "A23 job finish",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["S", "S", "S", "S", "S"],
            succeeded: 5,
            conditions: vec![(SuccessCriteriaMet, true, CR), (Complete, true, CR)],
            ..Default::default()
        },
        Case {
            name: "A24 WQ job finishing",
            parallelism: 2,
            backoff_limit: 6,
            pods: &["R", "S"],
            active: 1,
            succeeded: 1,
            ..Default::default()
        },
        Case {
            name: "A25 WQ job all finished",
            parallelism: 2,
            backoff_limit: 6,
            pods: &["S", "S"],
            succeeded: 2,
            conditions: vec![(SuccessCriteriaMet, true, CR), (Complete, true, CR)],
            ..Default::default()
        },
        Case {
            name: "A26 WQ job all finished despite one failure",
            parallelism: 2,
            backoff_limit: 6,
            pods: &["S", "F"],
            succeeded: 1,
            failed: 1,
            conditions: vec![(SuccessCriteriaMet, true, CR), (Complete, true, CR)],
            ..Default::default()
        },
        Case {
            name: "A27 more active pods than parallelism",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R"; 10],
            deletes: 8,
            active: 2,
            terminating: 8,
            ..Default::default()
        },
        Case {
            name: "A28 more active pods than remaining completions",
            parallelism: 3,
            completions: Some(4),
            backoff_limit: 6,
            pods: &["R", "R", "R", "S", "S"],
            deletes: 1,
            active: 2,
            succeeded: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A29 status change",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            pods: &["R", "R", "S", "S"],
            active: 2,
            succeeded: 2,
            ..Default::default()
        },
        Case {
            name: "A30 deleting job",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            deleting: true,
            pods: &["P", "R", "S"],
            active: 2,
            succeeded: 1,
            ..Default::default()
        },
        Case {
            name: "A32 too many job failures",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 0,
            deleting: true,
            pods: &["F"],
            failed: 1,
            conditions: vec![(FailureTarget, true, BL), (Failed, true, BL)],
            ..Default::default()
        },
        Case {
            name: "A34 indexed job start",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            creates: 2,
            created_indexes: Some(vec![0, 1]),
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A35 indexed job with some pods deleted, podReplacementPolicy Failed",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            replace_only_failed: true,
            pods: &["-:T"],
            creates: 1,
            created_indexes: Some(vec![0]),
            active: 1,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A36 indexed job with some pods deleted, podReplacementPolicy TerminatingOrFailed",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            pods: &["-:T"],
            creates: 2,
            created_indexes: Some(vec![0, 1]),
            active: 2,
            terminating: 1,
            ..Default::default()
        },
        Case {
            name: "A37 indexed job completed",
            parallelism: 2,
            completions: Some(3),
            backoff_limit: 6,
            indexed: true,
            pods: &["0:S", "1:F", "1:S", "2:S"],
            succeeded: 3,
            failed: 1,
            completed_indexes: "0-2",
            conditions: vec![(SuccessCriteriaMet, true, CR), (Complete, true, CR)],
            ..Default::default()
        },
        Case {
            name: "A38 indexed job failed",
            parallelism: 2,
            completions: Some(3),
            backoff_limit: 0,
            indexed: true,
            pods: &["0:S", "1:F", "2:R"],
            deletes: 1,
            succeeded: 1,
            failed: 2,
            terminating: 1,
            completed_indexes: "0",
            conditions: vec![(FailureTarget, true, BL)],
            ..Default::default()
        },
        Case {
            name: "A40 count ready pods when job fails",
            parallelism: 2,
            completions: Some(3),
            backoff_limit: 0,
            pods: &["R+", "R+", "F"],
            deletes: 2,
            failed: 3,
            terminating: 2,
            conditions: vec![(FailureTarget, true, BL)],
            ..Default::default()
        },
        Case {
            name: "A41 indexed job repeated completed index",
            parallelism: 2,
            completions: Some(3),
            backoff_limit: 6,
            indexed: true,
            pods: &["0:S", "1:S", "1:S"],
            creates: 1,
            created_indexes: Some(vec![2]),
            active: 1,
            succeeded: 2,
            completed_indexes: "0,1",
            ..Default::default()
        },
        Case {
            name: "A42 indexed job some running and completed pods",
            parallelism: 8,
            completions: Some(20),
            backoff_limit: 6,
            indexed: true,
            pods: &["0:R", "2:S", "3:P", "4:S", "5:S", "7:S", "8:S", "9:S"],
            creates: 6,
            created_indexes: Some(vec![1, 6, 10, 11, 12, 13]),
            active: 8,
            succeeded: 6,
            completed_indexes: "2,4,5,7-9",
            ..Default::default()
        },
        Case {
            name: "A43 indexed job some failed pods",
            parallelism: 3,
            completions: Some(4),
            backoff_limit: 6,
            indexed: true,
            pods: &["0:F", "1:P", "2:F"],
            creates: 2,
            created_indexes: Some(vec![0, 2]),
            active: 3,
            failed: 2,
            ..Default::default()
        },
        Case {
            name: "A44 indexed job some pods without index",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            pods: &["-:R", "-:S", "-:F", "-:R", "-:S", "-:F", "-:P", "0:S", "1:R", "2:R"],
            deletes: 3,
            active: 2,
            succeeded: 1,
            terminating: 3,
            completed_indexes: "0",
            ..Default::default()
        },
        Case {
            name: "A45 indexed job repeated indexes",
            parallelism: 5,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            pods: &["-:S", "-:F", "-:R", "0:S", "1:R", "2:R", "2:P"],
            deletes: 2,
            active: 2,
            succeeded: 1,
            terminating: 2,
            completed_indexes: "0",
            ..Default::default()
        },
        Case {
            name: "A46 indexed job with indexes outside of range",
            parallelism: 2,
            completions: Some(5),
            backoff_limit: 6,
            indexed: true,
            pods: &["0:S", "5:R", "6:S", "7:P", "8:F"],
            deletes: 2,
            succeeded: 1,
            terminating: 2,
            completed_indexes: "0",
            ..Default::default()
        },
        Case {
            name: "A47 suspending a job with satisfied expectations",
            parallelism: 2,
            completions: Some(4),
            backoff_limit: 6,
            suspend: true,
            pods: &["R", "R"],
            deletes: 2,
            terminating: 2,
            conditions: vec![(Suspended, true, "JobSuspended")],
            ..Default::default()
        },
        Case {
            name: "A49 count ready pods when suspending a job",
            parallelism: 2,
            completions: Some(4),
            backoff_limit: 6,
            suspend: true,
            pods: &["R+", "R+"],
            deletes: 2,
            terminating: 2,
            conditions: vec![(Suspended, true, "JobSuspended")],
            ..Default::default()
        },
        Case {
            name: "A53 resuming a suspended job",
            parallelism: 2,
            completions: Some(4),
            backoff_limit: 6,
            prior_conditions: vec![Condition {
                type_: Suspended,
                status: true,
                reason: "JobSuspended".into(),
                message: "Job suspended".into(),
                last_transition_time: LONG_AGO,
            }],
            creates: 2,
            active: 2,
            conditions: vec![(Suspended, false, "JobResumed")],
            ..Default::default()
        },
        Case {
            name: "A54 suspending a deleted job",
            parallelism: 2,
            completions: Some(4),
            backoff_limit: 6,
            suspend: true,
            deleting: true,
            pods: &["R", "R"],
            active: 2,
            ..Default::default()
        },
        Case {
            name: "A55 FailureTarget=False condition added manually is ignored",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 0,
            pods: &["R+"],
            prior_conditions: vec![manual(FailureTarget)],
            active: 1,
            ready: 1,
            conditions: vec![(FailureTarget, false, "ConditionAddedManually")],
            ..Default::default()
        },
        Case {
            name: "A56 SuccessCriteriaMet=False condition added manually is ignored",
            parallelism: 1,
            completions: Some(1),
            backoff_limit: 0,
            pods: &["R+"],
            prior_conditions: vec![manual(SuccessCriteriaMet)],
            active: 1,
            ready: 1,
            conditions: vec![(SuccessCriteriaMet, false, "ConditionAddedManually")],
            ..Default::default()
        },
        Case {
            name: "A57 backoff limit exceeded",
            parallelism: 2,
            completions: Some(3),
            backoff_limit: 0,
            indexed: true,
            pods: &["0:S", "1:F", "2:R"],
            deletes: 1,
            succeeded: 1,
            failed: 2,
            terminating: 1,
            completed_indexes: "0",
            conditions: vec![(FailureTarget, true, BL)],
            ..Default::default()
        },
    ];
    for case in &cases {
        run(case);
    }
}

#[test]
fn a12_active_back_off_wakes_the_controller_when_it_expires() {
    let mut c = Controller::new(spec(1, Some(1), 6, false));
    c.backoff = BackoffRecord { failures_after_last_success: 1, last_failure_time: Some(NOW) };
    let plan = c.sync(NOW);
    assert!(plan.actions.is_empty());
    assert_eq!(plan.wake_at, Some(NOW + Duration::from_secs(10)));
    let plan = c.sync(NOW + Duration::from_secs(10));
    assert_eq!(plan.actions, vec![Action::CreatePod(PodId(0))]);
}

// ---- Multi-step scenarios on a virtual clock -------------------------------------------------

#[test]
fn recreation_backoff_doubles_and_backoff_limit_fails_the_job() {
    // §5.2/§5.3: backoffLimit 2 tolerates two failed pods and fails on the third; the
    // replacements wait 10 s then 20 s after the previous failure.
    let mut c = Controller::new(spec(1, Some(1), 2, false));
    let mut now = secs(0);
    let plan = c.sync(now);
    let (created, ..) = apply(&mut c, &plan, now);
    let mut pod = created[0];
    for (attempt, delay) in [(1u64, 10u64), (2, 20)] {
        now += secs(1);
        c.observe(Event::ContainerExited { pod, exit_code: 3, at: now });
        let plan = c.sync(now);
        assert!(plan.actions.is_empty(), "attempt {attempt}: no replacement before the delay");
        assert_eq!(plan.wake_at, Some(now + secs(delay)), "attempt {attempt}");
        assert_eq!(c.status().failed, attempt as u32);
        now += secs(delay);
        let plan = c.sync(now);
        let (created, ..) = apply(&mut c, &plan, now);
        assert_eq!(created.len(), 1, "attempt {attempt}: replacement after {delay}s");
        pod = created[0];
    }
    now += secs(1);
    c.observe(Event::ContainerExited { pod, exit_code: 3, at: now });
    let plan = c.sync(now);
    assert!(plan.actions.is_empty());
    let st = c.status();
    assert_eq!(st.failed, 3);
    let conds: Vec<_> =
        st.conditions.iter().map(|c| (c.type_, c.reason.as_str(), c.message.as_str())).collect();
    assert_eq!(
        conds,
        vec![
            (FailureTarget, BL, "Job has reached the specified backoff limit"),
            (Failed, BL, "Job has reached the specified backoff limit"),
        ]
    );
    assert!(c.is_finished());
    assert_eq!(st.completion_time, None, "failed Jobs have no completionTime");
}

#[test]
fn failure_kills_running_pods_and_failed_waits_for_them() {
    // §3.3: FailureTarget at once, remaining pods killed and counted, Failed once none is
    // terminating.
    let mut c = Controller::new(spec(2, Some(4), 0, false));
    let plan = c.sync(secs(0));
    let (created, ..) = apply(&mut c, &plan, secs(0));
    c.observe(Event::ContainerExited { pod: created[0], exit_code: 1, at: secs(1) });
    let plan = c.sync(secs(1));
    let (_, _, killed) = apply(&mut c, &plan, secs(1));
    assert_eq!(killed, vec![created[1]]);
    assert_eq!(plan.actions, vec![Action::KillPod { pod: created[1], grace: secs(30) }]);
    let st = c.status();
    assert_eq!((st.failed, st.terminating, st.active), (2, 1, 0));
    assert_eq!(st.conditions.len(), 1);
    assert!(!c.is_finished());
    c.observe(Event::ContainerExited { pod: created[1], exit_code: 143, at: secs(2) });
    c.sync(secs(2));
    let st = c.status();
    assert_eq!((st.failed, st.terminating), (2, 0), "a killed pod is counted once");
    assert_eq!(st.conditions.iter().map(|c| c.type_).collect::<Vec<_>>(), vec![FailureTarget, Failed]);
    assert_eq!(st.conditions[1].last_transition_time, secs(2));
    assert!(c.is_finished());
    assert!(c.sync(secs(3)).actions.is_empty(), "a finished Job is never reconciled again");
}

#[test]
fn parallelism_cap_holds_while_completions_are_reached() {
    let mut c = Controller::new(spec(2, Some(5), 6, false));
    let mut now = secs(0);
    let plan = c.sync(now);
    let mut running: Vec<PodId> = apply(&mut c, &plan, now).0;
    let mut created_total = running.len();
    while !c.is_finished() {
        assert!(c.status().active <= 2, "parallelism exceeded");
        now += secs(1);
        let done = running.remove(0);
        c.observe(Event::ContainerExited { pod: done, exit_code: 0, at: now });
        let plan = c.sync(now);
        let (created, ..) = apply(&mut c, &plan, now);
        created_total += created.len();
        running.extend(created);
    }
    assert_eq!(created_total, 5, "exactly completions pods when none fails");
    assert_eq!(c.status().succeeded, 5);
    assert_eq!(c.status().completion_time, Some(now));
}

#[test]
fn on_failure_restarts_in_place_and_restarts_count_toward_backoff_limit() {
    // §5.1/§5.2: with OnFailure the same pod restarts after 10 s, then 20 s; backoffLimit 2
    // fails the Job once the restart count of running pods reaches 2.
    let mut s = spec(1, Some(1), 2, false);
    s.restart_policy = RestartPolicy::OnFailure;
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = apply(&mut c, &plan, secs(0)).0[0];
    c.observe(Event::ContainerExited { pod, exit_code: 2, at: secs(1) });
    let plan = c.sync(secs(1));
    assert!(plan.actions.is_empty());
    assert_eq!(plan.wake_at, Some(secs(11)));
    let p = c.pod(pod).unwrap();
    assert_eq!((p.phase, p.restart_count), (PodPhase::Running, 1));
    assert_eq!(c.status().failed, 0, "an in-place restart is not a failed pod");
    let plan = c.sync(secs(11));
    assert_eq!(plan.actions, vec![Action::RestartContainer(pod)]);
    apply(&mut c, &plan, secs(11));
    c.observe(Event::ContainerExited { pod, exit_code: 2, at: secs(12) });
    let plan = c.sync(secs(12));
    assert!(plan.actions.is_empty(), "the waiting pod has no process to kill");
    let st = c.status();
    assert_eq!(st.failed, 1, "the pod is killed and counted as failed");
    assert_eq!(st.conditions.iter().map(|c| c.type_).collect::<Vec<_>>(), vec![FailureTarget, Failed]);
    assert_eq!(c.pod(pod).unwrap().restart_count, 2);
}

#[test]
fn on_failure_with_backoff_limit_zero_fails_on_the_first_restart() {
    let mut s = spec(1, Some(1), 0, false);
    s.restart_policy = RestartPolicy::OnFailure;
    let mut c = Controller::new(s);
    let plan = c.sync(secs(0));
    let pod = apply(&mut c, &plan, secs(0)).0[0];
    c.observe(Event::ContainerExited { pod, exit_code: 1, at: secs(1) });
    c.sync(secs(1));
    assert!(c.is_finished());
    assert_eq!(c.status().failed, 1);
}

#[test]
fn work_queue_completes_when_one_succeeds_and_the_rest_end() {
    let mut c = Controller::new(spec(3, None, 6, false));
    let plan = c.sync(secs(0));
    let pods = apply(&mut c, &plan, secs(0)).0;
    c.observe(Event::ContainerExited { pod: pods[0], exit_code: 0, at: secs(1) });
    c.observe(Event::ContainerExited { pod: pods[1], exit_code: 1, at: secs(1) });
    let plan = c.sync(secs(1));
    assert!(plan.actions.is_empty(), "after a success no pod is created, not even a replacement");
    assert!(!c.is_finished());
    c.observe(Event::ContainerExited { pod: pods[2], exit_code: 0, at: secs(2) });
    c.sync(secs(2));
    let st = c.status();
    assert_eq!((st.succeeded, st.failed), (2, 1));
    assert!(st.has_true(Complete));
}

#[test]
fn delete_kills_every_pod_and_creates_nothing_more() {
    let mut c = Controller::new(spec(3, Some(10), 6, true));
    let plan = c.sync(secs(0));
    let pods = apply(&mut c, &plan, secs(0)).0;
    let plan = c.delete(secs(1));
    assert_eq!(plan.actions.len(), 3);
    assert!(c.has_live_processes());
    for p in &pods {
        c.observe(Event::ContainerExited { pod: *p, exit_code: 143, at: secs(2) });
    }
    let plan = c.sync(secs(2));
    assert!(plan.actions.is_empty());
    assert!(!c.has_live_processes());
}

#[test]
fn start_error_fails_the_pod_with_exit_code_128() {
    let mut c = Controller::new(spec(1, Some(1), 0, false));
    let plan = c.sync(secs(0));
    let Action::CreatePod(pod) = plan.actions[0] else { panic!() };
    c.observe(Event::ContainerStartFailed { pod, message: "no such file".into(), at: secs(0) });
    c.sync(secs(0));
    let p = c.pod(pod).unwrap();
    assert_eq!(
        (p.phase, p.exit_code, p.reason.as_deref()),
        (PodPhase::Failed, Some(128), Some("StartError"))
    );
    assert!(c.is_finished());
}

#[test]
fn indexed_pod_names_carry_the_index() {
    let mut c = Controller::new(spec(2, Some(2), 6, true));
    c.sync(secs(0));
    let names: Vec<&str> = c.pods().iter().map(|p| p.name.as_str()).collect();
    assert!(names[0].starts_with("foobar-0-") && names[0].len() == "foobar-0-".len() + 5, "{names:?}");
    assert!(names[1].starts_with("foobar-1-"), "{names:?}");
}

#[test]
fn zero_completions_completes_at_once_and_zero_parallelism_waits() {
    let mut c = Controller::new(spec(1, Some(0), 6, false));
    assert!(c.sync(secs(0)).actions.is_empty());
    assert!(c.is_finished());
    let mut c = Controller::new(spec(0, Some(3), 6, false));
    assert!(c.sync(secs(0)).actions.is_empty());
    assert!(!c.is_finished());
    assert_eq!(c.status().active, 0);
}

#[test]
fn removal_picks_the_pods_a_full_sort_would_pick_first() {
    // Pods of every kind `ActivePods` orders by, with many ties that only the id breaks.
    let mut c = Controller::new(spec(1500, Some(1500), 6, false));
    let mut x = 0x2545_f491_u64;
    for n in 0..1500u64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let id = add_pod(&mut c, if x >> 60 < 4 { "P" } else { "R" });
        let pod = &mut c.pods[id.0 as usize];
        pod.ready = pod.phase == PodPhase::Running && (x >> 50) & 1 == 1;
        pod.ready_since = pod.ready.then(|| secs((x >> 40) % 4));
        pod.restart_count = ((x >> 30) % 3) as u32;
        pod.created_at = secs(n % 7);
    }
    let all: Vec<PodId> = c.pods.iter().map(|p| p.id).collect();
    let mut sorted = all.clone();
    sorted.sort_by(|a, b| c.deletion_order(*a, *b));
    for k in [1, 7, 499, 500, 501, 1499, 1500, 2000] {
        let expected = &sorted[..k.min(MAX_POD_CREATE_DELETE_PER_SYNC)];
        assert_eq!(c.pods_for_removal(all.clone(), k, false), expected, "rm_at_least {k}");
    }
}
