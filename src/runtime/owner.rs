//! A Job's owner: the one task that holds the Job's controller and its executor.
//!
//! Everything that changes a Job goes through its owner as a message: the handle's calls
//! (suspend, delete, scale, evict), the executor's news (a pod started, ended, could not
//! start), the controller's timers and the end of the sweep. The owner folds a batch of them
//! in named phases ([`Owner::step`]) and publishes what readers need at once (status, spec,
//! whether the Job finished or is gone, results) in [`Shared`]. Readers that need more (the
//! pod list, the events) ask the owner, which answers between steps.
//!
//! Before `start()` and after the Job is gone there is no owner task: the owner is parked in
//! [`Shared`] and the handle works on it directly (see [`Slot`]).
//!
//! On the runtime's one thread, a message from a pod's exit watcher or a worker's reader to
//! the owner is an in-thread wake-up: no thread hand-off sits between a pod's exit and its
//! replacement.

use super::env_snapshot::EnvSnapshot;
use super::executor::{pod_log_path, Ended, ExecEvent, Executor, LogRange, Payload, PodLaunch};
use super::job::{PodView, PodViews};
use super::notify::Watchers;
use super::{process, tokio_runtime, ExecutorNote};
use crate::controller::simulate::CountedAs;
use crate::controller::{
    Action, Controller, EffectiveSpec, Event, JobEvent, Plan, PodException, PodId, PodPhase,
};
use crate::status::{JobStatus, Time};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

/// What the owner is told.
pub(super) enum Msg {
    /// Events an executor reports (see `ExecutorLink::report`).
    Executor(Vec<ExecEvent>),
    /// A note from the executor to itself (see `ExecutorLink::note`).
    Note(ExecutorNote),
    Suspend(bool),
    Delete,
    /// Something changed the controller's spec, or the Job just started: sync now.
    Wake,
    /// The sweep of escaped descendants is done.
    SweepDone,
    /// A request from the handle, run on the owner (see `Job::ask`).
    Ask(Ask),
}

/// A request from the handle: runs on the owner between folds, and replies on its own.
pub(super) type Ask = Box<dyn FnOnce(&mut Owner) + Send>;

/// Where the owner is: parked in [`Shared`] (before `start()` and after the Job is gone),
/// or running as a task that this sender reaches.
pub(super) enum Slot {
    Parked(Box<Owner>),
    Running(UnboundedSender<Msg>),
}

/// What the owner publishes after every step, for readers that must not wait for it.
pub(super) struct Published {
    pub(super) status: Arc<JobStatus>,
    pub(super) spec: Arc<EffectiveSpec>,
    /// The owner task runs (from `start()` until the Job is gone).
    pub(super) started: bool,
    pub(super) finished: bool,
    pub(super) deleted: bool,
}

/// A Job's state as its handle, its owner and the process-wide registry share it.
pub(super) struct Shared {
    pub(super) slot: Mutex<Slot>,
    pub(super) published: Mutex<Published>,
    /// Woken when the Job finishes or is gone (waiters wait for nothing else).
    pub(super) changed: Condvar,
    /// Pickled return values of succeeded callable pods, in completion order, with the pod's
    /// index. Only appended to.
    pub(super) results: Mutex<Vec<(Option<u32>, Vec<u8>)>>,
    /// Kills the executor's processes from any thread, set when the Job starts.
    pub(super) kill_switch: Mutex<Option<super::KillSwitch>>,
    /// Watchers are woken after every step, not only at the end.
    pub(super) watchers: Watchers,
    /// The fork generation (see `super::job`) and the process the Job was made in.
    pub(super) generation: u64,
    pub(super) pid: u32,
    pub(super) name: String,
    /// Wall-clock time of the controller's time 0 (a restored Job's is the stored one).
    pub(super) origin_wall: Mutex<SystemTime>,
}

