//! Pod processes: spawn in a process group of their own with output going straight to a log
//! file, wait through a pidfd, signal the whole group, and report exit status as a container
//! runtime does (`128 + signal` when a signal ended it).
//!
//! Pods and workers are spawned by `spawn_raw` (a vfork-style clone: the cost does not grow
//! with the parent's memory). Their exit status survives a host program that ignores SIGCHLD
//! or calls `wait()` (see [`wait_for_exit`]); where it is lost all the same, the pod says so
//! instead of passing for a success.

use crate::controller::ProcessEnd;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::env_snapshot::EnvSnapshot;
use super::job::{JOB_UID_ENV, OWNERS_ENV, SESSION_ENV, SHEPHERD_ENV};

/// Everything needed to start one container process.
#[derive(Clone, Debug)]
pub struct SpawnRequest {
    pub argv: Vec<String>,
    /// Added to (and overriding) `environ`.
    pub env: Vec<(String, String)>,
    /// The environment the process inherits: its Job's, as of `start()` (never the live one:
    /// see `env_snapshot`).
    pub environ: EnvSnapshot,
    pub working_dir: Option<PathBuf>,
    pub log_path: PathBuf,
}

/// A started process whose group we may signal until it has been reaped.
#[derive(Clone, Debug)]
pub struct ProcessHandle {
    pub pid: i32,
    /// `true` once reaped: the pid (and so the group id) may then belong to someone else.
    reaped: Arc<Mutex<bool>>,
    /// kjob signalled the group: a SIGKILL death is then kjob's doing, not the OOM killer's.
    signalled: Arc<AtomicBool>,
}

impl ProcessHandle {
    fn new(pid: i32) -> Self {
        Self { pid, reaped: Arc::new(Mutex::new(false)), signalled: Arc::new(AtomicBool::new(false)) }
    }

    /// Sends `signal` to the whole process group, unless the leader was already reaped.
    pub fn signal_group(&self, signal: i32) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            self.signalled.store(true, Ordering::Relaxed);
            // SAFETY: kill takes no pointers. The group id is still ours: its leader is not
            // reaped (checked under the `reaped` lock, which the reaper takes too), so the id
            // cannot have been handed to another process.
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
    /// The kernel's OOM-kill count when it started (see [`oom_kills`]).
    oom_kills_before: Option<u64>,
}

impl Spawned {
    fn new(pid: i32, pidfd: OwnedFd) -> Self {
        Self { handle: ProcessHandle::new(pid), pidfd, oom_kills_before: oom_kills_recent() }
    }
}

/// Opens the log file for appending, creating it if needed. Its folder must exist.
pub fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Starts the process. Its stdin is `/dev/null`; stdout and stderr are the log file itself.
pub fn spawn(req: &SpawnRequest) -> io::Result<Spawned> {
    let log = open_log(&req.log_path)?;
    let log_fd = log.as_raw_fd();
    let fds = super::spawn_raw::ChildFds { stdin: dev_null_fd()?, stdout: log_fd, stderr: log_fd, keep: &[] };
    let (pid, pidfd) =
        super::spawn_raw::spawn(&req.argv, &req.env, &req.environ, req.working_dir.as_deref(), &fds)?;
    // The child has its own copies of the log descriptor now.
    drop(log);
    Ok(Spawned::new(pid, pidfd))
}

/// `/dev/null` for reading and writing, opened once for every pod's stdin and every worker's
/// first stderr.
pub(super) fn dev_null_fd() -> io::Result<RawFd> {
    static DEV_NULL: std::sync::OnceLock<File> = std::sync::OnceLock::new();
    if let Some(f) = DEV_NULL.get() {
        return Ok(f.as_raw_fd());
    }
    let f = OpenOptions::new().read(true).write(true).open("/dev/null")?;
    Ok(DEV_NULL.get_or_init(|| f).as_raw_fd())
}

