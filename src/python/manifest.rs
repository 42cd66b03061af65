//! A manifest (a dict, as YAML loads it) read against the schema derived from the Rust types
//! (`spec::schema`) and Kubernetes' own (`spec::k8s_fields`): what kjob does not honour is
//! dropped and listed; fields Kubernetes does not have and values of the wrong type (YAML's
//! look-alikes too: `"false"` for `false`, `true` for `1`) are refused with their field path.
//! Python only loads the YAML and words the warning.

use super::errors::BindingError;
use crate::spec::schema::{self, job_shape, FieldKind, K8sValue, Object, Shape};
use crate::spec::{self, go_quote, FieldError, FieldErrorKind, FieldErrors};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

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
///
/// Decoding is as strict as `kubectl apply`'s (server-side field validation `Strict`): a field
/// Kubernetes' type does not have is an error (`strict decoding error: unknown field
/// "spec.backofLimit"`, with a "did you mean" when one field is close), and so is a value of
/// the wrong type (`spec.parallelism: Invalid value: "string": spec.parallelism in body must be
/// of type integer: "string"`). Both raise one `ValueError` that also lists the validation
/// errors of the rest of the document. `manifest` is the caller's private copy: its labels are
/// edited in place.
#[pyfunction]
pub fn prune_manifest<'py>(manifest: &Bound<'py, PyDict>) -> PyResult<(Bound<'py, PyAny>, Vec<String>)> {
    without_server_fields(manifest)?;
    let mut walk = Walk::default();
    let kept = walk.prune(manifest.as_any(), job_shape(), Some(&JOB_K8S_VALUE), "")?;
    let kept = kept.unwrap_or_else(|| PyDict::new(manifest.py()).into_any());
    if walk.unknown.is_empty() && walk.errors.is_empty() {
        return Ok((kept, walk.ignored));
    }
    let rest = validation_errors(&kept, &walk.errors)?;
    Err(BindingError::Shape(walk.report(rest)).into())
}

/// The root of a Job's upstream schema.
static JOB_K8S_VALUE: K8sValue = K8sValue::Object("batch.v1.Job");

