//! The per-pod container machine and its place in the controller, on a virtual clock.

use super::*;
use crate::controller::defaults::{ContainerLayout, ContainerSpec};
use crate::controller::failure_policy::{PfpAction, PfpRule, PodFailurePolicy, Requirement};
use crate::controller::pod::ProcessEnd;
use crate::controller::test_support::{secs, spec};
use crate::controller::EffectiveSpec;
use crate::status::ConditionType;
use ContainerKind::{Init, Main, Sidecar};

fn layout(containers: &[(&str, ContainerKind)]) -> ContainerLayout {
    ContainerLayout {
        containers: containers
            .iter()
            .map(|(name, _)| ContainerSpec {
                name: (*name).into(),
                command: vec!["true".into()],
                args: vec![],
                env: vec![],
                working_dir: None,
                config_error: None,
            })
            .collect(),
        kinds: containers.iter().map(|(_, k)| *k).collect(),
        names: containers.iter().map(|(n, _)| n.to_string()).collect(),
    }
}

fn job(containers: &[(&str, ContainerKind)], policy: RestartPolicy) -> EffectiveSpec {
    let mut s = spec(1, Some(1), 0, false);
    s.restart_policy = policy;
    s.termination_grace_period = secs(5);
    s.container_layout = Some(layout(containers));
    s
}

