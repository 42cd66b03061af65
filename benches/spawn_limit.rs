//! How close kjob's pod spawning comes to the limit of the machine.
//!
//! Every variant starts 2000 `/bin/true` processes, each in a process group of its own with
//! stdout and stderr going to a log file of its own (created by the parent, as kjob does) and
//! stdin from `/dev/null`, keeping at most 8 alive (parallelism 8). The clock runs from the
//! first spawn until the last child is reaped; log folders are made before it starts and
//! removed only at the very end. Variants are interleaved in every round so that drift on the
//! machine hits all alike; each is reported as the median of the runs, and as a ratio to the
//! two-thread raw `posix_spawn` spawner, the practical limit on a 2-core machine. Then the
//! whole set runs again in a parent with 4 GiB of touched memory: a vfork-style spawn must not
//! slow down with the parent's size (a fork copies its page tables).
//!
//! ```text
//! cargo bench --bench spawn_limit                       # 5 rounds, logs in the temp folder
//! cargo bench --bench spawn_limit -- --runs 7 --log-root /dev/shm --big-gib 4
//! ```

use _kjob::controller::{BackoffConfig, EffectiveSpec};
use _kjob::runtime::process::{self, SpawnRequest};
use _kjob::runtime::spawn_pool::SpawnPool;
use _kjob::runtime::{EnvSnapshot, Job};
use std::ffi::{c_char, CString};
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PROGRAM: &str = "/bin/true";
const PARALLELISM: usize = 8;

/// The variants, in the order they run within a round and appear in the table.
const VARIANTS: &[&str] = &[
    "raw posix_spawn, 1 thread",
    "raw posix_spawn, 2 threads",
    "std Command + process_group(0)",
    "kjob spawn_raw, 1 thread",
    "kjob spawn_raw, 2 threads",
    "kjob SpawnPool, 2 threads",
    "kjob SpawnPool, 4 threads",
    "kjob Job end to end (spawn pool)",
    "std Command + process_group(0), 2 thr",
];
/// The variant every other is compared with.
const REFERENCE: usize = 1;

struct Options {
    pods: usize,
    runs: usize,
    log_root: PathBuf,
    big_gib: usize,
    /// The variants to run (indexes into `VARIANTS`); all by default.
    only: Vec<usize>,
}

fn options() -> Options {
    let mut o = Options {
        pods: 2000,
        runs: 5,
        log_root: std::env::temp_dir(),
        big_gib: 4,
        only: (0..VARIANTS.len()).collect(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--pods" => o.pods = value().parse().expect("--pods N"),
            "--runs" => o.runs = value().parse().expect("--runs N"),
            "--log-root" => o.log_root = PathBuf::from(value()),
            "--big-gib" => o.big_gib = value().parse().expect("--big-gib N"),
            "--only" => o.only = value().split(',').map(|v| v.parse().expect("--only 0,3,5")).collect(),
            // `cargo bench` passes `--bench`; filters are not supported.
            _ => {}
        }
    }
    o
}

/// At most `PARALLELISM` children alive: a slot is taken before each spawn and given back
/// when a child is reaped (by whichever thread waits for one).
struct Slots {
    live: AtomicUsize,
    failures: AtomicUsize,
}

impl Slots {
    fn new() -> Self {
        Self { live: AtomicUsize::new(0), failures: AtomicUsize::new(0) }
    }

    fn take(&self) {
        loop {
            let live = self.live.load(Ordering::Acquire);
            if live < PARALLELISM {
                if self.live.compare_exchange(live, live + 1, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    return;
                }
            } else {
                self.reap_one();
            }
        }
    }

    /// Waits for any child (pods and kjob's clone children alike: `__WALL`) and frees its slot.
    fn reap_one(&self) {
        let mut status = 0;
        // SAFETY: waitpid writes only `status`; every child of this process is a bench pod.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::__WALL) };
        if pid > 0 {
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                self.failures.fetch_add(1, Ordering::Relaxed);
            }
            self.live.fetch_sub(1, Ordering::AcqRel);
        } else {
            // No child yet (a pool has not started it): look again shortly.
            std::thread::yield_now();
        }
    }

    /// A spawn failed: its slot is free again.
    fn give_back(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.live.fetch_sub(1, Ordering::AcqRel);
    }

    fn drain(&self) {
        while self.live.load(Ordering::Acquire) > 0 {
            self.reap_one();
        }
    }
}

/// The log file of pod `n`, opened as kjob opens one (append, created if missing).
fn log_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(format!("pod-{n}.log"))
}

fn open_log(dir: &Path, n: usize) -> File {
    process::open_log(&log_path(dir, n)).expect("open the log")
}

