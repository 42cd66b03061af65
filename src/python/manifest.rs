//! A manifest (a dict, as YAML loads it) read against the schema derived from the Rust types
//! (`spec::schema`): what kjob does not honour is dropped and listed, and values YAML makes
//! look alike (`"false"` for `false`, `true` for `1`) are refused with their field path.
//! Python only loads the YAML and words the warning.

use super::errors::BindingError;
use crate::spec::schema::{job_shape, FieldKind, Shape};
use crate::spec::{FieldError, FieldErrors};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList, PyString};

/// `(the manifest without the fields kjob does not honour, their paths)`; fields the API server
/// writes (`status`, `metadata.uid`, ...) are dropped without being listed. Values of the wrong
/// shape are kept: decoding and validation report them with their path. Raises `ValueError`
/// for a bool field that holds no bool, or an integer field that holds a bool.
#[pyfunction]
pub fn prune_manifest<'py>(manifest: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    let mut ignored = Vec::new();
    let kept = prune(manifest, job_shape(), "", &mut ignored)?;
    Ok((kept, ignored))
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
        Shape::FirstOnly(item) => {
            if let Ok(items) = value.cast::<PyList>() {
                let kept = PyList::empty(value.py());
                if let Ok(first) = items.get_item(0) {
                    kept.append(prune(&first, item, &format!("{path}[0]"), ignored)?)?;
                }
                ignored.extend((1..items.len()).map(|i| format!("{path}[{i}]")));
                return Ok(kept.into_any());
            }
        }
        Shape::List(item) => {
            if let Ok(items) = value.cast::<PyList>() {
                let kept = PyList::empty(value.py());
                for (i, each) in items.iter().enumerate() {
                    kept.append(prune(&each, item, &format!("{path}[{i}]"), ignored)?)?;
                }
                return Ok(kept.into_any());
            }
        }
    }
    Ok(value.clone())
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

fn json_text(value: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = value.py();
    match py.import("json")?.call_method1("dumps", (value,)) {
        Ok(text) => text.extract(),
        Err(e) if e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyValueError>(py) => {
            Ok(value.repr()?.to_string_lossy().into_owned())
        }
        Err(e) => Err(e),
    }
}
