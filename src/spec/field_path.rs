//! The downward API's field paths for `env[].valueFrom.fieldRef` (the pod fields a container
//! may read from its own metadata and status).

/// Plain paths allowed in an env var's `fieldRef`, as upstream's
/// `validEnvDownwardAPIFieldPathExpressions`; labels and annotations need a `['key']`.
pub const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// `metadata.labels['key']` → (`metadata.labels`, Some(`key`)); a plain path has no subscript.
/// Like upstream's `SplitMaybeSubscriptedPath`, only `['…']` is a subscript.
pub fn split_subscript(path: &str) -> (&str, Option<&str>) {
    if let Some(open) = path.find("['") {
        if let Some(inner) = path[open + 2..].strip_suffix("']") {
            return (&path[..open], Some(inner));
        }
    }
    (path, None)
}

/// What is wrong with an env var's `fieldPath`, as the API server sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum FieldPathProblem {
    /// Not a pod field at all: `Invalid value: …: error converting fieldPath: …`.
    Conversion(String),
    /// A pod field an env var may not read: `Unsupported value` listing [`ENV_FIELD_PATHS`].
    NotSupported(String),
}

/// The paths that take a `['key']` subscript (bare, they are volume-only).
const SUBSCRIPTED_PATHS: &[&str] = &["metadata.labels", "metadata.annotations"];

pub fn check_env_field_path(path: &str) -> Option<FieldPathProblem> {
    let (base, subscript) = split_subscript(path);
    let subscripted = SUBSCRIPTED_PATHS.contains(&base);
    match subscript {
        Some(key) if subscripted && !key.is_empty() => None,
        Some(_) => Some(FieldPathProblem::Conversion(format!(
            "error converting fieldPath: field label does not support subscript: {path}"
        ))),
        None if subscripted => Some(FieldPathProblem::NotSupported(base.to_string())),
        None if ENV_FIELD_PATHS.contains(&base) => None,
        None => Some(FieldPathProblem::Conversion(format!(
            "error converting fieldPath: field label not supported: {path}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscripts_are_only_single_quoted_brackets() {
        assert_eq!(
            split_subscript("metadata.annotations['batch.kubernetes.io/job-completion-index']"),
            ("metadata.annotations", Some("batch.kubernetes.io/job-completion-index"))
        );
        assert_eq!(split_subscript("metadata.labels[\"a\"]"), ("metadata.labels[\"a\"]", None));
        assert_eq!(split_subscript("metadata.name"), ("metadata.name", None));
    }

    #[test]
    fn unsupported_paths_are_reported_as_upstream_does() {
        assert_eq!(check_env_field_path("metadata.name"), None);
        assert_eq!(check_env_field_path("metadata.labels['app']"), None);
        assert_eq!(
            check_env_field_path("metadata.labels"),
            Some(FieldPathProblem::NotSupported("metadata.labels".into()))
        );
        assert_eq!(
            check_env_field_path("spec.containers"),
            Some(FieldPathProblem::Conversion(
                "error converting fieldPath: field label not supported: spec.containers".into()
            ))
        );
        assert_eq!(
            check_env_field_path("metadata.name['x']"),
            Some(FieldPathProblem::Conversion(
                "error converting fieldPath: field label does not support subscript: metadata.name['x']"
                    .into()
            ))
        );
    }
}
