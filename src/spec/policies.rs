//! Validation of `podFailurePolicy` (docs/semantics.md §1.4) and `successPolicy` (§1.5), with
//! the messages of `pkg/apis/batch/validation/validation.go`.

use super::object_meta::is_qualified_name;
use super::validate::nonnegative;
use super::{FieldError, FieldErrors, JobSpec, OnExitCodes, OnPodConditionsPattern, PodFailurePolicyRule};
use super::{SuccessPolicy, SuccessPolicyRule};

const MAX_POD_FAILURE_POLICY_RULES: usize = 20;
const MAX_ON_EXIT_CODES_VALUES: usize = 255;
const MAX_ON_POD_CONDITIONS_PATTERNS: usize = 20;
const MAX_SUCCESS_POLICY_RULES: usize = 20;
const MAX_SUCCEEDED_INDEXES_BYTES: usize = 64 * 1024;
/// `sets.List` order (sorted), as Kubernetes prints them.
pub const POD_FAILURE_POLICY_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const ON_EXIT_CODES_OPERATORS: &[&str] = &["In", "NotIn"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];

pub(super) fn validate_pod_failure_policy(spec: &JobSpec, errs: &mut FieldErrors) {
    let Some(policy) = &spec.pod_failure_policy else {
        return;
    };
    let rules_path = "spec.podFailurePolicy.rules";
    if policy.rules.len() > MAX_POD_FAILURE_POLICY_RULES {
        errs.push(FieldError::too_many(rules_path, policy.rules.len(), MAX_POD_FAILURE_POLICY_RULES));
    }
    // `validatePodFailurePolicyRuleOnExitCodes`: a `containerName` names a container or an init container.
    let pod = &spec.template.spec;
    let container_names: Vec<&str> =
        pod.containers.iter().chain(&pod.init_containers).map(|c| c.name.as_str()).collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        validate_rule(spec, rule, &format!("{rules_path}[{i}]"), &container_names, errs);
    }
}

fn validate_rule(
    spec: &JobSpec,
    rule: &PodFailurePolicyRule,
    path: &str,
    container_names: &[&str],
    errs: &mut FieldErrors,
) {
    let action_path = format!("{path}.action");
    match rule.action.as_str() {
        "" => errs.push(FieldError::required(
            action_path,
            "valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
        )),
        "FailIndex" => {
            if spec.backoff_limit_per_index.is_none() {
                errs.push(FieldError::invalid_str(
                    action_path,
                    "FailIndex",
                    "requires the backoffLimitPerIndex to be set",
                ));
            }
        }
        a if POD_FAILURE_POLICY_ACTIONS.contains(&a) => {}
        other => errs.push(FieldError::unsupported(action_path, other, POD_FAILURE_POLICY_ACTIONS)),
    }
    let patterns = rule.on_pod_conditions.as_deref().unwrap_or(&[]);
    if let Some(on_exit_codes) = &rule.on_exit_codes {
        validate_on_exit_codes(on_exit_codes, &format!("{path}.onExitCodes"), container_names, errs);
    }
    if !patterns.is_empty() {
        validate_on_pod_conditions(patterns, &format!("{path}.onPodConditions"), errs);
    }
    if let Some(on_exceptions) = &rule.on_exceptions {
        let op_path = format!("{path}.onExceptions.operator");
        match on_exceptions.operator.as_str() {
            "" => errs.push(FieldError::required(op_path, "valid values: [\"In\" \"NotIn\"]")),
            "In" | "NotIn" => {}
            other => errs.push(FieldError::unsupported(op_path, other, ON_EXIT_CODES_OPERATORS)),
        }
        if on_exceptions.values.iter().all(|v| v.is_empty()) {
            errs.push(FieldError::required(
                format!("{path}.onExceptions.values"),
                "at least one value is required",
            ));
        }
        if rule.on_exit_codes.is_some() || !patterns.is_empty() {
            errs.push(FieldError::invalid_omit_value(
                path,
                "specifying onExceptions together with OnExitCodes or OnPodConditions is not supported",
            ));
        }
        return;
    }
    if rule.on_exit_codes.is_some() && !patterns.is_empty() {
        errs.push(FieldError::invalid_omit_value(
            path,
            "specifying both OnExitCodes and OnPodConditions is not supported",
        ));
    }
    if rule.on_exit_codes.is_none() && patterns.is_empty() {
        errs.push(FieldError::invalid_omit_value(
            path,
            "specifying one of OnExitCodes and OnPodConditions is required",
        ));
    }
}

