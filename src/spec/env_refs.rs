//! Env vars read from elsewhere: `env[].valueFrom` (`fieldRef`, `configMapKeyRef`,
//! `secretKeyRef`) and `envFrom`, validated as `validateEnvVarValueFrom` and `ValidateEnvFrom`
//! of `pkg/apis/core/validation/validation.go` do it; and the ConfigMaps and Secrets that feed
//! them (`ValidateConfigMap`, `ValidateSecret`).

use super::field_path::{check_env_field_path, FieldPathProblem, ENV_FIELD_PATHS};
use super::object_meta::is_dns1123_subdomain;
use super::validate::{chdir_prefix_problem, env_var_name_problems};
use super::{
    EnvFromSource, EnvSourceRef, EnvVar, EnvVarSource, FieldError, FieldErrors, KeySelector, ObjectMeta,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `validation.DNS1123SubdomainMaxLength`: the longest object name, and ConfigMap key.
const MAX_SUBDOMAIN_LENGTH: usize = 253;

const CONFIG_MAP_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', \
'_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
'[-._a-zA-Z0-9]+')";

/// A `v1` ConfigMap or Secret, as a manifest file holds it beside a Job. Secret `data` is
/// base64 (decoded by `controller::env_sources`); `stringData` is plain text.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", default)]
pub struct EnvSourceDocument {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
    pub string_data: BTreeMap<String, String>,
    pub binary_data: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: Option<String>,
    pub immutable: Option<bool>,
}

impl EnvSourceDocument {
    pub fn is_secret(&self) -> bool {
        self.kind.as_deref() == Some("Secret")
    }

