//! A remote agent: the process on another machine (a Dask worker's) in which a Job's pods
//! run. It listens on TCP; a Job's owner (`super::remote`) connects once per Job and sends
//! the pods to start and kill (`super::remote_frames`). The agent runs them with kjob's own
//! local executors — a process per command pod (`super::subprocess`), the callable worker
//! pool for callable pods (`super::workers`) — and sends back what they report, the pods'
//! output first (streamed while they run, the rest before their end).
//!
//! A connection that closes without a `Quit` frame is a lost owner: every pod of its Job is
//! killed (SIGKILL) at once. The agent itself dies with its parent (see
//! `python/kjob/_agent.py`); a shepherd then sweeps what it left.

use super::env_snapshot::EnvSnapshot;
use super::executor::{Ended, ExecEvent, Executor, ExecutorContext, ExecutorLink, KillSwitch};
use super::frames::next_frame;
use super::owner::Msg;
use super::process::SpawnRequest;
use super::remote_frames::{decode_all, write_frames, Command, FromAgent, Key, ToAgent, Work};
use super::subprocess::SubprocessExecutor;
use super::tokio_runtime;
use super::workers::{CallableConfig, CallableExecutor};
use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// How often a running command pod's new output is sent to the owner.
const LOG_INTERVAL: Duration = Duration::from_millis(100);

/// The Jobs an agent serves, by connection: their kill switches, and their sockets.
type Sessions = Arc<Mutex<HashMap<u64, (KillSwitch, std::net::TcpStream)>>>;

/// A listening agent.
pub struct Agent {
    address: SocketAddr,
    sessions: Sessions,
}

/// What every connection of an agent shares.
struct AgentConfig {
    /// The worker command (this machine's Python and `kjob/_worker.py`).
    worker_argv: Vec<String>,
    /// Each Job gets a folder in it for its pods' output (removed when the Job is done).
    log_root: PathBuf,
}

