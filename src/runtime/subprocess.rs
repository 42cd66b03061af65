//! The subprocess executor: each pod is a process in a group of its own, its output going
//! straight into the pod's log file (see `super::process`).
//!
//! Spawns run off the runtime thread, on the shared spawner pool (`super::spawn_pool`): a
//! spawn suspends its thread until the child has exec'd, and the runtime thread drives every
//! Job. A round of starts with none of the Job's spawns in flight keeps one for itself,
//! spawned inline while the pool works on the others: a lone pod (parallelism 1) starts
//! without a thread hop. While spawns are in flight the pool is busy with this Job, and every
//! start goes to it: the runtime thread goes on folding exits (at parallelism 8 that measured
//! 0.97-1.12x the two-thread raw spawner, against 0.80-0.99x with one inline spawn per round;
//! `cargo bench --bench spawn_limit`, two runs each, 2-core VM under load). A pooled
//! spawn's result comes back as a [`SpawnDone`] note and becomes `Started`/`StartFailed` on
//! the owner; until then the pod is "in flight".

use super::executor::{
    Ended, ExecEvent, Executor, ExecutorLink, ExecutorNote, KillSwitch, Payload, PodLaunch,
};
use super::process::{self, ProcessHandle, SpawnRequest, Spawned};
use super::spawn_pool;
use super::tokio_runtime;
use crate::controller::{PodId, ProcessEnd};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// A process of the table: a pod's only container (`None`) or one container of a pod with
/// several. Ordered by pod, so that a pod's containers are one range.
type Key = (PodId, Option<usize>);

/// Every key of `pod`'s processes lies in this range.
fn keys_of(pod: PodId) -> std::ops::RangeInclusive<Key> {
    (pod, None)..=(pod, Some(usize::MAX))
}

/// An event about the container `key` names.
fn event_of(key: Key, event: impl FnOnce(PodId) -> ExecEvent) -> ExecEvent {
    event(key.0).in_container(key.1)
}

/// A pod's process ended (sent by its exit watcher to the executor, on the owner).
struct Exited {
    key: Key,
    end: ProcessEnd,
    at: Instant,
}

/// A pooled spawn is done (sent by the spawner thread to the executor, on the owner): the
/// process runs (it is in the table already), or the message of why it could not start.
struct SpawnDone {
    key: Key,
    outcome: Result<(), String>,
    at: Instant,
}

/// What the owner, the spawner threads and the kill switch share. Locked only to look up,
/// add or remove an entry: never across a spawn.
#[derive(Default)]
struct Table {
    /// The pods' running processes, one per container.
    procs: BTreeMap<Key, ProcessHandle>,
    /// Containers killed while their spawn was in flight, with their grace: signalled by the
    /// spawner thread as soon as their process exists.
    doomed: HashMap<Key, Duration>,
    /// The kill switch ran: every process that starts from now on is SIGKILLed at once.
    switched_off: bool,
}

type SharedTable = Arc<Mutex<Table>>;

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct SubprocessExecutor {
    table: SharedTable,
    link: ExecutorLink,
    /// Started this round, spawned at `flush`.
    batch: Vec<(Key, SpawnRequest)>,
    /// Handed to the pool, no `SpawnDone` folded yet.
    in_flight: BTreeSet<Key>,
    /// The runtime that watches the pods' exits (spawner threads register watchers on it).
    runtime: Handle,
}

impl SubprocessExecutor {
    pub fn new(link: ExecutorLink) -> Self {
        Self {
            table: Arc::default(),
            link,
            batch: Vec::new(),
            in_flight: BTreeSet::new(),
            runtime: tokio_runtime().clone(),
        }
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        lock(&self.table)
    }

    /// Spawns on the calling thread and folds the result at once.
    fn spawn_inline(&mut self, key: Key, request: &SpawnRequest, out: &mut Vec<ExecEvent>) {
        let failure = FailureContext::of(request);
        let mut done = None;
        adopt(&self.table, &self.link, &self.runtime, key, &failure, process::spawn(request), |d| {
            done = Some(d)
        });
        if let Some(done) = done {
            self.fold_spawn_done(done, out);
        }
    }

