//! Checks of Python arguments whose rules kjob states once, here: Python calls these rather
//! than repeating them.

use super::errors::BindingError;
use crate::spec;
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt};

/// The message for a duration that is not a finite number of seconds >= 0.
pub fn not_seconds(name: &str, shown: impl std::fmt::Display) -> String {
    format!("{name}: must be a finite number of seconds >= 0, got {shown}")
}

/// `value` as a number of seconds (an int or a float, finite, >= 0): `TypeError` for another
/// type, `ValueError` for another number.
#[pyfunction]
pub fn check_seconds(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let py = value.py();
    if value.is_instance_of::<PyBool>()
        || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number of seconds, not {}",
            value.get_type().name()?
        )));
    }
    let refused = || -> PyResult<PyErr> { Ok(PyValueError::new_err(not_seconds(name, value.repr()?))) };
    match value.extract::<f64>() {
        Ok(seconds) if (0.0..f64::INFINITY).contains(&seconds) => Ok(seconds),
        Ok(_) => Err(refused()?),
        // An int too big for a float: refused when negative, else float()'s own error.
        Err(e) if e.is_instance_of::<PyOverflowError>(py) && value.lt(0)? => Err(refused()?),
        Err(e) => Err(e),
    }
}

/// `value` itself if it is an int (not a bool) or None; else `TypeError`. The Job's integer
/// keywords and `scale()` share this check.
#[pyfunction]
pub fn check_int<'py>(name: &str, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if !value.is_none() && (value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>()) {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an int or None, not {}",
            value.get_type().name()?
        )));
    }
    Ok(value)
}

/// A `scale()` argument: an int (not a bool) that fits Kubernetes' int32, or None.
pub fn int32_arg(key: &str, value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<i64>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let value = check_int(key, value.clone())?;
    match value.extract::<i32>() {
        Ok(v) => Ok(Some(i64::from(v))),
        // Negatives in range get validation's message; the rest do not fit an int32.
        Err(_) => Err(BindingError::from(spec::FieldErrors(vec![spec::not_int32(
            format!("spec.{key}"),
            value.str()?,
        )]))
        .into()),
    }
}
