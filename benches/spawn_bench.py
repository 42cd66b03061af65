"""Pod-spawn throughput of kjob against the obvious alternatives.

Runs N trivial ``/bin/true`` pods at a given parallelism with:

* ``kjob``                 -- ``kjob.Job(...).run()``, timed from ``run()`` to its return;
* ``xargs``                -- GNU ``xargs -P p -n 1 /bin/true`` fed N lines (the whole invocation);
* ``subprocess-loop``      -- a plain Python loop keeping at most p ``Popen`` children alive,
  reaping whichever finishes first with ``os.wait()``; children inherit our stdio;
* ``subprocess-loop+logs`` -- the same loop, but each child gets what a kjob pod gets: its own
  log file (``open(path, "ab")``, i.e. ``O_CREAT|O_APPEND``, as stdout *and* stderr), stdin
  from ``/dev/null`` and a process group of its own (``start_new_session=True``).

``/bin/true`` does no work, so wall time is almost entirely per-process overhead: spawn,
exit notification, reaping and bookkeeping. That is exactly the cost kjob adds on top of the
user's own command.

Usage::

    python benches/spawn_bench.py [--pods 2000] [--runs 5] [--parallelism 2 8]
                                  [--log-root DIR] [--json PATH]

Fairness, so that the numbers compare like with like:

* ``subprocess-loop+logs`` is the like-for-like peer: it creates one log file per child in the
  same folder kind as kjob. ``subprocess-loop`` and ``xargs`` (no files at all) stay as the
  floor of what spawning alone costs.
* Every run of kjob and of ``subprocess-loop+logs`` (warm-up included) gets a fresh, empty log
  folder under ``--log-root`` (default: the system temp folder; the header names its filesystem
  type), created before the clock starts. None is deleted before the whole benchmark is over:
  on some filesystems deleting thousands of files slows the *next* file creations (a
  journal-less ext4's inode allocator, for one, steps over recently freed inodes), and that
  would charge one run's cleanup to the next run. They are all removed at the very end.
* Tools are interleaved within each round so that slow drift on the machine hits all alike,
  and one small untimed warm-up round comes first.

Ratios are ``kjob throughput / peer throughput`` (= peer median time / kjob median time),
reported against every peer: above 1 means kjob is faster.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import kjob

TRUE = "/bin/true"
KJOB = "kjob"
XARGS = "xargs"
LOOP = "subprocess-loop"
LOOP_LOGS = "subprocess-loop+logs"
TOOLS = (KJOB, XARGS, LOOP, LOOP_LOGS)
PEERS = tuple(tool for tool in TOOLS if tool != KJOB)

# A runner takes (pods, parallelism) and returns the measured wall time in seconds.
Runner = Callable[[int, int], float]


class LogFolders:
    """Hands out a fresh log folder per run and deletes them all only at the very end."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.made: list[str] = []

    def fresh(self, tool: str) -> str:
        path = tempfile.mkdtemp(prefix=f"kjob-bench-{tool.replace('+', '-')}-", dir=self.root)
        self.made.append(path)
        return path

    def remove_all(self) -> None:
        for path in self.made:
            shutil.rmtree(path, ignore_errors=True)
        self.made.clear()


def run_kjob(pods: int, parallelism: int, folders: LogFolders) -> float:
    log_dir = folders.fresh(KJOB)
    job = kjob.Job(
        name="bench",
        command=[TRUE],
        completions=pods,
        parallelism=parallelism,
        log_dir=log_dir,
    )
    try:
        # Job construction (manifest validation, native object) is a one-off cost per job,
        # not per pod, so it is left out: the clock covers run() until it returns.
        t0 = time.perf_counter()
        status = job.run()
        elapsed = time.perf_counter() - t0
    finally:
        # Reaps nothing (every pod is done) and leaves log_dir alone: it is ours, not private.
        job.delete()
    if status.succeeded != pods:
        raise RuntimeError(f"kjob: {status.succeeded}/{pods} pods succeeded")
    return elapsed


