"""Throughput of callable pods (``kjob.Job(target=...)``) against Python's process pools.

Three measurements, each the median of ``--runs`` runs:

1. ``--pods`` (10,000) trivial Indexed pods ``f(i) = i * i`` at ``parallelism=pods``,
   ``max_workers=2``, against ``multiprocessing.Pool(2).map(f, range(N))`` (default chunking)
   and ``joblib.Parallel(n_jobs=2)(delayed(f)(i) for i in range(N))``:

   * COLD -- the first Job / first call in a fresh interpreter. Every cold run is a separate
     child process (``sys.executable`` running this script with a hidden flag) that imports
     everything first and then times one call, so worker start-up is included and interpreter
     start-up is not;
   * WARM -- a later Job / call in the same interpreter, after one untimed first call: kjob's
     idle workers, the same ``Pool`` object and joblib's reusable loky executor.

2. The same pods at ``parallelism=2`` (``max_workers=2``) against
   ``ProcessPoolExecutor(2).map(f, range(N))`` and ``multiprocessing.Pool(2).map(f, range(N),
   chunksize=1)``, all warm (pool/executor created before timing, one untimed call first).

3. ``--sleep-pods`` (1,000) pods of ``time.sleep(0.01)`` at parallelism 8, ``max_workers=8``,
   warm: wall time against the ideal ``pods * 0.01 / 8`` (1.25 s). Two references show what
   this machine allows: the sleeps alone, back to back in one process (each sleep overshoots
   a little), and the bare hand-off -- 8 processes, each given the next sleep over a pipe only
   when it has reported the last one (what the parallelism cap demands), with nothing else:
   no controller, no pickling.

A kjob run is timed from ``start()`` to the return of ``results()`` (the Job object is built
before the clock starts and deleted after it stops); a peer run from the call (cold: from the
pool's creation) to the fully consumed result list. Imports (cloudpickle, which kjob imports
lazily in ``start()``, included) happen before any clock starts. Every result is checked against the
expected values. Tools are interleaved within each round so that drift hits all alike. Ratios
are ``kjob throughput / peer throughput``: above 1 means kjob is faster.

Usage::

    python benches/callable_bench.py [--pods 10000] [--sleep-pods 1000] [--runs 5]
                                     [--only {1,2,3} ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import select
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.pool import Pool
from typing import Any, Callable

import kjob

SLEEP_SECONDS = 0.01
SLEEP_PARALLELISM = 8

KJOB = "kjob"
JOBLIB = "joblib"
POOL = "Pool.map"
POOL_1 = "Pool.map(chunksize=1)"
PPE = "ProcessPoolExecutor.map"
HANDOFF = "bare hand-off"
COLD_TOOLS = (KJOB, JOBLIB, POOL)

# A runner performs one timed run and returns its wall time in seconds.
Runner = Callable[[], float]


def f(i: int) -> int:
    return i * i


def nap(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i


def sleep_floor(count: int) -> float:
    """Seconds for ``count`` back-to-back ``time.sleep(SLEEP_SECONDS)`` calls: the part of the
    ideal no scheduler can beat on this machine (each sleep overshoots a little)."""
    start = time.perf_counter()
    for _ in range(count):
        time.sleep(SLEEP_SECONDS)
    return time.perf_counter() - start


# The bare hand-off's worker: sleep once per 8-byte task, answer with the task.
HANDOFF_CHILD = """
import os, time
while True:
    task = os.read(0, 8)
    if not task:
        break
    time.sleep({seconds!r})
    os.write(1, task)
"""


class HandOff:
    """Hands ``SLEEP_PARALLELISM`` processes one sleep at a time each, the next only when the
    last is reported: the sleep case's round trips with nothing else in them."""

    def __init__(self, workers: int) -> None:
        child = HANDOFF_CHILD.format(seconds=SLEEP_SECONDS)
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
            )
            for _ in range(workers)
        ]

    def run(self, tasks: int) -> float:
        answers = select.poll()
        task_pipe: dict[int, int] = {}
        for proc in self.procs:
            assert proc.stdin is not None and proc.stdout is not None
            task_pipe[proc.stdout.fileno()] = proc.stdin.fileno()
            answers.register(proc.stdout.fileno(), select.POLLIN)
        start = time.perf_counter()
        sent = done = 0
        for pipe in task_pipe.values():
            if sent < tasks:
                os.write(pipe, sent.to_bytes(8, "little"))
                sent += 1
        while done < tasks:
            for fd, _ in answers.poll():
                os.read(fd, 8)
                done += 1
                if sent < tasks:
                    os.write(task_pipe[fd], sent.to_bytes(8, "little"))
                    sent += 1
        return time.perf_counter() - start

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(timeout=10)


def check(what: str, got: object, want: object) -> None:
    """Raises even under ``python -O``."""
    if got != want:
        raise AssertionError(f"{what}: wrong results")


# ---- one run of each tool ---------------------------------------------------------------------


