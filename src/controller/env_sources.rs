//! ConfigMaps and Secrets as a container's env sources, read as the kubelet reads them
//! (`makeEnvironmentVariables` in `pkg/kubelet/kubelet_pods.go`): `envFrom` first, in order,
//! each key under its `prefix`; then `env`, each entry replacing what came before it. A
//! missing object or key fails the container with the kubelet's message, unless the
//! reference is `optional`, which leaves the variable unset.
//!
//! Locally the objects come with the Job (the same files) and never change while it runs, so
//! the environment is worked out once per container, when the Job is made; the controller
//! keeps a pod whose container cannot be configured `Pending` (`CreateContainerConfigError`).

use super::defaults::EnvValue;
use crate::spec::{Container, EnvSourceDocument, FieldError, FieldErrors};
use std::collections::BTreeMap;

/// The kubelet's waiting reason for a container whose configuration cannot be made.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
/// The kubelet's event reason (`events.FailedToCreateContainer`); the message is
/// `Error: <why>`.
pub const FAILED_TO_CREATE_CONTAINER: &str = "Failed";

/// The ConfigMaps' `data` and the Secrets' decoded `data`, by namespace and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvSources {
    config_maps: BTreeMap<(String, String), BTreeMap<String, String>>,
    secrets: BTreeMap<(String, String), BTreeMap<String, String>>,
}

/// Which kind of object a reference names.
#[derive(Clone, Copy)]
enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    /// The resource in the kubelet's not-found error (its object managers use the singular).
    fn resource(self) -> &'static str {
        match self {
            Self::ConfigMap => "configmap",
            Self::Secret => "secret",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::ConfigMap => "ConfigMap",
            Self::Secret => "Secret",
        }
    }
}

impl EnvSources {
    pub fn is_empty(&self) -> bool {
        self.config_maps.is_empty() && self.secrets.is_empty()
    }

