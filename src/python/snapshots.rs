//! Snapshots (status, pods, events) cross into Python as the public `kjob._types` dataclasses
//! themselves, filled here field by field: there is no intermediate dict for Python to parse a
//! second time, and a Job of 100,000 pods lists them in a fraction of a second.
//!
//! The dataclasses stay plain Python (users construct, compare, copy and pickle them), so an
//! instance is made as pickle makes one, `object.__new__(cls)` then its `__dict__` filled, which
//! skips a frozen dataclass's slow `__init__`. `tests/test_snapshots.py` checks that every
//! field of each class is filled, so a field added in `_types.py` but not here fails a test.

use crate::controller::PodPhase;
use crate::runtime::PodView;
use crate::status::{JobStatus, Time};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDateTime, PyDict, PyList, PyString, PyTuple, PyType, PyTzInfo};
use std::collections::HashMap;

/// The classes of `kjob._types`, imported on first use (the extension is imported by that
/// package, so it cannot import them when it is itself loaded).
struct Classes {
    object_new: Py<PyAny>,
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
        let class = |name: &str| -> PyResult<Py<PyType>> { Ok(types.getattr(name)?.cast_into::<PyType>()?.unbind()) };
        Ok(Classes {
            object_new: py.import("builtins")?.getattr("object")?.getattr("__new__")?.unbind(),
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
    /// Label and annotation strings repeat across pods (the Job's name and uid, the keys):
    /// each is made once per call.
    strings: HashMap<String, Bound<'py, PyString>>,
}

impl<'py, W: Fn(Time) -> f64> Snapshots<'py, W> {
    /// `wall` turns a controller time into seconds since the epoch.
    pub fn new(py: Python<'py>, wall: W) -> PyResult<Self> {
        Ok(Self {
            py,
            classes: classes(py)?,
            utc: PyTzInfo::utc(py)?.to_owned(),
            wall,
            strings: HashMap::new(),
        })
    }

    /// An instance of `cls` without running its `__init__`, and its attribute dict to fill.
    fn instance(&self, cls: &Py<PyType>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDict>)> {
        let object = self.classes.object_new.bind(self.py).call1((cls.bind(self.py),))?;
        let dict = object.getattr(intern!(self.py, "__dict__"))?.cast_into::<PyDict>()?;
        Ok((object, dict))
    }

    fn time(&self, t: Option<Time>) -> PyResult<Option<Bound<'py, PyDateTime>>> {
        t.map(|t| PyDateTime::from_timestamp(self.py, (self.wall)(t), Some(&self.utc))).transpose()
    }

    fn string(&mut self, text: &str) -> Bound<'py, PyString> {
        if let Some(s) = self.strings.get(text) {
            return s.clone();
        }
        let s = PyString::new(self.py, text);
        self.strings.insert(text.to_string(), s.clone());
        s
    }

