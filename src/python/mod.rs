//! PyO3 bindings: translation only. The friendly API lives in `python/kjob/`; this module
//! exposes a native Job handle that takes a manifest dict and returns plain dicts.

mod errors;

pub use errors::{BindingError, KjobError};

use crate::controller::{BackoffConfig, EffectiveSpec, PodPhase};
use crate::runtime::{self, PodView};
use crate::spec;
use crate::status::{JobStatus, Time};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a blocking call waits between checks for Ctrl-C.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// The native Job handle behind `kjob.Job`.
#[pyclass(name = "NativeJob", module = "kjob._kjob", frozen)]
pub struct NativeJob {
    inner: runtime::Job,
}

fn seconds(value: f64, what: &str) -> Result<Duration, BindingError> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        BindingError::Shape(format!("{what}: must be a finite number of seconds >= 0, got {value}"))
    })
}

/// `now + timeout`; a timeout too far away for an `Instant` is no deadline at all.
fn deadline_after(timeout: Option<f64>) -> Result<Option<Instant>, BindingError> {
    match timeout {
        // Finite but beyond a Duration (1e300 s) is as good as forever.
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Duration::try_from_secs_f64(t).ok().and_then(|d| Instant::now().checked_add(d)))
        }
        Some(t) => {
            Err(BindingError::Shape(format!("timeout: must be a finite number of seconds >= 0, got {t}")))
        }
        None => Ok(None),
    }
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[pymethods]
impl NativeJob {
    /// Validates `manifest` (a batch/v1 Job as a dict) and prepares the Job; raises
    /// `ValueError` listing every field error.
    #[new]
    #[pyo3(signature = (manifest, uid, log_dir, backoff_initial_seconds, backoff_max_seconds, owns_log_dir=false))]
    fn new(
        manifest: &Bound<'_, PyAny>,
        uid: &str,
        log_dir: PathBuf,
        backoff_initial_seconds: f64,
        backoff_max_seconds: f64,
        owns_log_dir: bool,
    ) -> PyResult<Self> {
        let mut de = pythonize::Depythonizer::from_object(manifest);
        let job: spec::Job = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            BindingError::Shape(format!("{path}: {}", e.into_inner()))
        })?;
        let backoff = BackoffConfig {
            initial: seconds(backoff_initial_seconds, "backoff_initial_seconds")?,
            max: seconds(backoff_max_seconds, "backoff_max_seconds")?,
        };
        let spec = EffectiveSpec::from_manifest(&job, uid, backoff).map_err(BindingError::from)?;
        Ok(Self { inner: runtime::Job::new(spec, log_dir, owns_log_dir) })
    }

    fn start(&self) -> PyResult<()> {
        self.live()?;
        self.inner.start().map_err(|e| BindingError::from(e).into())
    }

    /// Waits for the Job to finish (or be deleted) without holding the GIL. Returns `False`
    /// on timeout; Ctrl-C raises `KeyboardInterrupt` within 50 ms.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.live()?;
        let deadline = deadline_after(timeout)?;
        self.block(py, deadline, |job, slice| job.wait_finished(slice))
    }

    /// Deletes the Job: every pod's process group gets SIGTERM, then SIGKILL after the grace
    /// period; returns once every process is reaped (or `False` after `timeout`).
    #[pyo3(signature = (timeout=None))]
    fn delete(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        self.live()?;
        self.inner.request_delete();
        let deadline = deadline_after(timeout)?;
        self.block(py, deadline, |job, slice| job.wait_deleted(slice))
    }

    /// SIGKILL every pod now and delete the Job (used at interpreter exit).
    fn kill(&self) -> PyResult<()> {
        self.live()?;
        self.inner.kill_all();
        Ok(())
    }

    fn suspend(&self, suspend: bool) -> PyResult<()> {
        self.live()?;
        self.inner.suspend(suspend);
        Ok(())
    }

    /// Makes the pods run a Python callable in worker processes (before `start()`).
    #[pyo3(signature = (worker_argv, init, max_workers, reuse_workers=true))]
    fn set_callable(
        &self,
        worker_argv: Vec<String>,
        init: Vec<u8>,
        max_workers: usize,
        reuse_workers: bool,
    ) -> PyResult<()> {
        self.live()?;
        let config =
            runtime::CallableConfig { worker_argv, init, max_workers: max_workers.max(1), reuse_workers };
        self.inner.set_callable(config).map_err(|e| BindingError::from(e).into())
    }

    /// The return values of the succeeded callable pods: `{index: value}` in index order when `indexed`
    /// (pods without an index left out), else a list in completion order. Values are
    /// unpickled with `loads` once the Job's lock is released (unpickling may run user code).
    fn results<'py>(
        &self,
        py: Python<'py>,
        loads: Bound<'py, PyAny>,
        indexed: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.live()?;
        let mut pickled =
            self.inner.visit_results(|index, bytes| (index, pyo3::types::PyBytes::new(py, bytes)));
        if indexed {
            // Pods finish in any order; a dict by index reads (and prints) best in index order.
            pickled.sort_unstable_by_key(|(index, _)| *index);
            let dict = PyDict::new(py);
            for (index, bytes) in pickled {
                if let Some(index) = index {
                    dict.set_item(index, loads.call1((bytes,))?)?;
                }
            }
            Ok(dict.into_any())
        } else {
            let list = PyList::empty(py);
            for (_, bytes) in pickled {
                list.append(loads.call1((bytes,))?)?;
            }
            Ok(list.into_any())
        }
    }

    fn evict(&self, pod_name: &str) -> PyResult<()> {
        self.live()?;
        self.inner.evict(pod_name).map_err(|e| BindingError::from(e).into())
    }

    #[pyo3(signature = (parallelism=None, completions=None))]
    fn scale(&self, parallelism: Option<i64>, completions: Option<i64>) -> PyResult<()> {
        self.live()?;
        self.inner.scale(parallelism, completions).map_err(|e| BindingError::from(e).into())
    }

    /// `(events numbered since and later, the next number)`: watchers pass the number back.
    #[pyo3(signature = (since=0))]
    fn events<'py>(&self, py: Python<'py>, since: u64) -> PyResult<(Bound<'py, PyList>, u64)> {
        self.live()?;
        let list = PyList::empty(py);
        let (events, next) = self.inner.events(since);
        for e in events {
            let d = PyDict::new(py);
            d.set_item("type", e.type_.as_str())?;
            d.set_item("reason", &e.reason)?;
            d.set_item("message", &e.message)?;
            d.set_item("time", epoch_seconds(self.inner.wall_time(e.time)))?;
            list.append(d)?;
        }
        Ok((list, next))
    }

    /// A change feed: a file descriptor that becomes readable after each change of the Job.
    fn subscribe(&self) -> PyResult<ChangeFeed> {
        self.live()?;
        let change = self.inner.subscribe()?;
        Ok(ChangeFeed { change: std::sync::Mutex::new(Some(change)) })
    }

    #[getter]
    fn started(&self) -> PyResult<bool> {
        self.live()?;
        Ok(self.inner.is_started())
    }

    #[getter]
    fn deleted(&self) -> PyResult<bool> {
        self.live()?;
        Ok(self.inner.is_deleted())
    }

    /// Whether the Job was made by the parent of a fork (every other call then raises).
    #[getter]
    fn forked(&self) -> bool {
        self.inner.is_foreign()
    }

    /// The defaulted spec, as the controller runs it.
    fn spec<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.live()?;
        let spec = self.inner.spec();
        let d = PyDict::new(py);
        d.set_item("name", &spec.name)?;
        d.set_item("namespace", &spec.namespace)?;
        d.set_item("uid", &spec.uid)?;
        d.set_item("parallelism", spec.parallelism)?;
        d.set_item("completions", spec.completions)?;
        d.set_item("completion_mode", if spec.is_indexed() { "Indexed" } else { "NonIndexed" })?;
        d.set_item("backoff_limit", spec.backoff_limit)?;
        d.set_item("termination_grace_period_seconds", spec.termination_grace_period.as_secs_f64())?;
        d.set_item("backoff_limit_per_index", spec.backoff_limit_per_index)?;
        d.set_item("suspend", spec.suspend)?;
        // The pod template's labels with those the API server adds (the selector's).
        let labels = PyDict::new(py);
        for (k, v) in &spec.labels {
            labels.set_item(k, v)?;
        }
        d.set_item("labels", labels)?;
        d.set_item("pod_replacement_policy", spec.pod_replacement_policy.as_str())?;
        d.set_item("restart_policy", spec.restart_policy.as_str())?;
        d.set_item("managed_by", spec.managed_by.as_deref())?;
        d.set_item("container_name", &spec.container.name)?;
        Ok(d)
    }

    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.live()?;
        let status = self.inner.status();
        status_dict(py, &status, |t| epoch_seconds(self.inner.wall_time(t)))
    }

    fn pods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.live()?;
        let list = PyList::empty(py);
        for view in self.inner.pods() {
            list.append(pod_dict(py, &view, |t| epoch_seconds(self.inner.wall_time(t)))?)?;
        }
        Ok(list)
    }
}

