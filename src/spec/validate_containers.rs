//! The containers of a pod template, as `ValidatePodSpec` checks them
//! (`pkg/apis/core/validation/validation.go`: `validateContainers`, then
//! `validateInitContainers`): each container on its own (`validate::validate_container`),
//! names unique across `containers` and `initContainers`, and a container `restartPolicy` only
//! on init containers, only `Always` (a native sidecar, KEP-753).

use super::validate::validate_container;
use super::{
    go_quote, Container, FieldError, FieldErrorKind, FieldErrors, PodSpec, CONTAINER_RESTART_POLICY_ALWAYS,
};
use std::collections::HashSet;

const CONTAINERS: &str = "spec.template.spec.containers";
const INIT_CONTAINERS: &str = "spec.template.spec.initContainers";

/// `validateContainers` and `validateInitContainers`, in that order, every error collected.
pub(super) fn validate_pod_containers(pod: &PodSpec, errs: &mut FieldErrors) {
    validate_regular(&pod.containers, errs);
    validate_init(&pod.init_containers, &pod.containers, errs);
}

/// `validateContainers`: at least one; names unique among the regular containers (a clash with
/// an init container is reported on the init container, once); no `restartPolicy`.
fn validate_regular(containers: &[Container], errs: &mut FieldErrors) {
    if containers.is_empty() {
        errs.push(FieldError::required(CONTAINERS, ""));
        return;
    }
    let mut names = HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        let path = format!("{CONTAINERS}[{i}]");
        validate_container(container, &path, errs);
        if !names.insert(container.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), go_quote(&container.name)));
        }
        if container.restart_policy.is_some() {
            errs.push(FieldError {
                path: format!("{path}.restartPolicy"),
                kind: FieldErrorKind::Forbidden,
                value: None,
                detail: "may not be set for non-init containers".into(),
            });
        }
    }
}

/// `validateInitContainers`: `restartPolicy` (`validateInitContainerRestartPolicy`) before the
/// name's uniqueness among the regular containers and the init containers before it.
fn validate_init(init: &[Container], regular: &[Container], errs: &mut FieldErrors) {
    let mut names: HashSet<&str> = regular.iter().map(|c| c.name.as_str()).collect();
    for (i, container) in init.iter().enumerate() {
        let path = format!("{INIT_CONTAINERS}[{i}]");
        validate_container(container, &path, errs);
        if let Some(policy) = container.restart_policy.as_deref() {
            if policy != CONTAINER_RESTART_POLICY_ALWAYS {
                errs.push(FieldError::unsupported(
                    format!("{path}.restartPolicy"),
                    policy,
                    &[CONTAINER_RESTART_POLICY_ALWAYS],
                ));
            }
        }
        if names.contains(container.name.as_str()) {
            errs.push(FieldError::duplicate(format!("{path}.name"), go_quote(&container.name)));
        } else if !container.name.is_empty() {
            names.insert(container.name.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(name: &str) -> Container {
        Container { name: name.into(), command: vec!["true".into()], ..Default::default() }
    }

    fn messages(pod: &PodSpec) -> Vec<String> {
        let mut errs = FieldErrors::default();
        validate_pod_containers(pod, &mut errs);
        errs.messages()
    }

    #[test]
    fn valid_init_containers_and_sidecars_pass() {
        let mut sidecar = container("proxy");
        sidecar.restart_policy = Some("Always".into());
        let pod = PodSpec {
            init_containers: vec![container("setup"), sidecar],
            containers: vec![container("main"), container("helper")],
            ..Default::default()
        };
        assert_eq!(messages(&pod), Vec::<String>::new());
    }

    /// `validateContainers` / `validateInitContainers`: names are unique across both lists; a
    /// clash between the two is reported on the init container.
    #[test]
    fn names_are_unique_across_containers_and_init_containers() {
        let pod = PodSpec {
            init_containers: vec![container("main"), container("setup"), container("setup")],
            containers: vec![container("main"), container("main")],
            ..Default::default()
        };
        assert_eq!(
            messages(&pod),
            [
                "spec.template.spec.containers[1].name: Duplicate value: \"main\"",
                "spec.template.spec.initContainers[0].name: Duplicate value: \"main\"",
                "spec.template.spec.initContainers[2].name: Duplicate value: \"setup\"",
            ]
        );
    }

    /// `validateInitContainerRestartPolicy` and the regular containers' `Forbidden`.
    #[test]
    fn restart_policy_is_only_always_and_only_on_init_containers() {
        let mut on_main = container("main");
        on_main.restart_policy = Some("Always".into());
        let mut on_init = container("setup");
        on_init.restart_policy = Some("OnFailure".into());
        let pod = PodSpec { init_containers: vec![on_init], containers: vec![on_main], ..Default::default() };
        assert_eq!(
            messages(&pod),
            [
                "spec.template.spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
                "spec.template.spec.initContainers[0].restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            ]
        );
    }

    #[test]
    fn init_containers_are_validated_as_containers() {
        let pod = PodSpec {
            init_containers: vec![Container { name: "Bad_Name".into(), ..Default::default() }],
            containers: vec![container("main")],
            ..Default::default()
        };
        let msgs = messages(&pod);
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(msgs[0].starts_with("spec.template.spec.initContainers[0].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label"));
        assert!(msgs[1].starts_with("spec.template.spec.initContainers[0].command: Required value"));
    }

    #[test]
    fn no_containers_is_required() {
        assert_eq!(messages(&PodSpec::default()), ["spec.template.spec.containers: Required value"]);
    }
}
