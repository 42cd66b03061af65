//! A manifest (a dict, as YAML loads it) read against the schema derived from the Rust types
//! (`spec::schema`): what kjob does not honour is dropped and listed, and values YAML makes
//! look alike (`"false"` for `false`, `true` for `1`) are refused with their field path.
//! Python only loads the YAML and words the warning.

use super::errors::BindingError;
use crate::spec::schema::{self, job_shape, FieldKind, Object, Shape};
use crate::spec::{FieldError, FieldErrorKind, FieldErrors};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

/// Refuses a document that is not a `batch/v1` Job (a missing `apiVersion` or `kind` is
/// taken for one); `where_` (a file name) prefixes the message.
#[pyfunction]
#[pyo3(signature = (manifest, where_=None))]
pub fn check_job_kind(manifest: &Bound<'_, PyAny>, where_: Option<&str>) -> PyResult<()> {
    let prefix = where_.map(|w| format!("{w}: ")).unwrap_or_default();
    for (field, supported, why) in [
        ("apiVersion", schema::API_VERSION, " (kjob runs Jobs of the batch/v1 API)"),
        ("kind", schema::KIND, ""),
    ] {
        let value = manifest.call_method1("get", (field, supported))?;
        if value.ne(supported)? {
            let error = FieldError {
                path: format!("{prefix}{field}"),
                kind: FieldErrorKind::Unsupported,
                value: Some(json_dumps(&value)?),
                detail: format!("supported values: \"{supported}\"{why}"),
            };
            return Err(BindingError::Invalid(FieldErrors(vec![error])).into());
        }
    }
    Ok(())
}

/// `(the manifest without the fields kjob does not honour, their paths)`; what the API server
/// writes (`status`, `metadata.uid`, a generated selector, ...) is dropped without being listed.
/// Values of the wrong shape are kept: decoding and validation report them with their path.
/// Raises `ValueError` for a bool field that holds no bool, or an integer field that holds a
/// bool. `manifest` is the caller's private copy: its labels are edited in place.
#[pyfunction]
pub fn prune_manifest<'py>(manifest: &Bound<'py, PyDict>) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    without_server_fields(manifest)?;
    let mut ignored = Vec::new();
    let kept = prune(manifest.as_any(), job_shape(), "", &mut ignored)?;
    Ok((kept, ignored))
}

/// Drops what the API server generated for a Job that a walk of the schema cannot tell from
/// the user's (see `spec::schema`): the selector and the uid labels.
fn without_server_fields(manifest: &Bound<'_, PyDict>) -> PyResult<()> {
    let py = manifest.py();
    let Some(spec) = manifest.get_item("spec")?.and_then(|s| s.cast_into::<PyDict>().ok()) else {
        return Ok(());
    };
    // Only the bools themselves count (a YAML "true" is no manual selector).
    let manual = spec
        .get_item("manualSelector")?
        .and_then(|m| [true, false].into_iter().find(|flag| m.is(PyBool::new(py, *flag))));
    if schema::selector_is_server_set(manual) {
        if spec.contains("selector")? {
            spec.del_item("selector")?;
        }
        if manual == Some(false) {
            spec.del_item("manualSelector")?;
        }
    }
    let template_meta = match spec.get_item("template")?.map(|t| t.cast_into::<PyDict>()) {
        Some(Ok(template)) => template.get_item("metadata")?,
        _ => None,
    };
    for meta in [manifest.get_item("metadata")?, template_meta].into_iter().flatten() {
        let labels = match meta.cast::<PyDict>() {
            Ok(meta) => meta.get_item("labels")?,
            Err(_) => None,
        };
        if let Some(Ok(labels)) = labels.map(|l| l.cast_into::<PyDict>()) {
            for key in schema::SERVER_SET_LABELS {
                if labels.contains(*key)? {
                    labels.del_item(*key)?;
                }
            }
        }
    }
    Ok(())
}