def run_kjob(
    fn: Callable[[int], int], pods: int, parallelism: int, max_workers: int, want: dict[int, int]
) -> float:
    job = kjob.Job(
        target=fn,
        completions=pods,
        parallelism=parallelism,
        completion_mode="Indexed",
        max_workers=max_workers,
    )
    try:
        start = time.perf_counter()
        job.start()
        status = job.wait()
        results = job.results()
        elapsed = time.perf_counter() - start
        if not status.is_complete:
            raise AssertionError(f"kjob: Job {job.name} did not complete: {status}")
        check(KJOB, results, want)
    finally:
        job.delete()
    return elapsed


def run_joblib(pods: int, want: list[int]) -> float:
    from joblib import Parallel, delayed  # type: ignore[import-untyped, unused-ignore]

    start = time.perf_counter()
    out = Parallel(n_jobs=2)(delayed(f)(i) for i in range(pods))
    elapsed = time.perf_counter() - start
    check(JOBLIB, out, want)
    return elapsed


def run_pool(pool: Pool, pods: int, chunksize: int | None, want: list[int]) -> float:
    start = time.perf_counter()
    out = pool.map(f, range(pods), chunksize)
    elapsed = time.perf_counter() - start
    check(POOL if chunksize is None else POOL_1, out, want)
    return elapsed


def run_ppe(executor: ProcessPoolExecutor, pods: int, want: list[int]) -> float:
    start = time.perf_counter()
    out = list(executor.map(f, range(pods), chunksize=1))
    elapsed = time.perf_counter() - start
    check(PPE, out, want)
    return elapsed


def cold_child(tool: str, pods: int) -> float:
    """One cold run in this (fresh) interpreter: everything is imported before the clock starts."""
    import cloudpickle  # type: ignore[import-untyped, unused-ignore]  # noqa: F401  (kjob's, lazily)
    from joblib import Parallel  # type: ignore[import-untyped, unused-ignore]  # noqa: F401

    squares = [i * i for i in range(pods)]
    if tool == KJOB:
        return run_kjob(f, pods, pods, 2, dict(enumerate(squares)))
    if tool == JOBLIB:
        return run_joblib(pods, squares)
    if tool == POOL:
        start = time.perf_counter()
        pool = multiprocessing.Pool(2)
        out = pool.map(f, range(pods))
        elapsed = time.perf_counter() - start
        pool.close()
        pool.join()
        check(POOL, out, squares)
        return elapsed
    raise ValueError(f"unknown tool {tool!r}")


# ---- rounds and reporting ---------------------------------------------------------------------


def rounds(runners: dict[str, Runner], runs: int, warm_up: bool) -> dict[str, list[float]]:
    """``runs`` interleaved rounds over the runners, after one untimed round if ``warm_up``."""
    if warm_up:
        for runner in runners.values():
            runner()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(runs):
        for name, runner in runners.items():
            times[name].append(runner())
    return times


def cold_rounds(pods: int, runs: int) -> dict[str, list[float]]:
    script = os.path.abspath(__file__)

    def runner(tool: str) -> Runner:
        def run() -> float:
            proc = subprocess.run(
                [sys.executable, script, "--_cold", tool, "--pods", str(pods)], capture_output=True, text=True
            )
            if proc.returncode != 0:
                raise RuntimeError(f"cold {tool} run failed ({proc.returncode}):\n{proc.stderr}")
            return float(json.loads(proc.stdout.strip().splitlines()[-1])["seconds"])

        return run

    return rounds({tool: runner(tool) for tool in COLD_TOOLS}, runs, warm_up=False)


def print_table(title: str, pods: int, times: dict[str, list[float]]) -> None:
    print(f"\n{title}")
    print(f"  {'tool':<26} {'median s':>9} {'min s':>8} {'max s':>8} {'pods/s':>10} {'kjob/peer':>9}")
    kjob_median = statistics.median(times[KJOB])
    for name, values in times.items():
        median = statistics.median(values)
        ratio = "" if name == KJOB else f"{median / kjob_median:.2f}x"
        print(
            f"  {name:<26} {median:>9.3f} {min(values):>8.3f} {max(values):>8.3f} "
            f"{pods / median:>10,.0f} {ratio:>9}"
        )


def summary_line(label: str, pods: int, times: dict[str, list[float]]) -> str:
    kjob_median = statistics.median(times[KJOB])
    parts = [f"{label}: kjob {pods / kjob_median:,.0f} pods/s"]
    for name, values in times.items():
        if name != KJOB:
            median = statistics.median(values)
            parts.append(f"{name} {pods / median:,.0f}/s ({median / kjob_median:.2f}x)")
    return "; ".join(parts)