/// Starts and stops as the controller asks, in order: `(Start|Stop, container)`.
fn container_actions(plan: &Plan) -> Vec<(&'static str, usize)> {
    plan.actions
        .iter()
        .map(|a| match a {
            Action::StartContainer { container, .. } => ("start", *container),
            Action::KillContainer { container, .. } => ("stop", *container),
            Action::KillPod { .. } => ("kill-pod", usize::MAX),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn started(c: &mut Controller, container: usize, at: u64) {
    let event = Event::ContainerStarted { pod: PodId(0), at: secs(at) };
    c.observe(Event::OfContainer { container, event: Box::new(event) });
}

fn exited(c: &mut Controller, container: usize, code: i32, at: u64) {
    let event = Event::ContainerEnded { pod: PodId(0), end: ProcessEnd::Exited(code), at: secs(at) };
    c.observe(Event::OfContainer { container, event: Box::new(event) });
}

fn pod(c: &Controller) -> &crate::controller::Pod {
    c.pod(PodId(0)).expect("the pod")
}

#[test]
fn init_containers_run_in_order_then_the_main_ones_together() {
    let mut c =
        Controller::new(job(&[("a", Init), ("b", Init), ("m1", Main), ("m2", Main)], RestartPolicy::Never));
    assert_eq!(container_actions(&c.sync(secs(0))), [("start", 0)]);
    started(&mut c, 0, 0);
    assert_eq!(pod(&c).phase, PodPhase::Pending, "initialising");
    assert_eq!(container_actions(&c.sync(secs(0))), []);
    exited(&mut c, 0, 0, 1);
    assert_eq!(container_actions(&c.sync(secs(1))), [("start", 1)]);
    started(&mut c, 1, 1);
    exited(&mut c, 1, 0, 2);
    assert_eq!(container_actions(&c.sync(secs(2))), [("start", 2), ("start", 3)]);
    started(&mut c, 2, 2);
    started(&mut c, 3, 2);
    assert_eq!((pod(&c).phase, pod(&c).ready), (PodPhase::Running, true));
    exited(&mut c, 2, 0, 3);
    c.sync(secs(3));
    assert_eq!(pod(&c).phase, PodPhase::Running, "m2 still runs");
    exited(&mut c, 3, 0, 4);
    c.sync(secs(4));
    assert_eq!((pod(&c).phase, pod(&c).exit_code), (PodPhase::Succeeded, Some(0)));
    assert!(c.status().has_true(ConditionType::Complete));
    let codes = pod(&c).containers.as_ref().unwrap().exit_codes();
    assert_eq!(codes, [("a", 0), ("b", 0), ("m1", 0), ("m2", 0)]);
}

#[test]
fn a_failed_init_container_fails_the_pod_under_never() {
    let mut c = Controller::new(job(&[("a", Init), ("m", Main)], RestartPolicy::Never));
    c.sync(secs(0));
    started(&mut c, 0, 0);
    exited(&mut c, 0, 3, 1);
    assert_eq!(container_actions(&c.sync(secs(1))), []);
    let p = pod(&c);
    assert_eq!((p.phase, p.exit_code), (PodPhase::Failed, Some(3)));
    assert_eq!(p.containers.as_ref().unwrap().failed, Some(0));
    assert_eq!(p.containers.as_ref().unwrap().statuses[1].state, RunState::Terminated, "never started");
    assert!(c.status().has_true(ConditionType::Failed));
}

/// `OnFailure`: a failed init container restarts in place after the crash-loop delay (10 s
/// first, as `kubelet.rs` restarts a pod's only container), and its restarts count toward
/// `backoffLimit`.
#[test]
fn a_failed_init_container_restarts_in_place_under_on_failure() {
    let mut s = job(&[("a", Init), ("m", Main)], RestartPolicy::OnFailure);
    s.backoff_limit = 3;
    let mut c = Controller::new(s);
    c.sync(secs(0));
    started(&mut c, 0, 0);
    exited(&mut c, 0, 1, 1);
    let plan = c.sync(secs(1));
    assert_eq!(container_actions(&plan), []);
    assert_eq!(plan.wake_at, Some(secs(11)));
    assert_eq!((pod(&c).phase, pod(&c).restart_count), (PodPhase::Pending, 1));
    assert_eq!(container_actions(&c.sync(secs(10))), []);
    assert_eq!(container_actions(&c.sync(secs(11))), [("start", 0)]);
    started(&mut c, 0, 11);
    exited(&mut c, 0, 0, 12);
    assert_eq!(container_actions(&c.sync(secs(12))), [("start", 1)]);
}

#[test]
fn sidecars_start_first_run_beside_the_main_container_and_stop_after_it() {
    let mut c =
        Controller::new(job(&[("proxy", Sidecar), ("setup", Init), ("m", Main)], RestartPolicy::Never));
    assert_eq!(container_actions(&c.sync(secs(0))), [("start", 0)]);
    // The next init container waits for the sidecar to have started.
    assert_eq!(container_actions(&c.sync(secs(0))), []);
    started(&mut c, 0, 0);
    assert_eq!(container_actions(&c.sync(secs(0))), [("start", 1)]);
    started(&mut c, 1, 0);
    exited(&mut c, 1, 0, 1);
    assert_eq!(container_actions(&c.sync(secs(1))), [("start", 2)]);
    started(&mut c, 2, 1);
    assert!(pod(&c).ready, "the sidecar and the main container run");
    // The sidecar crashed: it restarts after the delay, beside the main container.
    exited(&mut c, 0, 2, 2);
    assert_eq!(container_actions(&c.sync(secs(2))), []);
    assert_eq!(pod(&c).restart_count, 1);
    assert_eq!(container_actions(&c.sync(secs(12))), [("start", 0)]);
    started(&mut c, 0, 12);
    // The main container is done: the sidecar is stopped, and its SIGTERM does not fail the pod.
    exited(&mut c, 2, 0, 13);
    let plan = c.sync(secs(13));
    assert_eq!(container_actions(&plan), [("stop", 0)]);
    assert!(matches!(plan.actions[0], Action::KillContainer { grace, .. } if grace == secs(5)));
    assert_eq!(pod(&c).phase, PodPhase::Running, "until the sidecar has stopped");
    exited(&mut c, 0, 143, 14);
    c.sync(secs(14));
    assert_eq!((pod(&c).phase, pod(&c).exit_code), (PodPhase::Succeeded, Some(0)));
    assert!(c.status().has_true(ConditionType::Complete));
}

#[test]
fn a_failed_main_container_fails_the_pod_and_stops_the_others_under_never() {
    let mut c = Controller::new(job(&[("proxy", Sidecar), ("m1", Main), ("m2", Main)], RestartPolicy::Never));
    c.sync(secs(0));
    started(&mut c, 0, 0);
    assert_eq!(container_actions(&c.sync(secs(0))), [("start", 1), ("start", 2)]);
    started(&mut c, 1, 0);
    started(&mut c, 2, 0);
    exited(&mut c, 2, 7, 1);
    assert_eq!(container_actions(&c.sync(secs(1))), [("stop", 1), ("stop", 0)]);
    assert_eq!(pod(&c).phase, PodPhase::Running, "until every container stopped");
    exited(&mut c, 1, 143, 2);
    exited(&mut c, 0, 143, 2);
    c.sync(secs(2));
    let p = pod(&c);
    assert_eq!((p.phase, p.exit_code), (PodPhase::Failed, Some(7)));
    assert_eq!(p.containers.as_ref().unwrap().failed, Some(2));
}

#[test]
fn deleting_the_job_kills_every_container_and_restarts_none() {
    let mut c = Controller::new(job(&[("proxy", Sidecar), ("m", Main)], RestartPolicy::OnFailure));
    c.sync(secs(0));
    started(&mut c, 0, 0);
    c.sync(secs(0));
    started(&mut c, 1, 0);
    let plan = c.delete(secs(1));
    assert!(matches!(plan.actions[..], [Action::KillPod { pod: PodId(0), .. }]));
    exited(&mut c, 1, 143, 2);
    exited(&mut c, 0, 143, 2);
    assert_eq!(container_actions(&c.sync(secs(2))), []);
    assert_eq!(pod(&c).phase, PodPhase::Failed);
    assert_eq!(pod(&c).restart_count, 0, "killed containers are not restarted");
    assert!(!c.has_live_processes());
}

fn exit_codes_rule(container: Option<&str>, values: &[i32]) -> PodFailurePolicy {
    PodFailurePolicy {
        rules: vec![PfpRule {
            action: Some(PfpAction::FailJob),
            requirement: Requirement::ExitCodes {
                container_name: container.map(String::from),
                not_in: false,
                values: values.to_vec(),
            },
        }],
    }
}

/// `matchOnExitCodes`: `containerName` picks the container whose code is matched; without
/// it, the first main container (then init container) whose code matches.
#[test]
fn pod_failure_policy_matches_the_named_containers_exit_code() {
    for (rule_container, values, matched) in [
        (Some("worker"), &[42][..], Some("Container worker for pod default/foobar-")),
        (Some("helper"), &[42][..], None),
        (None, &[42][..], Some("Container worker for pod default/foobar-")),
        (None, &[143][..], Some("Container helper for pod default/foobar-")),
    ] {
        let mut s = job(&[("helper", Main), ("worker", Main)], RestartPolicy::Never);
        s.backoff_limit = 6;
        s.pod_failure_policy = Some(exit_codes_rule(rule_container, values));
        let mut c = Controller::new(s);
        c.sync(secs(0));
        started(&mut c, 0, 0);
        started(&mut c, 1, 0);
        exited(&mut c, 1, 42, 1);
        c.sync(secs(1));
        exited(&mut c, 0, 143, 2);
        c.sync(secs(2));
        let failed = c.status().condition(ConditionType::Failed).filter(|c| c.status);
        match matched {
            Some(prefix) => {
                let message = &failed.expect("FailJob").message;
                assert!(message.starts_with(prefix), "{rule_container:?} {values:?}: {message}");
                let code = if values == [42] { 42 } else { 143 };
                assert!(message
                    .contains(&format!("failed with exit code {code} matching FailJob rule at index 0")));
            }
            None => assert!(failed.is_none_or(|c| c.reason != "PodFailurePolicy"), "{rule_container:?}"),
        }
    }
}

#[test]
fn the_machine_alone_waits_for_sidecars_in_order() {
    let kinds: Arc<[ContainerKind]> = vec![Sidecar, Sidecar, Main].into();
    let names: Arc<[String]> = vec!["s1".to_string(), "s2".into(), "m".into()].into();
    let mut m = PodContainers::new(kinds, names);
    let mut wake = None;
    assert_eq!(m.advance(secs(0), &mut wake), [ContainerAction::Start(0)]);
    m.started(0, secs(0));
    assert_eq!(m.advance(secs(0), &mut wake), [ContainerAction::Start(1)]);
    m.started(1, secs(0));
    assert_eq!(m.advance(secs(0), &mut wake), [ContainerAction::Start(2)]);
    m.started(2, secs(0));
    let end = |code| ContainerEnd { exit_code: code, reason: None, message: None };
    m.ended(2, end(0), secs(1), RestartPolicy::Never, Default::default());
    // Stopped in the reverse order of their start.
    assert_eq!(m.advance(secs(1), &mut wake), [ContainerAction::Stop(1), ContainerAction::Stop(0)]);
    assert_eq!(m.outcome(), None);
    m.ended(1, end(143), secs(2), RestartPolicy::Never, Default::default());
    m.ended(0, end(0), secs(2), RestartPolicy::Never, Default::default());
    assert_eq!(m.outcome(), Some((PodPhase::Succeeded, None)));
    assert_eq!(wake, None);
}