/// A pipe whose both ends are close-on-exec: (read end, write end).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [0 as RawFd; 2];
    // SAFETY: pipe2 fills the two-element array with fresh descriptors or fails.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours alone.
    Ok(unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) })
}

/// Starts a Python worker the way pods start (see the module doc): its stdin and stdout are
/// pipes to us (the protocol), stderr is /dev/null until the worker points it at a log, and
/// it keeps the descriptors in `keep` open. It inherits `environ`, the environment of the Job
/// that asked for it (it installs each Job's own environment before that Job's pods run).
/// Returns the process, then the write end of its stdin and the read end of its stdout.
pub fn spawn_piped(
    argv: &[String],
    keep: &[RawFd],
    environ: &EnvSnapshot,
) -> io::Result<(Spawned, OwnedFd, OwnedFd)> {
    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let env = super::job::marker_env(None, environ);
    let fds = super::spawn_raw::ChildFds {
        stdin: stdin_r.as_raw_fd(),
        stdout: stdout_w.as_raw_fd(),
        stderr: dev_null_fd()?,
        keep,
    };
    let (pid, pidfd) = super::spawn_raw::spawn(argv, &env, environ, None, &fds)?;
    // The worker holds its own ends now; ours must close, or its reads would never see EOF.
    drop((stdin_r, stdout_w));
    Ok((Spawned::new(pid, pidfd), stdin_w, stdout_r))
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
            // SAFETY: kill takes no pointers; the pid carried this Job's marker a moment ago
            // (a pid reused in between is the accepted risk of any /proc scan).
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

/// Waits for the process to end, then kills whatever is left of its group (a container's
/// processes do not outlive its main process) and reaps it. Returns how it ended.
///
/// The host program may take the exit status first: the kernel reaps children itself when
/// SIGCHLD is ignored, and a `wait()` in the host reaps any child. The status is then read
/// from the pidfd (`PIDFD_GET_INFO` with `PIDFD_INFO_EXIT`, Linux 6.15+), which keeps it
/// after the process is reaped. Only where that is missing is the status truly lost, and the
/// pod says so ([`ProcessEnd::Unknown`]) rather than pass for a success.
///
/// (`spawn_raw` starts pods as "clone children", which both would pass over, but exec turns
/// them back into ordinary children on current kernels: see its module doc.)
pub async fn wait_for_exit(spawned: Spawned) -> ProcessEnd {
    let Spawned { handle, pidfd, oom_kills_before } = spawned;
    let pidfd_raw = pidfd.as_raw_fd();
    // SAFETY: the OwnedFd stays open and unchanged for as long as the AsyncFd owns it.
    let registered = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) };
    // `registered` keeps the pidfd open until the status was read from it.
    if let Ok(async_fd) = &registered {
        // A pidfd becomes readable when its process exits.
        let _ = async_fd.readable().await;
    } else {
        // Registration failed (should not happen on Linux ≥ 5.3): poll instead.
        while !has_exited(handle.pid) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // A block, not `drop`, ends the guard's life before the await below (futures are Send).
    let waited = {
        let mut reaped = handle.reaped.lock().unwrap_or_else(|e| e.into_inner());
        let mut status: libc::c_int = 0;
        // SAFETY: the group is signalled only while its leader is a zombie nobody reaped, so
        // the group id is still ours; waitpid only writes `status`.
        let waited = unsafe {
            if is_zombie(handle.pid) {
                libc::kill(-handle.pid, libc::SIGKILL);
            }
            loop {
                let r = libc::waitpid(handle.pid, &mut status, libc::__WALL);
                let e = io::Error::last_os_error();
                if r >= 0 || e.kind() != io::ErrorKind::Interrupted {
                    break if r == handle.pid { Ok(status) } else { Err(e) };
                }
            }
        };
        *reaped = true;
        waited
    };
    let waited = match waited {
        Ok(status) => Ok(status),
        // Someone else reaped it: what it left behind in its group goes with the Job's sweep
        // (its group id may already name someone else's group).
        Err(e) => exit_status_from_pidfd(pidfd_raw).await.ok_or(e),
    };
    let end = match waited {
        Ok(status) => {
            let signalled = handle.signalled.load(Ordering::Relaxed);
            // The counter is read only for a SIGKILL kjob did not send (the OOM killer's).
            let after = || if signalled { None } else { oom_kills_now() };
            process_end(status, oom_kills_before, after)
        }
        Err(e) => ProcessEnd::Unknown(lost_status_message(&e)),
    };
    drop(registered);
    end
}

