"""How long reading a big Job's snapshots takes: ``job.pods()`` and ``job.status`` on a finished
Indexed Job of ``--pods`` (100,000) callable pods.

Prints, each the median wall and CPU time of ``--runs`` (7) calls on the same Job:

* ``pods()``: the public call (a list of :class:`kjob.Pod`);
* ``native pods()``: the extension's call alone (what the bindings cost, conversion included);
* ``status``: a snapshot of the status, which must not grow with the number of pods.

The Job is run once, untimed (callable pods, ``max_workers=2``); only the reads are timed.
Compare builds by running this script with each build's package first on ``PYTHONPATH``.

Usage::

    python benches/pods_bench.py [--pods 100000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import kjob


def square(i: int) -> int:
    return i * i


def median_seconds(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """The call alone (its result is freed after the clocks stop, as a caller keeps it): the
    median wall time and the median CPU time of this process, which other work on a busy
    machine inflates less."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        result = call()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        del result
    return statistics.median(wall), statistics.median(cpu)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    job = kjob.Job(
        target=square,
        completions=args.pods,
        parallelism=min(args.pods, 1000),
        completion_mode="Indexed",
        max_workers=2,
    )
    started = time.perf_counter()
    status = job.run()
    print(f"ran {status.succeeded} pods in {time.perf_counter() - started:.1f} s")
    assert status.succeeded == args.pods, status
    assert len(job.pods()) == args.pods
    native = job._native  # the bench times the extension alone too
    for label, call in (
        ("pods()", job.pods),
        ("native pods()", native.pods),
        ("status", lambda: job.status),
    ):
        wall, cpu = median_seconds(call, args.runs)
        print(f"{label:>14}: {wall * 1000:9.2f} ms wall, {cpu * 1000:9.2f} ms CPU (medians of {args.runs})")
    job.delete()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