    fn string_map(&mut self, pairs: &[(String, String)]) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(self.py);
        for (k, v) in pairs {
            dict.set_item(self.string(k), self.string(v))?;
        }
        Ok(dict)
    }

    /// A `kjob.JobStatus` (its `_job_ref` unset: the caller links it to its Job).
    pub fn job_status(&self, s: &JobStatus) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let (object, d) = self.instance(&self.classes.job_status)?;
        d.set_item(intern!(py, "active"), s.active)?;
        d.set_item(intern!(py, "ready"), s.ready)?;
        d.set_item(intern!(py, "succeeded"), s.succeeded)?;
        d.set_item(intern!(py, "failed"), s.failed)?;
        d.set_item(intern!(py, "terminating"), s.terminating)?;
        d.set_item(intern!(py, "completed_indexes"), s.completed_indexes.to_string())?;
        d.set_item(intern!(py, "failed_indexes"), s.failed_indexes.as_ref().map(ToString::to_string))?;
        d.set_item(intern!(py, "start_time"), self.time(s.start_time)?)?;
        d.set_item(intern!(py, "completion_time"), self.time(s.completion_time)?)?;
        let conditions = PyList::empty(py);
        for c in &s.conditions {
            let (condition, cd) = self.instance(&self.classes.condition)?;
            cd.set_item(intern!(py, "type"), c.type_.as_str())?;
            cd.set_item(intern!(py, "status"), if c.status { "True" } else { "False" })?;
            cd.set_item(intern!(py, "reason"), &c.reason)?;
            cd.set_item(intern!(py, "message"), &c.message)?;
            cd.set_item(intern!(py, "last_transition_time"), self.time(Some(c.last_transition_time))?)?;
            conditions.append(condition)?;
        }
        d.set_item(intern!(py, "conditions"), conditions)?;
        d.set_item(intern!(py, "_job_ref"), py.None())?;
        Ok(object)
    }

    /// A `kjob.Event` about `involved_object` (`Job/<namespace>/<name>`).
    pub fn event(
        &self,
        e: &crate::controller::JobEvent,
        involved_object: &Bound<'py, PyString>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let (object, d) = self.instance(&self.classes.event)?;
        d.set_item(intern!(py, "type"), e.type_.as_str())?;
        d.set_item(intern!(py, "reason"), &e.reason)?;
        d.set_item(intern!(py, "message"), &e.message)?;
        d.set_item(intern!(py, "time"), self.time(Some(e.time))?)?;
        d.set_item(intern!(py, "involved_object"), involved_object)?;
        Ok(object)
    }

    /// A `kjob.Pod`.
    pub fn pod(&mut self, v: &PodView) -> PyResult<Bound<'py, PyAny>> {
        let py = self.py;
        let p = &v.pod;
        let (object, d) = self.instance(&self.classes.pod)?;
        d.set_item(intern!(py, "name"), &p.name)?;
        d.set_item(intern!(py, "index"), p.index)?;
        d.set_item(intern!(py, "phase"), phase_name(py, p.phase))?;
        // A running pod's last exit (OnFailure restarts) is history, not its result.
        let running = matches!(p.phase, PodPhase::Running | PodPhase::Pending);
        d.set_item(intern!(py, "exit_code"), if running { None } else { p.exit_code })?;
        d.set_item(intern!(py, "restart_count"), p.restart_count)?;
        d.set_item(intern!(py, "start_time"), self.time(p.started_at)?)?;
        d.set_item(intern!(py, "finish_time"), self.time(p.finished_at)?)?;
        d.set_item(intern!(py, "log_path"), v.log_path.to_string_lossy())?;
        d.set_item(intern!(py, "pid"), v.pid)?;
        d.set_item(intern!(py, "labels"), self.string_map(&v.labels)?)?;
        d.set_item(intern!(py, "annotations"), self.string_map(&v.annotations)?)?;
        d.set_item(intern!(py, "reason"), p.reason.as_deref())?;
        d.set_item(intern!(py, "message"), p.message.as_deref())?;
        d.set_item(intern!(py, "index_failure_count"), p.index_failure_count)?;
        d.set_item(intern!(py, "index_ignored_failure_count"), p.index_ignored_failure_count)?;
        let conditions = PyList::empty(py);
        for c in &p.conditions {
            let (condition, cd) = self.instance(&self.classes.pod_condition)?;
            cd.set_item(intern!(py, "type"), &c.type_)?;
            cd.set_item(intern!(py, "status"), c.status_str())?;
            cd.set_item(intern!(py, "reason"), &c.reason)?;
            cd.set_item(intern!(py, "message"), &c.message)?;
            conditions.append(condition)?;
        }
        d.set_item(intern!(py, "conditions"), conditions)?;
        d.set_item(intern!(py, "attempt"), p.attempt)?;
        let exception = match &p.exception {
            None => py.None().into_bound(py),
            Some(e) => {
                let summary = format!("{}: {}", e.types.first().map_or("", String::as_str), e.message);
                self.classes.exception_text.bind(py).call_method1(
                    intern!(py, "_from_parts"),
                    (summary, e.traceback.as_str()),
                )?
            }
        };
        d.set_item(intern!(py, "exception"), exception)?;
        let log_range = v.log_range.map(|(a, b)| PyTuple::new(py, [a, b])).transpose()?;
        d.set_item(intern!(py, "log_range"), log_range)?;
        Ok(object)
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