/// Runs `spawn(n)` for every pod over `threads` threads sharing the slots.
fn on_threads(pods: usize, threads: usize, slots: &Slots, spawn: &(dyn Fn(usize) + Sync)) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= pods {
                    break;
                }
                slots.take();
                spawn(n);
            });
        }
    });
    slots.drain();
}

/// glibc's `posix_spawn`, set up as kjob sets up a pod: own process group, every signal at
/// its default and none blocked, stdio from `/dev/null` and the log file.
struct PosixSpawn {
    argv: Vec<CString>,
    dev_null: File,
}

impl PosixSpawn {
    fn new() -> Self {
        let dev_null = File::options().read(true).write(true).open("/dev/null").expect("/dev/null");
        Self { argv: vec![CString::new(PROGRAM).expect("no NUL")], dev_null }
    }

    fn spawn(&self, log: RawFd) -> bool {
        extern "C" {
            static environ: *const *mut c_char;
        }
        let argv: [*mut c_char; 2] = [self.argv[0].as_ptr().cast_mut(), std::ptr::null_mut()];
        // SAFETY: the attribute and file-action objects are initialised before use and
        // destroyed after; argv is NUL-terminated and outlives the call; the bench never
        // changes its environment, so reading `environ` races nothing.
        unsafe {
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
            libc::posix_spawnattr_init(&mut attr);
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::sigemptyset(&mut none);
            libc::posix_spawnattr_setsigdefault(&mut attr, &all);
            libc::posix_spawnattr_setsigmask(&mut attr, &none);
            libc::posix_spawnattr_setpgroup(&mut attr, 0);
            let flags =
                libc::POSIX_SPAWN_SETPGROUP | libc::POSIX_SPAWN_SETSIGDEF | libc::POSIX_SPAWN_SETSIGMASK;
            libc::posix_spawnattr_setflags(&mut attr, flags as libc::c_short);
            libc::posix_spawn_file_actions_init(&mut actions);
            libc::posix_spawn_file_actions_adddup2(&mut actions, self.dev_null.as_raw_fd(), 0);
            libc::posix_spawn_file_actions_adddup2(&mut actions, log, 1);
            libc::posix_spawn_file_actions_adddup2(&mut actions, log, 2);
            let mut pid = 0;
            let r = libc::posix_spawn(&mut pid, argv[0], &actions, &attr, argv.as_ptr(), environ);
            libc::posix_spawn_file_actions_destroy(&mut actions);
            libc::posix_spawnattr_destroy(&mut attr);
            r == 0
        }
    }
}

fn request(dir: &Path, n: usize, environ: &EnvSnapshot) -> SpawnRequest {
    SpawnRequest {
        argv: vec![PROGRAM.into()],
        env: Vec::new(),
        environ: environ.clone(),
        working_dir: None,
        log_path: log_path(dir, n),
    }
}

fn job_spec(pods: usize, run: usize) -> EffectiveSpec {
    let manifest = serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": format!("spawn-limit-{run}")},
        "spec": {
            "completions": pods,
            "parallelism": PARALLELISM,
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "command": [PROGRAM]}],
            }},
        },
    });
    let job = serde_json::from_value(manifest).expect("a batch/v1 Job");
    let uid = format!("spawn-limit-{}-{run}", std::process::id());
    EffectiveSpec::from_manifest(&job, &uid, BackoffConfig::default()).expect("a valid Job")
}

struct Bench {
    environ: EnvSnapshot,
    posix: PosixSpawn,
    pool2: SpawnPool,
    pool4: SpawnPool,
    /// Jobs made so far (each gets a name of its own).
    jobs: AtomicUsize,
}

