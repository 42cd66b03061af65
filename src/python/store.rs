//! `kjob._kjob.Store`: the Job store (`crate::store`) for Python. Translation only: bytes in
//! and out, errors mapped to `OSError`/`RuntimeError`/`ValueError`, the GIL released while
//! SQLite works.

use crate::store::{self, FailureKind, JobRecord, JobUpdate, NewJob, StoreError};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// `OSError(errno, message)` for SQLite and file-system failures; `RuntimeError` for a file
/// this kjob must not use; `ValueError` once closed.
fn to_py(error: StoreError) -> PyErr {
    let message = error.to_string();
    match error {
        StoreError::Failure { kind, .. } => {
            let errno = match kind {
                FailureKind::Full => libc::ENOSPC,
                FailureKind::ReadOnly => libc::EROFS,
                FailureKind::Access => libc::EACCES,
                FailureKind::Busy => libc::EBUSY,
                FailureKind::Missing => libc::ENOENT,
                FailureKind::Other => libc::EIO,
            };
            PyOSError::new_err((errno, message))
        }
        StoreError::Newer { .. } | StoreError::NotAStore { .. } => PyRuntimeError::new_err(message),
        StoreError::Closed { .. } => PyValueError::new_err(message),
    }
}

/// The durable store of Jobs: one SQLite file holding opaque records (Python decides what the
/// bytes mean). Every write is one transaction; every method releases the GIL while SQLite
/// works, and one connection serves all threads in turn.
#[pyclass(name = "Store", module = "kjob._kjob", frozen)]
pub struct Store {
    path: String,
    /// The process that opened the connection. A SQLite connection must not cross a fork
    /// (the child would share the parent's file descriptors and lock state), so a child
    /// refuses to use it and never closes it.
    pid: u32,
    inner: Mutex<Option<store::Store>>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if std::process::id() != self.pid {
            // Closing would checkpoint and unlock files the parent still uses: leak instead.
            let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
            std::mem::forget(inner.take());
        }
    }
}

impl Store {
    /// Runs `work` on the open store without the GIL.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        work: impl FnOnce(&mut store::Store) -> store::Result<T> + Send,
    ) -> PyResult<T> {
        if std::process::id() != self.pid {
            return Err(PyRuntimeError::new_err(format!(
                "kjob store {} was opened by process {} before a fork: open it again in this process",
                self.path, self.pid
            )));
        }
        py.detach(|| {
            let mut guard: MutexGuard<'_, _> = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(store) => work(store),
                None => Err(StoreError::Closed { path: self.path.clone() }),
            }
        })
        .map_err(to_py)
    }
}

fn job_dict<'py>(py: Python<'py>, job: JobRecord) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("uid", job.uid)?;
    dict.set_item("namespace", job.namespace)?;
    dict.set_item("name", job.name)?;
    dict.set_item("created", job.created)?;
    dict.set_item("finished", job.finished)?;
    dict.set_item("labels", job.labels)?;
    dict.set_item("owner", job.owner)?;
    dict.set_item("doc", PyBytes::new(py, &job.doc))?;
    dict.set_item("status", job.status.as_deref().map(|b| PyBytes::new(py, b)))?;
    dict.set_item("pods", job.pods.as_deref().map(|b| PyBytes::new(py, b)))?;
    dict.set_item("version", job.version)?;
    dict.set_item("deleting", job.deleting)?;
    Ok(dict)
}

fn job_or_none<'py>(py: Python<'py>, job: Option<JobRecord>) -> PyResult<Option<Bound<'py, PyDict>>> {
    job.map(|job| job_dict(py, job)).transpose()
}

#[pymethods]
impl Store {
    /// The schema version this kjob writes and the newest it reads.
    #[classattr]
    const SCHEMA_VERSION: i64 = store::SCHEMA_VERSION;

