//! The runtime driven end to end: a real Job handle and owner task on the real runtime, with
//! a fake executor that records what the owner asks of it and lets the test end pods (and,
//! for kill escalation, the real subprocess executor).

use super::executor::{
    Ended, ExecEvent, Executor, ExecutorContext, ExecutorLink, KillSwitch, Payload, PodLaunch,
};
use super::job::Job;
use crate::controller::{BackoffConfig, EffectiveSpec, PodId, PodPhase, ProcessEnd};
use crate::status::ConditionType;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What the fake executor was asked, and the pods it holds.
#[derive(Default)]
struct FakeState {
    /// Every start call, in order.
    starts: Vec<PodId>,
    /// Every kill call, with its grace period.
    kills: Vec<(PodId, Duration)>,
    /// Started pods not ended yet.
    running: Vec<PodId>,
    /// Pods held back (not started yet): `start` queues them when `hold` is set.
    queued: Vec<PodId>,
    /// Pods cancelled while queued.
    cancelled: Vec<PodId>,
    link: Option<ExecutorLink>,
}

/// The test's side of a [`FakeExecutor`].
#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    /// Pods wait in a queue until [`Fake::start_queued`] instead of starting at once.
    hold: bool,
    /// A kill ends a running pod at once (as SIGTERM would end a process that obeys it).
    end_on_kill: bool,
}

impl Fake {
    fn new(hold: bool, end_on_kill: bool) -> Self {
        Self { state: Arc::default(), hold, end_on_kill }
    }

    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap()
    }

    /// Installs a fresh executor sharing this state into `job`.
    fn install(&self, job: &Job) {
        let fake = self.clone();
        job.set_executor(Box::new(move |context: ExecutorContext| {
            fake.state().link = Some(context.link);
            Box::new(FakeExecutor { fake }) as Box<dyn Executor>
        }))
        .unwrap();
    }

    /// Starts every held-back pod (reported asynchronously, as a spawner thread would).
    fn start_queued(&self) {
        let mut state = self.state();
        let queued = std::mem::take(&mut state.queued);
        let at = Instant::now();
        state.running.extend(&queued);
        let events = queued.into_iter().map(|pod| ExecEvent::Started { pod, at }).collect();
        state.link.as_ref().unwrap().report(events);
    }

    /// Ends every running pod with `code`.
    fn end_all(&self, code: i32) {
        let mut state = self.state();
        let running = std::mem::take(&mut state.running);
        let events = running.into_iter().map(|pod| ended(pod, ProcessEnd::Exited(code))).collect();
        state.link.as_ref().unwrap().report(events);
    }
}

fn ended(pod: PodId, end: ProcessEnd) -> ExecEvent {
    let exit_code = end.exit_code();
    ExecEvent::Ended(Ended {
        pod,
        exit_code,
        end: Some(end),
        payload: Payload::None,
        log: None,
        at: Instant::now(),
    })
}

struct FakeExecutor {
    fake: Fake,
}

impl Executor for FakeExecutor {
    fn start(&mut self, launch: &PodLaunch<'_>, out: &mut Vec<ExecEvent>) {
        let mut state = self.fake.state();
        let pod = launch.pod.id;
        state.starts.push(pod);
        if self.fake.hold {
            state.queued.push(pod);
        } else {
            state.running.push(pod);
            out.push(ExecEvent::Started { pod, at: Instant::now() });
        }
    }

    fn kill(&mut self, pod: PodId, grace: Duration, out: &mut Vec<ExecEvent>) {
        let mut state = self.fake.state();
        state.kills.push((pod, grace));
        if let Some(i) = state.queued.iter().position(|p| *p == pod) {
            state.queued.remove(i);
            state.cancelled.push(pod);
            out.push(ExecEvent::Cancelled { pod, at: Instant::now() });
        } else if self.fake.end_on_kill {
            if let Some(i) = state.running.iter().position(|p| *p == pod) {
                state.running.remove(i);
                out.push(ended(pod, ProcessEnd::Signaled { signal: libc::SIGTERM, oom_killed: false }));
            }
        }
    }

    fn is_idle(&self) -> bool {
        let state = self.fake.state();
        state.running.is_empty() && state.queued.is_empty()
    }

    fn kill_switch(&self) -> KillSwitch {
        Arc::new(|| {})
    }
}