fn prune<'py>(
    value: &Bound<'py, PyAny>,
    shape: &Shape,
    path: &str,
    ignored: &mut Vec<String>,
) -> PyResult<Bound<'py, PyAny>> {
    match shape {
        Shape::Any => {}
        Shape::Boolean => {
            if !value.is_none() && !value.is_instance_of::<PyBool>() {
                return Err(invalid(path, value, "must be a boolean (true or false)"));
            }
        }
        Shape::Integer => {
            if value.is_instance_of::<PyBool>() {
                return Err(invalid(path, value, "must be an integer"));
            }
        }
        Shape::Object(object) => {
            if let Ok(fields) = value.cast::<PyDict>() {
                let kept = PyDict::new(value.py());
                for (key, item) in fields.iter() {
                    let child = child_path(path, &key)?;
                    // Only a string names a field.
                    let kind = match key.cast::<PyString>().map(|k| k.to_cow()) {
                        Ok(Ok(name)) => object.field(&name),
                        _ => FieldKind::NotHonoured,
                    };
                    match kind {
                        FieldKind::Honoured(shape) => {
                            kept.set_item(&key, prune(&item, shape, &child, ignored)?)?
                        }
                        FieldKind::ServerSet => {}
                        FieldKind::NotHonoured => ignored.push(child),
                    }
                }
                return Ok(kept.into_any());
            }
        }
        Shape::List(item) => {
            if let Ok(items) = value.cast::<PyList>() {
                let kept = PyList::empty(value.py());
                for (i, each) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    let before = ignored.len();
                    let pruned = prune(&each, item, &item_path, ignored)?;
                    if !emptied(&pruned, item, &item_path, &ignored[before..])? {
                        kept.append(pruned)?;
                    }
                }
                return Ok(kept.into_any());
            }
        }
    }
    Ok(value.clone())
}

/// Whether `pruned` (at `path`) is to go from its list because the pruning (which ignored
/// `ignored` below it) emptied a field that `schema::DROPPED_WHEN_EMPTIED` names.
fn emptied(pruned: &Bound<'_, PyAny>, shape: &Shape, path: &str, ignored: &[String]) -> PyResult<bool> {
    let (Shape::Object(Object { type_name, .. }), Ok(fields)) = (shape, pruned.cast::<PyDict>()) else {
        return Ok(false);
    };
    for (_, field) in schema::DROPPED_WHEN_EMPTIED.iter().filter(|(t, _)| t == type_name) {
        let below = format!("{path}.{field}.");
        let now_empty = match fields.get_item(*field)? {
            Some(value) => value.cast::<PyDict>().is_ok_and(|d| d.is_empty()),
            None => false,
        };
        if now_empty && ignored.iter().any(|p| p.starts_with(&below)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `path.key` (the key as `str()` writes it: YAML keys need not be strings).
fn child_path(path: &str, key: &Bound<'_, PyAny>) -> PyResult<String> {
    let key = key.str()?;
    let key = key.to_string_lossy();
    Ok(if path.is_empty() { key.into_owned() } else { format!("{path}.{key}") })
}

/// `Invalid value` with the value as JSON writes it (as in a manifest), else as `repr()`.
fn invalid(path: &str, value: &Bound<'_, PyAny>, detail: &str) -> PyErr {
    let text = match json_text(value) {
        Ok(text) => text,
        Err(e) => return e,
    };
    BindingError::Invalid(FieldErrors(vec![FieldError::invalid(path, text, detail)])).into()
}

fn json_dumps(value: &Bound<'_, PyAny>) -> PyResult<String> {
    value.py().import("json")?.call_method1("dumps", (value,))?.extract()
}

fn json_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = value.py();
    match json_dumps(value) {
        Ok(text) => Ok(text),
        Err(e) if e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyValueError>(py) => {
            Ok(value.repr()?.to_string_lossy().into_owned())
        }
        Err(e) => Err(e),
    }
}