    /// Adds ConfigMaps and Secrets as the API server would store them: validated, a Secret's
    /// `data` base64-decoded and its `stringData` merged over it. Errors name the document
    /// (`Secret "s"`) before the field. A later object of the same name replaces an earlier
    /// one, as a second `kubectl apply` would.
    pub fn add_documents(&mut self, docs: &[EnvSourceDocument]) -> Result<(), FieldErrors> {
        let mut errs = FieldErrors::default();
        for doc in docs {
            let kind = doc.kind.as_deref().unwrap_or("");
            let name = doc.metadata.name.clone().unwrap_or_default();
            let namespace = doc.metadata.namespace.clone().unwrap_or_else(|| "default".into());
            let named = |e: FieldError| FieldError { path: format!("{kind} {name:?}: {}", e.path), ..e };
            if let Err(e) = doc.validate() {
                errs.0.extend(e.0.into_iter().map(named));
                continue;
            }
            if doc.is_secret() {
                let mut data = BTreeMap::new();
                for (key, encoded) in &doc.data {
                    match decode_base64(encoded) {
                        Ok(bytes) => {
                            // A process's environment is text here; invalid UTF-8 is replaced.
                            data.insert(key.clone(), String::from_utf8_lossy(&bytes).into_owned());
                        }
                        Err(at) => errs.push(named(FieldError::invalid_omit_value(
                            format!("data[{key}]"),
                            format!("illegal base64 data at input byte {at}"),
                        ))),
                    }
                }
                data.extend(doc.string_data.iter().map(|(k, v)| (k.clone(), v.clone())));
                self.secrets.insert((namespace, name), data);
            } else {
                self.config_maps.insert((namespace, name), doc.data.clone());
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    fn lookup(&self, kind: Kind, namespace: &str, name: &str) -> Option<&BTreeMap<String, String>> {
        let objects = match kind {
            Kind::ConfigMap => &self.config_maps,
            Kind::Secret => &self.secrets,
        };
        objects.get(&(namespace.to_string(), name.to_string()))
    }

    /// The container's env as the runtime builds it (see `container_env`): `envFrom` values
    /// and referenced keys become [`EnvValue::Resolved`], taken as they are. `Err` is the
    /// kubelet's message for the first reference that cannot be read.
    pub fn resolve(&self, container: &Container, namespace: &str) -> Result<Vec<(String, EnvValue)>, String> {
        let mut env = Vec::new();
        for source in &container.env_from {
            let (kind, reference) = match (&source.config_map_ref, &source.secret_ref) {
                (Some(r), _) => (Kind::ConfigMap, r),
                (None, Some(r)) => (Kind::Secret, r),
                (None, None) => continue,
            };
            let Some(data) = self.lookup(kind, namespace, &reference.name) else {
                if reference.optional == Some(true) {
                    continue;
                }
                return Err(not_found(kind, &reference.name));
            };
            let prefix = source.prefix.as_deref().unwrap_or("");
            for (key, value) in data {
                env.push((format!("{prefix}{key}"), EnvValue::Resolved(value.clone())));
            }
        }
        for var in &container.env {
            let literal = var.value.as_deref().unwrap_or("");
            // As upstream: a non-empty `value` wins; only an empty one reads `valueFrom`.
            let from = var.value_from.as_ref().filter(|_| literal.is_empty());
            let value = match from {
                None => EnvValue::Literal(literal.to_string()),
                Some(from) => {
                    if let Some(selector) = &from.field_ref {
                        EnvValue::FieldRef(selector.field_path.clone())
                    } else if let Some((kind, selector)) = from
                        .config_map_key_ref
                        .as_ref()
                        .map(|s| (Kind::ConfigMap, s))
                        .or_else(|| from.secret_key_ref.as_ref().map(|s| (Kind::Secret, s)))
                    {
                        let optional = selector.optional == Some(true);
                        let Some(data) = self.lookup(kind, namespace, &selector.name) else {
                            if optional {
                                continue;
                            }
                            return Err(not_found(kind, &selector.name));
                        };
                        match data.get(&selector.key) {
                            Some(value) => EnvValue::Resolved(value.clone()),
                            None if optional => continue,
                            None => {
                                return Err(format!(
                                    "couldn't find key {} in {} {namespace}/{}",
                                    selector.key,
                                    kind.kind(),
                                    selector.name
                                ))
                            }
                        }
                    } else {
                        // A source kjob drops (resourceFieldRef) leaves an empty value.
                        EnvValue::Literal(String::new())
                    }
                }
            };
            env.push((var.name.clone(), value));
        }
        Ok(env)
    }

    /// Every reference of `container` that cannot be read, one message each (for warnings
    /// before a Job runs), in the kubelet's words. Each is looked up on its own.
    pub fn missing(&self, container: &Container, namespace: &str) -> Vec<String> {
        let froms =
            container.env_from.iter().map(|s| Container { env_from: vec![s.clone()], ..Default::default() });
        let vars = container.env.iter().map(|v| Container { env: vec![v.clone()], ..Default::default() });
        froms.chain(vars).filter_map(|c| self.resolve(&c, namespace).err()).collect()
    }
}

/// apimachinery's `NewNotFound` message, with the kubelet managers' singular resource.
fn not_found(kind: Kind, name: &str) -> String {
    format!("{} \"{name}\" not found", kind.resource())
}

/// Go's `base64.StdEncoding` as `encoding/json` decodes `[]byte` (`decodeQuantum`): padded,
/// standard alphabet, CR and LF ignored. `Err` is the offset Go reports (`illegal base64 data
/// at input byte N`).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, usize> {
    fn value(c: u8) -> Option<u32> {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        Some(u32::from(v))
    }
    let src = text.as_bytes();
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let skip_newlines = |mut si: usize| {
        while si < src.len() && newline(src[si]) {
            si += 1;
        }
        si
    };
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let (mut n, mut j) = (0u32, 0usize);
        let mut decoded = 3;
        while j < 4 {
            if si == src.len() {
                return if j == 0 { Ok(out) } else { Err(si - j) };
            }
            let c = src[si];
            si += 1;
            if newline(c) {
                continue;
            }
            if c == b'=' {
                match j {
                    0 | 1 => return Err(si - 1),
                    2 => {
                        // "==" is expected; the first "=" is consumed.
                        si = skip_newlines(si);
                        if si == src.len() {
                            return Err(src.len());
                        }
                        if src[si] != b'=' {
                            return Err(si - 1);
                        }
                        si += 1;
                    }
                    _ => {}
                }
                // Nothing but newlines may follow the padding.
                si = skip_newlines(si);
                if si < src.len() {
                    return Err(si);
                }
                decoded = j - 1;
                n <<= 6 * (4 - j) as u32;
                break;
            }
            n = (n << 6) | value(c).ok_or(si - 1)?;
            j += 1;
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..decoded]);
        if decoded < 3 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{EnvFromSource, EnvSourceRef, EnvVar, EnvVarSource, KeySelector, ObjectMeta};

    fn doc(kind: &str, name: &str, data: &[(&str, &str)], string_data: &[(&str, &str)]) -> EnvSourceDocument {
        let map =
            |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        EnvSourceDocument {
            kind: Some(kind.into()),
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            data: map(data),
            string_data: map(string_data),
            ..Default::default()
        }
    }

    fn sources() -> EnvSources {
        let mut s = EnvSources::default();
        s.add_documents(&[
            doc("ConfigMap", "cfg", &[("mode", "fast"), ("level", "3")], &[]),
            // "c2VjcmV0" is "secret"; stringData wins over data for the same key.
            doc("Secret", "creds", &[("pass", "c2VjcmV0"), ("user", "b2xk")], &[("user", "new")]),
        ])
        .unwrap();
        s
    }

    fn key_var(name: &str, secret: bool, object: &str, key: &str, optional: bool) -> EnvVar {
        let selector = Some(KeySelector { name: object.into(), key: key.into(), optional: Some(optional) });
        let source = if secret {
            EnvVarSource { secret_key_ref: selector, ..Default::default() }
        } else {
            EnvVarSource { config_map_key_ref: selector, ..Default::default() }
        };
        EnvVar { name: name.into(), value: None, value_from: Some(source) }
    }

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar { name: name.into(), value: Some(value.into()), value_from: None }
    }