/// What a walk of a manifest found.
#[derive(Default)]
struct Walk {
    /// Fields of Kubernetes' types that kjob does not honour (a warning).
    ignored: Vec<String>,
    /// Fields no Kubernetes type has: `(path, a close field name)`.
    unknown: Vec<(String, Option<&'static str>)>,
    /// Values of the wrong type.
    errors: FieldErrors,
}

impl Walk {
    /// `value` at `path` without what kjob does not honour, or `None` when it is of the wrong
    /// type (reported, and left out so that the rest of the document can be validated).
    /// `ours` is kjob's shape of the place, `theirs` Kubernetes' (`None` in kjob's extensions).
    fn prune<'py>(
        &mut self,
        value: &Bound<'py, PyAny>,
        ours: &Shape,
        theirs: Option<&'static K8sValue>,
        path: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match theirs {
            Some(theirs) if !matches!(ours, Shape::Object(_) | Shape::List(_)) => {
                // Plain values (strings, lists and maps of strings) are Kubernetes' to check.
                let before = self.errors.0.len();
                self.check(value, theirs, path)?;
                return Ok((self.errors.0.len() == before).then(|| value.clone()));
            }
            Some(theirs) => {
                if !self.type_ok(value, theirs, path)? {
                    return Ok(None);
                }
            }
            None => {
                if !self.extension_type_ok(value, ours, path)? {
                    return Ok(None);
                }
            }
        }
        match ours {
            Shape::Object(object) => self.prune_object(value, object, path),
            Shape::List(item) => {
                let Ok(items) = value.cast::<PyList>() else { return Ok(Some(value.clone())) };
                let kept = PyList::empty(value.py());
                for (i, each) in items.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    let before = self.ignored.len();
                    let Some(pruned) = self.prune(&each, item, list_item(theirs), &item_path)? else {
                        continue;
                    };
                    if !emptied(&pruned, item, &item_path, &self.ignored[before..])? {
                        kept.append(pruned)?;
                    }
                }
                Ok(Some(kept.into_any()))
            }
            Shape::Any | Shape::Boolean | Shape::Integer => Ok(Some(value.clone())),
        }
    }

    fn prune_object<'py>(
        &mut self,
        value: &Bound<'py, PyAny>,
        object: &Object,
        path: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Ok(fields) = value.cast::<PyDict>() else { return Ok(Some(value.clone())) };
        let kept = PyDict::new(value.py());
        for (key, item) in fields.iter() {
            let child = child_path(path, &key)?;
            // Only a string names a field.
            let Some(name) = field_name(&key) else {
                self.unknown.push((child, None));
                continue;
            };
            match object.field(&name) {
                FieldKind::Honoured(shape) => {
                    let theirs = object.k8s_type().and_then(|t| schema::k8s_field(t, &name));
                    if let Some(pruned) = self.prune(&item, shape, theirs, &child)? {
                        kept.set_item(&key, pruned)?;
                    }
                }
                FieldKind::ServerSet => {}
                FieldKind::NotHonoured(theirs) => {
                    self.check(&item, theirs, &child)?;
                    self.ignored.push(child);
                }
                FieldKind::Unknown => {
                    let close = schema::did_you_mean(&name, &schema::known_field_names(object));
                    self.unknown.push((child, close));
                }
            }
        }
        Ok(Some(kept.into_any()))
    }

    /// Checks a value against Kubernetes' schema alone (what kjob does not read, and plain
    /// values): unknown fields and wrong types inside it are errors all the same, as on a
    /// cluster.
    fn check(&mut self, value: &Bound<'_, PyAny>, theirs: &'static K8sValue, path: &str) -> PyResult<()> {
        if !self.type_ok(value, theirs, path)? {
            return Ok(());
        }
        match theirs {
            K8sValue::Object(type_name) => {
                let Ok(fields) = value.cast::<PyDict>() else { return Ok(()) };
                for (key, item) in fields.iter() {
                    let child = child_path(path, &key)?;
                    let name = field_name(&key);
                    match name.as_deref().and_then(|n| schema::k8s_field(type_name, n)) {
                        Some(field) => self.check(&item, field, &child)?,
                        None => {
                            let known = schema::k8s_fields(type_name).unwrap_or_default();
                            let names: Vec<&'static str> = known.iter().map(|(n, _)| *n).collect();
                            let close = name.as_deref().and_then(|n| schema::did_you_mean(n, &names));
                            self.unknown.push((child, close));
                        }
                    }
                }
            }
            K8sValue::List(item) => {
                if let Ok(items) = value.cast::<PyList>() {
                    for (i, each) in items.iter().enumerate() {
                        self.check(&each, item, &format!("{path}[{i}]"))?;
                    }
                }
            }
            K8sValue::Map(item) => {
                if let Ok(entries) = value.cast::<PyDict>() {
                    for (key, each) in entries.iter() {
                        self.check(&each, item, &child_path(path, &key)?)?;
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether `value` has the JSON type Kubernetes' schema wants (`null` always passes: it
    /// unsets the field); if not, the error in the API server's words is recorded.
    fn type_ok(&mut self, value: &Bound<'_, PyAny>, theirs: &K8sValue, path: &str) -> PyResult<bool> {
        let expected = match theirs {
            K8sValue::String => "string",
            K8sValue::Integer => "integer",
            K8sValue::Number => "number",
            K8sValue::Boolean => "boolean",
            K8sValue::IntOrString => "integer,string",
            K8sValue::Quantity => "number,string",
            K8sValue::Object(_) | K8sValue::Map(_) => "object",
            K8sValue::List(_) => "array",
            K8sValue::Any => return Ok(true),
        };
        self.expect(value, expected, path)
    }

    /// kjob's own fields (no upstream schema): YAML's look-alikes are refused all the same, a
    /// `"false"` for a bool, a `true` for an integer.
    fn extension_type_ok(&mut self, value: &Bound<'_, PyAny>, ours: &Shape, path: &str) -> PyResult<bool> {
        let expected = match ours {
            Shape::Boolean => "boolean",
            Shape::Integer => "integer",
            Shape::Object(_) => "object",
            Shape::List(_) => "array",
            Shape::Any => return Ok(true),
        };
        self.expect(value, expected, path)
    }

    /// `expected`: JSON types separated by commas; an integer is a number too.
    fn expect(&mut self, value: &Bound<'_, PyAny>, expected: &str, path: &str) -> PyResult<bool> {
        let actual = json_type(value)?;
        let fits = actual == "null"
            || expected.split(',').any(|e| e == actual || (e == "number" && actual == "integer"));
        if !fits {
            self.errors.push(wrong_type(path, expected, actual));
        }
        Ok(fits)
    }

    /// One message: the unknown fields in kubectl's words, a "did you mean" for each close
    /// one, then every field error (wrong types, then `rest`, the validation of the rest).
    fn report(&self, rest: Vec<String>) -> String {
        let mut lines = Vec::new();
        if !self.unknown.is_empty() {
            let fields: Vec<String> =
                self.unknown.iter().map(|(path, _)| format!("unknown field {}", go_quote(path))).collect();
            lines.push(format!("strict decoding error: {}", fields.join(", ")));
            for (path, close) in &self.unknown {
                if let Some(close) = close {
                    lines.push(format!("{path}: did you mean {}?", go_quote(close)));
                }
            }
        }
        lines.extend(self.errors.messages());
        lines.extend(rest);
        lines.join("\n")
    }
}

fn list_item(theirs: Option<&'static K8sValue>) -> Option<&'static K8sValue> {
    match theirs {
        Some(K8sValue::List(item)) => Some(*item),
        _ => None,
    }
}

fn field_name(key: &Bound<'_, PyAny>) -> Option<String> {
    key.cast::<PyString>().ok()?.to_cow().ok().map(|name| name.into_owned())
}

/// The JSON type of a value as YAML or Python gave it (a YAML timestamp is a string on the
/// wire).
fn json_type(value: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    Ok(if value.is_none() {
        "null"
    } else if value.is_instance_of::<PyBool>() {
        "boolean"
    } else if value.is_instance_of::<PyInt>() {
        "integer"
    } else if value.is_instance_of::<PyFloat>() {
        "number"
    } else if value.is_instance_of::<PyString>() {
        "string"
    } else if value.is_instance_of::<PyList>() || value.is_instance_of::<PyTuple>() {
        "array"
    } else if value.is_instance_of::<PyDict>() {
        "object"
    } else if is_date(value)? {
        "string"
    } else {
        "unknown"
    })
}

fn is_date(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    let date = value.py().import("datetime")?.getattr("date")?;
    value.is_instance(&date)
}

/// The API server's type error (kube-openapi's `InvalidType`, as apiextensions words it:
/// `staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/validation`).
fn wrong_type(path: &str, expected: &str, actual: &str) -> FieldError {
    let actual = go_quote(actual);
    FieldError::invalid(path, &actual, format!("{path} in body must be of type {expected}: {actual}"))
}

/// The validation errors of what is left of a manifest once the wrong-typed values are out
/// (defaulted first, as the API server does), but none on a path already reported.
fn validation_errors(kept: &Bound<'_, PyAny>, reported: &FieldErrors) -> PyResult<Vec<String>> {
    let mut de = pythonize::Depythonizer::from_object(kept);
    let mut job: spec::Job = match serde_path_to_error::deserialize(&mut de) {
        Ok(job) => job,
        Err(e) => {
            let path = e.path().to_string();
            return Ok(vec![format!("{path}: {}", e.into_inner())]);
        }
    };
    // The cluster validates the name generateName becomes (five more characters).
    if job.metadata.name.as_deref().unwrap_or("").is_empty() {
        if let Some(base) = job.metadata.generate_name.clone().filter(|b| !b.is_empty()) {
            job.metadata.name = Some(format!("{base}xxxxx"));
        }
    }
    let Err(errors) = spec::validate_job(&spec::with_api_defaults(&job)) else { return Ok(Vec::new()) };
    Ok(errors
        .0
        .iter()
        .filter(|e| !reported.0.iter().any(|r| r.path == e.path))
        .map(ToString::to_string)
        .collect())
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

fn json_dumps(value: &Bound<'_, PyAny>) -> PyResult<String> {
    value.py().import("json")?.call_method1("dumps", (value,))?.extract()
}