impl Agent {
    /// Listens on `host:port` (port 0: any) and serves connections on the runtime.
    pub fn start(host: &str, port: u16, worker_argv: Vec<String>, log_root: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&log_root)?;
        let listener = std::net::TcpListener::bind((host, port))?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let rt = tokio_runtime();
        let listener = {
            let _guard = rt.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let sessions: Sessions = Arc::default();
        let config = Arc::new(AgentConfig { worker_argv, log_root });
        let served = Arc::clone(&sessions);
        rt.spawn(async move {
            let next = AtomicU64::new(0);
            while let Ok((stream, _)) = listener.accept().await {
                let id = next.fetch_add(1, Ordering::Relaxed);
                tokio_runtime().spawn(session(id, stream, Arc::clone(&config), Arc::clone(&served)));
            }
        });
        Ok(Self { address, sessions })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Connections (Jobs) being served now.
    pub fn sessions(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// SIGKILLs every pod of every Job (the agent is going away). The connections close
    /// first: the owners see their pods' node gone (`DisruptionTarget`), not the exits of
    /// processes this agent killed.
    pub fn kill_all(&self) {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        for (_, socket) in sessions.values() {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
        for (kill, _) in sessions.values() {
            kill();
        }
    }
}

/// The executor a connection runs its pods with.
enum Local {
    Commands(SubprocessExecutor),
    Callable(Box<CallableExecutor>),
}

impl Local {
    fn get(&mut self) -> &mut dyn Executor {
        match self {
            Local::Commands(e) => e,
            Local::Callable(e) => &mut **e,
        }
    }
}

/// One Job's connection.
struct Session {
    local: Local,
    /// The output of command pods not ended yet: their log file and how much of it was sent.
    logs: HashMap<Key, (PathBuf, u64)>,
    out: Vec<ExecEvent>,
    /// Frames for the owner, written by the writer task.
    to_owner: UnboundedSender<Vec<u8>>,
    job_uid: String,
    environ: EnvSnapshot,
    log_dir: PathBuf,
}

async fn session(id: u64, stream: TcpStream, config: Arc<AgentConfig>, sessions: Sessions) {
    let _ = stream.set_nodelay(true);
    // A second handle on the socket, for `Agent::kill_all` to close it from any thread.
    let Ok(std_stream) = stream.into_std() else { return };
    let Ok(socket) = std_stream.try_clone() else { return };
    let stream = {
        let _guard = tokio_runtime().enter();
        match TcpStream::from_std(std_stream) {
            Ok(stream) => stream,
            Err(_) => return,
        }
    };
    let (mut reader, writer) = stream.into_split();
    let (to_owner, frames) = unbounded_channel();
    tokio_runtime().spawn(write_frames(writer, frames));
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    // The first frame says which Job this connection serves.
    let hello = loop {
        // Only the first frame: those after it (pods to start) may have come with it.
        if let Some((kind, body, len)) = next_frame(&buf) {
            let hello = ToAgent::decode(kind, body);
            buf.drain(..len);
            match hello {
                Some(hello) => break hello,
                None => return,
            }
        }
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let ToAgent::Hello { job_uid, job_name, work } = hello else { return };
    let log_dir = config.log_root.join(format!("{job_name}-{id}"));
    if std::fs::create_dir_all(&log_dir).is_err() {
        return;
    }
    let (tx, mut rx) = unbounded_channel::<Msg>();
    let link = ExecutorLink::new(tx);
    let environ = EnvSnapshot::capture();
    let local = match work {
        Work::Commands => Local::Commands(SubprocessExecutor::new(link)),
        Work::Callable { init, max_workers, reuse_workers } => {
            let config = CallableConfig {
                worker_argv: config.worker_argv.clone(),
                init,
                max_workers: (max_workers as usize).max(1),
                reuse_workers,
            };
            let context =
                ExecutorContext { link, log_dir: log_dir.clone(), job_name, environ: environ.clone() };
            Local::Callable(Box::new(CallableExecutor::new(config, context)))
        }
    };
    let mut s = Session { local, logs: HashMap::new(), out: Vec::new(), to_owner, job_uid, environ, log_dir };
    let kill = s.local.get().kill_switch();
    sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(id, (Arc::clone(&kill), socket));
    let mut tick = tokio::time::interval(LOG_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Frames that came with the hello.
    let mut quit = s.fold_frames(&mut buf);
    while !quit {
        tokio::select! {
            read = reader.read(&mut chunk) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    quit = s.fold_frames(&mut buf);
                }
            },
            msg = rx.recv() => {
                let mut msgs: Vec<Msg> = msg.into_iter().collect();
                while let Ok(more) = rx.try_recv() {
                    msgs.push(more);
                }
                s.fold_news(msgs);
            },
            _ = tick.tick() => s.stream_logs(),
        }
    }
    if quit {
        // The Job is over: idle workers go back to this agent's pool for its next Job.
        s.local.get().release();
    } else {
        // The owner is gone (its process died, the network broke): no pod outlives it.
        kill();
        s.local.get().release();
    }
    sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    let _ = std::fs::remove_dir_all(&s.log_dir);
    drain_late_news(rx);
}

/// After the session: what the executors' tasks still report (exits of killed processes)
/// has no reader, but its channel must live until they are done sending.
fn drain_late_news(mut rx: UnboundedReceiver<Msg>) {
    tokio_runtime().spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Ok(Some(_)) = tokio::time::timeout_at(deadline, rx.recv()).await {}
    });
}

impl Session {
    /// Carries out the owner's frames in `buf` (taking them out); returns whether the owner
    /// said `Quit`.
    fn fold_frames(&mut self, buf: &mut Vec<u8>) -> bool {
        let mut frames = Vec::new();
        let used = decode_all(buf, ToAgent::decode, &mut frames);
        buf.drain(..used);
        let mut quit = false;
        for frame in frames {
            match frame {
                ToAgent::Start { key, command } => self.start_command(key, command),
                ToAgent::Task { pod, index, attempt, name } => {
                    if let Local::Callable(e) = &mut self.local {
                        e.start_task(pod, index, attempt, name);
                    }
                }
                ToAgent::Kill { key, grace_ms } => {
                    let grace = Duration::from_millis(grace_ms);
                    match key.1 {
                        Some(c) => self.local.get().kill_container(key.0, c, grace, &mut self.out),
                        None => self.local.get().kill(key.0, grace, &mut self.out),
                    }
                }
                ToAgent::Quit => quit = true,
                ToAgent::Hello { .. } => {}
            }
        }
        self.local.get().flush(&mut self.out);
        self.send_out();
        quit
    }

