//! The subprocess executor: each pod is a process in a group of its own, its output going
//! straight into the pod's log file (see `super::process`).

use super::executor::{
    Ended, ExecEvent, Executor, ExecutorLink, ExecutorNote, KillSwitch, Payload, PodLaunch,
};
use super::process::{self, ProcessHandle};
use super::tokio_runtime;
use crate::controller::{PodId, ProcessEnd};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A pod's process ended (sent by its exit watcher to the executor, on the owner).
struct Exited {
    pod: PodId,
    end: ProcessEnd,
    at: Instant,
}

pub struct SubprocessExecutor {
    /// The pods' running processes. Shared only with the kill switch (interpreter exit), and
    /// locked only to look up, add or remove an entry: never across a spawn.
    procs: Arc<Mutex<HashMap<PodId, ProcessHandle>>>,
    link: ExecutorLink,
}

impl SubprocessExecutor {
    pub fn new(link: ExecutorLink) -> Self {
        Self { procs: Arc::default(), link }
    }

    fn procs(&self) -> MutexGuard<'_, HashMap<PodId, ProcessHandle>> {
        self.procs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Executor for SubprocessExecutor {
    fn start(&mut self, launch: &PodLaunch<'_>, out: &mut Vec<ExecEvent>) {
        let pod = launch.pod.id;
        let request = launch.process_request();
        match process::spawn(&request) {
            Ok(spawned) => {
                self.procs().insert(pod, spawned.handle.clone());
                out.push(ExecEvent::Started { pod, at: Instant::now() });
                let link = self.link.clone();
                tokio_runtime().spawn(async move {
                    let end = process::wait_for_exit(spawned).await;
                    link.note(Box::new(Exited { pod, end, at: Instant::now() }));
                });
            }
            Err(e) => {
                let message =
                    if e.get_ref().is_some_and(|inner| inner.is::<super::spawn_raw::WorkingDirError>()) {
                        e.to_string()
                    } else {
                        format!("failed to start {:?}: {e}", request.argv.first().map_or("", String::as_str))
                    };
                process::append_to_log(&request.log_path, &format!("kjob: {message}"));
                out.push(ExecEvent::StartFailed { pod, message, at: Instant::now() });
            }
        }
    }

    fn kill(&mut self, pod: PodId, grace: Duration, _out: &mut Vec<ExecEvent>) {
        let handle = self.procs().get(&pod).cloned();
        if let Some(handle) = handle {
            kill_with_grace(handle, grace);
        }
    }

    fn on_note(&mut self, note: ExecutorNote, out: &mut Vec<ExecEvent>) {
        let Ok(exited) = note.downcast::<Exited>() else { return };
        let Exited { pod, end, at } = *exited;
        self.procs().remove(&pod);
        let exit_code = end.exit_code();
        out.push(ExecEvent::Ended(Ended {
            pod,
            exit_code,
            end: Some(end),
            payload: Payload::None,
            log: None,
            at,
        }));
    }

    fn is_idle(&self) -> bool {
        self.procs().is_empty()
    }

    fn pid(&self, pod: PodId) -> Option<i32> {
        self.procs().get(&pod).map(|h| h.pid)
    }

    fn kill_switch(&self) -> KillSwitch {
        let procs = Arc::clone(&self.procs);
        Arc::new(move || {
            for handle in procs.lock().unwrap_or_else(|e| e.into_inner()).values() {
                handle.signal_group(libc::SIGKILL);
            }
        })
    }
}

/// SIGTERM to the group, SIGKILL after the grace period (at once when it is zero).
pub(super) fn kill_with_grace(handle: ProcessHandle, grace: Duration) {
    if grace.is_zero() {
        handle.signal_group(libc::SIGKILL);
        return;
    }
    handle.signal_group(libc::SIGTERM);
    tokio_runtime().spawn(async move {
        tokio::time::sleep(grace).await;
        handle.signal_group(libc::SIGKILL);
    });
}
