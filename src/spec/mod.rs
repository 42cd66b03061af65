//! The batch/v1 Job types kjob reads, as they appear in a manifest (camelCase), plus their
//! validation. Values here are exactly what the user wrote: defaulting belongs to the
//! controller (`crate::controller::defaults`), validation to [`validate`].

mod api_defaults;
mod env_refs;
mod field_error;
pub mod field_path;
mod k8s_fields;
pub mod object_meta;
mod policies;
pub mod schema;
mod validate;
mod validate_containers;

pub use api_defaults::with_api_defaults;
pub use env_refs::{is_config_map_key, EnvSourceDocument};
pub use field_error::{go_quote, FieldError, FieldErrorKind, FieldErrors};
pub use policies::{validate_indexes_format, POD_FAILURE_POLICY_ACTIONS};
pub use validate::{not_int32, validate_job, validate_scale};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only controller that runs Jobs locally (`managedBy` unset means the same).
pub const JOB_CONTROLLER_NAME: &str = "kubernetes.io/job-controller";

/// A `batch/v1` Job manifest. Unknown fields are ignored by serde; [`schema`] (derived from
/// these types) lets the bindings report and drop them first.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: ObjectMeta,
    pub spec: JobSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    pub name: Option<String>,
    /// Resolved to a `name` before a Job is made (`kjob.manifest`); read only so that the
    /// manifest's schema has it.
    pub generate_name: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct JobSpec {
    pub parallelism: Option<i32>,
    pub completions: Option<i32>,
    pub active_deadline_seconds: Option<i64>,
    pub pod_failure_policy: Option<PodFailurePolicy>,
    pub success_policy: Option<SuccessPolicy>,
    pub backoff_limit: Option<i32>,
    pub backoff_limit_per_index: Option<i32>,
    pub max_failed_indexes: Option<i32>,
    pub ttl_seconds_after_finished: Option<i32>,
    pub completion_mode: Option<String>,
    pub suspend: Option<bool>,
    pub pod_replacement_policy: Option<String>,
    pub managed_by: Option<String>,
    pub template: PodTemplateSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodFailurePolicy {
    pub rules: Vec<PodFailurePolicyRule>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodFailurePolicyRule {
    pub action: String,
    pub on_exit_codes: Option<OnExitCodes>,
    pub on_pod_conditions: Option<Vec<OnPodConditionsPattern>>,
    /// kjob's extension for callable pods (not part of batch/v1).
    pub on_exceptions: Option<OnExceptions>,
}

/// Matches the exception that failed a callable pod, by the qualified or plain name of its
/// class or any base class.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct OnExceptions {
    pub operator: String,
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct OnExitCodes {
    pub container_name: Option<String>,
    pub operator: String,
    pub values: Vec<i32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct OnPodConditionsPattern {
    #[serde(rename = "type")]
    pub type_: String,
    /// Defaults to `True`.
    pub status: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessPolicy {
    pub rules: Vec<SuccessPolicyRule>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct SuccessPolicyRule {
    pub succeeded_indexes: Option<String>,
    pub succeeded_count: Option<i32>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodTemplateSpec {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct PodSpec {
    /// Run in order before `containers`, each to success; one with `restartPolicy: Always` is
    /// a native sidecar (KEP-753), running beside the main containers.
    pub init_containers: Vec<Container>,
    pub containers: Vec<Container>,
    pub restart_policy: Option<String>,
    pub termination_grace_period_seconds: Option<i64>,
    pub active_deadline_seconds: Option<i64>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct Container {
    pub name: String,
    pub image: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<EnvVar>,
    /// Whole ConfigMaps and Secrets as variables (`env` entries override them).
    pub env_from: Vec<EnvFromSource>,
    pub working_dir: Option<String>,
    /// Only `Always`, and only on an init container: a native sidecar.
    pub restart_policy: Option<String>,
}

/// The one container `restartPolicy` value (`ContainerRestartPolicyAlways`).
pub const CONTAINER_RESTART_POLICY_ALWAYS: &str = "Always";

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
    pub value_from: Option<EnvVarSource>,
}

/// Where an env var's value comes from: the downward API (`fieldRef`), or a key of a
/// ConfigMap or Secret given with the Job (in the same files); resource limits do not exist
/// here, and the Python layer drops `resourceFieldRef` with a warning.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvVarSource {
    pub field_ref: Option<ObjectFieldSelector>,
    pub config_map_key_ref: Option<KeySelector>,
    pub secret_key_ref: Option<KeySelector>,
}

/// `ConfigMapKeySelector` / `SecretKeySelector`: one key of a ConfigMap or Secret of the pod's
/// namespace.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct KeySelector {
    pub name: String,
    pub key: String,
    /// A missing object or key leaves the variable unset instead of failing the container.
    pub optional: Option<bool>,
}

/// `EnvFromSource`: every key of a ConfigMap or Secret, as variables named `prefix + key`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvFromSource {
    pub prefix: Option<String>,
    pub config_map_ref: Option<EnvSourceRef>,
    pub secret_ref: Option<EnvSourceRef>,
}

/// `ConfigMapEnvSource` / `SecretEnvSource`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvSourceRef {
    pub name: String,
    pub optional: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectFieldSelector {
    pub api_version: Option<String>,
    pub field_path: String,
}
