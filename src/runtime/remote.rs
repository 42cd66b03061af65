//! The remote executor: a Job's pods run on other machines, each in a kjob agent
//! (`super::agent`) there, over TCP (`super::remote_frames`). The Job's owner keeps every
//! rule; this executor only places pods (on the least loaded agent), forwards starts and
//! kills, and folds the agents' reports back: their events, their pods' output (appended to
//! the pods' log files here, so `logs()` reads them as any pod's), and the loss of an agent,
//! which fails its pods as PodGC fails the pods of a deleted node (`ExecEvent::NodeLost`).

use super::executor::{
    pod_log_path, Ended, ExecEvent, Executor, ExecutorContext, ExecutorLink, ExecutorNote, KillSwitch,
    PodLaunch,
};
use super::remote_frames::{decode_all, write_frames, Command, FromAgent, Key, ToAgent, Work};
use super::tokio_runtime;
use crate::controller::PodId;
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// An agent to run pods on.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    /// The node its pods run on (`spec.nodeName`): for Dask, the worker's address.
    pub node: String,
    /// Where the agent listens (`host:port`).
    pub address: String,
    /// Pods it runs at once: a callable Job's workers there.
    pub capacity: usize,
}

/// An agent connected for one Job.
pub struct Connected {
    spec: AgentSpec,
    stream: TcpStream,
}

/// The connections of a Job's agents, reachable from any thread: to drop one whose node is
/// known lost (the Dask scheduler removed its worker), or all of them (interpreter exit,
/// which makes every agent kill the Job's pods).
#[derive(Debug, Default)]
pub struct RemoteNodes {
    streams: Vec<(Arc<str>, TcpStream)>,
    /// Why every node was given up (see [`RemoteNodes::fail`]).
    failure: std::sync::Mutex<Option<String>>,
}

impl RemoteNodes {
    /// Drops the connection to `node`'s agent: its pods fail with `DisruptionTarget` here
    /// and are killed there. Returns whether the node is one of the Job's.
    pub fn lose(&self, node: &str) -> bool {
        let mut found = false;
        for (name, stream) in &self.streams {
            if &**name == node {
                let _ = stream.shutdown(Shutdown::Both);
                found = true;
            }
        }
        found
    }