def header(args: argparse.Namespace) -> dict[str, Any]:
    import joblib  # type: ignore[import-untyped, unused-ignore]

    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "mp_start_method": multiprocessing.get_start_method(),
        "joblib": joblib.__version__,
        "pods": args.pods,
        "sleep_pods": args.sleep_pods,
        "runs": args.runs,
    }
    print("callable_bench: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    return info


# ---- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10_000, help="pods in measurements 1 and 2")
    parser.add_argument("--sleep-pods", type=int, default=1_000, help="pods in measurement 3")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per tool (median reported)")
    parser.add_argument("--only", type=int, choices=(1, 2, 3), nargs="+", help="measurements to run")
    parser.add_argument("--json", metavar="PATH", help="also write the raw times here")
    parser.add_argument("--_cold", choices=COLD_TOOLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args._cold is not None:
        print(json.dumps({"seconds": cold_child(args._cold, args.pods)}))
        return 0
    if args.pods < 1 or args.sleep_pods < 1 or args.runs < 1:
        parser.error("--pods, --sleep-pods and --runs must be positive")

    only = set(args.only or (1, 2, 3))
    pods = args.pods
    squares = [i * i for i in range(pods)]
    square_map = dict(enumerate(squares))
    report: dict[str, Any] = {"config": header(args), "seconds": {}}
    summary: list[str] = []

    if 1 in only:
        label = f"cold p={pods}"
        times = cold_rounds(pods, args.runs)
        print_table(f"1. {label}: first Job / first call in a fresh interpreter, max_workers=2", pods, times)
        report["seconds"][label] = times
        summary.append(summary_line(label, pods, times))

        label = f"warm p={pods}"
        pool = multiprocessing.Pool(2)
        try:
            times = rounds(
                {
                    KJOB: lambda: run_kjob(f, pods, pods, 2, square_map),
                    JOBLIB: lambda: run_joblib(pods, squares),
                    POOL: lambda: run_pool(pool, pods, None, squares),
                },
                args.runs,
                warm_up=True,
            )
        finally:
            pool.close()
            pool.join()
        print_table(f"1. {label}: a later Job / call in the same interpreter, max_workers=2", pods, times)
        report["seconds"][label] = times
        summary.append(summary_line(label, pods, times))

    if 2 in only:
        label = "warm p=2"
        pool = multiprocessing.Pool(2)
        executor = ProcessPoolExecutor(2)
        try:
            times = rounds(
                {
                    KJOB: lambda: run_kjob(f, pods, 2, 2, square_map),
                    PPE: lambda: run_ppe(executor, pods, squares),
                    POOL_1: lambda: run_pool(pool, pods, 1, squares),
                },
                args.runs,
                warm_up=True,
            )
        finally:
            executor.shutdown()
            pool.close()
            pool.join()
        print_table(f"2. {label}: one pod / item at a time per worker, max_workers=2", pods, times)
        report["seconds"][label] = times
        summary.append(summary_line(label, pods, times))

    if 3 in only:
        n = args.sleep_pods
        ideal = n * SLEEP_SECONDS / SLEEP_PARALLELISM
        want = {i: i for i in range(n)}
        handoff = HandOff(SLEEP_PARALLELISM)
        try:
            times = rounds(
                {
                    KJOB: lambda: run_kjob(nap, n, SLEEP_PARALLELISM, SLEEP_PARALLELISM, want),
                    HANDOFF: lambda: handoff.run(n),
                },
                args.runs,
                warm_up=True,
            )
        finally:
            handoff.close()
        median = statistics.median(times[KJOB])
        bare = statistics.median(times[HANDOFF])
        label = f"warm sleep {SLEEP_SECONDS * 1000:g} ms p={SLEEP_PARALLELISM}"
        print(f"\n3. {label}, max_workers={SLEEP_PARALLELISM}: {n:,} pods")
        # What the sleeps alone take here: one worker's share, back to back in this process.
        floor = statistics.median(sleep_floor(n // SLEEP_PARALLELISM) for _ in range(3))
        print(
            f"  median {median:.3f} s (min {min(times[KJOB]):.3f}, max {max(times[KJOB]):.3f}); "
            f"ideal {ideal:.3f} s; ratio {median / ideal:.3f}x"
        )
        print(
            f"  floor: {n // SLEEP_PARALLELISM} back-to-back sleeps in one process take {floor:.3f} s "
            f"({floor / ideal:.3f}x the ideal)"
        )
        print(
            f"  bare hand-off (8 processes, one sleep at a time each over a pipe): median {bare:.3f} s "
            f"({bare / ideal:.3f}x the ideal); kjob takes {median / bare:.3f}x that"
        )
        report["seconds"][label] = times
        report["sleep_ideal_seconds"] = ideal
        report["sleep_floor_seconds"] = floor
        summary.append(
            f"{label}: kjob {median:.3f} s for {n:,} pods ({median / ideal:.3f}x the ideal "
            f"{ideal:.2f} s; {n / median:,.0f} pods/s); the sleeps alone, back to back: "
            f"{floor / ideal:.3f}x; the bare hand-off: {bare / ideal:.3f}x"
        )

    print("\nsummary (medians; ratio = kjob throughput / peer throughput, above 1 = kjob faster)")
    for line in summary:
        print("  " + line)
    if args.json:
        report["summary"] = summary
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
