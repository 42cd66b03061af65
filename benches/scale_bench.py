"""Huge parallelism (issue 14 §5): a 100,000-completion Indexed callable Job must cost no more
per pod at ``parallelism=100000`` than at ``parallelism=1000``.

Each run is a fresh child process (this script with ``--child``) that imports kjob, warms its
worker pool with a small Job, then times one Job of ``--completions`` trivial pods
``f(i) = i`` from ``start()`` to the return of ``results()`` and checks every value. Runs of
the different parallelisms (and of ``--base``, another checkout's ``python/`` folder with its
extension built in, for a before/after comparison) are interleaved round by round so that
drift on a busy machine hits all alike. Printed: the median wall time and µs per pod of each
parallelism, and its ratio to the lowest parallelism's.

Usage::

    python benches/scale_bench.py [--completions 100000] [--parallelism 1000 10000 100000]
                                  [--runs 5] [--base /tmp/base/python] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any


def _identity(i: int) -> int:
    return i


def child(completions: int, parallelism: int) -> None:
    """One timed Job in this fresh process; prints its wall time in seconds."""
    import kjob

    # Workers are kept between Jobs: start them before the clock, as a warm pool.
    kjob.Job(target=_identity, completions=8, parallelism=8, completion_mode="Indexed").run(check=True)
    job = kjob.Job(
        target=_identity, completions=completions, parallelism=parallelism, completion_mode="Indexed"
    )
    started = time.perf_counter()
    job.start()
    job.wait(check=True)
    results = job.results()
    elapsed = time.perf_counter() - started
    job.delete()
    if results != {i: i for i in range(completions)}:
        raise SystemExit("wrong results")
    print(elapsed)


def _timed_run(completions: int, parallelism: int, path: str | None) -> float:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = path
    command = [sys.executable, __file__, "--child", str(completions), str(parallelism)]
    out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--completions", type=int, default=100_000)
    parser.add_argument("--parallelism", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=5, help="runs per variant (>= 3)")
    parser.add_argument("--base", help="a python/ folder holding another kjob to compare with")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.runs < 3:
        parser.error("--runs must be at least 3")

    builds: dict[str, str | None] = {"this": None}
    if args.base:
        builds["base"] = args.base
    variants = [(build, p) for build in builds for p in args.parallelism]
    times: dict[tuple[str, int], list[float]] = {v: [] for v in variants}
    for round_ in range(args.runs):
        order = variants if round_ % 2 == 0 else list(reversed(variants))
        for build, p in order:
            times[(build, p)].append(_timed_run(args.completions, p, builds[build]))

    n = args.completions
    report: dict[str, Any] = {"completions": n, "runs": args.runs, "results": []}
    print(f"{n} trivial Indexed callable pods, median of {args.runs} runs, warm worker pool")
    print(f"{'build':6s} {'parallelism':>11s} {'median s':>9s} {'us/pod':>8s} {'vs lowest':>9s}  runs (s)")
    for build in builds:
        lowest = statistics.median(times[(build, min(args.parallelism))])
        for p in args.parallelism:
            runs = times[(build, p)]
            median = statistics.median(runs)
            report["results"].append({"build": build, "parallelism": p, "median_s": median, "runs_s": runs})
            listed = " ".join(f"{t:.2f}" for t in runs)
            print(
                f"{build:6s} {p:11d} {median:9.3f} {median / n * 1e6:8.1f} {median / lowest:8.2f}x  {listed}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