    fn start_command(&mut self, key: Key, command: Command) {
        let Local::Commands(e) = &mut self.local else { return };
        // Only a file name: the owner does not choose where this machine writes.
        let name = Path::new(&command.log_name)
            .file_name()
            .map_or_else(|| format!("pod-{}.log", key.0 .0), |n| n.to_string_lossy().into_owned());
        let log_path = self.log_dir.join(name);
        let mut env = command.env;
        // This machine's session markers, so that its shepherd finds the pod.
        env.extend(super::job::marker_env(Some(&self.job_uid), &self.environ));
        let request = SpawnRequest {
            argv: command.argv,
            env,
            environ: self.environ.clone(),
            working_dir: command.working_dir.map(PathBuf::from),
            log_path: log_path.clone(),
        };
        e.start_request(key, request);
        self.logs.insert(key, (log_path, 0));
    }

    /// Folds what the executor's tasks reported.
    fn fold_news(&mut self, msgs: Vec<Msg>) {
        for msg in msgs {
            match msg {
                Msg::Executor(events) => self.out.extend(events),
                Msg::Note(note) => self.local.get().on_note(note, &mut self.out),
                _ => {}
            }
        }
        // Workers that reported have room for queued pods.
        self.local.get().flush(&mut self.out);
        self.send_out();
    }

    /// Sends the new output of every running command pod.
    fn stream_logs(&mut self) {
        let mut bytes = Vec::new();
        for (key, (path, sent)) in &mut self.logs {
            if let Some(new) = read_from(path, *sent, None) {
                *sent += new.len() as u64;
                FromAgent::Log(*key, new).encode_into(&mut bytes);
            }
        }
        if !bytes.is_empty() {
            let _ = self.to_owner.send(bytes);
        }
    }

    /// The events in `out` as frames to the owner, each pod's last output before its end.
    fn send_out(&mut self) {
        if self.out.is_empty() {
            return;
        }
        let mut bytes = Vec::new();
        for event in std::mem::take(&mut self.out) {
            let (container, event) = match event {
                ExecEvent::InContainer(c, event) => (Some(c), *event),
                event => (None, event),
            };
            let frame = match event {
                ExecEvent::Started { pod, .. } => FromAgent::Started((pod, container)),
                ExecEvent::StartFailed { pod, message, .. } => {
                    self.flush_log((pod, container), None, &mut bytes);
                    FromAgent::StartFailed((pod, container), message)
                }
                ExecEvent::Cancelled { pod, .. } => {
                    self.flush_log((pod, container), None, &mut bytes);
                    FromAgent::Cancelled((pod, container))
                }
                ExecEvent::Ended(Ended { pod, exit_code, end, payload, log, .. }) => {
                    self.flush_log(
                        (pod, container),
                        log.as_ref().map(|(p, a, b)| (&**p, *a, *b)),
                        &mut bytes,
                    );
                    FromAgent::Ended { key: (pod, container), exit_code, end, payload }
                }
                ExecEvent::Warning { reason, message } => {
                    FromAgent::Warning { reason: reason.to_string(), message }
                }
                ExecEvent::Bound { .. } | ExecEvent::NodeLost { .. } | ExecEvent::InContainer(..) => continue,
            };
            frame.encode_into(&mut bytes);
        }
        if !bytes.is_empty() {
            let _ = self.to_owner.send(bytes);
        }
    }

    /// A container is over: the rest of its own log file (then removed), or its byte range
    /// of a worker's shared log, as a `Log` frame.
    fn flush_log(&mut self, key: Key, range: Option<(&Path, u64, u64)>, bytes: &mut Vec<u8>) {
        let new = match range {
            Some((path, a, b)) => read_from(path, a, Some(b)),
            None => self.logs.remove(&key).and_then(|(path, sent)| {
                let new = read_from(&path, sent, None);
                let _ = std::fs::remove_file(&path);
                new
            }),
        };
        if let Some(new) = new {
            FromAgent::Log(key, new).encode_into(bytes);
        }
    }
}

/// The bytes of `path` from `start` to `end` (the end of the file when `None`); `None` when
/// there are none.
fn read_from(path: &Path, start: u64, end: Option<u64>) -> Option<Vec<u8>> {
    if end.is_some_and(|e| e <= start) {
        return None;
    }
    let mut file = std::fs::File::open(path).ok()?;
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut new = Vec::new();
    match end {
        Some(e) => file.take(e - start).read_to_end(&mut new).ok()?,
        None => file.read_to_end(&mut new).ok()?,
    };
    (!new.is_empty()).then_some(new)
}
