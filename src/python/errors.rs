//! The one place where kjob's Rust errors become Python exceptions. `tests/test_errors.py`
//! checks every variant's class and message.

use crate::runtime::RuntimeError;
use crate::spec::FieldErrors;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use std::path::Path;

// Created under the package's name: shown as `kjob.KjobError` in tracebacks, where users
// import it from.
create_exception!(kjob, KjobError, PyException, "Base class of kjob's own errors.");

/// Errors that cross into Python.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    /// An invalid spec: every field error, one per line, as the API server words them.
    #[error("{0}")]
    Invalid(#[from] FieldErrors),
    /// A manifest whose shape does not fit (a string where a number belongs, ...).
    #[error("{0}")]
    Shape(String),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

impl From<BindingError> for PyErr {
    fn from(e: BindingError) -> Self {
        let message = e.to_string();
        match e {
            BindingError::Invalid(_) | BindingError::Shape(_) => PyValueError::new_err(message),
            BindingError::Runtime(RuntimeError::ManagedElsewhere { .. } | RuntimeError::Invalid(_)) => {
                PyValueError::new_err(message)
            }
            BindingError::Runtime(
                RuntimeError::LogDir(path, error) | RuntimeError::ResultsLog(path, error),
            ) => Python::attach(|py| os_error(py, message, error.raw_os_error(), &path)),
            BindingError::Runtime(
                RuntimeError::AlreadyStarted
                | RuntimeError::Deleted
                | RuntimeError::NotFound(_)
                | RuntimeError::Remote(_)
                | RuntimeError::Forked { .. },
            ) => KjobError::new_err(message),
        }
    }
}

/// `kjob.KjobOSError` (defined in `kjob/_errors.py`: PyO3 makes exception classes with one
/// base, and this one has two, `KjobError` and `OSError`), with the error number and the
/// path. Should the class be out of reach, a plain `KjobError` carries the message.
fn os_error(py: Python<'_>, message: String, errno: Option<i32>, path: &Path) -> PyErr {
    let made = py
        .import("kjob._errors")
        .and_then(|module| module.getattr("KjobOSError"))
        .and_then(|class| class.call1((&message, errno, path.as_os_str())));
    match made {
        Ok(error) => PyErr::from_value(error),
        Err(_) => KjobError::new_err(message),
    }
}
