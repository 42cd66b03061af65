//! kjob: Kubernetes `batch/v1` Job semantics on one machine.
//!
//! Layers, each depending only on those below it: `python` (PyO3 bindings) → `runtime`
//! (tokio, processes, logs, timers) → `controller` (pure reconcile) → `spec` / `status`.

pub mod controller;
pub mod runtime;
pub mod spec;
pub mod status;
pub mod store;

mod python;
