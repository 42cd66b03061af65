//! The native Job handle behind `kjob.Job`: a manifest dict in, typed snapshots out.

use super::args::{int32_arg, not_seconds};
use super::change_feed::ChangeFeed;
use super::env_sources::{missing_references, sources_from_py};
use super::errors::BindingError;
use super::snapshots::Snapshots;
use crate::controller::{BackoffConfig, EffectiveSpec};
use crate::runtime;
use crate::spec;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};
use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a blocking call waits between checks for Ctrl-C.
const SIGNAL_CHECK_INTERVAL: Duration = Duration::from_millis(50);

/// The native Job handle behind `kjob.Job`.
#[pyclass(name = "NativeJob", module = "kjob._kjob", frozen)]
pub struct NativeJob {
    /// Dropped without the GIL (see the `Drop` impl).
    inner: ManuallyDrop<runtime::Job>,
    /// References of the container's env that the Job's ConfigMaps and Secrets lack.
    missing_env_references: Vec<String>,
}

/// A Job is dropped with the GIL released. Dropping it takes runtime locks (the pod names of
/// the namespace, the registry of Jobs) that a thread in `os.fork()` holds from kjob's
/// `before` hook until its `after` hook; between them, CPython may give the GIL up (the
/// import lock, other hooks). A thread dropping a Job with the GIL held would then wait for
/// the forking thread, which waits for the GIL: a deadlock (seen with the store's keeper
/// thread letting go of finished Jobs while another thread forked).
impl Drop for NativeJob {
    fn drop(&mut self) {
        // SAFETY: `inner` is taken once, here, and `self` is not used after `drop`.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        Python::attach(|py| py.detach(move || drop(inner)));
    }
}

fn seconds(value: f64, what: &str) -> Result<Duration, BindingError> {
    Duration::try_from_secs_f64(value).map_err(|_| BindingError::Shape(not_seconds(what, value)))
}