    fn from(prefix: &str, secret: bool, name: &str, optional: bool) -> EnvFromSource {
        let r = Some(EnvSourceRef { name: name.into(), optional: Some(optional) });
        EnvFromSource {
            prefix: (!prefix.is_empty()).then(|| prefix.to_string()),
            config_map_ref: if secret { None } else { r.clone() },
            secret_ref: if secret { r } else { None },
        }
    }

    fn resolved(pairs: &[(&str, &str)]) -> Vec<(String, EnvValue)> {
        pairs.iter().map(|(k, v)| (k.to_string(), EnvValue::Resolved(v.to_string()))).collect()
    }

    #[test]
    fn env_from_comes_first_with_its_prefix_and_env_overrides_it() {
        let c = Container {
            env_from: vec![from("", false, "cfg", false), from("S_", true, "creds", false)],
            env: vec![literal("mode", "slow"), key_var("PW", true, "creds", "pass", false)],
            ..Default::default()
        };
        let mut want = resolved(&[("level", "3"), ("mode", "fast"), ("S_pass", "secret"), ("S_user", "new")]);
        want.push(("mode".into(), EnvValue::Literal("slow".into())));
        want.extend(resolved(&[("PW", "secret")]));
        assert_eq!(sources().resolve(&c, "default"), Ok(want));
    }