def run_xargs(pods: int, parallelism: int) -> float:
    # Built before the clock starts; each line becomes one (ignored) argument to /bin/true.
    lines = "".join(f"{i}\n" for i in range(pods)).encode()
    argv = [XARGS, "-P", str(parallelism), "-n", "1", TRUE]
    t0 = time.perf_counter()
    # xargs exits non-zero if any command failed, so check=True covers every child.
    subprocess.run(argv, input=lines, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def _loop(pods: int, parallelism: int, spawn: Callable[[int], subprocess.Popen[bytes]], what: str) -> float:
    running: dict[int, subprocess.Popen[bytes]] = {}
    started = failed = 0
    t0 = time.perf_counter()
    while started < pods or running:
        while started < pods and len(running) < parallelism:
            proc = spawn(started)
            running[proc.pid] = proc
            started += 1
        # os.wait() sleeps in the kernel until *any* child exits: no polling, no busy loop.
        pid, wait_status = os.wait()
        proc = running.pop(pid)
        # Tell Popen its child is reaped. Left at None, Popen.__del__ would queue the object
        # for a later waitpid(pid, WNOHANG) that could steal a new child reusing that pid.
        proc.returncode = os.waitstatus_to_exitcode(wait_status)
        failed += proc.returncode != 0
    elapsed = time.perf_counter() - t0
    if failed:
        raise RuntimeError(f"{what}: {failed}/{pods} children failed")
    return elapsed


def run_subprocess_loop(pods: int, parallelism: int) -> float:
    return _loop(pods, parallelism, lambda _i: subprocess.Popen([TRUE]), LOOP)


def run_subprocess_loop_logs(pods: int, parallelism: int, folders: LogFolders) -> float:
    log_dir = folders.fresh(LOOP_LOGS)  # before the clock, as for kjob

    def spawn(i: int) -> subprocess.Popen[bytes]:
        # What kjob does per pod: create/append-open its own log file, hand it to the child as
        # stdout and stderr, stdin from /dev/null, own process group; the parent's copy of the
        # log descriptor is closed right after the spawn.
        with open(os.path.join(log_dir, f"bench-{i}.log"), "ab") as log:
            return subprocess.Popen(
                [TRUE], stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )

    return _loop(pods, parallelism, spawn, LOOP_LOGS)


def bench(pods: int, parallelism: int, runs: int, runners: dict[str, Runner]) -> dict[str, list[float]]:
    # One small untimed round first so that first-touch costs (page cache for /bin/true and
    # xargs, the Rust runtime's thread start, lazy imports) do not land on the first sample.
    for runner in runners.values():
        runner(min(pods, 50), parallelism)
    timings: dict[str, list[float]] = {tool: [] for tool in TOOLS}
    # Interleaved so that slow drift on the machine (thermal, other load) hits all tools alike.
    for i in range(runs):
        for tool in TOOLS:
            elapsed = runners[tool](pods, parallelism)
            timings[tool].append(elapsed)
            print(f"  p={parallelism} run {i + 1}/{runs} {tool:<20} {elapsed:8.3f} s", flush=True)
    return timings


def filesystem_of(path: str) -> str:
    """The type of the filesystem mounted at ``path`` (longest mount-point prefix wins)."""
    path = os.path.realpath(path)
    best, fstype = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) < 3:
                    continue
                # /proc/mounts escapes spaces and such as octal; decode just enough to compare.
                mount = fields[1].encode().decode("unicode_escape")
                inside = path == mount or path.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, fstype = mount, fields[2]
    except OSError:
        pass
    return fstype