/// Go's `%#v` of an `[]int32`.
fn go_int32_slice(values: &[i32]) -> String {
    let items: Vec<String> = values.iter().map(ToString::to_string).collect();
    format!("[]int32{{{}}}", items.join(", "))
}

fn validate_on_exit_codes(req: &OnExitCodes, path: &str, container_names: &[&str], errs: &mut FieldErrors) {
    let op_path = format!("{path}.operator");
    match req.operator.as_str() {
        "" => errs.push(FieldError::required(op_path, "valid values: [\"In\" \"NotIn\"]")),
        "In" | "NotIn" => {}
        other => errs.push(FieldError::unsupported(op_path, other, ON_EXIT_CODES_OPERATORS)),
    }
    if let Some(name) = &req.container_name {
        if !container_names.contains(&name.as_str()) {
            errs.push(FieldError::invalid_str(
                format!("{path}.containerName"),
                name,
                "must be one of the container or initContainer names in the pod template",
            ));
        }
    }
    let values_path = format!("{path}.values");
    if req.values.is_empty() {
        errs.push(FieldError::invalid(
            &values_path,
            go_int32_slice(&req.values),
            "at least one value is required",
        ));
        return;
    }
    if req.values.len() > MAX_ON_EXIT_CODES_VALUES {
        errs.push(FieldError::too_many(&values_path, req.values.len(), MAX_ON_EXIT_CODES_VALUES));
    }
    let mut ordered = true;
    let mut seen = std::collections::HashSet::new();
    for (j, value) in req.values.iter().enumerate() {
        if req.operator == "In" && *value == 0 {
            errs.push(FieldError::invalid(
                format!("{values_path}[{j}]"),
                value,
                "must not be 0 for the In operator",
            ));
        }
        if !seen.insert(*value) {
            errs.push(FieldError::duplicate(format!("{values_path}[{j}]"), value));
        }
        if j > 0 && req.values[j - 1] > *value {
            ordered = false;
        }
    }
    if !ordered {
        errs.push(FieldError::invalid(values_path, go_int32_slice(&req.values), "must be ordered"));
    }
}

fn validate_on_pod_conditions(patterns: &[OnPodConditionsPattern], path: &str, errs: &mut FieldErrors) {
    if patterns.len() > MAX_ON_POD_CONDITIONS_PATTERNS {
        errs.push(FieldError::too_many(path, patterns.len(), MAX_ON_POD_CONDITIONS_PATTERNS));
    }
    for (j, pattern) in patterns.iter().enumerate() {
        validate_qualified_name(&pattern.type_, &format!("{path}[{j}].type"), errs);
        // An unset status defaults to True, as the API server's defaulting does first.
        if let Some(status) = pattern.status.as_deref() {
            if status.is_empty() {
                errs.push(FieldError::required(
                    format!("{path}[{j}].status"),
                    "valid values: [\"False\" \"True\" \"Unknown\"]",
                ));
            } else if !CONDITION_STATUSES.contains(&status) {
                errs.push(FieldError::unsupported(format!("{path}[{j}].status"), status, CONDITION_STATUSES));
            }
        }
    }
}

/// `ValidateQualifiedName`: apimachinery's `IsQualifiedName`, a message per problem.
fn validate_qualified_name(value: &str, path: &str, errs: &mut FieldErrors) {
    for msg in is_qualified_name(value) {
        errs.push(FieldError::invalid_str(path, value, msg));
    }
}

