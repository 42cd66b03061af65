//! `podFailurePolicy` evaluation (`pod_failure_policy.go`, docs/semantics.md §5.5): the first
//! rule that matches a failed pod decides what its failure means.

use super::pod::{ContainerState, Pod};
use super::pod_containers::{ContainerKind, RunState};
use crate::spec;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PfpAction {
    FailJob,
    FailIndex,
    Ignore,
    Count,
}

impl PfpAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailJob => "FailJob",
            Self::FailIndex => "FailIndex",
            Self::Ignore => "Ignore",
            Self::Count => "Count",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    ExitCodes {
        container_name: Option<String>,
        not_in: bool,
        values: Vec<i32>,
    },
    /// `(type, status)` patterns.
    PodConditions(Vec<(String, String)>),
    /// kjob's `onExceptions` for callable pods: class names, qualified or plain.
    Exceptions {
        not_in: bool,
        values: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfpRule {
    /// `None` for an action this version does not know: the rule is skipped, as upstream does.
    pub action: Option<PfpAction>,
    pub requirement: Requirement,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodFailurePolicy {
    pub rules: Vec<PfpRule>,
}

impl PodFailurePolicy {
    pub fn from_spec(policy: &spec::PodFailurePolicy) -> Self {
        let rules = policy
            .rules
            .iter()
            .map(|r| PfpRule {
                action: match r.action.as_str() {
                    "FailJob" => Some(PfpAction::FailJob),
                    "FailIndex" => Some(PfpAction::FailIndex),
                    "Ignore" => Some(PfpAction::Ignore),
                    "Count" => Some(PfpAction::Count),
                    _ => None,
                },
                requirement: match (&r.on_exit_codes, &r.on_exceptions) {
                    (_, Some(exc)) => Requirement::Exceptions {
                        not_in: exc.operator == "NotIn",
                        values: exc.values.clone(),
                    },
                    (Some(codes), None) => Requirement::ExitCodes {
                        container_name: codes.container_name.clone(),
                        not_in: codes.operator == "NotIn",
                        values: codes.values.clone(),
                    },
                    (None, None) => Requirement::PodConditions(
                        r.on_pod_conditions
                            .iter()
                            .flatten()
                            .map(|p| (p.type_.clone(), p.status.clone().unwrap_or_else(|| "True".into())))
                            .collect(),
                    ),
                },
            })
            .collect();
        Self { rules }
    }
}

/// What a failed pod's failure means (`matchPodFailurePolicy`'s three results).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfpMatch {
    /// Set when a `FailJob` rule matched: the Job's failure message.
    pub fail_job_message: Option<String>,
    /// Whether the failure counts toward `failed` and the backoff limits.
    pub count_failed: bool,
    pub action: Option<PfpAction>,
}

impl PfpMatch {
    const NO_MATCH: Self = Self { fail_job_message: None, count_failed: true, action: None };
}

/// Matches a failed pod against the policy; no policy or no matching rule means `Count`.
pub fn match_pod_failure_policy(
    policy: Option<&PodFailurePolicy>,
    pod: &Pod,
    namespace: &str,
    container_name: &str,
) -> PfpMatch {
    let Some(policy) = policy else {
        return PfpMatch::NO_MATCH;
    };
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(action) = rule.action else { continue };
        let message = match &rule.requirement {
            Requirement::ExitCodes { container_name: wanted, not_in, values } => {
                let matching = |name: &str, code: i32| {
                    code != 0
                        && wanted.as_deref().is_none_or(|w| w == name)
                        && values.contains(&code) != *not_in
                };
                let Some((name, code)) = matching_container(pod, container_name, matching) else {
                    continue;
                };
                format!(
                    "Container {name} for pod {namespace}/{} failed with exit code {code} matching {} rule at index {index}",
                    pod.name,
                    action.as_str()
                )
            }
            Requirement::Exceptions { not_in, values } => {
                let Some(exception) = &pod.exception else { continue };
                let matches = |v: &String| {
                    exception.types.iter().any(|t| t == v || t.rsplit('.').next() == Some(v.as_str()))
                };
                if values.iter().any(matches) == *not_in {
                    continue;
                }
                let type_name = exception.types.first().map_or("", String::as_str);
                format!(
                    "Pod {namespace}/{} failed with exception {type_name} matching {} rule at index {index}",
                    pod.name,
                    action.as_str()
                )
            }
            Requirement::PodConditions(patterns) => {
                let Some(condition) = pod
                    .conditions
                    .iter()
                    .find(|c| patterns.iter().any(|(t, s)| *t == c.type_ && *s == c.status_str()))
                else {
                    continue;
                };
                format!(
                    "Pod {namespace}/{} has condition {} matching {} rule at index {index}",
                    pod.name,
                    condition.type_,
                    action.as_str()
                )
            }
        };
        return match action {
            PfpAction::Ignore => {
                PfpMatch { fail_job_message: None, count_failed: false, action: Some(action) }
            }
            PfpAction::FailJob => {
                PfpMatch { fail_job_message: Some(message), count_failed: true, action: Some(action) }
            }
            PfpAction::FailIndex | PfpAction::Count => {
                PfpMatch { fail_job_message: None, count_failed: true, action: Some(action) }
            }
        };
    }
    PfpMatch::NO_MATCH
}