/// A fresh log folder per Job (removed with it).
fn log_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("kjob-owner-test-{}-{n}", std::process::id()))
}

/// A Job from a manifest, its spec adjusted by `tweak` (for timings shorter than the API's
/// whole seconds).
fn job(manifest: serde_json::Value, tweak: impl FnOnce(&mut EffectiveSpec)) -> Job {
    let manifest: crate::spec::Job = serde_json::from_value(manifest).unwrap();
    let uid = format!("owner-test-{}", log_dir().file_name().unwrap().to_string_lossy());
    let mut spec = EffectiveSpec::from_manifest(&manifest, &uid, BackoffConfig::default()).unwrap();
    tweak(&mut spec);
    Job::new(spec, log_dir(), true)
}

fn manifest(name: &str, parallelism: u32, completions: u32, command: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "parallelism": parallelism,
            "completions": completions,
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 7,
                "containers": [{"name": "c", "command": command}],
            }},
        },
    })
}

/// Polls `done` until it holds (a bound, not a timing assertion: only a hang reaches it).
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn delete(job: &Job) {
    job.request_delete();
    eventually("the Job to be gone", || job.wait_deleted(Duration::from_millis(50)));
}

/// A started Job of `pods` pods (all at once) that run in a fresh [`Fake`].
fn started(name: &str, pods: u32, fake: &Fake, tweak: impl FnOnce(&mut EffectiveSpec)) -> Job {
    let job = job(manifest(name, pods, pods, &["true"]), tweak);
    fake.install(&job);
    job.start().unwrap();
    job
}

#[test]
fn deletion_kills_running_pods_with_their_grace_and_the_job_ends_deleted() {
    let fake = Fake::new(false, true);
    let job = started("owner-delete", 2, &fake, |_| {});
    eventually("two running pods", || job.status().active == 2 && job.status().ready == 2);
    delete(&job);

    let state = fake.state();
    assert_eq!(state.starts.len(), 2);
    let grace = Duration::from_secs(7);
    assert_eq!(state.kills, state.starts.iter().map(|p| (*p, grace)).collect::<Vec<_>>());
    assert!(state.running.is_empty());
    drop(state);
    assert!(job.is_deleted());
    assert!(!job.is_started(), "the owner task ended");
    let pods = job.pods();
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p.pod.phase == PodPhase::Failed && p.pod.exit_code == Some(143)));
    assert!(pods.iter().all(|p| p.pod.deletion_requested_at.is_some()));
}

#[test]
fn an_active_deadline_kills_the_pods_and_fails_the_job_with_deadline_exceeded() {
    let fake = Fake::new(false, true);
    let job =
        started("owner-deadline", 3, &fake, |spec| spec.active_deadline = Some(Duration::from_millis(30)));
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));

    let status = job.status();
    let failed = status.condition(ConditionType::Failed).expect("a Failed condition");
    assert!(failed.status);
    assert_eq!(failed.reason, "DeadlineExceeded");
    assert_eq!((status.active, status.succeeded, status.failed), (0, 0, 3));
    let state = fake.state();
    assert_eq!(state.starts.len(), 3);
    assert_eq!(state.kills.len(), 3);
    assert!(state.kills.iter().all(|(_, grace)| *grace == Duration::from_secs(7)));
    drop(state);
    delete(&job);
}

#[test]
fn suspend_cancels_queued_pods_without_starting_them_and_resume_starts_new_ones() {
    let fake = Fake::new(true, false);
    let job = started("owner-suspend", 2, &fake, |_| {});
    eventually("two queued pods", || fake.state().queued.len() == 2);
    assert_eq!(job.status().active, 2, "queued pods are active (Pending)");

    job.suspend(true);
    eventually("the queued pods to be cancelled", || fake.state().cancelled.len() == 2);
    eventually("no active pod", || job.status().active == 0);
    let first = fake.state().starts.clone();
    assert_eq!(fake.state().cancelled, first);
    assert!(fake.state().running.is_empty(), "a cancelled pod never started");
    assert!(job.spec().suspend);
    let status = job.status();
    assert!(status.has_true(ConditionType::Suspended));
    assert_eq!((status.succeeded, status.failed), (0, 0), "pods removed by a suspend are not failures");

    job.suspend(false);
    eventually("two new queued pods", || fake.state().queued.len() == 2);
    let starts = fake.state().starts.clone();
    assert_eq!(starts.len(), 4);
    assert!(starts[2..].iter().all(|p| !first.contains(p)), "resume creates new pods");
    fake.start_queued();
    eventually("two running pods", || job.status().ready == 2);
    fake.end_all(0);
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let status = job.status();
    assert!(status.has_true(ConditionType::Complete));
    assert_eq!((status.succeeded, status.failed), (2, 0));
    assert_eq!(fake.state().kills.len(), 2);
    delete(&job);
}

