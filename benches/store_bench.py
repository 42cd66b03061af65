"""What the store costs (issue 15): the same Jobs with the store on and off, in one run.

Two workloads, each timed with ``kjob.configure(store=True)`` and ``store=False`` alternately
(interleaved, so that drift hits both alike), medians of ``--runs``:

1. callable: ``--pods`` (10,000) trivial Indexed pods ``f(i) = i * i`` at ``parallelism=pods``,
   ``max_workers=2``, warm workers, timed from ``start()`` to the return of ``results()``
   (the callable bench's first measurement, warm);
2. spawn: ``--spawn-pods`` (2,000) command pods ``true`` at parallelism 8, timed from
   ``start()`` to the return of ``wait()`` (the spawn bench's workload).

With the store on, ``wait()`` returns once the Job's status is written (so that other
processes see it finished as soon as this one does); its pods and events are written by the
keeper thread right after. The time with the store on runs until that last write is done
(the Job fully recorded), so the background work is counted too. The store lives in a
temporary ``KJOB_HOME`` removed at the end. Overhead is ``median(on) / median(off) - 1``; the
issue allows 10 %.

Usage::

    python benches/store_bench.py [--pods 10000] [--spawn-pods 2000] [--runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

import kjob
from kjob import _keeper


def square(i: int) -> int:
    return i * i


def recorded(job: kjob.Job) -> None:
    """Until the store holds the Job's final record (nothing when the store is off)."""
    keeper = _keeper.current()
    while keeper is not None and keeper.is_recording(job.uid):
        time.sleep(0.0005)


def run_callable(pods: int) -> tuple[float, float]:
    job = kjob.Job(
        target=square, completions=pods, parallelism=pods, completion_mode="Indexed", max_workers=2
    )
    started = time.perf_counter()
    job.start()
    job.wait()
    results = job.results()
    answered = time.perf_counter() - started
    recorded(job)
    elapsed = time.perf_counter() - started
    assert len(results) == pods and results[pods - 1] == (pods - 1) ** 2
    job.delete()
    return answered, elapsed


def run_spawn(pods: int) -> tuple[float, float]:
    job = kjob.Job(command=["true"], completions=pods, parallelism=8)
    started = time.perf_counter()
    job.start()
    status = job.wait()
    answered = time.perf_counter() - started
    recorded(job)
    elapsed = time.perf_counter() - started
    assert status.succeeded == pods
    job.delete()
    return answered, elapsed


def measure(run: Callable[[], tuple[float, float]], runs: int) -> dict[str, list[float]]:
    """``on``: until the answer (results, status); ``on-recorded``: until the Job is fully
    recorded; ``off``: the store off (both the same)."""
    timings: dict[str, list[float]] = {"on": [], "on-recorded": [], "off": []}
    for store in (True, False):  # one untimed run each: workers started, caches warm
        kjob.configure(store=store)
        run()
    for _ in range(runs):
        kjob.configure(store=True)
        answered, recorded_at = run()
        timings["on"].append(answered)
        timings["on-recorded"].append(recorded_at)
        kjob.configure(store=False)
        timings["off"].append(run()[0])
    return timings


def report(name: str, timings: dict[str, list[float]]) -> str:
    on, whole, off = (statistics.median(timings[k]) for k in ("on", "on-recorded", "off"))
    return (
        f"{name} (medians of {len(timings['on'])}): store off {off:.3f} s; on {on:.3f} s until the "
        f"answer ({100 * (on / off - 1):+.1f} %), {whole:.3f} s until fully recorded "
        f"({100 * (whole / off - 1):+.1f} %)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--spawn-pods", type=int, default=2_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp(prefix="kjob-store-bench-")
    kjob.configure(home=home, backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
    try:
        results = {
            "callable": measure(lambda: run_callable(args.pods), args.runs),
            "spawn": measure(lambda: run_spawn(args.spawn_pods), args.runs),
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(report(f"callable ({args.pods} trivial pods, warm)", results["callable"]))
    print(report(f"spawn ({args.spawn_pods} pods of `true`, parallelism 8)", results["spawn"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
