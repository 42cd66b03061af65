//! `ValidateObjectMeta` (apimachinery `pkg/api/validation/objectmeta.go`) for a Job and its pod
//! template, with the checks of apimachinery's `util/validation` (`IsDNS1123Subdomain`,
//! `IsDNS1123Label`, `IsQualifiedName`, `IsValidLabelValue`): each returns every message that
//! applies, as upstream does, and the caller makes them field errors.
//!
//! Length messages say "characters", as the apimachinery releases our reference documents
//! (`MaxLenError`; v1.34+ say "bytes").

use super::{FieldError, FieldErrors, Job};
use std::collections::BTreeMap;

/// `DNS1123SubdomainMaxLength`, `DNS1123LabelMaxLength`, `qualifiedNameMaxLength` and
/// `LabelValueMaxLength`.
const MAX_SUBDOMAIN_LENGTH: usize = 253;
const MAX_LABEL_LENGTH: usize = 63;
/// `TotalAnnotationSizeLimitB`: keys and values together.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// The labels the API server adds to a Job's pod template from the Job's name (with the uid
/// ones, which are always valid): `generateSelector` in `pkg/registry/batch/job/strategy.go`.
pub const JOB_NAME_LABELS: &[&str] = &["batch.kubernetes.io/job-name", "job-name"];

pub(super) const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case \
alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. \
'example.com', regex used for validation is \
'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(super) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case \
alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. \
'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const QUALIFIED_NAME_FMT_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and \
must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex \
used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric \
characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  \
or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn max_len_error(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
fn matches_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

fn matches_dns1123_subdomain(s: &str) -> bool {
    s.split('.').all(matches_dns1123_label)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: a qualified name's name part, a label value.
fn matches_qualified_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `IsDNS1123Subdomain`.
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_SUBDOMAIN_LENGTH {
        errs.push(max_len_error(MAX_SUBDOMAIN_LENGTH));
    }
    if !matches_dns1123_subdomain(value) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `IsDNS1123Label`: a valid subdomain that is no label has dots.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_LABEL_LENGTH {
        errs.push(max_len_error(MAX_LABEL_LENGTH));
    }
    if !matches_dns1123_label(value) {
        if matches_dns1123_subdomain(value) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(DNS1123_LABEL_MSG.to_string());
        }
    }
    errs
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain, the name 63 characters of
/// `[-A-Za-z0-9_.]` starting and ending alphanumeric. A message per branch, as upstream.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a qualified name {QUALIFIED_NAME_FMT_MSG} with an optional DNS subdomain prefix and '/' \
                 (e.g. 'example.com/MyName')"
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > MAX_LABEL_LENGTH {
        errs.push(format!("name part {}", max_len_error(MAX_LABEL_LENGTH)));
    }
    if !matches_qualified_name(name) {
        errs.push(format!("name part {QUALIFIED_NAME_FMT_MSG}"));
    }
    errs
}

/// `IsValidLabelValue`: empty, or a qualified name part of at most 63 characters.
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > MAX_LABEL_LENGTH {
        errs.push(max_len_error(MAX_LABEL_LENGTH));
    }
    if !value.is_empty() && !matches_qualified_name(value) {
        errs.push(LABEL_VALUE_MSG.to_string());
    }
    errs
}

/// `ValidateLabels`: every key a qualified name, every value a label value; the errors are on
/// the map's path, with the offending key or value.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &str, errs: &mut FieldErrors) {
    for (key, value) in labels {
        for msg in is_qualified_name(key) {
            errs.push(FieldError::invalid_str(path, key, msg));
        }
        for msg in is_valid_label_value(value) {
            errs.push(FieldError::invalid_str(path, value, msg));
        }
    }
}

/// `ValidateAnnotations`: keys are qualified names (case ignored), and keys and values take
/// at most 256 KiB together.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &str, errs: &mut FieldErrors) {
    for key in annotations.keys() {
        for msg in is_qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid_str(path, key, msg));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_ANNOTATIONS_BYTES {
        errs.push(FieldError::too_long(path, format!("must have at most {MAX_ANNOTATIONS_BYTES} bytes")));
    }
}