/// `PIDFD_GET_INFO`: `_IOWR(0xFF, 11, struct pidfd_info)` for the 64-byte first version of
/// the struct (`PIDFD_INFO_SIZE_VER0`), which the kernel accepts from any caller.
const PIDFD_GET_INFO: libc::c_ulong = (3 << 30) | (64 << 16) | (0xFF << 8) | 11;
/// Asks for (and, in the answer's mask, confirms) the exit status.
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// `struct pidfd_info`, version 0 (`include/uapi/linux/pidfd.h`).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
}

/// The wait status of a reaped process, kept by its pidfd (Linux 6.15+). The kernel records
/// it while it releases the process, which may still be under way when `waitpid` already
/// answers ECHILD: ask again for a little while.
async fn exit_status_from_pidfd(pidfd: RawFd) -> Option<libc::c_int> {
    for _ in 0..50 {
        let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..PidfdInfo::default() };
        // SAFETY: the kernel writes at most the 64 bytes the command's size names into `info`.
        let r = unsafe { libc::ioctl(pidfd, PIDFD_GET_INFO as _, &mut info as *mut PidfdInfo) };
        if r == 0 && info.mask & PIDFD_INFO_EXIT != 0 {
            return Some(info.exit_code);
        }
        let e = io::Error::last_os_error();
        // An older kernel does not know the command (or the exit field): give up at once.
        if r != 0 && e.raw_os_error() != Some(libc::ESRCH) {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// The message of a pod whose exit status someone else took.
fn lost_status_message(e: &io::Error) -> String {
    format!("exit status lost: the process was reaped by someone else (waitpid: {e})")
}

/// How a process ended, from its wait status. A SIGKILL is the OOM killer's when the kernel's
/// OOM-kill count grew since the process started (`after` reads it then; it says `None` when
/// the count is not to be read, as when kjob itself sent the kill).
fn process_end(status: libc::c_int, before: Option<u64>, after: impl FnOnce() -> Option<u64>) -> ProcessEnd {
    if libc::WIFEXITED(status) {
        return ProcessEnd::Exited(libc::WEXITSTATUS(status));
    }
    if !libc::WIFSIGNALED(status) {
        return ProcessEnd::Exited(128);
    }
    let signal = libc::WTERMSIG(status);
    let oom_killed = signal == libc::SIGKILL && before.zip(after()).is_some_and(|(b, a)| a > b);
    ProcessEnd::Signaled { signal, oom_killed }
}

/// The kernel's count of OOM kills (`oom_kill` in /proc/vmstat; memory cgroups' OOM kills
/// count there too), when it can be read.
fn oom_kills_now() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/vmstat").ok()?;
    let value = text.lines().find_map(|l| l.strip_prefix("oom_kill "))?.trim().parse().ok()?;
    let mut cached = OOM_KILLS.lock().unwrap_or_else(|e| e.into_inner());
    *cached = Some((Instant::now(), value));
    Some(value)
}

/// The last OOM-kill count read, and when.
static OOM_KILLS: Mutex<Option<(Instant, u64)>> = Mutex::new(None);

/// The OOM-kill cache's lock, held across a fork (see `super::fork`): pod exits take it on the
/// runtime thread, and a child inheriting it locked would hang at its first pod's exit.
pub(super) struct OomCacheGuard(#[allow(dead_code)] std::sync::MutexGuard<'static, Option<(Instant, u64)>>);

impl OomCacheGuard {
    pub(super) fn take() -> Self {
        Self(OOM_KILLS.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The OOM-kill count as of at most a second ago. Reading /proc/vmstat for every spawn would
/// cost more than the spawn's own syscalls; a count older than the process's start can only
/// mistake a SIGKILL from a third party for the OOM killer's when an unrelated OOM kill
/// happened in that second.
fn oom_kills_recent() -> Option<u64> {
    let cached = *OOM_KILLS.lock().unwrap_or_else(|e| e.into_inner());
    match cached {
        Some((at, value)) if at.elapsed() < Duration::from_secs(1) => Some(value),
        _ => oom_kills_now(),
    }
}

/// Whether the process has ended and waits, unreaped, for us.
fn is_zombie(pid: i32) -> bool {
    peek_exit(pid) == Some(true)
}

/// Whether the process has ended (or is gone: someone else reaped it).
fn has_exited(pid: i32) -> bool {
    peek_exit(pid) != Some(false)
}

/// Looks at the child without reaping it: `Some(true)` once it has ended, `Some(false)` while
/// it runs, `None` when it is not (or no longer) a child to wait for.
fn peek_exit(pid: i32) -> Option<bool> {
    // SAFETY: waitid writes only into `info`, a zeroed siginfo_t of ours; WNOWAIT leaves the
    // child unreaped, so this only looks.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT | libc::__WALL,
        );
        (r == 0).then(|| info.si_pid() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wait status as the kernel builds it.
    fn exited(code: i32) -> libc::c_int {
        (code & 0xff) << 8
    }

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        assert_eq!(process_end(exited(3), Some(0), || Some(0)), ProcessEnd::Exited(3));
        assert_eq!(process_end(exited(0), None, || None), ProcessEnd::Exited(0));
        let segv = process_end(libc::SIGSEGV, Some(0), || Some(0));
        assert_eq!(segv, ProcessEnd::Signaled { signal: 11, oom_killed: false });
        assert_eq!(segv.exit_code(), 139);
        assert_eq!(segv.message().as_deref(), Some("killed by signal 11 (SIGSEGV)"));
    }

    #[test]
    fn a_sigkill_is_the_oom_killers_only_when_the_oom_kill_count_grew() {
        let oom = ProcessEnd::Signaled { signal: 9, oom_killed: true };
        let plain = ProcessEnd::Signaled { signal: 9, oom_killed: false };
        assert_eq!(process_end(libc::SIGKILL, Some(4), || Some(5)), oom);
        assert_eq!(oom.reason(), Some("OOMKilled"));
        assert_eq!(oom.exit_code(), 137);
        // No OOM kill happened meanwhile: someone sent the SIGKILL.
        assert_eq!(process_end(libc::SIGKILL, Some(4), || Some(4)), plain);
        // kjob sent it (the count is not read then), or the count cannot be read.
        assert_eq!(process_end(libc::SIGKILL, Some(4), || None), plain);
        assert_eq!(process_end(libc::SIGKILL, None, || Some(5)), plain);
        // Only SIGKILL comes from the OOM killer.
        let term = ProcessEnd::Signaled { signal: 15, oom_killed: false };
        assert_eq!(process_end(libc::SIGTERM, Some(4), || Some(5)), term);
        assert_eq!(plain.reason(), None);
    }

    #[test]
    fn a_lost_status_fails_the_pod_and_says_why() {
        let end = ProcessEnd::Unknown(lost_status_message(&io::Error::from_raw_os_error(libc::ECHILD)));
        assert_eq!(end.exit_code(), 137);
        assert_eq!(end.reason(), Some("ContainerStatusUnknown"));
        let message = end.message().unwrap_or_default();
        assert!(message.starts_with("exit status lost: the process was reaped by someone else (waitpid: "));
    }
}
