//! Job validation with Kubernetes' messages (`pkg/apis/batch/validation/validation.go`,
//! docs/semantics.md §0.4, §1.6). Every error is collected, in the order the API server reports
//! them, so a user fixes a manifest in one round.

use super::env_refs;
use super::policies::{validate_pod_failure_policy, validate_success_policy};
use super::{Container, FieldError, FieldErrors, Job, JobSpec};

/// Limits from validation.go.
const MAX_PARALLELISM_FOR_INDEXED_JOB: i32 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i32 = 100_000;
const PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS: i32 = 10_000;
const MAX_MAX_FAILED_INDEXES: i32 = 100_000;
const MAX_MANAGED_BY_LENGTH: usize = 63;
pub(super) const NONNEGATIVE: &str = "must be greater than or equal to 0";
const RESTART_POLICIES: &[&str] = &["OnFailure", "Never"];
const COMPLETION_MODES: &[&str] = &["NonIndexed", "Indexed"];
const POD_REPLACEMENT_POLICIES: &[&str] = &["Failed", "TerminatingOrFailed"];

use super::object_meta::{self, validate_job_meta, validate_template_meta, DNS1123_SUBDOMAIN_MSG};

/// Validates a Job as the API server would on create. `Ok(())` or every error at once.
pub fn validate_job(job: &Job) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    validate_job_meta(job, &mut errs);
    validate_spec(job, &mut errs);
    validate_indexed_hostname(job, &mut errs);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// The controller names Indexed pods' hostnames `<name>-<index>`; the largest must be a label.
/// `ValidateJob` checks this after the spec.
fn validate_indexed_hostname(job: &Job, errs: &mut FieldErrors) {
    let name = job.metadata.name.as_deref().unwrap_or("");
    if name.is_empty() {
        return;
    }
    let spec = &job.spec;
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(completions) = spec.completions.filter(|c| *c > 0) {
            let hostname = format!("{name}-{}", completions - 1);
            if !object_meta::is_dns1123_label(&hostname).is_empty() {
                errs.push(FieldError::invalid_str(
                    "metadata.name",
                    name,
                    format!("will not able to create pod with invalid DNS label: {hostname}"),
                ));
            }
        }
    }
}

