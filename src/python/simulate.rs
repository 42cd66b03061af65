//! `kjob.simulate`'s native half: the controller on a virtual clock
//! (`controller/simulate.rs`), fed outcomes by a Python callable, its result as typed
//! snapshots (`kjob.JobStatus`, `kjob.Event`) and plain timeline rows.

use super::native_job::NativeJob;
use super::snapshots::Snapshots;
use crate::controller::simulate::{self, CountedAs, Limits, Outcome, Stop};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use std::time::Duration;

/// One pod of the timeline: `(index, attempt, pod name, created, finished, phase, counted as)`,
/// times in virtual seconds since the start.
type Row = (Option<u32>, u32, String, f64, Option<f64>, &'static str, &'static str);

/// Runs `job`'s spec (validated and defaulted as the Job would run it) on a virtual clock.
///
/// `outcome(index, attempt)` returns `(exit_code, exception_types, disruption, duration)` for
/// each container run: `exception_types` a list of class names (most derived first) or None,
/// `duration` in seconds or None for "until killed". `start` (seconds since the epoch) is the
/// wall time the virtual clock's zero stands for in the status and events.
///
/// Returns `(status, events, rows, end, stop, deleted)`: `end` in virtual seconds, `stop` one
/// of `settled`, `pod-limit`, `time-limit`.
#[pyfunction]
#[pyo3(signature = (job, outcome, start, max_pods=10_000_000, max_seconds=31_536_000.0))]
#[allow(clippy::type_complexity)]
pub fn simulate_job<'py>(
    py: Python<'py>,
    job: &NativeJob,
    outcome: Bound<'py, PyAny>,
    start: f64,
    max_pods: usize,
    max_seconds: f64,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyList>, Vec<Row>, f64, &'static str, bool)> {
    let spec = job.effective_spec()?;
    simulate::check_supported(&spec).map_err(pyo3::exceptions::PyValueError::new_err)?;
    let max_time = Duration::try_from_secs_f64(max_seconds).map_err(|_| {
        pyo3::exceptions::PyValueError::new_err(format!("max_seconds: invalid value {max_seconds}"))
    })?;
    let mut failure: Option<PyErr> = None;
    let ask = |index: Option<u32>, attempt: u32| -> Outcome {
        // After an error, no more calls: the simulation winds down with pods that never end.
        let never = Outcome { duration: None, ..Outcome::default() };
        if failure.is_some() {
            return never;
        }
        match outcome.call1((index, attempt)).and_then(|r| to_outcome(&r)) {
            Ok(o) => o,
            Err(e) => {
                failure = Some(e);
                never
            }
        }
    };
    let sim = simulate::simulate(spec, ask, Limits { max_pods, max_time });
    if let Some(e) = failure {
        return Err(e);
    }
    let c = &sim.controller;
    let snapshots = Snapshots::new(py, |t: Duration| start + t.as_secs_f64())?;
    let status = snapshots.job_status(c.status())?;
    let involved = PyString::new(py, &format!("Job/{}/{}", c.spec().namespace, c.spec().name));
    let events = PyList::empty(py);
    for e in c.events().iter() {
        events.append(snapshots.event(e, &involved)?)?;
    }
    let rows = c
        .pods()
        .iter()
        .map(|p| {
            (
                p.index,
                p.attempt + p.restart_count,
                p.name.clone(),
                p.created_at.as_secs_f64(),
                p.finished_at.map(|t| t.as_secs_f64()),
                p.phase.as_str(),
                CountedAs::of(c, p).as_str(),
            )
        })
        .collect();
    let stop = match sim.stop {
        Stop::Settled => "settled",
        Stop::PodLimit => "pod-limit",
        Stop::TimeLimit => "time-limit",
    };
    Ok((status, events, rows, sim.end.as_secs_f64(), stop, sim.deleted))
}

/// `(exit_code, exception_types, disruption, duration)` as an [`Outcome`].
fn to_outcome(value: &Bound<'_, PyAny>) -> PyResult<Outcome> {
    let tuple = value.cast::<PyTuple>()?;
    let (exit_code, exception, disruption, duration): (i32, Option<Vec<String>>, bool, Option<f64>) =
        tuple.extract()?;
    let duration = match duration {
        Some(d) => Some(Duration::try_from_secs_f64(d).map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!("duration: must be seconds >= 0, not {d}"))
        })?),
        None => None,
    };
    Ok(Outcome { exit_code, exception, disruption, duration })
}
