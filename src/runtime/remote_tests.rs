//! The remote executor end to end on loopback: a real agent (`super::agent`) in this process,
//! a real Job whose command pods it runs as processes, over a real TCP connection.

use super::agent::Agent;
use super::job::Job;
use super::remote::AgentSpec;
use crate::controller::{BackoffConfig, EffectiveSpec, PodPhase};
use crate::status::ConditionType;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

fn temp_dir(what: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("kjob-remote-test-{what}-{}-{n}", std::process::id()))
}

fn agent() -> Agent {
    Agent::start("127.0.0.1", 0, Vec::new(), temp_dir("agent")).unwrap()
}

fn job(name: &str, completions: u32, script: &str, pfp: Option<serde_json::Value>) -> Job {
    let mut manifest = serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "completions": completions,
            "parallelism": completions,
            "completionMode": "Indexed",
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "command": ["sh", "-c", script]}],
            }},
        },
    });
    if let Some(pfp) = pfp {
        manifest["spec"]["podFailurePolicy"] = pfp;
    }
    let manifest: crate::spec::Job = serde_json::from_value(manifest).unwrap();
    let uid = format!("remote-test-{name}-{}", std::process::id());
    let mut spec = EffectiveSpec::from_manifest(&manifest, &uid, BackoffConfig::default()).unwrap();
    spec.backoff.initial = Duration::from_millis(1);
    Job::new(spec, temp_dir("logs"), true)
}

fn on(agents: &[&Agent]) -> Vec<AgentSpec> {
    agents
        .iter()
        .enumerate()
        .map(|(i, a)| AgentSpec { node: format!("node-{i}"), address: a.address().to_string(), capacity: 2 })
        .collect()
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < until, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn command_pods_run_on_the_agents_with_their_exit_codes_nodes_and_logs() {
    let (a, b) = (agent(), agent());
    let job = job("remote-cmd", 4, "echo \"index $JOB_COMPLETION_INDEX on $NODE\"; exit 0", None);
    job.set_remote(&on(&[&a, &b]), None, Duration::from_secs(5)).unwrap();
    job.start().unwrap();
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let status = job.status();
    assert!(status.has_true(ConditionType::Complete), "{status:?}");
    let pods = job.pods();
    let mut nodes: Vec<&str> = pods.iter().map(|p| p.pod.node_name.as_deref().unwrap()).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-0", "node-0", "node-1", "node-1"], "least loaded placement");
    for p in pods.iter() {
        let log = std::fs::read_to_string(&*p.log_path).unwrap();
        assert_eq!(log, format!("index {} on \n", p.pod.index.unwrap()));
    }
    eventually("the agents to end their sessions", || a.sessions() + b.sessions() == 0);
}

#[test]
fn an_exit_code_rule_fails_the_job_from_a_remote_pod() {
    let a = agent();
    let pfp = serde_json::json!({"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]});
    let job = job("remote-pfp", 1, "echo bye >&2; exit 42", Some(pfp));
    job.set_remote(&on(&[&a]), None, Duration::from_secs(5)).unwrap();
    job.start().unwrap();
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let failed = job.status().condition(ConditionType::Failed).cloned().unwrap();
    assert_eq!(failed.reason, "PodFailurePolicy");
    let pods = job.pods();
    assert_eq!(pods[0].pod.exit_code, Some(42));
    assert_eq!(std::fs::read_to_string(&*pods[0].log_path).unwrap(), "bye\n");
}

#[test]
fn a_lost_agent_fails_its_pods_with_disruption_target_and_kills_them_there() {
    let a = agent();
    let pfp = serde_json::json!({"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]});
    let job = job("remote-lost", 1, "echo started; exec sleep 30", Some(pfp));
    let nodes = job.set_remote(&on(&[&a]), None, Duration::from_secs(5)).unwrap();
    job.start().unwrap();
    eventually("the pod to run", || job.pods().first().is_some_and(|p| p.pod.phase == PodPhase::Running));
    // Its output streams back while it runs.
    let log = job.pods()[0].log_path.clone();
    eventually("the streamed log", || std::fs::read_to_string(&*log).is_ok_and(|l| l == "started\n"));
    assert!(nodes.lose("node-0"));
    eventually("the pod to fail", || job.pods()[0].pod.phase == PodPhase::Failed);
    let lost = job.pods()[0].pod.clone();
    let c = &lost.conditions[0];
    assert_eq!((c.type_.as_str(), c.reason.as_str()), ("DisruptionTarget", "DeletionByPodGC"));
    // The agent saw its owner go: the pod's process is killed there, the session ends.
    eventually("the agent to end its session", || a.sessions() == 0);
    // Ignored by the policy, the failure leaves room for a replacement, which finds no agent.
    eventually("the Job to finish", || job.wait_finished(Duration::from_millis(50)));
    let pods = job.pods();
    assert_eq!(pods.len(), 2);
    assert_eq!(pods[1].pod.reason.as_deref(), Some("StartError"));
    assert_eq!(
        pods[1].pod.message.as_deref(),
        Some("no remote worker is left to run the pod (every agent's connection was lost)")
    );
    assert_eq!(job.status().failed, 1, "the start error counts, the disruption does not");
}

#[test]
fn no_reachable_agent_is_an_error_at_once() {
    let job = job("remote-none", 1, "true", None);
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let spec = AgentSpec { node: "gone".into(), address: format!("127.0.0.1:{port}"), capacity: 1 };
    let err = job.set_remote(&[spec], None, Duration::from_secs(1)).unwrap_err().to_string();
    assert!(err.starts_with("no remote worker could be reached: gone (agent 127.0.0.1:"), "{err}");
}

#[test]
fn an_agent_going_away_loses_its_pods_instead_of_reporting_their_kills() {
    let a = agent();
    let job = job("remote-agent-gone", 1, "exec sleep 30", None);
    job.set_remote(&on(&[&a]), None, Duration::from_secs(5)).unwrap();
    job.start().unwrap();
    eventually("the pod to run", || job.pods().first().is_some_and(|p| p.pod.phase == PodPhase::Running));
    // What the agent does when its Dask worker dies: it kills every pod and exits.
    a.kill_all();
    eventually("the pod to fail", || job.pods()[0].pod.phase == PodPhase::Failed);
    let lost = job.pods()[0].pod.clone();
    assert_eq!(lost.exit_code, None, "not the exit of a process the agent killed: {lost:?}");
    assert_eq!(lost.conditions[0].reason, "DeletionByPodGC");
    eventually("the agent to end its session", || a.sessions() == 0);
}