#[test]
fn a_pod_that_ignores_sigterm_is_killed_with_sigkill_after_its_grace() {
    // The shell ignores SIGTERM after saying so in its log; its `sleep`s do not (the group
    // gets the signal), so the shell sees it and the loop goes on until SIGKILL.
    let script = "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.01; done";
    let job = job(manifest("owner-escalate", 1, 1, &["sh", "-c", script]), |spec| {
        spec.termination_grace_period = Duration::from_millis(300);
    });
    job.start().unwrap();
    let log = || std::fs::read_to_string(&job.pods()[0].log_path).unwrap_or_default();
    eventually("the pod to trap SIGTERM", || job.pods().len() == 1 && log().contains("ready"));
    let pid = job.pods()[0].pid.expect("the running pod has a pid");
    assert!(pid > 0);
    job.suspend(true);
    eventually("the pod to end", || job.status().active == 0 && job.status().terminating == 0);

    let pods = job.pods();
    assert_eq!(pods.len(), 1);
    let pod = &pods[0].pod;
    assert_eq!(pod.exit_code, Some(137), "SIGKILL ended it");
    assert_eq!(pods[0].pid, None);
    assert!(log().contains("got-term"), "SIGTERM came first: {:?}", log());
    let status = job.status();
    assert_eq!((status.active, status.succeeded, status.failed, status.terminating), (0, 0, 0, 0));
    delete(&job);
}

#[test]
fn requests_reach_a_parked_owner_before_start_and_after_deletion() {
    let job = job(manifest("owner-parked", 1, 1, &["true"]), |_| {});
    assert!(job.pods().is_empty());
    job.suspend(true);
    assert!(job.spec().suspend);
    assert!(job.scale(Some(3), None).is_ok());
    assert_eq!(job.spec().parallelism, 3);
    job.request_delete();
    assert!(job.is_deleted());
    assert!(matches!(job.start(), Err(super::RuntimeError::Deleted)));
}

#[test]
fn kill_all_sigkills_the_pods_at_once_without_the_owner_and_deletes_the_job() {
    let job = job(
        manifest("owner-kill-all", 2, 2, &["sh", "-c", "trap '' TERM; echo ready; sleep 3600"]),
        |spec| {
            spec.termination_grace_period = Duration::from_secs(3600);
        },
    );
    job.start().unwrap();
    let ready = || {
        job.pods()
            .iter()
            .filter(|p| std::fs::read_to_string(&p.log_path).is_ok_and(|l| l.contains("ready")))
            .count()
    };
    eventually("two pods that ignore SIGTERM", || ready() == 2);
    // The pods' grace is an hour (longer than `eventually` waits): only the kill switch's
    // SIGKILL ends them before that.
    job.kill_all();
    eventually("the Job to be gone", || job.wait_deleted(Duration::from_millis(50)));
    let pods = job.pods();
    assert_eq!(pods.len(), 2);
    assert!(
        pods.iter().all(|p| p.pod.exit_code == Some(137) && p.pid.is_none()),
        "{:?}",
        pods.iter().map(|p| p.pod.exit_code).collect::<Vec<_>>()
    );
}

/// An executor with a bug: it panics when asked to start a pod.
struct PanickingExecutor {
    killed: Arc<std::sync::atomic::AtomicBool>,
}

impl Executor for PanickingExecutor {
    fn start(&mut self, _pod: &PodLaunch<'_>, _out: &mut Vec<ExecEvent>) {
        panic!("a bug in an executor");
    }

    fn kill(&mut self, _pod: PodId, _grace: Duration, _out: &mut Vec<ExecEvent>) {}

    fn is_idle(&self) -> bool {
        true
    }

    fn kill_switch(&self) -> KillSwitch {
        let killed = Arc::clone(&self.killed);
        Arc::new(move || killed.store(true, Ordering::SeqCst))
    }
}