/// `validateJobSpec`, in its order.
fn validate_spec(job: &Job, errs: &mut FieldErrors) {
    let spec = &job.spec;
    nonnegative(errs, "spec.parallelism", spec.parallelism.map(i64::from));
    nonnegative(errs, "spec.completions", spec.completions.map(i64::from));
    nonnegative(errs, "spec.activeDeadlineSeconds", spec.active_deadline_seconds);
    nonnegative(errs, "spec.backoffLimit", spec.backoff_limit.map(i64::from));
    nonnegative(errs, "spec.ttlSecondsAfterFinished", spec.ttl_seconds_after_finished.map(i64::from));
    nonnegative(errs, "spec.backoffLimitPerIndex", spec.backoff_limit_per_index.map(i64::from));
    if let Some(max_failed) = spec.max_failed_indexes {
        nonnegative(errs, "spec.maxFailedIndexes", Some(i64::from(max_failed)));
        if spec.backoff_limit_per_index.is_none() {
            errs.push(FieldError::required(
                "spec.backoffLimitPerIndex",
                "when maxFailedIndexes is specified",
            ));
        }
    }
    if let Some(managed_by) = &spec.managed_by {
        validate_domain_prefixed_path(errs, "spec.managedBy", managed_by);
        if managed_by.len() > MAX_MANAGED_BY_LENGTH {
            errs.push(FieldError::too_long(
                "spec.managedBy",
                format!("may not be longer than {MAX_MANAGED_BY_LENGTH}"),
            ));
        }
    }
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {
            if let Some(v) = spec.backoff_limit_per_index {
                errs.push(FieldError::invalid(
                    "spec.backoffLimitPerIndex",
                    v,
                    "requires indexed completion mode",
                ));
            }
            if let Some(v) = spec.max_failed_indexes {
                errs.push(FieldError::invalid(
                    "spec.maxFailedIndexes",
                    v,
                    "requires indexed completion mode",
                ));
            }
        }
        Some("Indexed") => validate_indexed(spec, errs),
        Some(other) => {
            errs.push(FieldError::unsupported("spec.completionMode", other, COMPLETION_MODES));
        }
    }
    if spec.pod_failure_policy.is_some() {
        validate_pod_failure_policy(spec, errs);
    }
    if spec.success_policy.is_some() {
        validate_success_policy(spec, errs);
    }
    if let Some(policy) = &spec.pod_replacement_policy {
        if spec.pod_failure_policy.is_some() {
            if policy != "Failed" {
                errs.push(FieldError::unsupported("spec.podReplacementPolicy", policy, &["Failed"]));
            }
        } else if !POD_REPLACEMENT_POLICIES.contains(&policy.as_str()) {
            errs.push(FieldError::unsupported("spec.podReplacementPolicy", policy, POD_REPLACEMENT_POLICIES));
        }
    }

    // `ValidatePodTemplateSpec`: the template's labels and annotations, then its pod spec.
    validate_template_meta(job, errs);
    let pod = &spec.template.spec;
    nonnegative(
        errs,
        "spec.template.spec.terminationGracePeriodSeconds",
        pod.termination_grace_period_seconds,
    );
    if let Some(v) = pod.active_deadline_seconds.filter(|v| !(1..=i64::from(i32::MAX)).contains(v)) {
        errs.push(FieldError::invalid(
            "spec.template.spec.activeDeadlineSeconds",
            v,
            "must be between 1 and 2147483647, inclusive",
        ));
    }
    super::validate_containers::validate_pod_containers(pod, errs);
    match pod.restart_policy.as_deref() {
        Some("Never") => {}
        Some("OnFailure") if spec.pod_failure_policy.is_some() => errs.push(FieldError::invalid_str(
            "spec.template.spec.restartPolicy",
            "OnFailure",
            "only \"Never\" is supported when podFailurePolicy is specified",
        )),
        Some("OnFailure") => {}
        None | Some("") | Some("Always") => errs.push(FieldError::required(
            "spec.template.spec.restartPolicy",
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some(other) => {
            errs.push(FieldError::unsupported("spec.template.spec.restartPolicy", other, RESTART_POLICIES))
        }
    }
}

fn validate_indexed(spec: &JobSpec, errs: &mut FieldErrors) {
    if spec.completions.is_none() {
        errs.push(FieldError::required("spec.completions", "when completion mode is Indexed"));
    }
    if let Some(p) = spec.parallelism.filter(|p| *p > MAX_PARALLELISM_FOR_INDEXED_JOB) {
        errs.push(FieldError::invalid(
            "spec.parallelism",
            p,
            format!("must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"),
        ));
    }
    if let (Some(c), Some(m)) = (spec.completions, spec.max_failed_indexes) {
        if m > c {
            errs.push(FieldError::invalid(
                "spec.maxFailedIndexes",
                m,
                "must be less than or equal to completions",
            ));
        }
    }
    if let Some(m) = spec.max_failed_indexes.filter(|m| *m > MAX_MAX_FAILED_INDEXES) {
        errs.push(FieldError::invalid(
            "spec.maxFailedIndexes",
            m,
            format!("must be less than or equal to {MAX_MAX_FAILED_INDEXES}"),
        ));
    }
    let high = spec.completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT);
    if high && spec.backoff_limit_per_index.is_some() {
        if spec.max_failed_indexes.is_none() {
            errs.push(FieldError::required(
                "spec.maxFailedIndexes",
                format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
            ));
        }
        let detail = format!(
            "must be less than or equal to {PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS} when completions are above \
             {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        );
        if let Some(p) = spec.parallelism.filter(|p| *p > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS) {
            errs.push(FieldError::invalid("spec.parallelism", p, detail.clone()));
        }
        if let Some(m) = spec.max_failed_indexes.filter(|m| *m > PARALLELISM_LIMIT_FOR_HIGH_COMPLETIONS) {
            errs.push(FieldError::invalid("spec.maxFailedIndexes", m, detail));
        }
    }
}

/// `IsDomainPrefixedPath` (apimachinery): `<DNS subdomain>/<HTTP path>`.
fn validate_domain_prefixed_path(errs: &mut FieldErrors, path: &str, value: &str) {
    if value.is_empty() {
        errs.push(FieldError::required(path, ""));
        return;
    }
    let Some((host, rest)) = value.split_once('/').filter(|(h, r)| !h.is_empty() && !r.is_empty()) else {
        errs.push(FieldError::invalid_str(
            path,
            value,
            "must be a domain-prefixed path (such as \"acme.io/foo\")",
        ));
        return;
    };
    if !object_meta::is_dns1123_subdomain(host).is_empty() {
        errs.push(FieldError::invalid_str(path, host, DNS1123_SUBDOMAIN_MSG));
    }
    let http_path_ok = rest.chars().all(|c| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c));
    if !http_path_ok {
        errs.push(FieldError::invalid_str(
            path,
            rest,
            "Invalid path (regex used for validation is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
        ));
    }
}

/// A value for an `int32` field of the API types that does not fit one.
pub fn not_int32(path: impl Into<String>, value: impl std::fmt::Display) -> FieldError {
    FieldError::invalid(path, value, format!("must be less than or equal to {}", i32::MAX))
}

