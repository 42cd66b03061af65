//! Pod processes: spawn in a process group of their own with output going straight to a log
//! file, wait through a pidfd, signal the whole group, and report exit status as a container
//! runtime does (`128 + signal` when a signal ended it).
//!
//! Pods are spawned by `spawn_raw` (a vfork-style clone: the cost does not grow with the
//! parent's memory); workers by std's `Command` with `process_group(0)` and no `pre_exec`,
//! which takes the same posix_spawn path.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::job::{JOB_UID_ENV, OWNERS_ENV, SESSION_ENV, SHEPHERD_ENV};

/// Everything needed to start one container process.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    pub argv: Vec<String>,
    /// Added to (and overriding) the inherited environment.
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub log_path: PathBuf,
}

/// A started process whose group we may signal until it has been reaped.
#[derive(Clone, Debug)]
pub struct ProcessHandle {
    pub pid: i32,
    /// `true` once reaped: the pid (and so the group id) may then belong to someone else.
    reaped: Arc<Mutex<bool>>,
}

impl ProcessHandle {
    /// Sends `signal` to the whole process group, unless the leader was already reaped.
    pub fn signal_group(&self, signal: i32) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            // SAFETY: plain syscall on a group id we own while its leader is not reaped.
            unsafe {
                libc::kill(-self.pid, signal);
            }
        }
    }

    /// Whether the process has ended and been reaped.
    pub fn is_reaped(&self) -> bool {
        *self.reaped.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A started process plus the pidfd that tells when it ends.
pub struct Spawned {
    pub handle: ProcessHandle,
    pidfd: OwnedFd,
}

/// Opens the log file for appending, creating it if needed. Its folder must exist.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Starts the process. Its stdin is `/dev/null`; stdout and stderr are the log file itself.
pub fn spawn(req: &SpawnRequest) -> io::Result<Spawned> {
    let log = open_log(&req.log_path)?;
    let (pid, pidfd) = super::spawn_raw::spawn(
        &req.argv,
        &req.env,
        req.working_dir.as_deref(),
        dev_null_fd()?,
        std::os::fd::AsRawFd::as_raw_fd(&log),
    )?;
    // The child has its own copies of the log descriptor now.
    drop(log);
    Ok(Spawned { handle: ProcessHandle { pid, reaped: Arc::new(Mutex::new(false)) }, pidfd })
}

/// `/dev/null`, opened once for every pod's stdin.
fn dev_null_fd() -> io::Result<RawFd> {
    static DEV_NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    if let Some(f) = DEV_NULL.get() {
        return Ok(std::os::fd::AsRawFd::as_raw_fd(f));
    }
    let f = File::open("/dev/null")?;
    Ok(std::os::fd::AsRawFd::as_raw_fd(DEV_NULL.get_or_init(|| f)))
}

/// Starts a Python worker: its stdin and stdout are pipes to us (the protocol), stderr is
/// /dev/null until the worker points it at a log. Returns the process and the pipe ends.
pub fn spawn_piped(argv: &[String]) -> io::Result<(Spawned, ChildStdin, ChildStdout)> {
    let (program, args) =
        argv.split_first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).process_group(0);
    cmd.envs(super::job::marker_env(None));
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let spawned = follow(child)?;
    match (stdin, stdout) {
        (Some(i), Some(o)) => Ok((spawned, i, o)),
        _ => Err(io::Error::other("worker pipes missing")),
    }
}

/// Takes over a child: from now on its pidfd tells when it ends. Dropping the std `Child`
/// neither waits nor kills.
fn follow(child: Child) -> io::Result<Spawned> {
    let pid = child.id() as i32;
    drop(child);
    let pidfd = match pidfd_open(pid) {
        Ok(fd) => fd,
        Err(e) => {
            // Without a pidfd we cannot follow the process: do not leave it behind.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::waitpid(pid, std::ptr::null_mut(), 0);
            }
            return Err(e);
        }
    };
    Ok(Spawned { handle: ProcessHandle { pid, reaped: Arc::new(Mutex::new(false)) }, pidfd })
}

/// The variables of a process's environment that name what it belongs to.
struct Marks<'a> {
    job_uid: Option<&'a [u8]>,
    session: Option<&'a [u8]>,
    owners: Option<&'a [u8]>,
    /// A shepherd's: the owners of the interpreter it watches.
    shepherd_for: Option<&'a [u8]>,
}

impl<'a> Marks<'a> {
    fn parse(environ: &'a [u8]) -> Self {
        let mut marks = Marks { job_uid: None, session: None, owners: None, shepherd_for: None };
        for var in environ.split(|b| *b == 0) {
            if !var.starts_with(b"KJOB_") {
                continue;
            }
            let value = |name: &str| var.strip_prefix(name.as_bytes()).and_then(|v| v.strip_prefix(b"="));
            if let Some(v) = value(JOB_UID_ENV) {
                marks.job_uid = Some(v);
            } else if let Some(v) = value(SESSION_ENV) {
                marks.session = Some(v);
            } else if let Some(v) = value(OWNERS_ENV) {
                marks.owners = Some(v);
            } else if let Some(v) = value(SHEPHERD_ENV) {
                marks.shepherd_for = Some(v);
            }
        }
        marks
    }

