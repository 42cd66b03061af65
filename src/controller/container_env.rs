//! A container's environment and argv as the kubelet builds them (reference §1.3): the
//! template's env in order, `JOB_COMPLETION_INDEX` for Indexed pods unless the template sets
//! it, and `$(VAR)` / `$$` expansion (`third_party/forked/golang/expansion`).

use super::defaults::ContainerSpec;

pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// The container's own variables. Each value may refer to variables defined before it.
pub fn container_env(container: &ContainerSpec, index: Option<u32>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(container.env.len() + 1);
    for (name, value) in &container.env {
        let expanded = expand(value, &env);
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

    #[test]
    fn completion_index_is_added_unless_set() {
        let mut c = ContainerSpec {
            name: "c".into(),
            command: vec!["echo".into(), "$(JOB_COMPLETION_INDEX)".into()],
            args: vec!["$(GREETING)".into()],
            env: vec![("GREETING".into(), "hi".into()), ("BOTH".into(), "$(GREETING)!".into())],
            working_dir: None,
        };
        let e = container_env(&c, Some(3));
        assert_eq!(e, env(&[("GREETING", "hi"), ("BOTH", "hi!"), ("JOB_COMPLETION_INDEX", "3")]));
        assert_eq!(container_argv(&c, &e), vec!["echo", "3", "hi"]);
        c.env.push(("JOB_COMPLETION_INDEX".into(), "custom".into()));
        let e = container_env(&c, Some(3));
        assert_eq!(e.last().unwrap(), &("JOB_COMPLETION_INDEX".to_string(), "custom".to_string()));
        assert_eq!(container_env(&c, None).len(), 3);
    }
}
