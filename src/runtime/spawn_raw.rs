//! Spawning pods the way posix_spawn does (a vfork: the child borrows our memory until it
//! execs, so the cost does not grow with the parent's size), minus what it does not need.
//!
//! `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a per-thread stack mapped once:
//! the pidfd comes from the clone itself (no `pidfd_open`, which would race a host program
//! that reaps children), no child stack is mapped and unmapped per spawn (no TLB-shootdown
//! interrupts), no `prlimit64` calls, no /dev/null open or log `dup` in the parent. The
//! environment is the Job's snapshot (`env_snapshot`), passed by pointer, never the live
//! `environ` another thread may be changing. SIGCHLD stays unblocked in the spawning thread
//! (posix_spawn blocks every signal): a blocked SIGCHLD is routed to, and wakes, the Python
//! main thread.
//!
//! Why not glibc's `posix_spawn` or std's `Command` (both vfork-style too, so neither slows
//! down with the parent's size): `Command` resets only SIGPIPE, not every ignored signal, and
//! keeping a worker's slot descriptor needs `pre_exec`, which makes it fork; neither gives the
//! pidfd from the clone nor tells a missing working directory from a missing program, and
//! glibc's children are ordinary ones a host `wait()` can reap before their exec (see below).
//! `cargo bench --bench spawn_limit` measures them all in one run (README, "Performance"):
//! on two threads this spawn keeps pace with glibc's `posix_spawn`; on one thread it is 5–20%
//! slower (for reasons not found yet: its syscalls and CPU time per pod match glibc's).
//!
//! The child's exit signal is 0, not SIGCHLD: it is a "clone child" in the kernel's sense. The
//! kernel only reaps a child by itself (when the parent ignores SIGCHLD or set SA_NOCLDWAIT)
//! if its exit signal is SIGCHLD, and `wait()` / `waitpid(-1, ...)` without `__WALL` never see
//! clone children, so the host program cannot take the status of a child that fails before
//! its exec. Exec itself, though, resets the exit signal to SIGCHLD (seen on Linux 6.18), so a
//! running pod is an ordinary child again: `process::wait_for_exit` then reads a status the
//! host took from the pidfd. Reap with `__WALL` either way.
//!
//! Workers (`process::spawn_piped`) start the same way, with pipes for stdin and stdout and
//! their slot descriptor kept open (`ChildFds::keep`).
use std::ffi::{c_char, c_int, c_void, CString};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::env_snapshot::{key_of, EnvSnapshot};

const STACK_SIZE: usize = 128 * 1024;
const PAGE: usize = 4096;

struct ChildArgs {
    candidates: Vec<CString>,
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    /// Descriptors the child keeps across exec (their close-on-exec flag is cleared there).
    keep: Vec<RawFd>,
    cwd: Option<CString>,
    errno: c_int,
    /// The child failed to change to `cwd` (not to exec the program).
    cwd_failed: bool,
}

/// The working directory could not be entered: the error names the directory, not the
/// program, which never ran.
#[derive(Debug, thiserror::Error)]
#[error("failed to change to the working directory {dir:?}: {source}")]
pub struct WorkingDirError {
    pub dir: std::path::PathBuf,
    #[source]
    pub source: io::Error,
}

/// A child stack of one spawning thread (a guard page below it): mapped on the thread's
/// first spawn, reused by every later one (no map and unmap per spawn, so no TLB-shootdown
/// interrupts), unmapped when the thread ends (a spawn pool's thread may).
struct ChildStack {
    base: *mut c_void,
}