    /// `makeEnvironmentVariables`: each failure branch and its message; optional refs skip.
    #[test]
    fn missing_references_fail_with_the_kubelets_messages() {
        let s = sources();
        type Resolved = Result<Vec<(String, EnvValue)>, String>;
        let cases: Vec<(Container, Resolved)> = vec![
            (
                Container { env_from: vec![from("", false, "nope", false)], ..Default::default() },
                Err("configmap \"nope\" not found".into()),
            ),
            (
                Container { env_from: vec![from("", true, "nope", false)], ..Default::default() },
                Err("secret \"nope\" not found".into()),
            ),
            (
                Container { env: vec![key_var("X", false, "cfg", "absent", false)], ..Default::default() },
                Err("couldn't find key absent in ConfigMap default/cfg".into()),
            ),
            (
                Container { env: vec![key_var("X", true, "creds", "absent", false)], ..Default::default() },
                Err("couldn't find key absent in Secret default/creds".into()),
            ),
            (
                Container { env: vec![key_var("X", true, "gone", "k", false)], ..Default::default() },
                Err("secret \"gone\" not found".into()),
            ),
            (
                Container {
                    env_from: vec![from("", false, "nope", true), from("", true, "nope", true)],
                    env: vec![
                        key_var("A", false, "cfg", "absent", true),
                        key_var("B", true, "gone", "k", true),
                        key_var("C", false, "cfg", "mode", true),
                    ],
                    ..Default::default()
                },
                Ok(resolved(&[("C", "fast")])),
            ),
        ];
        for (container, want) in cases {
            assert_eq!(s.resolve(&container, "default"), want, "{container:?}");
        }
        // Objects live in a namespace: the same name elsewhere is not found.
        let c = Container { env_from: vec![from("", false, "cfg", false)], ..Default::default() };
        assert_eq!(s.resolve(&c, "other"), Err("configmap \"cfg\" not found".into()));
    }

    #[test]
    fn every_missing_reference_is_listed() {
        let c = Container {
            env_from: vec![from("", false, "a", false), from("", false, "cfg", false)],
            env: vec![key_var("X", true, "b", "k", false), key_var("Y", false, "cfg", "zz", false)],
            ..Default::default()
        };
        assert_eq!(
            sources().missing(&c, "default"),
            vec![
                "configmap \"a\" not found",
                "secret \"b\" not found",
                "couldn't find key zz in ConfigMap default/cfg"
            ]
        );
    }

    #[test]
    fn secrets_decode_like_go_std_encoding() {
        assert_eq!(decode_base64("c2VjcmV0"), Ok(b"secret".to_vec()));
        assert_eq!(decode_base64("aGk="), Ok(b"hi".to_vec()));
        assert_eq!(decode_base64("aA=="), Ok(b"h".to_vec()));
        assert_eq!(decode_base64("aGk=\n"), Ok(b"hi".to_vec()));
        assert_eq!(decode_base64(""), Ok(vec![]));
        assert_eq!(decode_base64("aGk"), Err(0));
        assert_eq!(decode_base64("aGk=x"), Err(4));
        assert_eq!(decode_base64("aA=x"), Err(2));
        assert_eq!(decode_base64("a*Zk"), Err(1));
        assert_eq!(decode_base64("a==="), Err(1));
        let mut s = EnvSources::default();
        let bad = doc("Secret", "s", &[("k", "no!")], &[]);
        assert_eq!(
            s.add_documents(&[bad]).unwrap_err().messages(),
            vec!["Secret \"s\": data[k]: Invalid value: illegal base64 data at input byte 2"]
        );
    }
}

/// The controller's (and kubelet's) side: a pod whose container cannot be configured.
#[cfg(test)]
mod controller_tests {
    use super::*;
    use crate::controller::defaults::{BackoffConfig, EffectiveSpec};
    use crate::controller::pod::{ContainerState, PodPhase};
    use crate::controller::test_support::{secs, spec};
    use crate::controller::{Action, Controller, EventType};
    use crate::spec::{EnvFromSource, EnvSourceRef, Job, JobSpec, PodSpec, PodTemplateSpec};
    use crate::status::ConditionType;

