//! Snapshots (status, pods, events) cross into Python as the public `kjob._types` classes
//! themselves, filled here field by field: there is no intermediate dict for Python to parse a
//! second time, and a Job of 100,000 pods lists them in a fraction of a second.
//!
//! The classes stay plain Python (users construct, compare, copy and pickle them), so an
//! instance is made as their `__init__` makes one, `object.__new__(cls)` then
//! `object.__setattr__` per slot, but from Rust, without the interpreter's call overhead.
//! `tests/test_one_schema.py` checks that every slot of each class is filled, so a field added
//! in `_types.py` but not here fails a test.

use crate::controller::labels::{pod_own_annotations, pod_own_labels};
use crate::controller::PodPhase;
use crate::runtime::{PodView, PodViews};
use crate::status::{JobStatus, Time};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyModule, PyString, PyTuple, PyType, PyTzInfo};
use pyo3::IntoPyObjectExt;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::utc::utc_fields;

/// The classes of `kjob._types`, imported on first use (the extension is imported by that
/// package, so it cannot import them when it is itself loaded).
struct Classes {
    object_new: Py<PyAny>,
    from_timestamp: Py<PyAny>,
    datetime: Py<PyAny>,
    gc: Py<PyModule>,
    job_status: Py<PyType>,
    condition: Py<PyType>,
    pod: Py<PyType>,
    pod_condition: Py<PyType>,
    event: Py<PyType>,
    exception_text: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn classes(py: Python<'_>) -> PyResult<&Classes> {
    CLASSES.get_or_try_init(py, || {
        let types = py.import("kjob._types")?;
        let class =
            |name: &str| -> PyResult<Py<PyType>> { Ok(types.getattr(name)?.cast_into::<PyType>()?.unbind()) };
        Ok(Classes {
            object_new: py.import("builtins")?.getattr("object")?.getattr("__new__")?.unbind(),
            from_timestamp: py.import("datetime")?.getattr("datetime")?.getattr("fromtimestamp")?.unbind(),
            datetime: py.import("datetime")?.getattr("datetime")?.unbind(),
            gc: py.import("gc")?.unbind(),
            job_status: class("JobStatus")?,
            condition: class("Condition")?,
            pod: class("Pod")?,
            pod_condition: class("PodCondition")?,
            event: class("Event")?,
            exception_text: class("ExceptionText")?,
        })
    })
}

/// Converts controller times to aware UTC datetimes, as `datetime.fromtimestamp(t, utc)`.
pub struct Snapshots<'py, W> {
    py: Python<'py>,
    classes: &'py Classes,
    utc: Bound<'py, PyTzInfo>,
    wall: W,
    /// The keys of pods' own labels and annotations, made once per list.
    keys: Vec<(&'static str, Bound<'py, PyString>)>,
    /// The last number made a string: an Indexed pod's index is a label and an annotation.
    last_number: Option<(u32, Bound<'py, PyString>)>,
    /// Times by field, shared with the previous pod's: pods started or ended together share
    /// one datetime.
    last_times: [Option<(Time, Bound<'py, PyAny>)>; 3],
    /// And log paths: callable pods share their worker's log file (see [`Self::log_path`]).
    shared_log_paths: HashMap<*const u8, Bound<'py, PyString>>,
}

/// A pod's labels and annotations, as the dicts of the Job's that each pod's copies.
struct JobEntries<'py> {
    labels: Bound<'py, PyDict>,
    annotations: Bound<'py, PyDict>,
    counts_per_index: bool,
    /// This machine's host name: the node of every local pod (one string for all of them).
    host: Bound<'py, PyString>,
}

impl<'py, W: Fn(Time) -> f64> Snapshots<'py, W> {
    /// `wall` turns a controller time into seconds since the epoch.
    pub fn new(py: Python<'py>, wall: W) -> PyResult<Self> {
        Ok(Self {
            py,
            classes: classes(py)?,
            utc: PyTzInfo::utc(py)?.to_owned(),
            wall,
            keys: Vec::new(),
            last_number: None,
            last_times: [None, None, None],
            shared_log_paths: HashMap::new(),
        })
    }

    /// An instance of `cls`, its `__init__` not run: [`set`] fills its fields.
    fn instance(&self, cls: &Py<PyType>) -> PyResult<Bound<'py, PyAny>> {
        self.classes.object_new.bind(self.py).call1((cls.bind(self.py),))
    }

    /// `datetime.fromtimestamp(seconds, timezone.utc)`, as `_types.py` used to make them.
    fn time(&self, t: Option<Time>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(t) = t else { return Ok(None) };
        let seconds = (self.wall)(t);
        match utc_fields(seconds) {
            Some((year, month, day, hour, minute, second, micros)) => self
                .classes
                .datetime
                .bind(self.py)
                .call1((year, month, day, hour, minute, second, micros, &self.utc))
                .map(Some),
            None => self.classes.from_timestamp.bind(self.py).call1((seconds, &self.utc)).map(Some),
        }
    }

    /// [`Self::time`], shared with the previous pod's time of the same `field`.
    fn pod_time(&mut self, field: usize, t: Option<Time>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(t) = t else { return Ok(None) };
        if let Some((last, time)) = &self.last_times[field] {
            if *last == t {
                return Ok(Some(time.clone()));
            }
        }
        let time = self.time(Some(t))?;
        self.last_times[field] = time.clone().map(|time| (t, time));
        Ok(time)
    }

    /// A pod's log path. A log file that callable pods share is one `Arc` and one string:
    /// looked up by address (the views hold the `Arc`s while the strings are made, so an
    /// address names one file), as pods of several workers interleave.
    fn log_path(&mut self, path: &Arc<Path>, shared: bool) -> Bound<'py, PyString> {
        if !shared {
            return PyString::new(self.py, &path.to_string_lossy());
        }
        let key = Arc::as_ptr(path).cast::<u8>();
        if let Some(string) = self.shared_log_paths.get(&key) {
            return string.clone();
        }
        let string = PyString::new(self.py, &path.to_string_lossy());
        self.shared_log_paths.insert(key, string.clone());
        string
    }