    #[new]
    #[pyo3(signature = (path, busy_timeout = 5.0))]
    fn new(py: Python<'_>, path: String, busy_timeout: f64) -> PyResult<Self> {
        if !(busy_timeout.is_finite() && busy_timeout >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "busy_timeout must be a finite number of seconds >= 0, not {busy_timeout}"
            )));
        }
        let timeout = Duration::from_secs_f64(busy_timeout);
        let opened = py.detach(|| store::Store::open(&path, timeout)).map_err(to_py)?;
        Ok(Self { path, pid: std::process::id(), inner: Mutex::new(Some(opened)) })
    }

    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    #[pyo3(signature = (uid, namespace, name, created, labels, doc, owner))]
    #[allow(clippy::too_many_arguments)]
    fn insert_job(
        &self,
        py: Python<'_>,
        uid: &str,
        namespace: &str,
        name: &str,
        created: f64,
        labels: &str,
        doc: PyBackedBytes,
        owner: Option<&str>,
    ) -> PyResult<bool> {
        let job = NewJob { uid, namespace, name, created, labels, doc: &doc, owner };
        self.with(py, |store| store.insert_job(&job))
    }

    #[pyo3(signature = (namespace, name, *, with_pods = true))]
    fn get_job<'py>(
        &self,
        py: Python<'py>,
        namespace: &str,
        name: &str,
        with_pods: bool,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let job = self.with(py, |store| store.get_job(namespace, name, with_pods))?;
        job_or_none(py, job)
    }

    #[pyo3(signature = (uid, *, with_pods = true))]
    fn get_job_by_uid<'py>(
        &self,
        py: Python<'py>,
        uid: &str,
        with_pods: bool,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let job = self.with(py, |store| store.get_job_by_uid(uid, with_pods))?;
        job_or_none(py, job)
    }

    #[pyo3(signature = (namespace = None))]
    fn list_jobs<'py>(&self, py: Python<'py>, namespace: Option<&str>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let jobs = self.with(py, |store| store.list_jobs(namespace))?;
        jobs.into_iter().map(|job| job_dict(py, job)).collect()
    }

    #[pyo3(signature = (uid, *, status = None, pods = None, finished = None, doc = None, labels = None,
                        events = Vec::new(), expected_version = None),
           text_signature = "(self, uid, *, status=None, pods=None, finished=None, doc=None, labels=None, \
                             events=(), expected_version=None)")]
    #[allow(clippy::too_many_arguments)]
    fn update_job(
        &self,
        py: Python<'_>,
        uid: &str,
        status: Option<PyBackedBytes>,
        pods: Option<PyBackedBytes>,
        finished: Option<f64>,
        doc: Option<PyBackedBytes>,
        labels: Option<&str>,
        events: Vec<(i64, PyBackedBytes)>,
        expected_version: Option<i64>,
    ) -> PyResult<Option<i64>> {
        let events: Vec<(i64, &[u8])> = events.iter().map(|(seq, body)| (*seq, &body[..])).collect();
        let update = JobUpdate {
            status: status.as_deref(),
            pods: pods.as_deref(),
            finished,
            doc: doc.as_deref(),
            labels,
            events: &events,
            expected_version,
        };
        self.with(py, |store| store.update_job(uid, &update))
    }

    fn set_owner(
        &self,
        py: Python<'_>,
        uid: &str,
        owner: Option<&str>,
        expected: Option<&str>,
    ) -> PyResult<bool> {
        self.with(py, |store| store.set_owner(uid, owner, expected))
    }

    fn mark_deleting(&self, py: Python<'_>, uid: &str) -> PyResult<bool> {
        self.with(py, |store| store.mark_deleting(uid))
    }

    fn delete_job(&self, py: Python<'_>, uid: &str) -> PyResult<bool> {
        self.with(py, |store| store.delete_job(uid))
    }

    #[pyo3(signature = (uid, since = 0))]
    fn events<'py>(
        &self,
        py: Python<'py>,
        uid: &str,
        since: i64,
    ) -> PyResult<Vec<(i64, Bound<'py, PyBytes>)>> {
        let events = self.with(py, |store| store.events(uid, since))?;
        Ok(events.into_iter().map(|(seq, body)| (seq, PyBytes::new(py, &body))).collect())
    }

    fn push_request(&self, py: Python<'_>, uid: &str, body: &str) -> PyResult<i64> {
        self.with(py, |store| store.push_request(uid, body))
    }

    fn take_requests(&self, py: Python<'_>, uid: &str) -> PyResult<Vec<String>> {
        self.with(py, |store| store.take_requests(uid))
    }

    #[pyo3(signature = (namespace = None))]
    fn versions<'py>(&self, py: Python<'py>, namespace: Option<&str>) -> PyResult<Bound<'py, PyDict>> {
        let versions = self.with(py, |store| store.versions(namespace))?;
        let dict = PyDict::new(py);
        for (uid, version) in versions {
            dict.set_item(uid, version)?;
        }
        Ok(dict)
    }

    fn finished_beyond(&self, py: Python<'_>, limit: u64) -> PyResult<Vec<String>> {
        self.with(py, |store| store.finished_beyond(limit))
    }

    fn integrity_check(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |store| store.integrity_check())
    }

    /// Closes the connection (waiting for a call in another thread to finish). Idempotent.
    fn close(&self, py: Python<'_>) {
        if std::process::id() != self.pid {
            // The parent's connection: see `Drop`.
            if let Ok(mut inner) = self.inner.try_lock() {
                std::mem::forget(inner.take());
            }
            return;
        }
        let closed = py.detach(|| self.inner.lock().unwrap_or_else(|e| e.into_inner()).take());
        // Dropping the connection checkpoints the WAL: also without the GIL.
        py.detach(move || drop(closed));
    }

    fn __repr__(&self) -> String {
        format!("<kjob Store {:?}>", self.path)
    }
}
