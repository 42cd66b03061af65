//! A container's environment and argv as the kubelet builds them (docs/semantics.md §1.3): the
//! template's env in order, `JOB_COMPLETION_INDEX` for Indexed pods unless the template sets
//! it, and `$(VAR)` / `$$` expansion (`third_party/forked/golang/expansion`).

use super::defaults::{ContainerSpec, EnvValue};
use crate::spec::field_path::split_subscript;

pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// What the downward API can read of a pod (`env[].valueFrom.fieldRef`). The node's fields
/// come from the runtime: the controller knows nothing about the machine.
#[derive(Clone, Copy, Debug)]
pub struct PodFields<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
    pub labels: &'a [(String, String)],
    pub annotations: &'a [(String, String)],
    pub node_name: &'a str,
    pub host_ip: &'a str,
}

impl PodFields<'_> {
    /// The value of a validated field path; a missing label or annotation reads as empty, as
    /// in Kubernetes.
    pub fn get(&self, path: &str) -> String {
        let lookup = |pairs: &[(String, String)], key: &str| {
            pairs.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap_or_default()
        };
        match split_subscript(path) {
            ("metadata.labels", Some(key)) => lookup(self.labels, key),
            ("metadata.annotations", Some(key)) => lookup(self.annotations, key),
            ("metadata.name", None) => self.name.to_string(),
            ("metadata.namespace", None) => self.namespace.to_string(),
            ("metadata.uid", None) => self.uid.to_string(),
            ("spec.nodeName", None) => self.node_name.to_string(),
            ("spec.serviceAccountName", None) => "default".to_string(),
            ("status.hostIP" | "status.hostIPs" | "status.podIP" | "status.podIPs", None) => {
                self.host_ip.to_string()
            }
            _ => String::new(),
        }
    }
}

/// The container's own variables. Each literal value may refer to variables defined before
/// it; values read from the pod's fields are taken as they are.
pub fn container_env(
    container: &ContainerSpec,
    index: Option<u32>,
    pod: &PodFields<'_>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(container.env.len() + 1);
    for (name, value) in &container.env {
        let expanded = match value {
            EnvValue::Literal(text) => expand(text, &env),
            EnvValue::FieldRef(path) => pod.get(path),
            EnvValue::Resolved(value) => value.clone(),
        };
        match env.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = expanded,
            None => env.push((name.clone(), expanded)),
        }
    }
    if let Some(ix) = index {
        if !env.iter().any(|(n, _)| n == JOB_COMPLETION_INDEX) {
            env.push((JOB_COMPLETION_INDEX.to_string(), ix.to_string()));
        }
    }
    env
}

/// `command` followed by `args`, each expanded against the container's variables.
pub fn container_argv(container: &ContainerSpec, env: &[(String, String)]) -> Vec<String> {
    container.command.iter().chain(&container.args).map(|s| expand(s, env)).collect()
}

/// Expands `$(NAME)` from `env`; `$$` is a literal `$`; unknown or unterminated references
/// stay as written.
pub fn expand(input: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            match tail.find(')') {
                Some(end) => {
                    let name = &tail[..end];
                    match env.iter().rev().find(|(n, _)| n == name) {
                        Some((_, value)) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &tail[end + 1..];
                }
                None => {
                    out.push('$');
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn expansion_follows_the_kubernetes_rules() {
        let e = env(&[("A", "1"), ("B", "two")]);
        let cases = [
            ("$(A)", "1"),
            ("x$(B)y", "xtwoy"),
            ("$(MISSING)", "$(MISSING)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$1"),
            ("$$", "$"),
            ("$", "$"),
            ("$(A", "$(A"),
            ("cost $5", "cost $5"),
            ("$(A)$(B)", "1two"),
            ("é$(A)é", "é1é"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &e), want, "{input}");
        }
    }

    fn literal(name: &str, value: &str) -> (String, EnvValue) {
        (name.into(), EnvValue::Literal(value.into()))
    }

    fn field(name: &str, path: &str) -> (String, EnvValue) {
        (name.into(), EnvValue::FieldRef(path.into()))
    }

    const NO_PAIRS: &[(String, String)] = &[];
    const POD: PodFields<'static> = PodFields {
        name: "pi-3-x7k2q",
        namespace: "default",
        uid: "u-1",
        labels: NO_PAIRS,
        annotations: NO_PAIRS,
        node_name: "laptop",
        host_ip: "127.0.0.1",
    };

    #[test]
    fn completion_index_is_added_unless_set() {
        let mut c = ContainerSpec {
            name: "c".into(),
            command: vec!["echo".into(), "$(JOB_COMPLETION_INDEX)".into()],
            args: vec!["$(GREETING)".into()],
            env: vec![literal("GREETING", "hi"), literal("BOTH", "$(GREETING)!")],
            working_dir: None,
            config_error: None,
        };
        let e = container_env(&c, Some(3), &POD);
        assert_eq!(e, env(&[("GREETING", "hi"), ("BOTH", "hi!"), ("JOB_COMPLETION_INDEX", "3")]));
        assert_eq!(container_argv(&c, &e), vec!["echo", "3", "hi"]);
        c.env.push(literal("JOB_COMPLETION_INDEX", "custom"));
        let e = container_env(&c, Some(3), &POD);
        assert_eq!(e.last().unwrap(), &("JOB_COMPLETION_INDEX".to_string(), "custom".to_string()));
        assert_eq!(container_env(&c, None, &POD).len(), 3);
    }

    /// The docs' Indexed Job reads its index with `fieldRef` on the completion-index
    /// annotation; field values are not `$(VAR)`-expanded.
    #[test]
    fn field_refs_read_the_pods_metadata() {
        let annotations = vec![("batch.kubernetes.io/job-completion-index".to_string(), "3".to_string())];
        let labels = vec![("app".to_string(), "$(X)".to_string())];
        let pod = PodFields { annotations: &annotations, labels: &labels, ..POD };
        let c = ContainerSpec {
            name: "c".into(),
            command: vec!["true".into()],
            args: vec![],
            env: vec![
                field("IX", "metadata.annotations['batch.kubernetes.io/job-completion-index']"),
                field("POD", "metadata.name"),
                field("APP", "metadata.labels['app']"),
                field("MISSING", "metadata.labels['nope']"),
                field("NODE", "spec.nodeName"),
                field("IP", "status.podIP"),
                literal("BOTH", "$(POD)/$(IX)"),
            ],
            working_dir: None,
            config_error: None,
        };
        let e = container_env(&c, None, &pod);
        assert_eq!(
            e,
            env(&[
                ("IX", "3"),
                ("POD", "pi-3-x7k2q"),
                ("APP", "$(X)"),
                ("MISSING", ""),
                ("NODE", "laptop"),
                ("IP", "127.0.0.1"),
                ("BOTH", "pi-3-x7k2q/3"),
            ])
        );
    }
}