    fn dict(&self, pairs: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(self.py);
        for (k, v) in pairs {
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }

    /// A copy of `shared` (which copies its table at once, its strings shared) with a pod's
    /// `own` entries added.
    fn entries(
        &mut self,
        shared: &Bound<'py, PyDict>,
        own: impl Iterator<Item = (&'static str, u32)>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dict = shared.copy()?;
        for (key, value) in own {
            dict.set_item(self.key(key), self.number(value))?;
        }
        Ok(dict)
    }

    fn key(&mut self, key: &'static str) -> Bound<'py, PyString> {
        if let Some((_, string)) = self.keys.iter().find(|(k, _)| *k == key) {
            return string.clone();
        }
        let string = PyString::new(self.py, key);
        self.keys.push((key, string.clone()));
        string
    }

    fn number(&mut self, n: u32) -> Bound<'py, PyString> {
        match &self.last_number {
            Some((last, string)) if *last == n => string.clone(),
            _ => {
                let string = PyString::new(self.py, &n.to_string());
                self.last_number = Some((n, string.clone()));
                string
            }
        }
    }

    /// Every pod, in order, as a list of `kjob.Pod`s. The cyclic garbage collector is paused
    /// meanwhile: a million new container objects would otherwise start hundreds of
    /// collections, each walking every one made so far (none of them can be garbage yet).
    /// The GIL is held throughout, so no other thread sees the pause (which would only delay
    /// a collection anyway).
    pub fn pods(&mut self, views: &PodViews) -> PyResult<Bound<'py, PyList>> {
        let job = JobEntries {
            labels: self.dict(&views.job_labels)?,
            annotations: self.dict(&views.job_annotations)?,
            counts_per_index: views.counts_per_index,
            host: PyString::new(self.py, crate::runtime::node_name()),
        };
        let gc = self.classes.gc.bind(self.py);
        let was_enabled = gc.call_method0(intern!(self.py, "isenabled"))?.is_truthy()?;
        if was_enabled {
            gc.call_method0(intern!(self.py, "disable"))?;
        }
        let built = views.iter().map(|view| self.pod(view, &job)).collect::<PyResult<Vec<_>>>();
        if was_enabled {
            gc.call_method0(intern!(self.py, "enable"))?;
        }
        PyList::new(self.py, built?)
    }

    /// A `kjob.JobStatus` (its `_job_ref` unset: the caller links it to its Job).
    pub fn job_status(&self, s: &JobStatus) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let object = self.instance(&self.classes.job_status)?;
        let d = &object;
        set(d, intern!(py, "active"), s.active)?;
        set(d, intern!(py, "ready"), s.ready)?;
        set(d, intern!(py, "succeeded"), s.succeeded)?;
        set(d, intern!(py, "failed"), s.failed)?;
        set(d, intern!(py, "terminating"), s.terminating)?;
        set(d, intern!(py, "completed_indexes"), s.completed_indexes.to_string())?;
        set(d, intern!(py, "failed_indexes"), s.failed_indexes.as_ref().map(ToString::to_string))?;
        set(d, intern!(py, "start_time"), self.time(s.start_time)?)?;
        set(d, intern!(py, "completion_time"), self.time(s.completion_time)?)?;
        let conditions = PyList::empty(py);
        for c in &s.conditions {
            let condition = self.instance(&self.classes.condition)?;
            let cd = &condition;
            set(cd, intern!(py, "type"), c.type_.as_str())?;
            set(cd, intern!(py, "status"), if c.status { "True" } else { "False" })?;
            set(cd, intern!(py, "reason"), &c.reason)?;
            set(cd, intern!(py, "message"), &c.message)?;
            set(cd, intern!(py, "last_transition_time"), self.time(Some(c.last_transition_time))?)?;
            conditions.append(condition)?;
        }
        set(d, intern!(py, "conditions"), conditions)?;
        set(d, intern!(py, "_job_ref"), py.None())?;
        Ok(object)
    }

