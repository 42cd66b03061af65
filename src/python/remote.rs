//! Remote pods: the agent that runs them on another machine (`kjob._agent` starts it), and
//! the handle on a Job's connections to its agents (see `runtime::remote`).

use super::args::not_seconds;
use super::errors::BindingError;
use crate::runtime;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// A kjob agent listening on TCP: it runs the pods that Jobs on other machines send it.
#[pyclass(name = "Agent", module = "kjob._kjob", frozen)]
pub struct Agent {
    inner: runtime::Agent,
}

#[pymethods]
impl Agent {
    /// Listens on `host:port` (0: a free port). Pods' output is kept under `log_root` until
    /// it is sent; callable pods run in workers started with `worker_argv`.
    #[new]
    #[pyo3(signature = (host, port, worker_argv, log_root))]
    fn new(host: &str, port: u16, worker_argv: Vec<String>, log_root: PathBuf) -> PyResult<Self> {
        let inner = runtime::Agent::start(host, port, worker_argv, log_root)?;
        Ok(Self { inner })
    }

    /// `host:port`, as the agent listens.
    #[getter]
    fn address(&self) -> String {
        self.inner.address().to_string()
    }

    /// How many Jobs it serves now.
    #[getter]
    fn sessions(&self) -> usize {
        self.inner.sessions()
    }

    /// SIGKILLs every pod it runs (it is going away).
    fn kill_all(&self) {
        self.inner.kill_all();
    }
}

/// A Job's connections to its agents.
#[pyclass(name = "RemoteNodes", module = "kjob._kjob", frozen)]
pub struct RemoteNodes {
    inner: Arc<runtime::RemoteNodes>,
}

impl RemoteNodes {
    pub fn new(inner: Arc<runtime::RemoteNodes>) -> Self {
        Self { inner }
    }
}

#[pymethods]
impl RemoteNodes {
    /// The node is gone (its Dask worker was removed): its pods fail with `DisruptionTarget`
    /// (reason `DeletionByPodGC`) and its agent kills them. Returns whether it was one of the
    /// Job's nodes.
    fn lose(&self, node: &str) -> bool {
        self.inner.lose(node)
    }

    /// Gives every node up for `reason` (the cluster's scheduler is gone): running pods fail
    /// as above, and pods that would start later fail to start, saying `reason`.
    fn fail(&self, reason: &str) {
        self.inner.fail(reason);
    }
}

/// `(node, address, capacity)` triples as agent specs; the connect timeout in seconds.
pub fn agent_specs(agents: Vec<(String, String, usize)>) -> Vec<runtime::AgentSpec> {
    agents
        .into_iter()
        .map(|(node, address, capacity)| runtime::AgentSpec { node, address, capacity })
        .collect()
}

pub fn timeout(seconds: f64) -> Result<std::time::Duration, BindingError> {
    std::time::Duration::try_from_secs_f64(seconds)
        .map_err(|_| BindingError::Shape(not_seconds("connect_timeout", seconds)))
}
