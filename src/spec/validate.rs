//! Job validation with Kubernetes' messages (`pkg/apis/batch/validation/validation.go`, reference
//! §0.4, §1.6). Every error is collected, in the order the API server reports them, so a user
//! fixes a manifest in one round.

use super::{Container, FieldError, FieldErrors, Job};

/// `maxParallelismForIndexedJob` in validation.go.
const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;
const NONNEGATIVE: &str = "must be greater than or equal to 0";
const RESTART_POLICIES: &[&str] = &["OnFailure", "Never"];
const COMPLETION_MODES: &[&str] = &["NonIndexed", "Indexed"];

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. \
'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

/// Validates a Job as the API server would on create. `Ok(())` or every error at once.
pub fn validate_job(job: &Job) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    validate_name(job, &mut errs);
    validate_spec(job, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

fn validate_name(job: &Job, errs: &mut FieldErrors) {
    let name = job.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        errs.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
        return;
    }
    if name.len() > 253 {
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            "must be no more than 253 characters",
        ));
    }
    if !is_dns1123_subdomain(name) {
        errs.push(FieldError::invalid_str(
            "metadata.name",
            name,
            DNS1123_SUBDOMAIN_MSG,
        ));
    }
    // The controller names Indexed pods' hostnames `<name>-<index>`; the largest must be a label.
    let spec = &job.spec;
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(completions) = spec.completions.filter(|c| *c > 0) {
            let hostname = format!("{name}-{}", completions - 1);
            if !is_dns1123_label(&hostname) {
                errs.push(FieldError::invalid_str(
                    "metadata.name",
                    name,
                    format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
    }
}

fn validate_spec(job: &Job, errs: &mut FieldErrors) {
    let spec = &job.spec;
    nonnegative(errs, "spec.parallelism", spec.parallelism.map(i64::from));
    nonnegative(errs, "spec.completions", spec.completions.map(i64::from));
    nonnegative(errs, "spec.backoffLimit", spec.backoff_limit.map(i64::from));

    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    "spec.completions",
                    "when completion mode is Indexed",
                ));
            }
            if let Some(p) = spec
                .parallelism
                .filter(|p| *p > MAX_PARALLELISM_FOR_INDEXED_JOB)
            {
                errs.push(FieldError::invalid(
                    "spec.parallelism",
                    p,
                    format!(
                        "must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"
                    ),
                ));
            }
        }
        Some(other) => {
            errs.push(FieldError::unsupported(
                "spec.completionMode",
                other,
                COMPLETION_MODES,
            ));
        }
    }

    let pod = &spec.template.spec;
    match pod.restart_policy.as_deref() {
        Some("OnFailure") | Some("Never") => {}
        None | Some("") | Some("Always") => errs.push(FieldError::required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some(other) => errs.push(FieldError::unsupported(
            "spec.template.spec.restartPolicy",
            other,
            RESTART_POLICIES,
        )),
    }
    nonnegative(
        errs,
        "spec.template.spec.terminationGracePeriodSeconds",
        pod.termination_grace_period_seconds,
    );
    if pod.containers.is_empty() {
        errs.push(FieldError::required("spec.template.spec.containers", ""));
    }
    for (i, container) in pod.containers.iter().enumerate() {
        validate_container(
            container,
            &format!("spec.template.spec.containers[{i}]"),
            errs,
        );
    }
}

fn validate_container(container: &Container, path: &str, errs: &mut FieldErrors) {
    if container.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else if !is_dns1123_label(&container.name) {
        errs.push(FieldError::invalid_str(
            format!("{path}.name"),
            &container.name,
            DNS1123_LABEL_MSG,
        ));
    }
    // A cluster would fall back on the image's ENTRYPOINT; locally there is no image to ask.
    if container.command.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.command"),
            "kjob runs the command on this machine and has no image entrypoint to fall back on",
        ));
    }
    for (i, var) in container.env.iter().enumerate() {
        if var.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.env[{i}].name"), ""));
        }
    }
}