/// `now + timeout`; a timeout too far away for an `Instant` is no deadline at all.
fn deadline_after(timeout: Option<f64>) -> Result<Option<Instant>, BindingError> {
    match timeout {
        // Finite but beyond a Duration (1e300 s) is as good as forever.
        Some(t) if t.is_finite() && t >= 0.0 => {
            Ok(Duration::try_from_secs_f64(t).ok().and_then(|d| Instant::now().checked_add(d)))
        }
        Some(t) => Err(BindingError::Shape(not_seconds("timeout", t))),
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
    /// `env_sources`: the ConfigMaps and Secrets (dicts) the container's env may read.
    #[pyo3(signature = (manifest, uid, log_dir, backoff_initial_seconds, backoff_max_seconds, owns_log_dir=false, env_sources=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        manifest: &Bound<'_, PyAny>,
        uid: &str,
        log_dir: PathBuf,
        backoff_initial_seconds: f64,
        backoff_max_seconds: f64,
        owns_log_dir: bool,
        env_sources: Option<&Bound<'_, PyAny>>,
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
        let sources = sources_from_py(env_sources)?;
        let spec = EffectiveSpec::from_manifest_with_sources(&job, uid, backoff, &sources)
            .map_err(BindingError::from)?;
        let missing_env_references = missing_references(&job, &sources);
        // Without the GIL: making a Job takes the runtime's locks, which a thread forking may
        // hold while it waits for the GIL (see the `Drop` impl).
        let inner = py.detach(move || runtime::Job::new(spec, log_dir, owns_log_dir));
        Ok(Self { inner: ManuallyDrop::new(inner), missing_env_references })
    }

    /// The container's env references that no ConfigMap or Secret given with the Job
    /// satisfies, in the kubelet's words: its pods would wait in `CreateContainerConfigError`.
    fn missing_env_references(&self) -> Vec<String> {
        self.missing_env_references.clone()
    }

    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.live()?;
        // The runtime is built (the first time) without the GIL: building it takes a lock a
        // forking thread holds (see the `Drop` impl). The rest needs the GIL (the environment
        // is copied under it).
        py.detach(runtime::tokio_runtime);
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

    /// Makes the pods run on remote agents, `(node, address, capacity)` each (before
    /// `start()`): connects to them now and raises `KjobError` when none can be reached.
    /// With `init` (a pickled callable) the pods run it in workers there, `capacity` of them
    /// on each agent.
    #[pyo3(signature = (agents, init=None, reuse_workers=true, connect_timeout=10.0))]
    fn set_remote(
        &self,
        py: Python<'_>,
        agents: Vec<(String, String, usize)>,
        init: Option<Vec<u8>>,
        reuse_workers: bool,
        connect_timeout: f64,
    ) -> PyResult<super::remote::RemoteNodes> {
        self.live()?;
        let agents = super::remote::agent_specs(agents);
        let timeout = super::remote::timeout(connect_timeout)?;
        let callable = init.map(|init| runtime::CallableConfig {
            worker_argv: Vec::new(),
            init,
            max_workers: 1,
            reuse_workers,
        });
        let nodes =
            py.detach(|| self.inner.set_remote(&agents, callable, timeout)).map_err(BindingError::from)?;
        Ok(super::remote::RemoteNodes::new(nodes))
    }

    /// Appends every succeeded pod's pickled result to the file at `path` before the pod
    /// counts (a stored callable Job; see `runtime/results_log.rs`). Before `start()`.
    fn set_results_log(&self, path: PathBuf) -> PyResult<()> {
        self.live()?;
        self.inner.set_results_log(&path).map_err(|e| BindingError::from(e).into())
    }

    /// Takes over a stored Job before `start()`: `prior` is its status and pods (see
    /// `python/restore.rs`), `origin_wall` the epoch seconds of its time 0, `results` the
    /// `(index, pickled value)` pairs its results log holds.
    fn restore(
        &self,
        prior: &Bound<'_, PyAny>,
        origin_wall: f64,
        results: Vec<(Option<u32>, Vec<u8>)>,
    ) -> PyResult<()> {
        self.live()?;
        let spec = self.inner.spec();
        let completions = spec.completions.unwrap_or(0);
        let prior = super::restore::prior_from_py(prior, completions)?;
        let origin = UNIX_EPOCH + Duration::try_from_secs_f64(origin_wall.max(0.0)).unwrap_or_default();
        self.inner.restore(prior, origin, results).map_err(|e| BindingError::from(e).into())
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

    /// Changes `parallelism` and (Indexed Jobs, in tandem) `completions`. Raises `TypeError`
    /// for a value that is not an int, `ValueError` with the Kubernetes message otherwise.
    #[pyo3(signature = (parallelism=None, completions=None))]
    fn scale(
        &self,
        parallelism: Option<&Bound<'_, PyAny>>,
        completions: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.live()?;
        let parallelism = int32_arg("parallelism", parallelism)?;
        let completions = int32_arg("completions", completions)?;
        self.inner.scale(parallelism, completions).map_err(|e| BindingError::from(e).into())
    }

    /// `(events numbered since and later, the next number)`: watchers pass the number back.
    /// Each is a `kjob.Event` about `involved_object` (`Job/<namespace>/<name>`).
    #[pyo3(signature = (involved_object, since=0))]
    fn events<'py>(
        &self,
        py: Python<'py>,
        involved_object: Bound<'py, PyString>,
        since: u64,
    ) -> PyResult<(Bound<'py, PyList>, u64)> {
        self.live()?;
        let (events, next) = self.inner.events(since);
        let snapshots = self.snapshots(py)?;
        let list = PyList::empty(py);
        for e in &events {
            list.append(snapshots.event(e, &involved_object)?)?;
        }
        Ok((list, next))
    }

    /// Every pod as the store records it (JSON, see `stored_rows.rs`), made without the GIL.
    fn stored_pods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
        self.live()?;
        let json = py.detach(|| {
            let views = self.inner.pods();
            super::stored_rows::pods_json(&views, runtime::node_name(), |t| {
                epoch_seconds(self.inner.wall_time(t))
            })
        });
        Ok(pyo3::types::PyBytes::new(py, &json))
    }

    /// The events numbered `since` and later as the store records them (JSON, see
    /// `stored_rows.rs`), and the number of the next one.
    fn stored_events<'py>(
        &self,
        py: Python<'py>,
        since: u64,
    ) -> PyResult<(Bound<'py, pyo3::types::PyBytes>, u64, usize)> {
        self.live()?;
        let (json, next, count) = py.detach(|| {
            let (events, next) = self.inner.events(since);
            let first = next - events.len() as u64;
            let json =
                super::stored_rows::events_json(&events, first, |t| epoch_seconds(self.inner.wall_time(t)));
            (json, next, events.len())
        });
        Ok((pyo3::types::PyBytes::new(py, &json), next, count))
    }

    /// A change feed: a file descriptor that becomes readable after each change of the Job.
    fn subscribe(&self) -> PyResult<ChangeFeed> {
        self.live()?;
        let change = self.inner.subscribe()?;
        Ok(ChangeFeed::new(change))
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
        // Every container by name, init containers apart (`logs(container=...)`).
        let (mut init, mut main) = (Vec::new(), vec![spec.container.name.as_str()]);
        if let Some(layout) = &spec.container_layout {
            main.clear();
            for (name, kind) in layout.names.iter().zip(layout.kinds.iter()) {
                match kind {
                    crate::controller::pod_containers::ContainerKind::Main => main.push(name.as_str()),
                    _ => init.push(name.as_str()),
                }
            }
        }
        d.set_item("containers", main)?;
        d.set_item("init_containers", init)?;
        Ok(d)
    }

    /// A `kjob.JobStatus` (not yet linked to its `kjob.Job`).
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.live()?;
        let status = self.inner.status();
        self.snapshots(py)?.job_status(&status)
    }

    /// Every pod, oldest first, as `kjob.Pod`s.
    fn pods<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        self.live()?;
        let views = self.inner.pods();
        self.snapshots(py)?.pods(&views)
    }
}

impl NativeJob {
    /// The validated, defaulted spec the controller runs (`kjob.simulate` runs it too).
    pub(super) fn effective_spec(&self) -> Result<EffectiveSpec, BindingError> {
        self.live()?;
        Ok(self.inner.spec())
    }

    fn snapshots<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Snapshots<'py, impl Fn(crate::status::Time) -> f64 + '_>> {
        Snapshots::new(py, |t| epoch_seconds(self.inner.wall_time(t)))
    }

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