    /// Whether the process belongs to `owner` (a Job UID or a session token), directly or
    /// through nested Jobs.
    fn belongs_to(&self, owner: &[u8]) -> bool {
        self.job_uid == Some(owner) || self.session == Some(owner) || listed(self.owners, owner)
    }
}

fn listed(list: Option<&[u8]>, owner: &[u8]) -> bool {
    list.is_some_and(|l| l.split(|b| *b == b',').any(|o| o == owner))
}

/// Visits every other process's pid and environment.
fn each_process(mut visit: impl FnMut(u32, &[u8])) {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me {
            continue;
        }
        if let Ok(environ) = std::fs::read(entry.path().join("environ")) {
            visit(pid, &environ);
        }
    }
}

/// How long a Job's sweep waits for the shepherds of nested kjob interpreters to finish.
const SHEPHERD_WAIT: Duration = Duration::from_secs(5);

/// The sweep when a Job ends: SIGKILLs every process that belongs to the Job `uid` (see
/// [`Marks::belongs_to`]), skipping this process. Descendants that left their pod's process
/// group (a `setsid` daemon) are found this way, and so are the pods and workers of Jobs
/// nested in its pods at any depth. Then it waits (up to `SHEPHERD_WAIT`) for the shepherds
/// of the nested interpreters to end: they remove those Jobs' private log folders once their
/// interpreter is dead. A shepherd whose interpreter lives on (an idle worker that once ran a
/// nested Job) is not waited for. Returns how many processes were signalled.
pub fn sweep(uid: &str) -> usize {
    let owner = uid.as_bytes();
    let mut killed = Vec::new();
    let mut shepherds = Vec::new();
    each_process(|pid, environ| {
        let marks = Marks::parse(environ);
        if marks.belongs_to(owner) {
            // SAFETY: plain signal to a pid that carries this Job's marker.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            killed.push(pid);
        } else if listed(marks.shepherd_for, owner) {
            shepherds.push(pid);
        }
    });
    shepherds.retain(|pid| shepherd_owner(*pid).is_none_or(|o| killed.contains(&o) || !is_alive(o)));
    let deadline = Instant::now() + SHEPHERD_WAIT;
    while !shepherds.is_empty() && Instant::now() < deadline {
        shepherds.retain(|pid| is_alive(*pid));
        if !shepherds.is_empty() {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    killed.len()
}

/// The interpreter a shepherd watches: the last argument of `_shepherd.py TOKEN PID`.
fn shepherd_owner(pid: u32) -> Option<u32> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let last = cmdline.strip_suffix(b"\0").unwrap_or(&cmdline).rsplit(|b| *b == 0).next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

/// Whether `pid` exists and is not a zombie.
fn is_alive(pid: u32) -> bool {
    match std::fs::read(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any byte.
        Ok(stat) => stat
            .iter()
            .rposition(|b| *b == b')')
            .and_then(|i| stat.get(i + 2))
            .is_some_and(|state| *state != b'Z' && *state != b'X'),
        Err(_) => false,
    }
}

/// Appends a line to a pod's log, for failures that happen before the process could.
pub fn append_to_log(path: &Path, line: &str) {
    if let Ok(mut f) = open_log(path) {
        let _ = writeln!(f, "{line}");
    }
}

fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Waits for the process to end, then kills whatever is left of its group (a container's
/// processes do not outlive its main process) and reaps it. Returns the container exit code.
pub async fn wait_for_exit(spawned: Spawned) -> i32 {
    let Spawned { handle, pidfd } = spawned;
    // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
    if let Ok(async_fd) = registered {
        // A pidfd becomes readable when its process exits.
        let _ = async_fd.readable().await;
    } else {
        // Registration failed (should not happen on Linux ≥ 5.3): poll instead.
        while !has_exited(handle.pid) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let mut reaped = handle.reaped.lock().unwrap_or_else(|e| e.into_inner());
    let mut status: libc::c_int = 0;
    // SAFETY: the leader is a zombie until waitpid below, so the group id is still ours.
    unsafe {
        libc::kill(-handle.pid, libc::SIGKILL);
        libc::waitpid(handle.pid, &mut status, 0);
    }
    *reaped = true;
    exit_code_of(status)
}

fn has_exited(pid: i32) -> bool {
    // SAFETY: waitid with WNOWAIT only inspects the child.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

/// The exit code as Kubernetes reports it: the code, or `128 + signal`.
pub fn exit_code_of(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        128
    }
}