#[test]
fn a_panic_in_the_owner_kills_the_processes_and_the_job_is_gone_instead_of_hanging() {
    let killed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let job = job(manifest("owner-panic", 1, 1, &["true"]), |_| {});
    let flag = Arc::clone(&killed);
    job.set_executor(Box::new(move |_| Box::new(PanickingExecutor { killed: flag }) as Box<dyn Executor>))
        .unwrap();
    job.start().unwrap();
    eventually("the Job to be gone", || job.wait_deleted(Duration::from_millis(50)));
    assert!(killed.load(Ordering::SeqCst), "the kill switch ran");
    assert!(!job.is_started());
    assert!(job.pods().is_empty(), "the owner's state is lost: nothing to answer with");
    assert!(matches!(job.scale(Some(2), None), Err(super::RuntimeError::Deleted)));
}

#[test]
fn an_eviction_reaches_the_owner_which_kills_the_pod_with_its_grace() {
    let fake = Fake::new(false, true);
    let job = started("owner-evict", 1, &fake, |_| {});
    eventually("a running pod", || job.status().ready == 1);
    let err = job.evict("no-such-pod").unwrap_err();
    assert_eq!(err.to_string(), "pods \"no-such-pod\" not found");
    let first = job.pods()[0].pod.clone();
    job.evict(&first.name).unwrap();
    eventually("the evicted pod to end", || job.pods()[0].pod.phase == PodPhase::Failed);
    assert_eq!(fake.state().kills, vec![(first.id, Duration::from_secs(7))]);
    let evicted = job.pods()[0].pod.clone();
    assert_eq!(evicted.conditions.len(), 1);
    let condition = &evicted.conditions[0];
    assert_eq!(
        (condition.type_.as_str(), condition.reason.as_str()),
        ("DisruptionTarget", "EvictionByEvictionAPI")
    );
    let (events, next) = job.events(0);
    assert_eq!(next, events.len() as u64);
    assert!(events.iter().any(|e| e.reason == "SuccessfulDelete" && e.message.contains(&first.name)));
    delete(&job);
}

/// Occupies every thread of the shared spawner pool until the returned guard is dropped, so
/// that the spawns a Job hands to the pool meanwhile stay in flight.
struct PoolHeld {
    release: Vec<std::sync::mpsc::Sender<()>>,
}

impl Drop for PoolHeld {
    fn drop(&mut self) {
        for tx in self.release.drain(..) {
            let _ = tx.send(());
        }
    }
}

fn hold_the_spawn_pool() -> PoolHeld {
    let pool = super::spawn_pool::shared().unwrap();
    let mut release = Vec::new();
    for _ in 0..pool.threads() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        // A program that cannot start: the thread then blocks in the callback, no process made.
        let request = super::process::SpawnRequest {
            argv: vec!["kjob-no-such-program".into()],
            env: Vec::new(),
            environ: super::EnvSnapshot::from_vars([("PATH", "/usr/bin:/bin")]),
            working_dir: None,
            log_path: std::env::temp_dir().join(format!("kjob-owner-test-{}-gate.log", std::process::id())),
        };
        // Requests are taken in order: these reach every thread before a later spawn does.
        pool.submit(request, move |_| {
            let _ = rx.recv();
        });
        release.push(tx);
    }
    PoolHeld { release }
}

/// A started Job of `pods` pods (all at once) of `command`, with a grace of `grace`.
fn started_pods(name: &str, pods: u32, command: &[&str], grace: Duration) -> Job {
    let job = job(manifest(name, pods, pods, command), |spec| spec.termination_grace_period = grace);
    job.start().unwrap();
    job
}

/// The exit codes of the Job's pods, in pod order.
fn exit_codes(job: &Job) -> Vec<Option<i32>> {
    job.pods().iter().map(|p| p.pod.exit_code).collect()
}