/// An update of `parallelism`/`completions` of a running Job (`ValidateJobSpecUpdate` with
/// elastic Indexed Jobs, §1.2).
pub fn validate_scale(
    indexed: bool,
    old_completions: Option<i64>,
    parallelism: Option<i64>,
    completions: Option<i64>,
) -> Result<(), FieldErrors> {
    let mut errs = FieldErrors::default();
    for (path, value) in [("spec.parallelism", parallelism), ("spec.completions", completions)] {
        nonnegative(&mut errs, path, value);
        // Both are int32 fields of the API type.
        if let Some(v) = value.filter(|v| *v > i64::from(i32::MAX)) {
            errs.push(not_int32(path, v));
        }
    }
    if let Some(c) = completions.filter(|c| Some(*c) != old_completions) {
        if !indexed {
            errs.push(FieldError::invalid("spec.completions", c, "field is immutable"));
        } else if parallelism != Some(c) {
            errs.push(FieldError::invalid(
                "spec.completions",
                c,
                "can only be modified in tandem with spec.parallelism",
            ));
        }
    }
    if indexed {
        if let Some(p) = parallelism.filter(|p| *p > i64::from(MAX_PARALLELISM_FOR_INDEXED_JOB)) {
            errs.push(FieldError::invalid(
                "spec.parallelism",
                p,
                format!("must be less than or equal to {MAX_PARALLELISM_FOR_INDEXED_JOB} when completion mode is Indexed"),
            ));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

pub(super) fn validate_container(container: &Container, path: &str, errs: &mut FieldErrors) {
    if container.name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
    } else {
        // IsDNS1123Label: the length and the characters are separate errors, so a name that is
        // only too long (the Job's name, copied into the container's) says the limit.
        for detail in object_meta::is_dns1123_label(&container.name) {
            errs.push(FieldError::invalid_str(format!("{path}.name"), &container.name, detail));
        }
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
        } else {
            for detail in env_var_name_problems(&var.name) {
                errs.push(FieldError::invalid_str(format!("{path}.env[{i}].name"), &var.name, detail));
            }
        }
        no_nul(errs, &format!("{path}.env[{i}].name"), &var.name);
        no_nul(errs, &format!("{path}.env[{i}].value"), var.value.as_deref().unwrap_or(""));
        if let Some(source) = &var.value_from {
            env_refs::validate_value_from(source, var, &format!("{path}.env[{i}].valueFrom"), errs);
        }
    }
    env_refs::validate_env_from(&container.env_from, &format!("{path}.envFrom"), errs);
    // A process's argv, environment and working directory are C strings.
    for (field, values) in [("command", &container.command), ("args", &container.args)] {
        for (i, v) in values.iter().enumerate() {
            no_nul(errs, &format!("{path}.{field}[{i}]"), v);
        }
    }
    no_nul(errs, &format!("{path}.workingDir"), container.working_dir.as_deref().unwrap_or(""));
}

/// Upstream's `IsEnvVarName` (apimachinery `util/validation`), as `validateEnv` applies it
/// without the `RelaxedEnvironmentVariableValidation` feature: the regex, then the names a
/// shell would take for a directory change.
pub(super) const ENV_VAR_NAME_MSG: &str = "a valid environment variable name must consist of alphabetic \
characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or \
'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')";

pub(super) fn env_var_name_problems(name: &str) -> Vec<&'static str> {
    let mut problems = Vec::new();
    let valid_first = |c: u8| c.is_ascii_alphabetic() || matches!(c, b'-' | b'.' | b'_');
    let bytes = name.as_bytes();
    let matches = bytes.first().is_some_and(|c| valid_first(*c))
        && bytes[1..].iter().all(|c| valid_first(*c) || c.is_ascii_digit());
    if !matches {
        problems.push(ENV_VAR_NAME_MSG);
    }
    problems.extend(chdir_prefix_problem(name));
    problems
}

/// Upstream's `hasChDirPrefix`, shared by env var names and ConfigMap keys.
pub(super) fn chdir_prefix_problem(name: &str) -> Option<&'static str> {
    if name == "." {
        Some("must not be '.'")
    } else if name == ".." {
        Some("must not be '..'")
    } else if name.starts_with("..") {
        Some("must not start with '..'")
    } else {
        None
    }
}

fn no_nul(errs: &mut FieldErrors, path: &str, value: &str) {
    if value.contains('\0') {
        errs.push(FieldError::invalid_str(path, value, "must not contain NUL bytes"));
    }
}