impl NativeJob {
    /// Fails in a forked child, whose copy of the parent's Job must not be touched.
    fn live(&self) -> Result<(), BindingError> {
        Ok(self.inner.check_process()?)
    }

    /// Blocks in slices with the GIL released, checking for signals between slices.
    fn block(
        &self,
        py: Python<'_>,
        deadline: Option<Instant>,
        wait: impl Fn(&runtime::Job, Duration) -> bool + Sync,
    ) -> PyResult<bool> {
        loop {
            let slice = match deadline {
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(wait(&self.inner, Duration::ZERO));
                    }
                    left.min(SIGNAL_CHECK_INTERVAL)
                }
                None => SIGNAL_CHECK_INTERVAL,
            };
            if py.detach(|| wait(&self.inner, slice)) {
                return Ok(true);
            }
            py.check_signals()?;
        }
    }
}

/// The watcher's end of [`runtime::ChangeFd`]: poll `fileno()` for readability, then
/// `clear()` and re-read the Job. `close()` (or garbage collection) unsubscribes.
#[pyclass(name = "ChangeFeed", module = "kjob._kjob", frozen)]
pub struct ChangeFeed {
    change: std::sync::Mutex<Option<std::sync::Arc<runtime::ChangeFd>>>,
}

impl ChangeFeed {
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

fn status_dict<'py>(
    py: Python<'py>,
    s: &JobStatus,
    wall: impl Fn(Time) -> f64,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("active", s.active)?;
    d.set_item("ready", s.ready)?;
    d.set_item("succeeded", s.succeeded)?;
    d.set_item("failed", s.failed)?;
    d.set_item("terminating", s.terminating)?;
    d.set_item("completed_indexes", s.completed_indexes.to_string())?;
    d.set_item("failed_indexes", s.failed_indexes.as_ref().map(ToString::to_string))?;
    d.set_item("start_time", s.start_time.map(&wall))?;
    d.set_item("completion_time", s.completion_time.map(&wall))?;
    let conditions = PyList::empty(py);
    for c in &s.conditions {
        let cd = PyDict::new(py);
        cd.set_item("type", c.type_.as_str())?;
        cd.set_item("status", if c.status { "True" } else { "False" })?;
        cd.set_item("reason", &c.reason)?;
        cd.set_item("message", &c.message)?;
        cd.set_item("last_transition_time", wall(c.last_transition_time))?;
        conditions.append(cd)?;
    }
    d.set_item("conditions", conditions)?;
    Ok(d)
}