    fn manifest(env_from: &str) -> Job {
        let container = Container {
            name: "c".into(),
            command: vec!["true".into()],
            env_from: vec![EnvFromSource {
                prefix: None,
                config_map_ref: Some(EnvSourceRef { name: env_from.into(), optional: None }),
                secret_ref: None,
            }],
            ..Default::default()
        };
        Job {
            metadata: crate::spec::ObjectMeta { name: Some("pi".into()), ..Default::default() },
            spec: JobSpec {
                template: PodTemplateSpec {
                    spec: PodSpec {
                        containers: vec![container],
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

    #[test]
    fn the_spec_carries_the_resolved_env_or_the_kubelets_error() {
        let mut sources = EnvSources::default();
        let cfg = EnvSourceDocument {
            kind: Some("ConfigMap".into()),
            metadata: crate::spec::ObjectMeta { name: Some("cfg".into()), ..Default::default() },
            data: BTreeMap::from([("MODE".to_string(), "$(X)".to_string())]),
            ..Default::default()
        };
        sources.add_documents(&[cfg]).unwrap();
        let ok = EffectiveSpec::from_manifest_with_sources(
            &manifest("cfg"),
            "u",
            BackoffConfig::default(),
            &sources,
        )
        .unwrap();
        assert_eq!(ok.container.env, vec![("MODE".to_string(), EnvValue::Resolved("$(X)".into()))]);
        assert_eq!(ok.container.config_error, None);
        let missing = EffectiveSpec::from_manifest(&manifest("cfg"), "u", BackoffConfig::default()).unwrap();
        assert_eq!(missing.container.config_error.as_deref(), Some("configmap \"cfg\" not found"));
    }

    /// As on a node: the pods exist and count as active, but stay `Pending` with the
    /// kubelet's waiting reason, no process is asked for, a `Failed` warning says why, and
    /// the Job's `activeDeadlineSeconds` still ends the Job.
    #[test]
    fn pods_wait_in_create_container_config_error_until_the_deadline() {
        let mut s = spec(2, Some(2), 6, false);
        s.container.config_error = Some("configmap \"cfg\" not found".into());
        s.active_deadline = Some(secs(5));
        let mut c = Controller::new(s);
        let plan = c.sync(secs(0));
        assert!(!plan.actions.iter().any(|a| matches!(a, Action::CreatePod(_))), "{plan:?}");
        assert_eq!(plan.wake_at, Some(secs(5)));
        assert_eq!(c.pods().len(), 2);
        for p in c.pods() {
            assert_eq!(
                (p.phase, p.container, p.reason.as_deref(), p.message.as_deref()),
                (
                    PodPhase::Pending,
                    ContainerState::ConfigError,
                    Some(CREATE_CONTAINER_CONFIG_ERROR),
                    Some("configmap \"cfg\" not found")
                )
            );
        }
        assert_eq!((c.status().active, c.status().ready), (2, 0));
        assert!(!c.has_live_processes());
        let warnings: Vec<_> = c
            .events()
            .since(0)
            .filter(|e| e.type_ == EventType::Warning)
            .map(|e| (e.reason.clone(), e.message.clone()))
            .collect();
        let failed = ("Failed".to_string(), "Error: configmap \"cfg\" not found".to_string());
        assert_eq!(warnings, vec![failed.clone(), failed]);
        // Nothing changes before the deadline: no new pod, no action.
        assert_eq!(c.sync(secs(3)).actions, vec![]);
        assert_eq!(c.pods().len(), 2);
        let plan = c.sync(secs(5));
        assert_eq!(plan.actions, vec![], "no process to kill");
        let status = c.status();
        assert!(status.has_true(ConditionType::Failed));
        assert_eq!(status.condition(ConditionType::Failed).unwrap().reason, "DeadlineExceeded");
        assert_eq!((status.active, status.failed), (0, 2));
        assert!(c.pods().iter().all(|p| p.phase == PodPhase::Failed));
    }

    /// Deleting such a Job ends its pods at once: there is no process to wait for.
    #[test]
    fn deleting_the_job_ends_waiting_pods_at_once() {
        let mut s = spec(1, Some(1), 6, false);
        s.container.config_error = Some("secret \"s\" not found".into());
        let mut c = Controller::new(s);
        c.sync(secs(0));
        let plan = c.delete(secs(1));
        assert_eq!(plan.actions, vec![]);
        assert!(!c.has_live_processes());
        assert_eq!(c.pods()[0].phase, PodPhase::Failed);
    }
}