pub(super) fn nonnegative(errs: &mut FieldErrors, path: &str, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(path, v, NONNEGATIVE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EnvVar, JobSpec, ObjectMeta, PodSpec, PodTemplateSpec};

    fn job() -> Job {
        Job {
            metadata: ObjectMeta { name: Some("pi".into()), ..Default::default() },
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
        validate_job(job).err().map(|e| e.messages()).unwrap_or_default()
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
        j.spec.template.spec.containers[0].env.push(EnvVar::default());
        let errs = errors(&j);
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0].starts_with("metadata.name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain")
        );
        assert_eq!(errs[1], "spec.template.spec.containers[0].name: Required value");
        assert!(errs[2].starts_with("spec.template.spec.containers[0].command: Required value: "));
        assert_eq!(errs[3], "spec.template.spec.containers[0].env[0].name: Required value");
        j.metadata.name = None;
        assert_eq!(errors(&j)[0], "metadata.name: Required value: name or generateName is required");
    }

    /// `IsDNS1123Label` reports the length and the characters as two errors: a container name
    /// that is only too long names the 63-character limit.
    #[test]
    fn container_name_over_63_characters_names_the_limit() {
        let mut j = job();
        let long = "a".repeat(64);
        j.spec.template.spec.containers[0].name = long.clone();
        assert_eq!(
            errors(&j),
            vec![format!(
                "spec.template.spec.containers[0].name: Invalid value: \"{long}\": must be no more than 63 characters"
            )]
        );
        let bad = format!("{}_", "a".repeat(63));
        j.spec.template.spec.containers[0].name = bad.clone();
        let errs = errors(&j);
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[1].starts_with(&format!(
            "spec.template.spec.containers[0].name: Invalid value: \"{bad}\": a lowercase RFC 1123 label"
        )));
        j.spec.template.spec.containers[0].name = "a".repeat(63);
        assert!(errors(&j).is_empty());
    }

    /// `validateEnv` with `IsEnvVarName` (pkg/apis/core/validation, apimachinery
    /// util/validation): names are checked against the regex and for directory changes.
    #[test]
    fn env_names_are_validated_like_upstream() {
        for good in ["my.env-name", "MY_ENV.NAME", "MyEnvName1", "_x", "-a", ".a", "a..b"] {
            assert!(env_var_name_problems(good).is_empty(), "{good}");
        }
        assert_eq!(env_var_name_problems("A=B"), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(env_var_name_problems("1A"), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(env_var_name_problems("a b"), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(env_var_name_problems("é"), vec![ENV_VAR_NAME_MSG]);
        assert_eq!(env_var_name_problems("."), vec!["must not be '.'"]);
        assert_eq!(env_var_name_problems(".."), vec!["must not be '..'"]);
        assert_eq!(env_var_name_problems("..a"), vec!["must not start with '..'"]);
        assert_eq!(env_var_name_problems("../x"), vec![ENV_VAR_NAME_MSG, "must not start with '..'"]);
        let mut j = job();
        j.spec.template.spec.containers[0].env.push(EnvVar {
            name: "A=B".into(),
            value: Some("c".into()),
            ..EnvVar::default()
        });
        let errs = errors(&j);
        assert_eq!(
            errs,
            vec![format!(
                "spec.template.spec.containers[0].env[0].name: Invalid value: \"A=B\": {ENV_VAR_NAME_MSG}"
            )]
        );
    }

    /// `validateEnvVarValueFrom` / `validateObjectFieldSelector` (pkg/apis/core/validation).
    #[test]
    fn env_field_refs_are_validated_like_upstream() {
        use crate::spec::{EnvVarSource, ObjectFieldSelector};
        let var = |value: Option<&str>, source: Option<(&str, &str)>| EnvVar {
            name: "X".into(),
            value: value.map(Into::into),
            value_from: Some(EnvVarSource {
                field_ref: source.map(|(v, p)| ObjectFieldSelector {
                    api_version: (!v.is_empty()).then(|| v.to_string()),
                    field_path: p.into(),
                }),
                ..Default::default()
            }),
        };
        let mut j = job();
        let env = &mut j.spec.template.spec.containers[0].env;
        env.push(var(None, Some(("v1", "metadata.annotations['batch.kubernetes.io/job-completion-index']"))));
        env.push(var(None, Some(("", "metadata.name"))));
        assert_eq!(errors(&j), Vec::<String>::new());
        let env = &mut j.spec.template.spec.containers[0].env;
        env.push(var(None, None));
        env.push(var(Some("x"), Some(("", "metadata.uid"))));
        env.push(var(None, Some(("", "metadata.labels"))));
        env.push(var(None, Some(("", "spec.containers"))));
        env.push(var(None, Some(("", ""))));
        let p = "spec.template.spec.containers[0].env";
        assert_eq!(
            errors(&j),
            vec![
                format!("{p}[2].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"),
                format!("{p}[3].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"),
                format!("{p}[4].valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\", \"metadata.namespace\", \"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.hostIPs\", \"status.podIP\", \"status.podIPs\""),
                format!("{p}[5].valueFrom.fieldRef.fieldPath: Invalid value: \"spec.containers\": error converting fieldPath: field label not supported: spec.containers"),
                format!("{p}[6].valueFrom.fieldRef.fieldPath: Required value"),
            ]
        );
    }
}