fn pod_dict<'py>(py: Python<'py>, v: &PodView, wall: impl Fn(Time) -> f64) -> PyResult<Bound<'py, PyDict>> {
    let p = &v.pod;
    let d = PyDict::new(py);
    d.set_item("name", &p.name)?;
    d.set_item("uid", p.id.0)?;
    d.set_item("index", p.index)?;
    d.set_item("phase", p.phase.as_str())?;
    let exit_code = if p.phase == PodPhase::Running || p.phase == PodPhase::Pending {
        // A running pod's last exit (OnFailure restarts) is history, not its result.
        None
    } else {
        p.exit_code
    };
    d.set_item("exit_code", exit_code)?;
    d.set_item("restart_count", p.restart_count)?;
    d.set_item("index_failure_count", p.index_failure_count)?;
    d.set_item("index_ignored_failure_count", p.index_ignored_failure_count)?;
    let conditions = PyList::empty(py);
    for c in &p.conditions {
        let cd = PyDict::new(py);
        cd.set_item("type", &c.type_)?;
        cd.set_item("status", c.status_str())?;
        cd.set_item("reason", &c.reason)?;
        cd.set_item("message", &c.message)?;
        conditions.append(cd)?;
    }
    d.set_item("conditions", conditions)?;
    d.set_item("start_time", p.started_at.map(&wall))?;
    d.set_item("finish_time", p.finished_at.map(&wall))?;
    d.set_item("deletion_time", p.deletion_requested_at.map(&wall))?;
    d.set_item("reason", p.reason.as_deref())?;
    d.set_item("message", p.message.as_deref())?;
    d.set_item("log_path", v.log_path.to_string_lossy())?;
    d.set_item("log_range", v.log_range)?;
    d.set_item("attempt", p.attempt)?;
    d.set_item(
        "exception",
        p.exception
            .as_ref()
            .map(|e| format!("{}: {}", e.types.first().map_or("", String::as_str), e.message)),
    )?;
    d.set_item("exception_types", p.exception.as_ref().map(|e| e.types.clone()))?;
    d.set_item("exception_traceback", p.exception.as_ref().map(|e| e.traceback.as_str()))?;
    d.set_item("pid", v.pid)?;
    let labels = PyDict::new(py);
    for (k, val) in &v.labels {
        labels.set_item(k, val)?;
    }
    d.set_item("labels", labels)?;
    let annotations = PyDict::new(py);
    for (k, val) in &v.annotations {
        annotations.set_item(k, val)?;
    }
    d.set_item("annotations", annotations)?;
    Ok(d)
}