pub(super) fn validate_success_policy(spec: &JobSpec, errs: &mut FieldErrors) {
    let Some(policy) = &spec.success_policy else {
        return;
    };
    let rules_path = "spec.successPolicy.rules";
    if spec.completion_mode.as_deref() != Some("Indexed") {
        errs.push(FieldError::invalid(
            "spec.successPolicy",
            go_success_policy(policy),
            "requires indexed completion mode",
        ));
        return;
    }
    if policy.rules.is_empty() {
        errs.push(FieldError::required(
            rules_path,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
        errs.push(FieldError::too_many(rules_path, policy.rules.len(), MAX_SUCCESS_POLICY_RULES));
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        validate_success_rule(spec, rule, &format!("{rules_path}[{i}]"), errs);
    }
}

/// Go's `%#v` of a `batch.SuccessPolicy` (pointers shown by value: Go prints addresses).
fn go_success_policy(policy: &SuccessPolicy) -> String {
    let rules: Vec<String> = policy
        .rules
        .iter()
        .map(|r| {
            let ix = r.succeeded_indexes.as_ref().map_or("(*string)(nil)".to_string(), |s| format!("{s:?}"));
            let count = r.succeeded_count.map_or("(*int32)(nil)".to_string(), |c| c.to_string());
            format!("batch.SuccessPolicyRule{{SucceededIndexes:{ix}, SucceededCount:{count}}}")
        })
        .collect();
    format!("batch.SuccessPolicy{{Rules:[]batch.SuccessPolicyRule{{{}}}}}", rules.join(", "))
}

fn validate_success_rule(spec: &JobSpec, rule: &SuccessPolicyRule, path: &str, errs: &mut FieldErrors) {
    let completions = spec.completions.unwrap_or(0);
    let mut total_indexes: i64 = 0;
    if let Some(indexes) = &rule.succeeded_indexes {
        let ix_path = format!("{path}.succeededIndexes");
        if indexes.len() > MAX_SUCCEEDED_INDEXES_BYTES {
            errs.push(FieldError::too_long(
                &ix_path,
                format!("must have at most {MAX_SUCCEEDED_INDEXES_BYTES} bytes"),
            ));
        }
        match validate_indexes_format(indexes, completions) {
            Ok(total) => total_indexes = total,
            Err(e) => errs.push(FieldError::invalid_str(
                ix_path,
                indexes,
                format!("error parsing succeededIndexes: {e}"),
            )),
        }
    }
    if let Some(count) = rule.succeeded_count {
        let count_path = format!("{path}.succeededCount");
        nonnegative(errs, &count_path, Some(i64::from(count)));
        if spec.completions.is_some() && count > completions {
            errs.push(FieldError::invalid(
                &count_path,
                count,
                format!("must be less than or equal to {completions} (the number of specified completions)"),
            ));
        }
        if rule.succeeded_indexes.is_some() && i64::from(count) > total_indexes {
            errs.push(FieldError::invalid(
                &count_path,
                count,
                format!(
                    "must be less than or equal to {total_indexes} (the number of indexes in the specified succeededIndexes field)"
                ),
            ));
        }
    }
    if rule.succeeded_indexes.is_none() && rule.succeeded_count.is_none() {
        errs.push(FieldError::required(
            path,
            "at least one of succeededCount or succeededIndexes must be specified",
        ));
    }
}

/// `validateIndexesFormat`: strict parsing of an interval string; returns how many indexes it
/// names.
pub fn validate_indexes_format(text: &str, completions: i32) -> Result<i64, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i64> = None;
    let mut total: i64 = 0;
    for fragment in text.split(',') {
        let limits: Vec<&str> = fragment.split('-').collect();
        if limits.len() > 2 {
            return Err(format!(
                "the fragment {fragment:?} violates the requirement that an index interval can have at most two parts separated by '-'"
            ));
        }
        let parse = |s: &str| -> Result<i64, String> {
            let x: i64 =
                s.parse().map_err(|_| format!("cannot convert string to integer for index: {s:?}"))?;
            if x >= i64::from(completions) {
                return Err(format!("too large index: {s:?}"));
            }
            Ok(x)
        };
        let first = parse(limits[0])?;
        if let Some(prev) = last.filter(|prev| *prev >= first) {
            return Err(format!("non-increasing order, previous: {prev}, current: {first}"));
        }
        total += 1;
        last = Some(first);
        if let Some(end) = limits.get(1) {
            let end = parse(end)?;
            if first >= end {
                return Err(format!("non-increasing order, previous: {first}, current: {end}"));
            }
            total += end - first;
            last = Some(end);
        }
    }
    Ok(total)
}