    /// A `kjob.Event` about `involved_object` (`Job/<namespace>/<name>`).
    pub fn event(
        &self,
        e: &crate::controller::JobEvent,
        involved_object: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let object = self.instance(&self.classes.event)?;
        let d = &object;
        set(d, intern!(py, "type"), e.type_.as_str())?;
        set(d, intern!(py, "reason"), &e.reason)?;
        set(d, intern!(py, "message"), &e.message)?;
        set(d, intern!(py, "time"), self.time(Some(e.time))?)?;
        set(d, intern!(py, "involved_object"), involved_object)?;
        Ok(object)
    }

    /// A `kjob.Pod`.
    fn pod(&mut self, v: &PodView, job: &JobEntries<'py>) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let p = &v.pod;
        let object = self.instance(&self.classes.pod)?;
        let d = &object;
        set(d, intern!(py, "name"), &p.name)?;
        set(d, intern!(py, "index"), p.index)?;
        set(d, intern!(py, "phase"), phase_name(py, p.phase))?;
        // A running pod's last exit (OnFailure restarts) is history, not its result.
        let running = matches!(p.phase, PodPhase::Running | PodPhase::Pending);
        set(d, intern!(py, "exit_code"), if running { None } else { p.exit_code })?;
        set(d, intern!(py, "restart_count"), p.restart_count)?;
        set(d, intern!(py, "start_time"), self.pod_time(0, p.started_at)?)?;
        set(d, intern!(py, "finish_time"), self.pod_time(1, p.finished_at)?)?;
        set(d, intern!(py, "creation_time"), self.pod_time(2, Some(p.created_at))?)?;
        set(d, intern!(py, "deletion_time"), self.time(p.deletion_requested_at)?)?;
        set(d, intern!(py, "counted_as"), v.counted_as)?;
        set(d, intern!(py, "log_path"), self.log_path(&v.log_path, v.log_range.is_some()))?;
        set(d, intern!(py, "pid"), v.pid)?;
        set(d, intern!(py, "labels"), self.entries(&job.labels, pod_own_labels(p))?)?;
        let annotations = self.entries(&job.annotations, pod_own_annotations(job.counts_per_index, p))?;
        set(d, intern!(py, "annotations"), annotations)?;
        set(d, intern!(py, "reason"), p.reason.as_deref())?;
        set(d, intern!(py, "message"), p.message.as_deref())?;
        set(d, intern!(py, "index_failure_count"), p.index_failure_count)?;
        set(d, intern!(py, "index_ignored_failure_count"), p.index_ignored_failure_count)?;
        let conditions = PyList::empty(py);
        for c in &p.conditions {
            let condition = self.instance(&self.classes.pod_condition)?;
            let cd = &condition;
            set(cd, intern!(py, "type"), &c.type_)?;
            set(cd, intern!(py, "status"), c.status_str())?;
            set(cd, intern!(py, "reason"), &c.reason)?;
            set(cd, intern!(py, "message"), &c.message)?;
            conditions.append(condition)?;
        }
        set(d, intern!(py, "conditions"), conditions)?;
        set(d, intern!(py, "attempt"), p.attempt)?;
        let exception = match &p.exception {
            None => py.None().into_bound(py),
            Some(e) => {
                let summary = format!("{}: {}", e.types.first().map_or("", String::as_str), e.message);
                self.classes
                    .exception_text
                    .bind(py)
                    .call_method1(intern!(py, "_from_parts"), (summary, e.traceback.as_str()))?
            }
        };
        set(d, intern!(py, "exception"), exception)?;
        let log_range = v.log_range.map(|(a, b)| PyTuple::new(py, [a, b])).transpose()?;
        set(d, intern!(py, "log_range"), log_range)?;
        let exit_codes = PyDict::new(py);
        let mut failed_container = None;
        if let Some(containers) = &p.containers {
            for (name, code) in containers.exit_codes() {
                exit_codes.set_item(name, code)?;
            }
            if p.phase == PodPhase::Failed {
                failed_container =
                    containers.outcome().and_then(|(_, i)| i).map(|i| containers.names[i].as_str());
            }
        }
        set(d, intern!(py, "container_exit_codes"), exit_codes)?;
        set(d, intern!(py, "failed_container"), failed_container)?;
        match &p.node_name {
            Some(node) => set(d, intern!(py, "node_name"), node.as_ref())?,
            None => set(d, intern!(py, "node_name"), &job.host)?,
        }
        Ok(object)
    }
}

/// `object.__setattr__(object, name, value)`: how the snapshot classes' own `__init__` sets
/// their fields (their `__setattr__` refuses).
fn set<'py>(
    object: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    value: impl IntoPyObject<'py>,
) -> PyResult<()> {
    let py = object.py();
    let value = value.into_bound_py_any(py)?;
    // SAFETY: the three pointers are live objects held by `Bound`s for the whole call, and
    // `PyObject_GenericSetAttr` is `object.__setattr__` itself, which only needs that.
    let status =
        unsafe { pyo3::ffi::PyObject_GenericSetAttr(object.as_ptr(), name.as_ptr(), value.as_ptr()) };
    if status == 0 {
        Ok(())
    } else {
        Err(PyErr::fetch(py))
    }
}

/// Phase names are few: one interned string each rather than a new one per pod.
fn phase_name(py: Python<'_>, phase: PodPhase) -> &Bound<'_, PyString> {
    match phase {
        PodPhase::Pending => intern!(py, "Pending"),
        PodPhase::Running => intern!(py, "Running"),
        PodPhase::Succeeded => intern!(py, "Succeeded"),
        PodPhase::Failed => intern!(py, "Failed"),
    }
}