    /// Gives every node up for `reason` (the cluster's scheduler is gone): the pods fail as
    /// pods of lost nodes, and pods that start later fail to start, saying `reason`.
    pub fn fail(&self, reason: &str) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.to_string());
        self.lose_all();
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn lose_all(&self) {
        for (_, stream) in &self.streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Connects to every agent (each within `timeout`). Agents that cannot be reached are left
/// out; the error lists why, when none can be.
pub fn connect(agents: &[AgentSpec], timeout: Duration) -> Result<Vec<Connected>, String> {
    let mut connected = Vec::new();
    let mut failures = Vec::new();
    for spec in agents {
        match connect_one(&spec.address, timeout) {
            Ok(stream) => connected.push(Connected { spec: spec.clone(), stream }),
            Err(e) => failures.push(format!("{} (agent {}): {e}", spec.node, spec.address)),
        }
    }
    if connected.is_empty() {
        return Err(if failures.is_empty() {
            "no remote worker to run the pods on".to_string()
        } else {
            format!("no remote worker could be reached: {}", failures.join("; "))
        });
    }
    Ok(connected)
}

fn connect_one(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "the address resolves to nothing");
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// What an agent's reader task tells the executor.
enum AgentNews {
    Frames(usize, Vec<FromAgent>),
    /// The connection is gone (the agent died, its machine or the network failed).
    Lost(usize),
}

struct AgentConn {
    node: Arc<str>,
    /// The agent's host, for the downward API's `status.hostIP`.
    host_ip: String,
    to_agent: UnboundedSender<Vec<u8>>,
    /// Frames of this round, written at `flush`.
    batch: Vec<u8>,
    /// Containers started there and not ended.
    live: HashSet<Key>,
    /// Pods with a live container there.
    load: HashMap<PodId, u32>,
    lost: bool,
}

pub struct RemoteExecutor {
    agents: Vec<AgentConn>,
    /// Where each pod was placed (every container of a pod runs on its node).
    placed: HashMap<PodId, usize>,
    /// The local log file each live container's output is appended to.
    logs: HashMap<Key, PathBuf>,
    nodes: Arc<RemoteNodes>,
    commands: bool,
    log_dir: PathBuf,
    released: bool,
}

impl RemoteExecutor {
    /// Starts the readers and writers of the connected agents and says hello to each.
    pub fn new(
        connected: Vec<Connected>,
        nodes: Arc<RemoteNodes>,
        work: &Work,
        job_uid: &str,
        context: &ExecutorContext,
    ) -> Self {
        let rt = tokio_runtime();
        let mut agents = Vec::new();
        for (i, Connected { spec, stream }) in connected.into_iter().enumerate() {
            let (to_agent, frames) = unbounded_channel::<Vec<u8>>();
            let mut hello = Vec::new();
            let work = match work {
                Work::Callable { init, reuse_workers, .. } => Work::Callable {
                    init: init.clone(),
                    max_workers: u32::try_from(spec.capacity.max(1)).unwrap_or(u32::MAX),
                    reuse_workers: *reuse_workers,
                },
                Work::Commands => Work::Commands,
            };
            ToAgent::Hello { job_uid: job_uid.to_string(), job_name: context.job_name.clone(), work }
                .encode_into(&mut hello);
            let _ = to_agent.send(hello);
            let host_ip =
                spec.address.rsplit_once(':').map_or("", |(h, _)| h).trim_matches(['[', ']']).to_string();
            let node: Arc<str> = spec.node.into();
            let _guard = rt.enter();
            match stream.set_nonblocking(true).and_then(|()| tokio::net::TcpStream::from_std(stream)) {
                Ok(stream) => {
                    let (reader, writer) = stream.into_split();
                    rt.spawn(write_frames(writer, frames));
                    rt.spawn(read_frames(i, reader, context.link.clone()));
                }
                Err(_) => context.link.note(Box::new(AgentNews::Lost(i))),
            }
            agents.push(AgentConn {
                node,
                host_ip,
                to_agent,
                batch: Vec::new(),
                live: HashSet::new(),
                load: HashMap::new(),
                lost: false,
            });
        }
        Self {
            agents,
            placed: HashMap::new(),
            logs: HashMap::new(),
            nodes,
            commands: matches!(work, Work::Commands),
            log_dir: context.log_dir.clone(),
            released: false,
        }
    }

    /// The pod's agent: where it was placed, else the least loaded agent still connected.
    fn place(&mut self, pod: PodId, out: &mut Vec<ExecEvent>) -> Option<usize> {
        if let Some(&i) = self.placed.get(&pod) {
            return Some(i);
        }
        let (i, agent) =
            self.agents.iter().enumerate().filter(|(_, a)| !a.lost).min_by_key(|(_, a)| a.load.len())?;
        out.push(ExecEvent::Bound { pod, node: Arc::clone(&agent.node) });
        self.placed.insert(pod, i);
        Some(i)
    }

    /// A container is over: it no longer loads its agent.
    fn forget(&mut self, agent: usize, key: Key) {
        self.logs.remove(&key);
        let a = &mut self.agents[agent];
        if a.live.remove(&key) {
            if let Some(n) = a.load.get_mut(&key.0) {
                *n -= 1;
                if *n == 0 {
                    a.load.remove(&key.0);
                }
            }
        }
    }

    fn fold_frames(&mut self, agent: usize, frames: Vec<FromAgent>, out: &mut Vec<ExecEvent>) {
        let at = Instant::now();
        for frame in frames {
            match frame {
                FromAgent::Started(key) => {
                    out.push(ExecEvent::Started { pod: key.0, at }.in_container(key.1))
                }
                FromAgent::StartFailed(key, message) => {
                    self.forget(agent, key);
                    out.push(ExecEvent::StartFailed { pod: key.0, message, at }.in_container(key.1));
                }
                FromAgent::Cancelled(key) => {
                    self.forget(agent, key);
                    out.push(ExecEvent::Cancelled { pod: key.0, at }.in_container(key.1));
                }
                FromAgent::Log(key, bytes) => {
                    if let Some(path) = self.logs.get(&key) {
                        append(path, &bytes);
                    }
                }
                FromAgent::Ended { key, exit_code, end, payload } => {
                    self.forget(agent, key);
                    let ended = Ended { pod: key.0, exit_code, end, payload, log: None, at };
                    out.push(ExecEvent::Ended(ended).in_container(key.1));
                }
                FromAgent::Warning { reason, message } => {
                    let node = &self.agents[agent].node;
                    out.push(ExecEvent::Warning {
                        reason: warning_reason(&reason),
                        message: format!("{node}: {message}"),
                    });
                }
            }
        }
    }

    /// The agent is gone: every pod with a container there fails as a pod of a lost node.
    fn lost(&mut self, agent: usize, out: &mut Vec<ExecEvent>) {
        let a = &mut self.agents[agent];
        if a.lost {
            return;
        }
        a.lost = true;
        let at = Instant::now();
        let mut pods: Vec<PodId> = a.load.drain().map(|(pod, _)| pod).collect();
        pods.sort_unstable();
        for key in a.live.drain() {
            self.logs.remove(&key);
        }
        if self.released {
            return;
        }
        let node = Arc::clone(&a.node);
        if !pods.is_empty() {
            out.push(ExecEvent::Warning {
                reason: "NodeLost",
                message: format!(
                    "lost the connection to the agent on {node}: its {} pod(s) fail",
                    pods.len()
                ),
            });
        }
        out.extend(pods.into_iter().map(|pod| ExecEvent::NodeLost { pod, at }));
    }
}

/// Reasons are `'static` in events; an agent's own are one of the local executors'.
fn warning_reason(reason: &str) -> &'static str {
    match reason {
        "FailedCreateWorker" => "FailedCreateWorker",
        "WorkerDied" => "WorkerDied",
        _ => "AgentWarning",
    }
}