impl Bench {
    /// Runs variant `v` once with logs in `dir`; returns the wall time.
    fn run(&self, v: usize, dir: &Path, pods: usize) -> Duration {
        let slots = Slots::new();
        let start = Instant::now();
        match v {
            0 | 1 => on_threads(pods, v + 1, &slots, &|n| {
                let log = open_log(dir, n);
                if !self.posix.spawn(log.as_raw_fd()) {
                    slots.give_back();
                }
            }),
            2 | 8 => on_threads(pods, if v == 2 { 1 } else { 2 }, &slots, &|n| {
                let log = open_log(dir, n);
                let out = log.try_clone().expect("dup the log");
                let child = Command::new(PROGRAM)
                    .process_group(0)
                    .stdin(Stdio::null())
                    .stdout(out)
                    .stderr(log)
                    .spawn();
                if child.is_err() {
                    slots.give_back();
                }
            }),
            3 | 4 => on_threads(pods, v - 2, &slots, &|n| {
                if process::spawn(&request(dir, n, &self.environ)).is_err() {
                    slots.give_back();
                }
            }),
            5 | 6 => {
                let pool = if v == 5 { &self.pool2 } else { &self.pool4 };
                let slots = Arc::new(Slots::new());
                let start = Instant::now();
                for n in 0..pods {
                    slots.take();
                    let done = Arc::clone(&slots);
                    pool.submit(request(dir, n, &self.environ), move |r| {
                        if r.is_err() {
                            done.give_back();
                        }
                    });
                }
                slots.drain();
                let elapsed = start.elapsed();
                assert_eq!(slots.failures.load(Ordering::Relaxed), 0, "{} failed", VARIANTS[v]);
                return elapsed;
            }
            7 => {
                let number = self.jobs.fetch_add(1, Ordering::Relaxed);
                let job = Job::new(job_spec(pods, number), dir.to_path_buf(), false);
                job.start().expect("start the Job");
                while !job.wait_finished(Duration::from_secs(1)) {}
                let elapsed = start.elapsed();
                let status = job.status();
                assert_eq!((status.succeeded as usize, status.failed), (pods, 0), "the Job's pods");
                // Its end-of-Job sweep must not run into the next variant's time.
                job.request_delete();
                while !job.wait_deleted(Duration::from_secs(1)) {}
                return elapsed;
            }
            _ => unreachable!(),
        }
        let elapsed = start.elapsed();
        assert_eq!(slots.failures.load(Ordering::Relaxed), 0, "{} failed", VARIANTS[v]);
        elapsed
    }
}

/// Medians of every variant's rate (pods/s), in `VARIANTS` order.
fn measure(bench: &Bench, options: &Options, folders: &mut Vec<PathBuf>, label: &str) -> Vec<f64> {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); VARIANTS.len()];
    // One small untimed round first: page cache, pool threads' stacks, the runtime thread.
    for &v in &options.only {
        bench.run(v, &fresh_folder(options, folders, &format!("{label}-warm-{v}")), 50);
    }
    for round in 0..options.runs {
        for &v in &options.only {
            let name = VARIANTS[v];
            let dir = fresh_folder(options, folders, &format!("{label}-{round}-{v}"));
            let t = bench.run(v, &dir, options.pods);
            eprintln!("{label:>6} round {round} {name:<38} {:>8.1} ms", t.as_secs_f64() * 1e3);
            times[v].push(t);
        }
    }
    times
        .into_iter()
        .map(|mut t| {
            t.sort();
            t.get(t.len() / 2).map_or(f64::NAN, |median| options.pods as f64 / median.as_secs_f64())
        })
        .collect()
}

fn fresh_folder(options: &Options, folders: &mut Vec<PathBuf>, tag: &str) -> PathBuf {
    let dir = options.log_root.join(format!("kjob-spawn-limit-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a log folder");
    folders.push(dir.clone());
    dir
}

/// Allocates `gib` GiB and writes to every page, so that all of it is resident.
fn big_parent(gib: usize) -> Vec<u8> {
    let mut memory = vec![0u8; gib << 30];
    for page in memory.chunks_mut(4096) {
        page[0] = 1;
    }
    memory
}

fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

fn main() {
    let options = options();
    let bench = Bench {
        environ: EnvSnapshot::capture(),
        posix: PosixSpawn::new(),
        pool2: SpawnPool::new(2).expect("a pool of 2"),
        pool4: SpawnPool::new(4).expect("a pool of 4"),
        jobs: AtomicUsize::new(0),
    };
    let mut folders = Vec::new();
    println!(
        "spawn_limit: {} x {PROGRAM}, parallelism {PARALLELISM}, median of {} rounds, logs under {:?}, {} CPUs, kernel {}",
        options.pods,
        options.runs,
        options.log_root,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
    );
    let small_rss = resident_mib();
    let small = measure(&bench, &options, &mut folders, "small");
    let memory = big_parent(options.big_gib);
    let big_rss = resident_mib();
    let big = measure(&bench, &options, &mut folders, "big");
    drop(memory);
    for dir in &folders {
        let _ = std::fs::remove_dir_all(dir);
    }
    println!();
    println!(
        "{:<38} | {:>14} {:>8} | {:>14} {:>8} | {:>9}",
        "variant",
        format!("RSS {small_rss} MiB"),
        "ratio",
        format!("RSS {big_rss} MiB"),
        "ratio",
        "big/small"
    );
    println!("{:-<38}-+-{:-<14}-{:-<8}-+-{:-<14}-{:-<8}-+-{:-<9}", "", "", "", "", "", "");
    for &v in &options.only {
        let name = VARIANTS[v];
        println!(
            "{name:<38} | {:>10.0} /s {:>7.2}x | {:>10.0} /s {:>7.2}x | {:>8.2}x",
            small[v],
            small[v] / small[REFERENCE],
            big[v],
            big[v] / big[REFERENCE],
            big[v] / small[v],
        );
    }
    println!("(ratio: to \"{}\" in the same parent)", VARIANTS[REFERENCE]);
}
