//! The one place where kjob's Rust errors become Python exceptions.

use crate::runtime::RuntimeError;
use crate::spec::FieldErrors;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::PyErr;

create_exception!(_kjob, KjobError, PyException, "Base class of kjob's own errors.");

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
        match e {
            BindingError::Invalid(_) | BindingError::Shape(_) => PyValueError::new_err(e.to_string()),
            BindingError::Runtime(RuntimeError::ManagedElsewhere { .. } | RuntimeError::Invalid(_)) => {
                PyValueError::new_err(e.to_string())
            }
            BindingError::Runtime(_) => KjobError::new_err(e.to_string()),
        }
    }
}