fn append(path: &std::path::Path, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    if let Ok(mut file) = file {
        let _ = file.write_all(bytes);
    }
}

async fn read_frames(agent: usize, mut reader: tokio::net::tcp::OwnedReadHalf, link: ExecutorLink) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        let mut frames = Vec::new();
        let used = decode_all(&buf, FromAgent::decode, &mut frames);
        buf.drain(..used);
        if !frames.is_empty() {
            link.note(Box::new(AgentNews::Frames(agent, frames)));
        }
    }
    link.note(Box::new(AgentNews::Lost(agent)));
}

impl Executor for RemoteExecutor {
    fn start(&mut self, launch: &PodLaunch<'_>, out: &mut Vec<ExecEvent>) {
        let pod = launch.pod.id;
        let key = (pod, launch.container);
        let Some(i) = self.place(pod, out) else {
            let message = match self.nodes.failure() {
                Some(reason) => format!("no remote worker can run the pod: {reason}"),
                None => "no remote worker is left to run the pod (every agent's connection was lost)".into(),
            };
            out.push(
                ExecEvent::StartFailed { pod, message, at: Instant::now() }.in_container(launch.container),
            );
            return;
        };
        let agent = &mut self.agents[i];
        if agent.lost {
            // Placed on a node that is gone (a container of a pod whose node was lost).
            out.push(ExecEvent::NodeLost { pod, at: Instant::now() });
            return;
        }
        let frame = if self.commands {
            let request = launch.process_request_on(&agent.node, &agent.host_ip);
            let env = request
                .env
                .into_iter()
                .filter(|(k, _)| k != super::SESSION_ENV && k != super::OWNERS_ENV)
                .collect();
            let log_name =
                request.log_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            self.logs.insert(key, request.log_path);
            let working_dir = request.working_dir.map(|d| d.to_string_lossy().into_owned());
            ToAgent::Start { key, command: Command { argv: request.argv, env, working_dir, log_name } }
        } else {
            self.logs.insert(key, pod_log_path(&self.log_dir, &launch.pod.name));
            let p = launch.pod;
            ToAgent::Task { pod, index: p.index, attempt: p.attempt, name: p.name.clone() }
        };
        frame.encode_into(&mut agent.batch);
        agent.live.insert(key);
        *agent.load.entry(pod).or_default() += 1;
    }

    fn kill(&mut self, pod: PodId, grace: Duration, _out: &mut Vec<ExecEvent>) {
        self.kill_key((pod, None), grace);
    }

    fn kill_container(&mut self, pod: PodId, container: usize, grace: Duration, _out: &mut Vec<ExecEvent>) {
        self.kill_key((pod, Some(container)), grace);
    }

    fn flush(&mut self, _out: &mut Vec<ExecEvent>) {
        for agent in &mut self.agents {
            if !agent.batch.is_empty() {
                let _ = agent.to_agent.send(std::mem::take(&mut agent.batch));
            }
        }
    }

    fn on_note(&mut self, note: ExecutorNote, out: &mut Vec<ExecEvent>) {
        let Ok(news) = note.downcast::<AgentNews>() else { return };
        match *news {
            AgentNews::Frames(agent, frames) => self.fold_frames(agent, frames, out),
            AgentNews::Lost(agent) => self.lost(agent, out),
        }
    }

    fn is_idle(&self) -> bool {
        self.agents.iter().all(|a| a.live.is_empty() && a.batch.is_empty())
    }

    fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        for agent in &mut self.agents {
            if !agent.lost {
                let mut quit = std::mem::take(&mut agent.batch);
                ToAgent::Quit.encode_into(&mut quit);
                let _ = agent.to_agent.send(quit);
            }
            // Dropping the last sender closes the connection once the writer has written.
            let (closed, _) = unbounded_channel();
            agent.to_agent = closed;
        }
    }

    fn kill_switch(&self) -> KillSwitch {
        let nodes = Arc::clone(&self.nodes);
        Arc::new(move || nodes.lose_all())
    }
}

impl RemoteExecutor {
    fn kill_key(&mut self, key: Key, grace: Duration) {
        let Some(&i) = self.placed.get(&key.0) else { return };
        let agent = &mut self.agents[i];
        if agent.lost {
            return;
        }
        let grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        ToAgent::Kill { key, grace_ms }.encode_into(&mut agent.batch);
    }
}

/// Makes the connections' registry for [`RemoteNodes`] (clones of the sockets).
pub fn nodes_of(connected: &[Connected]) -> RemoteNodes {
    let streams = connected
        .iter()
        .filter_map(|c| Some((Arc::from(c.spec.node.as_str()), c.stream.try_clone().ok()?)))
        .collect();
    RemoteNodes { streams, failure: std::sync::Mutex::default() }
}