    fn fold_spawn_done(&mut self, done: SpawnDone, out: &mut Vec<ExecEvent>) {
        let SpawnDone { key, outcome, at } = done;
        self.in_flight.remove(&key);
        match outcome {
            Ok(()) => out.push(event_of(key, |pod| ExecEvent::Started { pod, at })),
            Err(message) => {
                self.table().doomed.remove(&key);
                out.push(event_of(key, |pod| ExecEvent::StartFailed { pod, message, at }));
            }
        }
    }
}

/// What a failed spawn needs to say why, kept apart from the request (which the spawn uses).
struct FailureContext {
    program: String,
    log_path: PathBuf,
}

impl FailureContext {
    fn of(request: &SpawnRequest) -> Self {
        Self {
            program: request.argv.first().cloned().unwrap_or_default(),
            log_path: request.log_path.clone(),
        }
    }

    /// Today's messages: a working directory's own error, else `failed to start "x": ...`;
    /// the pod's log says it too.
    fn report(&self, e: &io::Error) -> String {
        let message = if e.get_ref().is_some_and(|inner| inner.is::<super::spawn_raw::WorkingDirError>()) {
            e.to_string()
        } else {
            format!("failed to start {:?}: {e}", self.program)
        };
        process::append_to_log(&self.log_path, &format!("kjob: {message}"));
        message
    }
}

/// Takes a spawn's result in, on whichever thread spawned: a started process goes into the
/// table (killed at once if the kill switch ran or the pod was killed meanwhile), `report`
/// gets what the owner must fold, and then the process gets its exit watcher.
fn adopt(
    table: &Mutex<Table>,
    link: &ExecutorLink,
    runtime: &Handle,
    key: Key,
    failure: &FailureContext,
    result: io::Result<Spawned>,
    report: impl FnOnce(SpawnDone),
) {
    let spawned = match result {
        Ok(spawned) => spawned,
        Err(e) => {
            let message = failure.report(&e);
            return report(SpawnDone { key, outcome: Err(message), at: Instant::now() });
        }
    };
    let at = Instant::now();
    let handle = spawned.handle.clone();
    let kill = {
        let mut table = lock(table);
        table.procs.insert(key, handle.clone());
        // Under the lock: a kill switch that runs after it sees the process in the table.
        if table.switched_off {
            Some(Duration::ZERO)
        } else {
            table.doomed.remove(&key)
        }
    };
    if let Some(grace) = kill {
        kill_with_grace_on(runtime, handle, grace);
    }
    // Before the watcher exists: the owner must fold `Started` before the pod's `Exited`
    // (both travel its one channel, in order).
    report(SpawnDone { key, outcome: Ok(()), at });
    let link = link.clone();
    runtime.spawn(async move {
        let end = process::wait_for_exit(spawned).await;
        link.note(Box::new(Exited { key, end, at: Instant::now() }));
    });
}

impl Executor for SubprocessExecutor {
    fn start(&mut self, launch: &PodLaunch<'_>, _out: &mut Vec<ExecEvent>) {
        self.start_request((launch.pod.id, launch.container), launch.process_request());
    }