#[test]
fn a_pod_killed_while_its_spawn_is_in_flight_is_signalled_with_its_grace_once_it_exists() {
    // The spawn pool is shared with the other tests: they only wait a little longer.
    let held = hold_the_spawn_pool();
    // Of a round of three starts, one runs inline and two go to the (held) pool.
    let job = started_pods("owner-kill-in-flight", 3, &["sleep", "3600"], Duration::from_secs(3600));
    eventually("one running pod", || job.status().ready == 1);
    assert_eq!(job.pods().iter().filter(|p| p.pid.is_some()).count(), 1, "two spawns in flight");
    job.request_delete();
    eventually("every pod to be marked for deletion", || {
        job.pods().iter().all(|p| p.pod.deletion_requested_at.is_some())
    });
    // The inline pod ends by SIGTERM; the Job waits for the two in flight.
    eventually("the inline pod to end", || exit_codes(&job).iter().filter(|c| c.is_some()).count() == 1);
    assert!(!job.wait_deleted(Duration::from_millis(20)), "spawns in flight keep the Job");
    drop(held);
    // Their grace is an hour: only the SIGTERM sent as they start ends them within `eventually`.
    eventually("the Job to be gone", || job.wait_deleted(Duration::from_millis(50)));
    assert_eq!(exit_codes(&job), vec![Some(143); 3]);
    assert!(job.pods().iter().all(|p| p.pid.is_none()));
}

#[test]
fn the_kill_switch_reaches_pods_whose_spawn_is_in_flight() {
    let held = hold_the_spawn_pool();
    let job = started_pods(
        "owner-kill-all-in-flight",
        3,
        &["sh", "-c", "trap '' TERM; sleep 3600"],
        Duration::from_secs(3600),
    );
    eventually("one running pod", || job.status().ready == 1);
    job.kill_all();
    drop(held);
    // A SIGTERM would not end them (nor their hour of grace): only the switch's SIGKILL does.
    eventually("the Job to be gone", || job.wait_deleted(Duration::from_millis(50)));
    assert_eq!(exit_codes(&job), vec![Some(137); 3]);
}

#[test]
fn a_missing_executable_fails_its_pods_whether_spawned_inline_or_on_the_pool() {
    let job = started_pods("owner-missing-exe", 3, &["kjob-no-such-program", "x"], Duration::from_secs(7));
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let pods = job.pods();
    assert_eq!(pods.len(), 3);
    for p in pods.iter() {
        assert_eq!(p.pod.phase, PodPhase::Failed);
        let message = p.pod.message.clone().unwrap_or_default();
        assert_eq!(
            message,
            "failed to start \"kjob-no-such-program\": No such file or directory (os error 2)"
        );
        let log = std::fs::read_to_string(&p.log_path).unwrap();
        assert_eq!(log, format!("kjob: {message}\n"));
    }
    let status = job.status();
    assert_eq!((status.active, status.succeeded, status.failed), (0, 0, 3));
    delete(&job);
}

#[test]
fn a_lost_node_fails_its_pod_with_disruption_target_and_a_replacement_runs() {
    let fake = Fake::new(false, true);
    // backoffLimit 0: only a pod failure policy that ignores the disruption lets the Job go on.
    let mut m = manifest("owner-node-lost", 1, 1, &["true"]);
    m["spec"]["podFailurePolicy"] = serde_json::json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]});
    let job = job(m, |spec| spec.backoff.initial = Duration::from_millis(1));
    fake.install(&job);
    job.start().unwrap();
    eventually("a running pod", || job.status().ready == 1);
    let first = job.pods()[0].pod.id;
    let link = fake.state().link.clone().unwrap();
    link.report(vec![
        ExecEvent::Bound { pod: first, node: "tcp://127.0.0.1:1".into() },
        ExecEvent::NodeLost { pod: first, at: Instant::now() },
    ]);
    fake.state().running.retain(|p| *p != first);
    eventually("a replacement pod", || fake.state().starts.len() == 2);
    fake.end_all(0);
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let status = job.status();
    assert_eq!((status.succeeded, status.failed), (1, 0));
    assert!(status.has_true(ConditionType::Complete));
    assert!(fake.state().kills.is_empty(), "nothing of a lost node's pod is left to kill");
    let pods = job.pods();
    let lost = &pods[0].pod;
    assert_eq!(lost.phase, PodPhase::Failed);
    assert_eq!(lost.node_name.as_deref(), Some("tcp://127.0.0.1:1"));
    let c = &lost.conditions[0];
    assert_eq!(
        (c.type_.as_str(), c.reason.as_str(), c.message.as_str()),
        ("DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists")
    );
    assert_eq!(pods[1].pod.node_name, None, "a pod of this machine");
    delete(&job);
}