/// Sets the token every later pod and worker process carries in `KJOB_SESSION`.
#[pyfunction]
fn set_session_token(token: &str) {
    runtime::set_session_token(token);
}

/// SIGKILL every pod of every Job in this interpreter (registered with `atexit`).
#[pyfunction]
fn kill_all_jobs() {
    runtime::kill_all_jobs();
    runtime::kill_idle_workers();
}

/// Stops the idle callable workers kept for later Jobs; returns how many there were.
#[pyfunction]
fn shutdown_workers() -> usize {
    runtime::kill_idle_workers()
}

/// `os.register_at_fork(before=...)`: holds the runtime's locks across the fork.
#[pyfunction]
fn before_fork() {
    runtime::before_fork();
}

/// `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
fn after_fork_in_parent() {
    runtime::after_fork_in_parent();
}

/// `os.register_at_fork(after_in_child=...)`: the child forgets the parent's runtime, Jobs,
/// workers and session token; its own are made on first use.
#[pyfunction]
fn after_fork_in_child() {
    runtime::after_fork_in_child();
}

#[pymodule(gil_used = false)]
mod _kjob {
    #[pymodule_export]
    use super::after_fork_in_child;
    #[pymodule_export]
    use super::after_fork_in_parent;
    #[pymodule_export]
    use super::before_fork;
    #[pymodule_export]
    use super::kill_all_jobs;
    #[pymodule_export]
    use super::set_session_token;
    #[pymodule_export]
    use super::shutdown_workers;
    #[pymodule_export]
    use super::ChangeFeed;
    #[pymodule_export]
    use super::KjobError;
    #[pymodule_export]
    use super::NativeJob;
}