impl Shared {
    pub(super) fn slot(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn published(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sweep of a Job's escaped descendants: a deleted Job is gone only once it is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    NotYet,
    Running,
    Done,
}

/// The controller and what the owner keeps about its pods: what executor events fold into.
struct Books {
    controller: Controller,
    origin: Instant,
    /// Pods whose output is a byte range of a shared file (callable pods).
    /// Ordered by pod (pods are numbered in creation order): `pods()` looks every pod up in
    /// order, which walks the tree's nodes in order, where a hash map's lookups of 100,000
    /// pods each missed the cache.
    log_ranges: BTreeMap<PodId, LogRange>,
    /// Return values of pods that ended in this fold, kept once their pods succeeded.
    ended_results: Vec<(PodId, Vec<u8>)>,
    /// Results of succeeded pods, for the next publish.
    new_results: Vec<(Option<u32>, Vec<u8>)>,
    /// A stored callable Job's results log (see `results_log.rs`): written before a
    /// succeeded pod is visible to anyone.
    pub(super) results_log: Option<super::results_log::ResultsLog>,
}

pub(super) struct Owner {
    books: Books,
    /// Made when the Job starts; `None` before.
    executor: Option<Box<dyn Executor>>,
    /// What makes the executor; `None` means the subprocess executor.
    pub(super) factory: Option<super::ExecutorFactory>,
    pub(super) log_dir: PathBuf,
    /// The environment the Job's processes inherit, taken by `start()`.
    pub(super) environ: EnvSnapshot,
    /// A private log folder is removed with the Job.
    owns_log_dir: bool,
    /// The owner's own inbox, for the sweep's answer; `None` before start.
    tx: Option<UnboundedSender<Msg>>,
    /// Plans of deletes and evictions folded in this step.
    plans: Vec<Plan>,
    /// Reused buffer for the events an executor call returns.
    out: Vec<ExecEvent>,
    pub(super) deleted: bool,
    /// Events were folded in since the last sync.
    needs_sync: bool,
    /// Syncs are batched until then (see [`Owner::sync_when_due`]).
    next_sync: Instant,
    /// The controller asked to be synced again at this time.
    wake_at: Option<Instant>,
    /// Escaped descendants are swept once the Job has ended (see [`Sweep`]).
    swept: Sweep,
    /// The spec changed (suspend, scale) since it was last published.
    spec_changed: bool,
    /// The status changed (only a sync or a scale changes it) since it was last published.
    status_changed: bool,
}

/// After a sync that took T, events are folded in for this many T before the next sync.
const SYNC_BATCH_FACTOR: u32 = 8;

/// The shortest batching window worth waiting for (tokio's timers tick in milliseconds).
const MIN_BATCH_WINDOW: Duration = Duration::from_millis(1);

/// Rounds of sync in one step at most (see [`Owner::sync_when_due`]).
const MAX_SYNC_ROUNDS: u32 = 8;

impl Owner {
    pub(super) fn new(controller: Controller, log_dir: PathBuf, owns_log_dir: bool, origin: Instant) -> Self {
        Self {
            books: Books {
                controller,
                origin,
                log_ranges: BTreeMap::new(),
                ended_results: Vec::new(),
                new_results: Vec::new(),
                results_log: None,
            },
            executor: None,
            factory: None,
            log_dir,
            environ: EnvSnapshot::default(),
            owns_log_dir,
            tx: None,
            plans: Vec::new(),
            out: Vec::new(),
            deleted: false,
            needs_sync: true,
            next_sync: Instant::now(),
            wake_at: None,
            swept: Sweep::NotYet,
            spec_changed: false,
            status_changed: false,
        }
    }

    pub(super) fn controller(&self) -> &Controller {
        &self.books.controller
    }

    /// Takes over a stored Job (see `controller/restore.rs`): its clock starts `elapsed`
    /// after the stored Job's origin, so stored times and deadlines carry on.
    pub(super) fn restore(&mut self, prior: crate::controller::restore::Prior, elapsed: Duration) {
        let now = Instant::now();
        self.books.origin = now.checked_sub(elapsed).unwrap_or(now);
        let at = self.books.now();
        self.books.controller.restore(prior, at);
        self.status_changed = true;
    }

    pub(super) fn set_results_log(&mut self, log: super::results_log::ResultsLog) {
        self.books.results_log = Some(log);
    }

    /// Hands the owner its executor and inbox when the Job starts.
    pub(super) fn begin(&mut self, executor: Box<dyn Executor>, tx: UnboundedSender<Msg>) {
        self.executor = Some(executor);
        self.tx = Some(tx);
    }

    /// Folds messages into the controller and, unless syncs are being batched, syncs and
    /// carries out the plan; then settles an ending Job and publishes.
    fn step(&mut self, msgs: Vec<Msg>, shared: &Shared) {
        let was_finished = self.books.controller.is_finished();
        let now = self.books.now();
        self.fold_messages(msgs, now);
        for plan in std::mem::take(&mut self.plans) {
            self.execute(&plan);
            // Rare (deletes, evictions): publish the status after them whether or not a sync
            // follows, rather than rely on which controller calls may change it.
            self.status_changed = true;
        }
        self.sync_when_due(now);
        self.settle();
        self.publish(shared, was_finished);
        if self.executor.as_ref().is_some_and(|e| e.reports_quickly() && !e.is_idle()) {
            super::stay_awake();
        }
    }

    /// Phase 1: every message becomes controller events, plans or answers.
    fn fold_messages(&mut self, msgs: Vec<Msg>, now: Time) {
        let mut executor_news = false;
        for msg in msgs {
            match msg {
                Msg::Executor(mut events) => {
                    self.books.fold(&mut events);
                    executor_news = true;
                }
                Msg::Note(note) => {
                    if let Some(executor) = &mut self.executor {
                        executor.on_note(note, &mut self.out);
                        self.books.fold(&mut self.out);
                    }
                    executor_news = true;
                }
                Msg::Suspend(suspend) => self.suspend(suspend),
                Msg::Delete => self.plans.push(self.books.controller.delete(now)),
                Msg::Wake => {}
                Msg::SweepDone => self.swept = Sweep::Done,
                Msg::Ask(ask) => ask(self),
            }
            self.needs_sync = true;
        }
        // An executor that reported pods done has room for queued ones, sync or no sync.
        // Once per step, not per report: a batch of reports becomes one write per worker.
        if executor_news {
            if let Some(executor) = &mut self.executor {
                executor.flush(&mut self.out);
                if self.books.fold(&mut self.out) {
                    self.needs_sync = true;
                }
            }
        }
    }

    /// Phase 2, run for plans of deletes and evictions and for every sync: carries out a
    /// plan. Returns whether the controller has news to sync on: a container that could not
    /// start or was cancelled, or created pods (upstream's informer reports new pods the same
    /// way).
    fn execute(&mut self, plan: &Plan) -> bool {
        let Some(executor) = &mut self.executor else { return false };
        let mut news = false;
        for action in &plan.actions {
            match *action {
                Action::CreatePod(pod)
                | Action::RestartContainer(pod)
                | Action::StartContainer { pod, .. } => {
                    news |= matches!(action, Action::CreatePod(_));
                    let container = match *action {
                        Action::StartContainer { container, .. } => Some(container),
                        _ => None,
                    };
                    let controller = &self.books.controller;
                    if let Some(pod) = controller.pod(pod) {
                        let launch = PodLaunch {
                            pod,
                            spec: controller.spec(),
                            log_dir: &self.log_dir,
                            environ: &self.environ,
                            container,
                        };
                        executor.start(&launch, &mut self.out);
                    }
                }
                Action::KillContainer { pod, container, grace } => {
                    executor.kill_container(pod, container, grace, &mut self.out);
                }
                Action::KillPod { pod, grace } => executor.kill(pod, grace, &mut self.out),
            }
            news |= self.books.fold(&mut self.out);
        }
        executor.flush(&mut self.out);
        news | self.books.fold(&mut self.out)
    }

    /// Phase 3: the sync, unless events are being batched.
    ///
    /// Syncs cost time in proportion to the Job's live pods. Like upstream's batching of pod
    /// events (`SyncJobBatchPeriod`), but adaptive: after a sync that took T, events are only
    /// folded in for the next 8T (`SYNC_BATCH_FACTOR`), so syncing takes at most about a
    /// ninth of the time, and small Jobs (T under `MIN_BATCH_WINDOW` / 8) see no delay at
    /// all. No window is kept while the controller has more to do at once, or when no pod is
    /// running.
    fn sync_when_due(&mut self, now: Time) {
        let due = self.wake_at.is_some_and(|w| Instant::now() >= w);
        // A batching window shorter than the timer's resolution would cost more latency (the
        // owner's timer fires on millisecond ticks) than the sync it saves: sync at once then.
        // With no pod running there is no news left to batch with: sync at once too.
        let batching = self.next_sync.saturating_duration_since(Instant::now()) >= MIN_BATCH_WINDOW
            && !self.nothing_running();
        if !(self.needs_sync || due) || batching {
            return;
        }
        // A pod that could not start is an event too: sync until nothing new happens. A few
        // rounds at most: with no backoff delay, pods that fail to start could otherwise be
        // replaced forever within one step.
        let mut plan;
        let mut sync_time = Duration::ZERO;
        let mut rounds = 0;
        self.needs_sync = false;
        loop {
            let started = Instant::now();
            plan = self.books.controller.sync(now);
            sync_time += started.elapsed();
            rounds += 1;
            if !self.execute(&plan) {
                break;
            }
            if rounds == MAX_SYNC_ROUNDS {
                self.needs_sync = true;
                break;
            }
        }
        // The window is measured on one round: a burst of rounds that created pods is work
        // the Job needed, not overhead to amortise. And when the controller wants to go on
        // at once (more pods to create than one sync may), it does not wait at all.
        let go_on = self.needs_sync || plan.wake_at.is_some_and(|t| t <= now);
        self.next_sync =
            if go_on { Instant::now() } else { Instant::now() + sync_time / rounds * SYNC_BATCH_FACTOR };
        // A wake beyond what an Instant can hold (a deadline of i64::MAX seconds) is never.
        self.wake_at = plan.wake_at.and_then(|t| self.books.origin.checked_add(t.max(now)));
        self.status_changed = true;
    }

    /// Whether no pod runs or waits to: no pod event can come that a batched sync would fold in.
    fn nothing_running(&self) -> bool {
        self.executor.as_ref().is_none_or(|e| e.is_idle())
    }

    /// Phase 4: an ending Job with no process left gives its executor's resources back, has
    /// its escaped descendants swept, and (when deleted) is gone once that is done.
    fn settle(&mut self) {
        let controller = &self.books.controller;
        // Only an ending Job asks whether processes are left (the answer costs a pass over
        // the Job's live pods).
        let ending = controller.is_finished() || controller.is_deleting();
        let settled = ending && !controller.has_live_processes();
        if settled {
            if let Some(executor) = &mut self.executor {
                executor.release();
            }
            if self.swept == Sweep::NotYet {
                // A container's processes end with it: whatever a pod left behind outside its
                // process group (a daemon that called setsid, the pods of a nested Job) goes
                // when the Job ends. A deleted Job is gone once that is done.
                self.swept = Sweep::Running;
                let uid = controller.spec().uid.clone();
                let tx = self.tx.clone();
                tokio_runtime().spawn_blocking(move || {
                    process::sweep(&uid);
                    if let Some(tx) = tx {
                        let _ = tx.send(Msg::SweepDone);
                    }
                });
            }
        }
        if controller.is_deleting() && settled && self.swept == Sweep::Done {
            self.deleted = true;
            if self.owns_log_dir {
                let _ = std::fs::remove_dir_all(&self.log_dir);
            }
        }
    }

    /// Phase 5: what readers need without asking (see [`Published`]). Waiters are woken only
    /// when the Job finished or is gone; watchers after every step.
    pub(super) fn publish(&mut self, shared: &Shared, was_finished: bool) {
        if !self.books.new_results.is_empty() {
            // Before the Job is published finished: a waiter woken by that reads results.
            shared.results.lock().unwrap_or_else(|e| e.into_inner()).append(&mut self.books.new_results);
        }
        let controller = &self.books.controller;
        // Copies only what changed: most steps of a busy Job fold events without a sync.
        let status = std::mem::take(&mut self.status_changed).then(|| Arc::new(controller.status().clone()));
        let spec = std::mem::take(&mut self.spec_changed).then(|| Arc::new(controller.spec().clone()));
        let finished = controller.is_finished();
        let mut published = shared.published();
        let old_status = status.map(|status| std::mem::replace(&mut published.status, status));
        let old_spec = spec.map(|spec| std::mem::replace(&mut published.spec, spec));
        published.finished = finished;
        published.deleted = self.deleted;
        // A Job that is gone has no owner task any more (it parks right after this step).
        published.started &= !self.deleted;
        drop(published);
        drop((old_status, old_spec));
        if self.deleted || finished != was_finished {
            shared.changed.notify_all();
        }
        shared.watchers.notify();
    }

    /// When the owner must step next even without news: when the batched sync is due, or
    /// the controller's wake time, but never before the batching window ends.
    fn timer_target(&self) -> Option<Instant> {
        timer_target(self.needs_sync, self.next_sync, self.wake_at)
    }

    /// Suspends or resumes (the controller kills or creates pods at the next sync).
    pub(super) fn suspend(&mut self, suspend: bool) {
        self.books.controller.observe(Event::SetSuspend(suspend));
        self.spec_changed = true;
    }

    /// The local Eviction API: the pod gets `DisruptionTarget=True` and is deleted.
    pub(super) fn evict(&mut self, pod_name: &str) -> Result<(), String> {
        let now = self.books.now();
        let plan = self.books.controller.evict(pod_name, now)?;
        self.plans.push(plan);
        Ok(())
    }

    /// Changes `parallelism` and (Indexed Jobs, in tandem) `completions`.
    pub(super) fn scale(
        &mut self,
        parallelism: Option<i64>,
        completions: Option<i64>,
    ) -> Result<(), crate::spec::FieldErrors> {
        self.books.controller.scale(parallelism, completions)?;
        self.spec_changed = true;
        self.status_changed = true;
        Ok(())
    }

    /// The kept events with sequence number `since` or later, and the next number.
    pub(super) fn events(&self, since: u64) -> (Vec<JobEvent>, u64) {
        let log = self.books.controller.events();
        (log.since(since).cloned().collect(), log.next_sequence())
    }

    pub(super) fn pods(&self) -> PodViews {
        let controller = &self.books.controller;
        let spec = controller.spec();
        let pods = controller
            .pods()
            .iter()
            .map(|pod| {
                let range = self.books.log_ranges.get(&pod.id);
                PodView {
                    pod: pod.clone(),
                    log_path: match range {
                        Some((path, _, _)) => Arc::clone(path),
                        None => pod_log_path(&self.log_dir, &pod.name).into(),
                    },
                    log_range: range.map(|(_, a, b)| (*a, *b)),
                    pid: self.executor.as_ref().and_then(|e| e.pid(pod.id)),
                    counted_as: CountedAs::of(controller, pod).as_str(),
                }
            })
            .collect();
        PodViews {
            pods,
            job_labels: spec.labels.clone(),
            job_annotations: spec.annotations.clone(),
            counts_per_index: spec.backoff_limit_per_index.is_some(),
        }
    }
}

/// See [`Owner::timer_target`]: a wake time already past must not make the owner step (and
/// find nothing to do) again and again until the batching window ends.
fn timer_target(needs_sync: bool, next_sync: Instant, wake_at: Option<Instant>) -> Option<Instant> {
    if needs_sync {
        Some(next_sync)
    } else {
        wake_at.map(|w| w.max(next_sync))
    }
}

impl Books {
    fn now(&self) -> Time {
        Instant::now().duration_since(self.origin)
    }

    fn time(&self, at: Instant) -> Time {
        at.duration_since(self.origin)
    }

    /// Folds (and drains) an executor's events. Returns whether there is news to sync on:
    /// anything but a start or a warning.
    fn fold(&mut self, events: &mut Vec<ExecEvent>) -> bool {
        if events.is_empty() {
            return false;
        }
        let mut news = false;
        for event in events.drain(..) {
            news |= !matches!(
                event,
                ExecEvent::Started { .. } | ExecEvent::Warning { .. } | ExecEvent::Bound { .. }
            );
            let (container, event) = match event {
                ExecEvent::InContainer(container, event) => (Some(container), *event),
                event => (None, event),
            };
            if let Some(container) = container {
                // A container of a pod with several: no payload, no shared log.
                let Some(event) = self.container_event(event) else { continue };
                self.controller.observe(Event::OfContainer { container, event: Box::new(event) });
                continue;
            }
            let observed = match event {
                ExecEvent::Started { pod, at } => Event::ContainerStarted { pod, at: self.time(at) },
                ExecEvent::StartFailed { pod, message, at } => {
                    Event::ContainerStartFailed { pod, message, at: self.time(at) }
                }
                ExecEvent::Cancelled { pod, at } => Event::ContainerCancelled { pod, at: self.time(at) },
                ExecEvent::Warning { reason, message } => {
                    self.controller.warn(self.now(), reason, message);
                    continue;
                }
                ExecEvent::Ended(ended) => {
                    self.ended(ended);
                    continue;
                }
                ExecEvent::Bound { pod, node } => Event::Bound { pod, node },
                ExecEvent::NodeLost { pod, at } => Event::NodeLost { pod, at: self.time(at) },
                ExecEvent::InContainer(..) => continue,
            };
            self.controller.observe(observed);
        }
        // A result only counts for a pod that succeeded (a killed pod may still report one).
        for (pod, bytes) in self.ended_results.drain(..) {
            if let Some(pod) = self.controller.pod(pod).filter(|p| p.phase == PodPhase::Succeeded) {
                if let Some(log) = &mut self.results_log {
                    log.push(pod.index, &pod.name, &bytes);
                }
                self.new_results.push((pod.index, bytes));
            }
        }
        // Durable before this fold's successes show anywhere (see `results_log.rs`).
        if let Some(Err(message)) = self.results_log.as_mut().map(|log| log.write()) {
            self.controller.warn(self.now(), "ResultsNotStored", message);
        }
        news
    }

    /// An event about one container of a pod with several, as the controller's event.
    fn container_event(&self, event: ExecEvent) -> Option<Event> {
        Some(match event {
            ExecEvent::Started { pod, at } => Event::ContainerStarted { pod, at: self.time(at) },
            ExecEvent::StartFailed { pod, message, at } => {
                Event::ContainerStartFailed { pod, message, at: self.time(at) }
            }
            ExecEvent::Cancelled { pod, at } => Event::ContainerCancelled { pod, at: self.time(at) },
            ExecEvent::Ended(Ended { pod, exit_code, end, at, .. }) => Event::ContainerEnded {
                pod,
                end: end.unwrap_or(crate::controller::ProcessEnd::Exited(exit_code)),
                at: self.time(at),
            },
            // About the whole pod, whichever container the executor names.
            ExecEvent::Bound { pod, node } => Event::Bound { pod, node },
            ExecEvent::NodeLost { pod, at } => Event::NodeLost { pod, at: self.time(at) },
            ExecEvent::Warning { .. } | ExecEvent::InContainer(..) => return None,
        })
    }

    /// A pod's end becomes controller events (and a result, and a log range).
    fn ended(&mut self, ended: Ended) {
        let Ended { pod, exit_code, end, payload, log, at } = ended;
        if let Some(log) = log {
            if log.2 > log.1 || !self.log_ranges.contains_key(&pod) {
                self.log_ranges.insert(pod, log);
            }
        }
        let at = self.time(at);
        // A pod that raised reports its exception, not how its code ended; one whose return
        // value could not be sent back says so.
        let raised = matches!(payload, Payload::Exception(..));
        let mut failed_because = None;
        match payload {
            Payload::Result(bytes) if exit_code == 0 => self.ended_results.push((pod, bytes)),
            Payload::Exception(types, message, traceback) => {
                let exception = PodException { types, message, traceback };
                self.controller.observe(Event::ContainerRaised { pod, exception });
            }
            Payload::StartError(message) => {
                // Set up failed in the worker: as a container that could not start.
                self.controller.observe(Event::ContainerStartFailed { pod, message, at });
                return;
            }
            Payload::ResultError(types, message, reason) => {
                let kind = types.first().map_or("", String::as_str);
                failed_because = Some((reason.clone(), format!("{reason}: {kind}: {message}")));
                let exception =
                    PodException { message: format!("{reason}: {message}"), traceback: String::new(), types };
                self.controller.observe(Event::ContainerRaised { pod, exception });
            }
            Payload::Result(_) | Payload::None => {}
        }
        let event = if let Some((reason, message)) = failed_because {
            Event::ContainerFailed { pod, exit_code, reason, message, at }
        } else if raised {
            Event::ContainerExited { pod, exit_code, at }
        } else {
            // The process ended with the pod (a subprocess; a worker that died with the pod:
            // `os._exit`, a signal), or the pod's code ended with this exit code (`sys.exit`).
            let end = end.unwrap_or(crate::controller::ProcessEnd::Exited(exit_code));
            Event::ContainerEnded { pod, end, at }
        };
        self.controller.observe(event);
    }
}

/// The owner task: steps on every batch of messages and on the controller's timers, until
/// the Job is gone; then parks the owner back in [`Shared`].
pub(super) async fn run(mut owner: Box<Owner>, shared: Arc<Shared>, mut rx: UnboundedReceiver<Msg>) {
    let _unwinding = Unwinding(Arc::clone(&shared));
    owner.step(vec![Msg::Wake], &shared);
    let mut inbox: Vec<Msg> = Vec::new();
    while !owner.deleted {
        let received = match owner.timer_target() {
            Some(at) => tokio::select! {
                msg = rx.recv() => msg.map(Some),
                () = tokio::time::sleep_until(at.into()) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        let Some(first) = received else { break };
        inbox.extend(first);
        while let Ok(msg) = rx.try_recv() {
            inbox.push(msg);
        }
        owner.step(std::mem::take(&mut inbox), &shared);
    }
    park(owner, &shared, rx);
}

/// Should the owner task panic (a bug), tokio catches the panic and the Job's state is lost:
/// its processes are killed and the Job is published gone, so that no pod outlives it and no
/// waiter waits forever.
struct Unwinding(Arc<Shared>);

impl Drop for Unwinding {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let kill = self.0.kill_switch.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(kill) = kill {
            kill();
        }
        let mut published = self.0.published();
        published.deleted = true;
        published.started = false;
        drop(published);
        self.0.changed.notify_all();
        self.0.watchers.notify();
    }
}

/// The owner goes back into [`Shared`]. Requests already sent are answered first; the
/// slot's lock makes a request sent after the inbox closed wait for the parked owner.
fn park(mut owner: Box<Owner>, shared: &Shared, mut rx: UnboundedReceiver<Msg>) {
    let mut slot = shared.slot();
    rx.close();
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Ask(ask) = msg {
            ask(&mut owner);
        }
    }
    owner.tx = None;
    *slot = Slot::Parked(owner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_waits_for_the_batching_window_even_when_a_wake_time_has_passed() {
        let now = Instant::now();
        let window_end = now + Duration::from_millis(3);
        let past = now.checked_sub(Duration::from_millis(1)).unwrap_or(now);
        // A wake time already past must not make the owner step (and find nothing to do)
        // again and again until the window ends.
        assert_eq!(timer_target(false, window_end, Some(past)), Some(window_end));
        assert_eq!(timer_target(true, window_end, Some(past)), Some(window_end));
        // Outside a window the wake time rules; with neither, the owner only waits for news.
        let later = now + Duration::from_secs(5);
        assert_eq!(timer_target(false, now, Some(later)), Some(later));
        assert_eq!(timer_target(true, now, None), Some(now));
        assert_eq!(timer_target(false, now, None), None);
    }
}