def print_table(pods: int, parallelism: int, timings: dict[str, list[float]]) -> None:
    medians = {tool: statistics.median(times) for tool, times in timings.items()}
    print(f"\nparallelism={parallelism}, pods={pods}, runs={len(timings[KJOB])}")
    header = f"{'tool':<20} {'median s':>9} {'min s':>8} {'max s':>8} {'pods/s':>9} {'kjob/peer':>10}"
    print(header)
    print("-" * len(header))
    for tool in TOOLS:
        median = medians[tool]
        # Throughput ratio = inverse time ratio; the kjob row compares with itself.
        ratio = "-" if tool == KJOB else f"{median / medians[KJOB]:.2f}x"
        print(
            f"{tool:<20} {median:9.3f} {min(timings[tool]):8.3f} {max(timings[tool]):8.3f} "
            f"{pods / median:9.0f} {ratio:>10}"
        )


def summary_line(parallelism: int, timings: dict[str, list[float]]) -> str:
    medians = {tool: statistics.median(times) for tool, times in timings.items()}
    ratios = ", ".join(f"kjob/{peer} = {medians[peer] / medians[KJOB]:.2f}x" for peer in PEERS)
    return f"p={parallelism}: {ratios}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="kjob pod-spawn throughput vs xargs and subprocess loops")
    parser.add_argument("--pods", type=int, default=2000, help="pods per run (default 2000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (default 5)")
    parser.add_argument("--parallelism", type=int, nargs="+", default=[2, 8], help="levels (default: 2 8)")
    parser.add_argument(
        "--log-root",
        metavar="DIR",
        help="parent of the per-run log folders of kjob and subprocess-loop+logs (default: $TMPDIR)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the raw timings here")
    args = parser.parse_args(argv)
    if args.pods < 1 or args.runs < 1 or min(args.parallelism) < 1:
        parser.error("--pods, --runs and --parallelism must be positive")
    if args.log_root is not None and not os.path.isdir(args.log_root):
        parser.error(f"--log-root {args.log_root!r} is not a folder")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    log_root: str = args.log_root or tempfile.gettempdir()
    if shutil.which(XARGS) is None or not os.access(TRUE, os.X_OK):
        print(f"need {XARGS} on PATH and an executable {TRUE}", file=sys.stderr)
        return 2
    folders = LogFolders(log_root)
    runners: dict[str, Runner] = {
        KJOB: functools.partial(run_kjob, folders=folders),
        XARGS: run_xargs,
        LOOP: run_subprocess_loop,
        LOOP_LOGS: functools.partial(run_subprocess_loop_logs, folders=folders),
    }
    xargs_version = subprocess.run(
        [XARGS, "--version"], capture_output=True, text=True, check=False
    ).stdout.splitlines()[:1]
    machine = {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "kjob": kjob.__version__,
        "xargs": xargs_version[0] if xargs_version else "unknown",
        "log_root": log_root,
        "log_root_fs": filesystem_of(log_root),
    }
    print(f"nproc={machine['nproc']}  python={machine['python']}  {machine['platform']}")
    print(f"kjob {machine['kjob']}, {machine['xargs']}, pods={args.pods}, runs={args.runs}")
    print(
        f"log root (kjob, {LOOP_LOGS}): {log_root} ({machine['log_root_fs']}); "
        "a fresh folder per run, all deleted at the end"
    )

    results: dict[int, dict[str, list[float]]] = {}
    try:
        for parallelism in args.parallelism:
            results[parallelism] = bench(args.pods, parallelism, args.runs, runners)
    finally:
        # Deferred to here so that no run's cleanup slows another run's file creation.
        folders.remove_all()

    for parallelism, timings in results.items():
        print_table(args.pods, parallelism, timings)
    print()
    for parallelism, timings in results.items():
        print(summary_line(parallelism, timings))

    if args.json:
        payload = {
            "machine": machine,
            "pods": args.pods,
            "runs": args.runs,
            "timings_seconds": {str(p): t for p, t in results.items()},
            "median_seconds": {
                str(p): {tool: statistics.median(ts) for tool, ts in t.items()} for p, t in results.items()
            },
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