    /// `ValidateConfigMap` / `ValidateSecret`: the name, and every key (a Secret's
    /// `stringData` keys are its `data` keys once the API server has merged them).
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        let name = self.metadata.name.as_deref().unwrap_or("");
        if name.is_empty() {
            errs.push(FieldError::required("metadata.name", "name or generateName is required"));
        } else {
            for problem in subdomain_problems(name) {
                errs.push(FieldError::invalid_str("metadata.name", name, problem));
            }
        }
        // The API server merges a Secret's `stringData` into `data` before validating it.
        let mut keys: Vec<(&str, &String)> = self.data.keys().map(|k| ("data", k)).collect();
        if self.is_secret() {
            keys.extend(self.string_data.keys().filter(|k| !self.data.contains_key(*k)).map(|k| ("data", k)));
        } else {
            keys.extend(self.binary_data.keys().map(|k| ("binaryData", k)));
        }
        for (field, key) in keys {
            for problem in is_config_map_key(key) {
                errs.push(FieldError::invalid_str(format!("{field}[{key}]"), key, problem));
            }
        }
        if !self.is_secret() {
            for key in self.data.keys().filter(|k| self.binary_data.contains_key(*k)) {
                errs.push(FieldError::invalid_str(
                    format!("data[{key}]"),
                    key,
                    "duplicate of key present in binaryData",
                ));
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }
}

/// `validation.IsConfigMapKey`: the problems of a ConfigMap or Secret key, none when valid.
pub fn is_config_map_key(key: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if key.len() > MAX_SUBDOMAIN_LENGTH {
        problems.push(format!("must be no more than {MAX_SUBDOMAIN_LENGTH} characters"));
    }
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
    if key.is_empty() || !key.as_bytes().iter().all(valid) {
        problems.push(CONFIG_MAP_KEY_MSG.to_string());
    }
    problems.extend(chdir_prefix_problem(key).map(String::from));
    problems
}

/// `IsDNS1123Subdomain`: the length and the form are separate problems.
fn subdomain_problems(name: &str) -> Vec<String> {
    is_dns1123_subdomain(name)
}

/// `validateEnvVarValueFrom`: exactly one source, each validated, and no `value` beside it.
pub(super) fn validate_value_from(source: &EnvVarSource, var: &EnvVar, path: &str, errs: &mut FieldErrors) {
    let mut sources = 0;
    if let Some(selector) = &source.field_ref {
        sources += 1;
        validate_field_ref(selector, &format!("{path}.fieldRef"), errs);
    }
    if let Some(selector) = &source.config_map_key_ref {
        sources += 1;
        validate_key_selector(selector, &format!("{path}.configMapKeyRef"), errs);
    }
    if let Some(selector) = &source.secret_key_ref {
        sources += 1;
        validate_key_selector(selector, &format!("{path}.secretKeyRef"), errs);
    }
    if sources == 0 {
        errs.push(FieldError::invalid_str(
            path,
            "",
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errs.push(FieldError::invalid_str(path, "", "may not be specified when `value` is not empty"));
    } else if sources > 1 {
        errs.push(FieldError::invalid_str(path, "", "may not have more than one field specified at a time"));
    }
}

/// `validateObjectFieldSelector` with the env var's field paths.
fn validate_field_ref(selector: &super::ObjectFieldSelector, path: &str, errs: &mut FieldErrors) {
    match selector.api_version.as_deref() {
        None | Some("v1") => {}
        Some(other) => errs.push(FieldError::invalid_str(
            format!("{path}.fieldPath"),
            &selector.field_path,
            format!("error converting fieldPath: unsupported pod version: {other}"),
        )),
    }
    if selector.field_path.is_empty() {
        errs.push(FieldError::required(format!("{path}.fieldPath"), ""));
        return;
    }
    match check_env_field_path(&selector.field_path) {
        None => {}
        Some(FieldPathProblem::Conversion(detail)) => {
            errs.push(FieldError::invalid_str(format!("{path}.fieldPath"), &selector.field_path, detail))
        }
        Some(FieldPathProblem::NotSupported(base)) => {
            errs.push(FieldError::unsupported(format!("{path}.fieldPath"), &base, ENV_FIELD_PATHS))
        }
    }
}

/// `validateConfigMapKeySelector` / `validateSecretKeySelector`: the name is checked as a
/// DNS subdomain even when empty (upstream keeps an empty name legal only in the type).
fn validate_key_selector(selector: &KeySelector, path: &str, errs: &mut FieldErrors) {
    for problem in subdomain_problems(&selector.name) {
        errs.push(FieldError::invalid_str(format!("{path}.name"), &selector.name, problem));
    }
    if selector.key.is_empty() {
        errs.push(FieldError::required(format!("{path}.key"), ""));
    } else {
        for problem in is_config_map_key(&selector.key) {
            errs.push(FieldError::invalid_str(format!("{path}.key"), &selector.key, problem));
        }
    }
}

/// `ValidateEnvFrom`. Upstream reports a missing or double source at the list's path, not
/// the item's: so does kjob.
pub(super) fn validate_env_from(sources: &[EnvFromSource], path: &str, errs: &mut FieldErrors) {
    for (i, source) in sources.iter().enumerate() {
        let item = format!("{path}[{i}]");
        if let Some(prefix) = source.prefix.as_deref().filter(|p| !p.is_empty()) {
            for problem in env_var_name_problems(prefix) {
                errs.push(FieldError::invalid_str(format!("{item}.prefix"), prefix, problem));
            }
        }
        let mut count = 0;
        for (field, reference) in
            [("configMapRef", &source.config_map_ref), ("secretRef", &source.secret_ref)]
        {
            if let Some(reference) = reference {
                count += 1;
                validate_env_source_ref(reference, &format!("{item}.{field}"), errs);
            }
        }
        if count == 0 {
            errs.push(FieldError::invalid_str(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if count > 1 {
            errs.push(FieldError::invalid_str(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
}

/// `validateConfigMapEnvSource` / `validateSecretEnvSource`: `ValidateConfigMapName` with
/// `prefix` true, which masks a trailing dash before the subdomain check.
fn validate_env_source_ref(reference: &EnvSourceRef, path: &str, errs: &mut FieldErrors) {
    let name = &reference.name;
    if name.is_empty() {
        errs.push(FieldError::required(format!("{path}.name"), ""));
        return;
    }
    let masked = match name.strip_suffix('-') {
        Some(head) if !head.is_empty() => format!("{head}a"),
        _ => name.clone(),
    };
    for problem in subdomain_problems(&masked) {
        errs.push(FieldError::invalid_str(format!("{path}.name"), name, problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::object_meta::DNS1123_SUBDOMAIN_MSG;
    use crate::spec::{validate_job, Container, Job, JobSpec, ObjectFieldSelector, PodSpec, PodTemplateSpec};

    fn job(container: Container) -> Job {
        Job {
            metadata: ObjectMeta { name: Some("pi".into()), ..Default::default() },
            spec: JobSpec {
                template: PodTemplateSpec {
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "c".into(),
                            command: vec!["true".into()],
                            ..container
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

    fn errors(container: Container) -> Vec<String> {
        validate_job(&job(container)).err().map(|e| e.messages()).unwrap_or_default()
    }

    fn key_ref(name: &str, key: &str) -> Option<KeySelector> {
        Some(KeySelector { name: name.into(), key: key.into(), optional: None })
    }

    fn var(value: Option<&str>, source: EnvVarSource) -> EnvVar {
        EnvVar { name: "X".into(), value: value.map(Into::into), value_from: Some(source) }
    }

    /// `TestValidateEnv` (pkg/apis/core/validation): the key-selector branches.
    #[test]
    fn key_refs_are_validated_like_upstream() {
        let good = Container {
            env: vec![
                var(None, EnvVarSource { config_map_key_ref: key_ref("cfg", "mode"), ..Default::default() }),
                var(
                    None,
                    EnvVarSource { secret_key_ref: key_ref("s.x", "pass_word-1.x"), ..Default::default() },
                ),
            ],
            ..Default::default()
        };
        assert_eq!(errors(good), Vec::<String>::new());
        let bad = Container {
            env: vec![
                var(None, EnvVarSource { config_map_key_ref: key_ref("", ""), ..Default::default() }),
                var(None, EnvVarSource { secret_key_ref: key_ref("Bad", "a b"), ..Default::default() }),
                var(Some("v"), EnvVarSource { secret_key_ref: key_ref("s", "k"), ..Default::default() }),
                var(
                    None,
                    EnvVarSource {
                        config_map_key_ref: key_ref("c", "k"),
                        secret_key_ref: key_ref("s", ".."),
                        ..Default::default()
                    },
                ),
                var(
                    None,
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: None,
                            field_path: "metadata.name".into(),
                        }),
                        config_map_key_ref: key_ref("c", "k"),
                        ..Default::default()
                    },
                ),
            ],
            ..Default::default()
        };
        let p = "spec.template.spec.containers[0].env";
        assert_eq!(
            errors(bad),
            vec![
                format!("{p}[0].valueFrom.configMapKeyRef.name: Invalid value: \"\": {DNS1123_SUBDOMAIN_MSG}"),
                format!("{p}[0].valueFrom.configMapKeyRef.key: Required value"),
                format!("{p}[1].valueFrom.secretKeyRef.name: Invalid value: \"Bad\": {DNS1123_SUBDOMAIN_MSG}"),
                format!("{p}[1].valueFrom.secretKeyRef.key: Invalid value: \"a b\": {CONFIG_MAP_KEY_MSG}"),
                format!("{p}[2].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"),
                format!("{p}[3].valueFrom.secretKeyRef.key: Invalid value: \"..\": must not be '..'"),
                format!("{p}[3].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"),
                format!("{p}[4].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"),
            ]
        );
    }

    /// `TestValidateEnvFrom`: prefix, names, and exactly one source (reported at the list).
    #[test]
    fn env_from_is_validated_like_upstream() {
        let source = |prefix: Option<&str>, cm: Option<&str>, secret: Option<&str>| EnvFromSource {
            prefix: prefix.map(Into::into),
            config_map_ref: cm.map(|n| EnvSourceRef { name: n.into(), optional: None }),
            secret_ref: secret.map(|n| EnvSourceRef { name: n.into(), optional: Some(true) }),
        };
        let good = Container {
            env_from: vec![source(Some("APP_"), Some("cfg"), None), source(None, None, Some("creds-"))],
            ..Default::default()
        };
        assert_eq!(errors(good), Vec::<String>::new());
        let bad = Container {
            env_from: vec![
                source(Some("1A"), Some(""), None),
                source(None, None, None),
                source(None, Some("a"), Some("b")),
                source(None, Some("a_b"), None),
            ],
            ..Default::default()
        };
        let p = "spec.template.spec.containers[0].envFrom";
        let name_msg = crate::spec::validate::ENV_VAR_NAME_MSG;
        assert_eq!(
            errors(bad),
            vec![
                format!("{p}[0].prefix: Invalid value: \"1A\": {name_msg}"),
                format!("{p}[0].configMapRef.name: Required value"),
                format!("{p}: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"),
                format!("{p}: Invalid value: \"\": may not have more than one field specified at a time"),
                format!("{p}[3].configMapRef.name: Invalid value: \"a_b\": {DNS1123_SUBDOMAIN_MSG}"),
            ]
        );
    }

    /// `IsConfigMapKey` (apimachinery `util/validation`).
    #[test]
    fn config_map_keys_follow_is_config_map_key() {
        for good in ["a", "A_b-c.d", "1", ".a", "a..b"] {
            assert!(is_config_map_key(good).is_empty(), "{good}");
        }
        assert_eq!(is_config_map_key(""), vec![CONFIG_MAP_KEY_MSG]);
        assert_eq!(is_config_map_key("a/b"), vec![CONFIG_MAP_KEY_MSG]);
        assert_eq!(is_config_map_key("."), vec!["must not be '.'"]);
        assert_eq!(is_config_map_key("..x"), vec!["must not start with '..'"]);
        assert_eq!(is_config_map_key(&"k".repeat(254)), vec!["must be no more than 253 characters"]);
    }

    #[test]
    fn source_documents_are_validated_like_the_api_server() {
        let mut doc = EnvSourceDocument { kind: Some("ConfigMap".into()), ..Default::default() };
        assert_eq!(
            doc.validate().unwrap_err().messages(),
            vec!["metadata.name: Required value: name or generateName is required"]
        );
        doc.metadata.name = Some("cfg".into());
        doc.data.insert("a b".into(), "x".into());
        doc.data.insert("k".into(), "x".into());
        doc.binary_data.insert("k".into(), "eA==".into());
        assert_eq!(
            doc.validate().unwrap_err().messages(),
            vec![
                format!("data[a b]: Invalid value: \"a b\": {CONFIG_MAP_KEY_MSG}"),
                "data[k]: Invalid value: \"k\": duplicate of key present in binaryData".to_string(),
            ]
        );
        let secret = EnvSourceDocument {
            kind: Some("Secret".into()),
            metadata: ObjectMeta { name: Some("s".into()), ..Default::default() },
            string_data: BTreeMap::from([("x/y".to_string(), "v".to_string())]),
            ..Default::default()
        };
        assert_eq!(
            secret.validate().unwrap_err().messages(),
            vec![format!("data[x/y]: Invalid value: \"x/y\": {CONFIG_MAP_KEY_MSG}")]
        );
    }
}