    fn flush(&mut self, out: &mut Vec<ExecEvent>) {
        let mut batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return;
        }
        // See the module doc: the pool works on the others while this thread spawns one.
        let inline = if self.in_flight.is_empty() { batch.pop() } else { None };
        if !batch.is_empty() {
            match spawn_pool::shared() {
                Ok(pool) => {
                    for (key, request) in batch {
                        self.in_flight.insert(key);
                        let failure = FailureContext::of(&request);
                        let (table, link, runtime) =
                            (Arc::clone(&self.table), self.link.clone(), self.runtime.clone());
                        pool.submit(request, move |result| {
                            adopt(&table, &link, &runtime, key, &failure, result, |done| {
                                link.note(Box::new(done));
                            });
                        });
                    }
                }
                // No spawner thread could start (thread limit): spawn here, as before the pool.
                Err(_) => {
                    for (key, request) in batch {
                        self.spawn_inline(key, &request, out);
                    }
                }
            }
        }
        if let Some((last, last_request)) = inline {
            self.spawn_inline(last, &last_request, out);
        }
    }

    fn kill(&mut self, pod: PodId, grace: Duration, out: &mut Vec<ExecEvent>) {
        let mut keys: Vec<Key> = self.batch.iter().map(|(k, _)| *k).filter(|k| k.0 == pod).collect();
        keys.extend(self.in_flight.range(keys_of(pod)));
        keys.extend(self.table().procs.range(keys_of(pod)).map(|(k, _)| *k));
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.kill_key(key, grace, out);
        }
    }

    fn kill_container(&mut self, pod: PodId, container: usize, grace: Duration, out: &mut Vec<ExecEvent>) {
        self.kill_key((pod, Some(container)), grace, out);
    }

    fn on_note(&mut self, note: ExecutorNote, out: &mut Vec<ExecEvent>) {
        let note = match note.downcast::<SpawnDone>() {
            Ok(done) => return self.fold_spawn_done(*done, out),
            Err(note) => note,
        };
        let Ok(exited) = note.downcast::<Exited>() else { return };
        let Exited { key, end, at } = *exited;
        self.table().procs.remove(&key);
        let exit_code = end.exit_code();
        out.push(event_of(key, |pod| {
            ExecEvent::Ended(Ended { pod, exit_code, end: Some(end), payload: Payload::None, log: None, at })
        }));
    }

    fn is_idle(&self) -> bool {
        self.batch.is_empty() && self.in_flight.is_empty() && self.table().procs.is_empty()
    }

    /// The first of the pod's processes (its only one, or its first running container's).
    fn pid(&self, pod: PodId) -> Option<i32> {
        self.table().procs.range(keys_of(pod)).next().map(|(_, h)| h.pid)
    }

    fn kill_switch(&self) -> KillSwitch {
        let table = Arc::clone(&self.table);
        Arc::new(move || {
            let mut table = lock(&table);
            table.switched_off = true;
            for handle in table.procs.values() {
                handle.signal_group(libc::SIGKILL);
            }
        })
    }
}

impl SubprocessExecutor {
    /// Starts (at `flush`) a container whose process is already built: a remote agent's,
    /// which gets it from the Job's owner (`super::agent`).
    pub(super) fn start_request(&mut self, key: Key, request: SpawnRequest) {
        self.batch.push((key, request));
    }

    /// Stops one process: a spawn not handed to any thread yet never starts (`Cancelled`);
    /// one in flight is signalled by its spawner thread once it exists.
    fn kill_key(&mut self, key: Key, grace: Duration, out: &mut Vec<ExecEvent>) {
        if let Some(i) = self.batch.iter().position(|(k, _)| *k == key) {
            self.batch.swap_remove(i);
            out.push(event_of(key, |pod| ExecEvent::Cancelled { pod, at: Instant::now() }));
            return;
        }
        let handle = {
            let mut table = self.table();
            match table.procs.get(&key) {
                Some(handle) => Some(handle.clone()),
                None => {
                    if self.in_flight.contains(&key) {
                        // The spawner thread signals it once it exists; a shorter grace wins.
                        let doomed = table.doomed.entry(key).or_insert(grace);
                        *doomed = (*doomed).min(grace);
                    }
                    None
                }
            }
        };
        if let Some(handle) = handle {
            kill_with_grace(handle, grace);
        }
    }
}

/// SIGTERM to the group, SIGKILL after the grace period (at once when it is zero).
pub(super) fn kill_with_grace(handle: ProcessHandle, grace: Duration) {
    kill_with_grace_on(tokio_runtime(), handle, grace);
}

/// [`kill_with_grace`] with the runtime that times the SIGKILL given (callable from any thread).
fn kill_with_grace_on(runtime: &Handle, handle: ProcessHandle, grace: Duration) {
    if grace.is_zero() {
        handle.signal_group(libc::SIGKILL);
        return;
    }
    handle.signal_group(libc::SIGTERM);
    runtime.spawn(async move {
        tokio::time::sleep(grace).await;
        handle.signal_group(libc::SIGKILL);
    });
}
