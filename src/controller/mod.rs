//! The pure Job controller: every Kubernetes rule kjob implements, as a deterministic state
//! machine over events and a virtual clock. No I/O, no clock reads, no tokio, no PyO3.

pub mod backoff;
pub mod container_env;
pub mod defaults;
pub mod env_sources;
pub mod events;
pub mod failure_policy;
mod idle;
mod indexed;
mod job_controller;
mod kubelet;
pub mod labels;
pub mod names;
mod node_lost;
pub mod pod;
pub mod pod_containers;
pub mod restore;
pub mod simulate;
pub mod success_policy;

#[cfg(test)]
mod policy_tests;
#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod test_support;

pub use defaults::{
    BackoffConfig, CompletionMode, ContainerLayout, ContainerSpec, EffectiveSpec, PodReplacementPolicy,
    RestartPolicy,
};
pub use events::{EventType, JobEvent};
pub use job_controller::{Action, Controller, Event, Plan};
pub use node_lost::{NODE_LOST_MESSAGE, NODE_LOST_REASON};
pub use pod::{ContainerState, Pod, PodCondition, PodException, PodId, PodPhase, ProcessEnd};