impl ChildStack {
    fn map() -> io::Result<Self> {
        // SAFETY: asks for a fresh anonymous mapping; no existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_SIZE + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = Self { base };
        // SAFETY: the first page of the mapping made above, which nothing uses yet.
        if unsafe { libc::mprotect(base, PAGE, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    fn top(&self) -> *mut c_void {
        self.base.wrapping_byte_add(PAGE + STACK_SIZE)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's alone, and no child runs on it any more: a
        // spawn returns only once its child has exec'd or exited (CLONE_VFORK).
        unsafe { libc::munmap(self.base, STACK_SIZE + PAGE) };
    }
}

thread_local! {
    static STACK: std::cell::OnceCell<ChildStack> = const { std::cell::OnceCell::new() };
}

/// Top of this thread's child stack, mapped on first use.
fn stack_top() -> io::Result<*mut c_void> {
    STACK.with(|cell| {
        if let Some(stack) = cell.get() {
            return Ok(stack.top());
        }
        let stack = ChildStack::map()?;
        Ok(cell.get_or_init(|| stack).top())
    })
}

extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // Runs in the parent's memory while the parent thread is suspended: raw syscalls only.
    // SAFETY: `arg` is the `ChildArgs` that `spawn` handed to clone, alive in its suspended
    // frame (CLONE_VFORK: the parent thread sleeps until this child execs or exits), so this
    // is the only reference to it, and the pointers it holds (argv, envp, candidates, cwd)
    // point into values that frame owns. The child shares the parent's memory but runs on its
    // own stack; it makes plain syscalls only (no allocation, no lock: their state is the
    // parent's) and leaves by execve or _exit. `errno` is the suspended thread's (same TLS),
    // which nobody else reads meanwhile.
    unsafe {
        let a = &mut *(arg as *mut ChildArgs);
        // No parent handler may run here, and a pod starts as a container does (and as
        // `subprocess.Popen` starts a child): every signal at its default. Caught signals would
        // be reset by exec anyway, but ignored ones would stay ignored: Python ignores SIGPIPE
        // and SIGXFSZ, and `yes | head -1` must end quietly by SIGPIPE, not with a write error.
        // (The kernel's k_sigaction: handler, flags, restorer, mask; zero = SIG_DFL.)
        let zero = [0usize; 4];
        let mut cur = [0usize; 4];
        for sig in 1..65 {
            if sig == libc::SIGKILL || sig == libc::SIGSTOP {
                continue;
            }
            if libc::syscall(libc::SYS_rt_sigaction, sig, std::ptr::null::<c_void>(), cur.as_mut_ptr(), 8)
                == 0
                && cur[0] != libc::SIG_DFL
            {
                libc::syscall(libc::SYS_rt_sigaction, sig, zero.as_ptr(), std::ptr::null_mut::<c_void>(), 8);
            }
        }
        let empty: u64 = 0;
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &empty, std::ptr::null_mut::<c_void>(), 8);
        let fail = |a: &mut ChildArgs| -> c_int {
            a.errno = *libc::__errno_location();
            libc::_exit(127)
        };
        if libc::setpgid(0, 0) != 0
            || libc::dup2(a.stdin, 0) < 0
            || libc::dup2(a.stdout, 1) < 0
            || libc::dup2(a.stderr, 2) < 0
        {
            return fail(a);
        }
        // The descriptor table is the child's own copy (no CLONE_FILES): this changes nothing
        // in the parent, where the descriptors stay close-on-exec for every other spawn.
        for i in 0..a.keep.len() {
            if libc::fcntl(a.keep[i], libc::F_SETFD, 0) != 0 {
                return fail(a);
            }
        }
        if let Some(dir) = &a.cwd {
            if libc::chdir(dir.as_ptr()) != 0 {
                a.cwd_failed = true;
                return fail(a);
            }
        }
        let mut err = libc::ENOENT;
        for c in &a.candidates {
            libc::execve(c.as_ptr(), a.argv.as_ptr(), a.envp.as_ptr());
            let e = *libc::__errno_location();
            if e != libc::ENOENT && e != libc::ENOTDIR {
                err = e; // like execvp: remember the interesting failure (EACCES...)
            }
        }
        a.errno = err;
        libc::_exit(127)
    }
}

fn cstr(s: &[u8]) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

/// Fd >= 3, so that the child's dup2 onto 0..2 cannot clobber it.
fn high_fd(fd: RawFd) -> io::Result<Option<OwnedFd>> {
    if fd >= 3 {
        return Ok(None);
    }
    // SAFETY: F_DUPFD_CLOEXEC only makes a new descriptor; an invalid `fd` fails with EBADF.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if d < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `d` is the new descriptor just made, owned by nothing else.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(d) }))
}

/// Where a child's standard streams come from, and which other descriptors it keeps (at
/// their own numbers, which must be 3 or more).
pub struct ChildFds<'a> {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    pub keep: &'a [RawFd],
}