/// `ValidateObjectMeta(&job.ObjectMeta, true, ValidateReplicationControllerName, "metadata")`:
/// the name a DNS subdomain, the namespace an RFC 1123 label (unset means the request's,
/// `default` here), labels and annotations.
pub fn validate_job_meta(job: &Job, errs: &mut FieldErrors) {
    let meta = &job.metadata;
    match meta.name.as_deref().unwrap_or("") {
        "" => errs.push(FieldError::required("metadata.name", "name or generateName is required")),
        name => {
            for msg in is_dns1123_subdomain(name) {
                errs.push(FieldError::invalid_str("metadata.name", name, msg));
            }
        }
    }
    if let Some(namespace) = meta.namespace.as_deref() {
        if namespace.is_empty() {
            errs.push(FieldError::required("metadata.namespace", ""));
        }
        for msg in is_dns1123_label(namespace).into_iter().filter(|_| !namespace.is_empty()) {
            errs.push(FieldError::invalid_str("metadata.namespace", namespace, msg));
        }
    }
    validate_labels(&meta.labels, "metadata.labels", errs);
    validate_annotations(&meta.annotations, "metadata.annotations", errs);
}

/// The pod template's labels and annotations as `ValidatePodTemplateSpec` sees them: with the
/// labels the API server has added from the Job's name, so a name too long for a label value
/// is refused as a cluster refuses it. Identical messages are reported once, as the API
/// server's `ErrorList.ToAggregate` does (both job-name labels carry the same value).
pub fn validate_template_meta(job: &Job, errs: &mut FieldErrors) {
    let template = &job.spec.template.metadata;
    let mut labels = template.labels.clone();
    if let Some(name) = job.metadata.name.as_deref().filter(|n| !n.is_empty()) {
        for key in JOB_NAME_LABELS {
            labels.insert((*key).to_string(), name.to_string());
        }
    }
    let mut found = FieldErrors::default();
    validate_labels(&labels, "spec.template.labels", &mut found);
    validate_annotations(&template.annotations, "spec.template.annotations", &mut found);
    for error in found.0 {
        if !errs.0.contains(&error) {
            errs.push(error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job_named(name: &str) -> Job {
        let mut job = Job::default();
        job.metadata.name = Some(name.into());
        job
    }

    fn errors(f: impl Fn(&mut FieldErrors)) -> Vec<String> {
        let mut errs = FieldErrors::default();
        f(&mut errs);
        errs.messages()
    }

    /// `TestIsQualifiedName` (apimachinery util/validation): the good and each bad branch.
    #[test]
    fn qualified_names_branch_by_branch() {
        for good in [
            "simple",
            "now-with-dashes",
            "1-starts-with-num",
            "1234",
            "simple/simple",
            "example.com/MyName",
            "a.b.c/x_y.z",
            &"a".repeat(63),
            &format!("{}/b", "a".repeat(253)),
        ] {
            assert_eq!(is_qualified_name(good), Vec::<String>::new(), "{good}");
        }
        let name_part = format!("name part {QUALIFIED_NAME_FMT_MSG}");
        assert_eq!(is_qualified_name("/simple"), ["prefix part must be non-empty"]);
        assert_eq!(is_qualified_name("Example.com/x"), [format!("prefix part {DNS1123_SUBDOMAIN_MSG}")]);
        assert_eq!(
            is_qualified_name(&format!("{}/x", "a".repeat(254))),
            ["prefix part must be no more than 253 characters"]
        );
        assert_eq!(
            is_qualified_name("a/b/c"),
            [format!(
                "a qualified name {QUALIFIED_NAME_FMT_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )]
        );
        assert_eq!(is_qualified_name(""), ["name part must be non-empty".to_string(), name_part.clone()]);
        assert_eq!(
            is_qualified_name("example.com/"),
            ["name part must be non-empty".to_string(), name_part.clone()]
        );
        assert_eq!(is_qualified_name("-x"), std::slice::from_ref(&name_part));
        assert_eq!(is_qualified_name("a b"), std::slice::from_ref(&name_part));
        assert_eq!(is_qualified_name(&"a".repeat(64)), ["name part must be no more than 63 characters"]);
        assert_eq!(
            is_qualified_name("/"),
            ["prefix part must be non-empty", "name part must be non-empty", &name_part]
        );
    }

    #[test]
    fn label_values_and_dns_names() {
        for good in ["", "simple", "now-with-dashes", "1.2_3", &"a".repeat(63)] {
            assert_eq!(is_valid_label_value(good), Vec::<String>::new(), "{good}");
        }
        assert_eq!(is_valid_label_value(&"a".repeat(64)), ["must be no more than 63 characters"]);
        assert_eq!(is_valid_label_value("-a"), [LABEL_VALUE_MSG]);
        assert_eq!(is_valid_label_value("a/b"), [LABEL_VALUE_MSG]);
        assert_eq!(is_dns1123_label("a.b"), ["must not contain dots"]);
        assert_eq!(is_dns1123_label("A"), [DNS1123_LABEL_MSG]);
        assert_eq!(is_dns1123_label(&"a".repeat(64)), ["must be no more than 63 characters"]);
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254)), ["must be no more than 253 characters"]);
        assert_eq!(is_dns1123_subdomain("a..b"), [DNS1123_SUBDOMAIN_MSG]);
    }

    #[test]
    fn job_metadata_like_validate_object_meta() {
        let mut job = job_named("pi");
        job.metadata.namespace = Some("Team.A".into());
        job.metadata.labels.insert("app/x/y".into(), "ok".into());
        job.metadata.labels.insert("tier".into(), "-bad".into());
        job.metadata.annotations.insert("Example.com/Note".into(), "x".into());
        job.metadata.annotations.insert("/x".into(), "y".into());
        let errs = errors(|e| validate_job_meta(&job, e));
        assert_eq!(
            errs,
            [
                format!("metadata.namespace: Invalid value: \"Team.A\": {DNS1123_LABEL_MSG}"),
                format!("metadata.labels: Invalid value: \"app/x/y\": a qualified name {QUALIFIED_NAME_FMT_MSG} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"),
                format!("metadata.labels: Invalid value: \"-bad\": {LABEL_VALUE_MSG}"),
                "metadata.annotations: Invalid value: \"/x\": prefix part must be non-empty".to_string(),
            ]
        );
        job.metadata.namespace = Some("team.a".into());
        assert_eq!(
            errors(|e| validate_job_meta(&job, e))[0],
            "metadata.namespace: Invalid value: \"team.a\": must not contain dots"
        );
    }

    #[test]
    fn annotations_total_size_is_limited_to_256_kib() {
        let mut job = job_named("pi");
        job.metadata.annotations.insert("a".into(), "x".repeat(MAX_ANNOTATIONS_BYTES - 1));
        assert_eq!(errors(|e| validate_job_meta(&job, e)), Vec::<String>::new());
        job.metadata.annotations.insert("b".into(), String::new());
        assert_eq!(
            errors(|e| validate_job_meta(&job, e)),
            ["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
    }

    #[test]
    fn names_are_dns_subdomains_with_one_message_per_problem() {
        let long = "a".repeat(254);
        assert_eq!(
            errors(|e| validate_job_meta(&job_named(&long), e)),
            [format!("metadata.name: Invalid value: \"{long}\": must be no more than 253 characters")]
        );
        assert_eq!(
            errors(|e| validate_job_meta(&Job::default(), e)),
            ["metadata.name: Required value: name or generateName is required"]
        );
    }

    /// A 64-character name is a valid subdomain, but the pod template's job-name labels the
    /// API server adds cannot hold it: one message, as the cluster's aggregate prints it.
    #[test]
    fn a_name_too_long_for_the_job_name_labels_is_refused() {
        let name = "a".repeat(64);
        let job = job_named(&name);
        assert_eq!(errors(|e| validate_job_meta(&job, e)), Vec::<String>::new());
        assert_eq!(
            errors(|e| validate_template_meta(&job, e)),
            [format!("spec.template.labels: Invalid value: \"{name}\": must be no more than 63 characters")]
        );
        assert_eq!(errors(|e| validate_template_meta(&job_named(&"a".repeat(63)), e)), Vec::<String>::new());
        let mut job = job_named("pi");
        job.spec.template.metadata.labels.insert("a/b/c".into(), "x".into());
        job.spec.template.metadata.annotations.insert("".into(), "x".into());
        let errs = errors(|e| validate_template_meta(&job, e));
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("spec.template.labels: Invalid value: \"a/b/c\": a qualified name"));
        assert_eq!(errs[1], "spec.template.annotations: Invalid value: \"\": name part must be non-empty");
    }
}