fn nonnegative(errs: &mut FieldErrors, path: &str, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(path, v, NONNEGATIVE));
    }
}

fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.')
            .all(|part| !part.is_empty() && is_dns1123_label_any_len(part))
}

fn is_dns1123_label_any_len(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EnvVar, JobSpec, ObjectMeta, PodSpec, PodTemplateSpec};

    fn job() -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                ..Default::default()
            },
            spec: JobSpec {
                template: PodTemplateSpec {
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "pi".into(),
                            command: vec!["true".into()],
                            ..Default::default()
                        }],
                        restart_policy: Some("Never".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn errors(job: &Job) -> Vec<String> {
        validate_job(job)
            .err()
            .map(|e| e.messages())
            .unwrap_or_default()
    }

    #[test]
    fn a_minimal_job_is_valid() {
        assert_eq!(errors(&job()), Vec::<String>::new());
    }

    #[test]
    fn negative_counts_report_every_field_in_order() {
        let mut j = job();
        j.spec.parallelism = Some(-1);
        j.spec.completions = Some(-1);
        j.spec.backoff_limit = Some(-2);
        j.spec.template.spec.termination_grace_period_seconds = Some(-5);
        assert_eq!(
            errors(&j),
            vec![
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.completions: Invalid value: -1: must be greater than or equal to 0",
                "spec.backoffLimit: Invalid value: -2: must be greater than or equal to 0",
                "spec.template.spec.terminationGracePeriodSeconds: Invalid value: -5: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn indexed_rules_from_validation_go() {
        let mut j = job();
        j.spec.completion_mode = Some("Indexed".into());
        j.spec.parallelism = Some(100_001);
        assert_eq!(
            errors(&j),
            vec![
                "spec.completions: Required value: when completion mode is Indexed",
                "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed",
            ]
        );
        j.spec.completion_mode = Some("Sometimes".into());
        j.spec.parallelism = None;
        assert_eq!(
            errors(&j),
            vec!["spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""]
        );
    }

    #[test]
    fn restart_policy_always_is_required_value_and_unknown_is_unsupported() {
        let mut j = job();
        j.spec.template.spec.restart_policy = Some("Always".into());
        assert_eq!(
            errors(&j),
            vec!["spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""]
        );
        j.spec.template.spec.restart_policy = Some("Invalid".into());
        assert_eq!(
            errors(&j),
            vec!["spec.template.spec.restartPolicy: Unsupported value: \"Invalid\": supported values: \"OnFailure\", \"Never\""]
        );
    }

    #[test]
    fn indexed_pod_hostname_must_be_a_dns_label() {
        let mut j = job();
        j.metadata.name = Some("a".repeat(62));
        j.spec.completion_mode = Some("Indexed".into());
        j.spec.completions = Some(10);
        let want = format!(
            "metadata.name: Invalid value: \"{0}\": will not able to create pod with invalid DNS label: {0}-9",
            "a".repeat(62)
        );
        assert_eq!(errors(&j), vec![want]);
    }

    #[test]
    fn names_and_containers() {
        let mut j = job();
        j.metadata.name = Some("Bad_Name".into());
        j.spec.template.spec.containers[0].name = String::new();
        j.spec.template.spec.containers[0].command.clear();
        j.spec.template.spec.containers[0]
            .env
            .push(EnvVar::default());
        let errs = errors(&j);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(errs[0].starts_with(
            "metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"
        ));
        assert_eq!(
            errs[1],
            "spec.template.spec.containers[0].name: Required value"
        );
        assert!(errs[2].starts_with("spec.template.spec.containers[0].command: Required value: "));
        assert_eq!(
            errs[3],
            "spec.template.spec.containers[0].env[0].name: Required value"
        );
        j.metadata.name = None;
        assert_eq!(
            errors(&j)[0],
            "metadata.name: Required value: name or generateName is required"
        );
    }
}
