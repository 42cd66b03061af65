//! A change feed for watchers of a Job (`Job.watch()`, `wait_async()`).

use crate::runtime;
use pyo3::prelude::*;

/// The watcher's end of [`runtime::ChangeFd`]: poll `fileno()` for readability, then
/// `clear()` and re-read the Job. `close()` (or garbage collection) unsubscribes.
#[pyclass(name = "ChangeFeed", module = "kjob._kjob", frozen)]
pub struct ChangeFeed {
    change: std::sync::Mutex<Option<std::sync::Arc<runtime::ChangeFd>>>,
}

impl ChangeFeed {
    pub(super) fn new(change: std::sync::Arc<runtime::ChangeFd>) -> Self {
        Self { change: std::sync::Mutex::new(Some(change)) }
    }

    fn get(&self) -> PyResult<std::sync::Arc<runtime::ChangeFd>> {
        self.change
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| pyo3::exceptions::PyValueError::new_err("I/O operation on a closed change feed"))
    }
}

#[pymethods]
impl ChangeFeed {
    fn fileno(&self) -> PyResult<i32> {
        Ok(self.get()?.raw_fd())
    }

    fn clear(&self) -> PyResult<()> {
        self.get()?.clear();
        Ok(())
    }

    fn close(&self) {
        self.change.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.change.lock().unwrap_or_else(|e| e.into_inner()).is_none()
    }
}
