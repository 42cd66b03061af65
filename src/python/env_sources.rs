//! ConfigMaps and Secrets from Python (dicts, as YAML loads them) into the controller's
//! [`EnvSources`]: decoded and validated once, in Rust, for `kjob.manifest` (which reports
//! a bad document with its file) and for `NativeJob` (which resolves its container's env).

use super::errors::BindingError;
use crate::controller::env_sources::EnvSources;
use crate::spec::{self, EnvSourceDocument};
use pyo3::prelude::*;
use pyo3::types::PyList;

/// The sources of `documents` (a list of ConfigMap and Secret dicts; `None` is none).
pub(super) fn sources_from_py(documents: Option<&Bound<'_, PyAny>>) -> Result<EnvSources, BindingError> {
    let mut sources = EnvSources::default();
    let Some(documents) = documents.filter(|d| !d.is_none()) else {
        return Ok(sources);
    };
    let list = documents
        .cast::<PyList>()
        .map_err(|_| BindingError::Shape("env sources: expected a list of ConfigMaps and Secrets".into()))?;
    let mut parsed = Vec::with_capacity(list.len());
    for item in list.iter() {
        let mut de = pythonize::Depythonizer::from_object(&item);
        let doc: EnvSourceDocument = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            BindingError::Shape(format!("{}: {path}: {}", describe(&item), e.into_inner()))
        })?;
        parsed.push(doc);
    }
    sources.add_documents(&parsed)?;
    Ok(sources)
}

/// `Kind "name"` of a document whose shape is wrong, as far as it can be read.
fn describe(item: &Bound<'_, PyAny>) -> String {
    let get = |object: &Bound<'_, PyAny>, key: &str| -> Option<String> {
        object.get_item(key).ok().and_then(|v| v.extract::<String>().ok())
    };
    let kind = get(item, "kind").unwrap_or_else(|| "object".into());
    match item.get_item("metadata").ok().and_then(|m| get(&m, "name")) {
        Some(name) => format!("{kind} {name:?}"),
        None => kind,
    }
}

/// Checks ConfigMaps and Secrets as the API server would store them (keys, names, a
/// Secret's base64 `data`); raises `ValueError` naming the document and field.
#[pyfunction]
pub fn check_env_sources(documents: &Bound<'_, PyAny>) -> PyResult<()> {
    sources_from_py(Some(documents))?;
    Ok(())
}

/// Every reference of the Job's containers (init containers first, as the kubelet meets them)
/// that `sources` cannot satisfy, in the kubelet's words (a pod would wait in
/// `CreateContainerConfigError` for the first of them).
pub(super) fn missing_references(job: &spec::Job, sources: &EnvSources) -> Vec<String> {
    let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
    let pod = &job.spec.template.spec;
    pod.init_containers.iter().chain(&pod.containers).flat_map(|c| sources.missing(c, namespace)).collect()
}