/// `matchOnExitCodes`: the first terminated container whose exit code matches, the main
/// containers before the init containers (`getMatchingContainerFromList`, in each list's
/// order). A container still running (or waiting to restart) has no exit code to match.
fn matching_container<'a>(
    pod: &'a Pod,
    only_container: &'a str,
    matching: impl Fn(&str, i32) -> bool,
) -> Option<(&'a str, i32)> {
    let Some(containers) = &pod.containers else {
        let code = match pod.container {
            ContainerState::Terminated => pod.exit_code?,
            _ => return None,
        };
        return matching(only_container, code).then_some((only_container, code));
    };
    let terminated = |i: usize| {
        let status = &containers.statuses[i];
        let code = status.exit_code.filter(|_| status.state == RunState::Terminated)?;
        let name = containers.names[i].as_str();
        matching(name, code).then_some((name, code))
    };
    let is_main = |i: &usize| containers.kinds[*i] == ContainerKind::Main;
    let all = 0..containers.statuses.len();
    all.clone().filter(is_main).chain(all.filter(|i| !is_main(i))).find_map(terminated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::pod::{PodCondition, PodId, PodPhase};
    use std::time::Duration;

    fn failed_pod(exit_code: i32) -> Pod {
        let mut pod = Pod::new(PodId(0), "mypod".into(), Some(0), Duration::ZERO);
        pod.terminate(exit_code, Duration::from_secs(1));
        pod
    }

    fn exit_rule(action: PfpAction, not_in: bool, values: &[i32], container: Option<&str>) -> PfpRule {
        PfpRule {
            action: Some(action),
            requirement: Requirement::ExitCodes {
                container_name: container.map(String::from),
                not_in,
                values: values.to_vec(),
            },
        }
    }

    fn condition_rule(action: PfpAction, type_: &str, status: &str) -> PfpRule {
        PfpRule {
            action: Some(action),
            requirement: Requirement::PodConditions(vec![(type_.into(), status.into())]),
        }
    }

    fn run(rules: Vec<PfpRule>, pod: &Pod) -> PfpMatch {
        match_pod_failure_policy(Some(&PodFailurePolicy { rules }), pod, "default", "main-container")
    }

    #[test]
    fn no_policy_counts_every_failure() {
        let got = match_pod_failure_policy(None, &failed_pod(1), "default", "c");
        assert_eq!(got, PfpMatch::NO_MATCH);
    }

    #[test]
    fn first_matching_rule_wins_with_the_upstream_message() {
        let rules = vec![
            exit_rule(PfpAction::Ignore, false, &[1, 2], None),
            exit_rule(PfpAction::FailJob, false, &[2, 3], None),
        ];
        assert_eq!(run(rules.clone(), &failed_pod(2)).action, Some(PfpAction::Ignore));
        let got = run(rules, &failed_pod(3));
        assert_eq!(
            got.fail_job_message.as_deref(),
            Some("Container main-container for pod default/mypod failed with exit code 3 matching FailJob rule at index 1")
        );
        assert!(got.count_failed);
    }

    #[test]
    fn not_in_operator_and_exit_code_zero() {
        let rules = vec![exit_rule(PfpAction::FailJob, true, &[5], None)];
        assert!(run(rules.clone(), &failed_pod(6)).fail_job_message.is_some());
        assert_eq!(run(rules.clone(), &failed_pod(5)), PfpMatch::NO_MATCH);
        // Exit code 0 never matches, even with NotIn.
        let mut pod = failed_pod(0);
        pod.phase = PodPhase::Failed;
        assert_eq!(run(rules, &pod), PfpMatch::NO_MATCH);
    }

    #[test]
    fn container_name_must_match() {
        let rules = vec![exit_rule(PfpAction::Count, false, &[1], Some("other"))];
        assert_eq!(run(rules, &failed_pod(1)).action, None);
        let rules = vec![exit_rule(PfpAction::Count, false, &[1], Some("main-container"))];
        assert_eq!(run(rules, &failed_pod(1)).action, Some(PfpAction::Count));
    }

    #[test]
    fn running_container_does_not_match_exit_codes() {
        // "running pod should not result in job fail based on OnExitCodes"
        let mut pod = Pod::new(PodId(0), "mypod".into(), None, Duration::ZERO);
        pod.phase = PodPhase::Running;
        pod.container = ContainerState::Running;
        pod.exit_code = Some(1);
        let rules = vec![exit_rule(PfpAction::FailJob, false, &[1], None)];
        assert_eq!(run(rules, &pod), PfpMatch::NO_MATCH);
    }

    #[test]
    fn pod_conditions_match_type_and_status() {
        let mut pod = failed_pod(137);
        pod.conditions
            .push(PodCondition::disruption_target("EvictionByEvictionAPI", "Eviction API: evicting"));
        let ignore = vec![condition_rule(PfpAction::Ignore, "DisruptionTarget", "True")];
        let got = run(ignore, &pod);
        assert_eq!((got.count_failed, got.action), (false, Some(PfpAction::Ignore)));
        let wrong_status = vec![condition_rule(PfpAction::Ignore, "DisruptionTarget", "False")];
        assert_eq!(run(wrong_status, &pod), PfpMatch::NO_MATCH);
        let fail = vec![condition_rule(PfpAction::FailJob, "DisruptionTarget", "True")];
        assert_eq!(
            run(fail, &pod).fail_job_message.as_deref(),
            Some("Pod default/mypod has condition DisruptionTarget matching FailJob rule at index 0")
        );
    }

    #[test]
    fn on_exceptions_matches_class_and_bases_by_qualified_or_plain_name() {
        let mut pod = failed_pod(1);
        pod.exception = Some(crate::controller::pod::PodException {
            types: vec!["mypkg.errors.Retryable".into(), "ValueError".into(), "Exception".into()],
            message: "boom".into(),
            ..Default::default()
        });
        let rule = |not_in: bool, values: &[&str]| PfpRule {
            action: Some(PfpAction::FailJob),
            requirement: Requirement::Exceptions {
                not_in,
                values: values.iter().map(|v| v.to_string()).collect(),
            },
        };
        for values in
            [&["Retryable"][..], &["mypkg.errors.Retryable"], &["ValueError"], &["KeyError", "Exception"]]
        {
            let got = run(vec![rule(false, values)], &pod);
            assert_eq!(
                got.fail_job_message.as_deref(),
                Some("Pod default/mypod failed with exception mypkg.errors.Retryable matching FailJob rule at index 0"),
                "{values:?}"
            );
        }
        assert_eq!(run(vec![rule(false, &["KeyError", "errors.Retryable"])], &pod), PfpMatch::NO_MATCH);
        assert_eq!(run(vec![rule(true, &["ValueError"])], &pod), PfpMatch::NO_MATCH);
        assert!(run(vec![rule(true, &["KeyError"])], &pod).fail_job_message.is_some());
        assert_eq!(
            run(vec![rule(false, &["ValueError"])], &failed_pod(1)),
            PfpMatch::NO_MATCH,
            "no exception"
        );
    }

    #[test]
    fn unknown_action_skips_the_rule() {
        let rules = vec![
            PfpRule {
                action: None,
                requirement: Requirement::ExitCodes { container_name: None, not_in: false, values: vec![1] },
            },
            exit_rule(PfpAction::FailIndex, false, &[1], None),
        ];
        assert_eq!(run(rules, &failed_pod(1)).action, Some(PfpAction::FailIndex));
    }
}