/// Starts `argv` with `env` over the environment `base`, in a process group of its own.
/// Returns (pid, pidfd). The child must be reaped with `__WALL` (see the module doc).
pub fn spawn(
    argv: &[String],
    env: &[(String, String)],
    base: &EnvSnapshot,
    cwd: Option<&Path>,
    fds: &ChildFds<'_>,
) -> io::Result<(i32, OwnedFd)> {
    let program = argv.first().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty command"))?;
    let argv_c = argv.iter().map(|s| cstr(s.as_bytes())).collect::<io::Result<Vec<_>>>()?;
    let env_c =
        env.iter().map(|(k, v)| cstr(format!("{k}={v}").as_bytes())).collect::<io::Result<Vec<_>>>()?;
    // The Job's snapshot of the environment (never the live `environ`: see `env_snapshot`),
    // minus what the request overrides.
    let mut envp: Vec<*const c_char> = Vec::with_capacity(base.entries().len() + env_c.len() + 1);
    let mut path_var: Option<&[u8]> = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_bytes());
    for entry in base.entries() {
        let key = key_of(entry);
        if !env.iter().any(|(k, _)| k.as_bytes() == key) {
            envp.push(entry.as_ptr());
            if path_var.is_none() && key == b"PATH" {
                path_var = base.get("PATH");
            }
        }
    }
    envp.extend(env_c.iter().map(|c| c.as_ptr()));
    envp.push(std::ptr::null());
    let candidates = if program.contains('/') {
        vec![cstr(program.as_bytes())?]
    } else {
        let path = path_var.unwrap_or(b"/usr/local/bin:/usr/bin:/bin");
        path.split(|&b| b == b':')
            .map(|dir| {
                let dir = if dir.is_empty() { &b"."[..] } else { dir };
                let mut full = dir.to_vec();
                full.push(b'/');
                full.extend_from_slice(program.as_bytes());
                cstr(&full)
            })
            .collect::<io::Result<Vec<_>>>()?
    };
    if fds.keep.iter().any(|&fd| fd < 3) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "kept descriptors must be 3 or more"));
    }
    let stdin_hi = high_fd(fds.stdin)?;
    let stdout_hi = high_fd(fds.stdout)?;
    let stderr_hi = high_fd(fds.stderr)?;
    let mut args = ChildArgs {
        candidates,
        argv: argv_c.iter().map(|c| c.as_ptr()).chain(std::iter::once(std::ptr::null())).collect(),
        envp,
        stdin: stdin_hi.as_ref().map_or(fds.stdin, std::os::fd::AsRawFd::as_raw_fd),
        stdout: stdout_hi.as_ref().map_or(fds.stdout, std::os::fd::AsRawFd::as_raw_fd),
        stderr: stderr_hi.as_ref().map_or(fds.stderr, std::os::fd::AsRawFd::as_raw_fd),
        keep: fds.keep.to_vec(),
        cwd: cwd.map(|d| cstr(d.as_os_str().as_bytes())).transpose()?,
        errno: 0,
        cwd_failed: false,
    };
    let top = stack_top()?;
    let mut pidfd: c_int = -1;
    // Everything but SIGCHLD (whose default disposition lets the kernel drop it at once). The
    // child cannot receive a SIGCHLD: it has no children of its own.
    let all: u64 = !(1u64 << (libc::SIGCHLD - 1));
    let mut old: u64 = 0;
    // Every signal stays blocked until the child has reset the handlers it shares the view of
    // (a parent handler running in the child would run in the parent's memory).
    // SAFETY: the signal masks are plain values on this stack. `child_main` gets `args`, which
    // outlives the clone: CLONE_VFORK suspends this thread until the child has exec'd or
    // exited, and the child runs on this thread's own child stack (`stack_top`), which no
    // other spawn uses meanwhile (one spawn at a time per thread). The kernel writes the
    // pidfd into `pidfd` (CLONE_PIDFD).
    let pid = unsafe {
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &all, &mut old, 8);
        let pid = libc::clone(
            child_main,
            top,
            // Exit signal 0: see the module doc.
            libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD,
            &mut args as *mut ChildArgs as *mut c_void,
            &mut pidfd as *mut c_int,
        );
        let e = io::Error::last_os_error();
        libc::syscall(libc::SYS_rt_sigprocmask, libc::SIG_SETMASK, &old, std::ptr::null_mut::<c_void>(), 8);
        if pid < 0 {
            return Err(e);
        }
        pid
    };
    // SAFETY: the clone succeeded, so `pidfd` is a new descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    if args.errno != 0 {
        // SAFETY: reaps our own child, which has exited (it failed before exec); no status is
        // written (null pointer).
        unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::__WALL) };
        let error = io::Error::from_raw_os_error(args.errno);
        if let (true, Some(dir)) = (args.cwd_failed, cwd) {
            let kind = error.kind();
            return Err(io::Error::new(kind, WorkingDirError { dir: dir.to_path_buf(), source: error }));
        }
        return Err(error);
    }
    Ok((pid, pidfd))
}
