"""kjob on a Dask cluster (``kjob.DaskExecutor``) against Dask itself, on a loopback cluster
of two worker processes (``distributed.LocalCluster(n_workers=2, threads_per_worker=2,
processes=True)``).

Two measurements, each the median of ``--runs`` runs, all warm (one untimed run of each
first: the kjob agents and their worker processes exist, Dask's workers have the function):

1. ``--pods`` (10,000) trivial Indexed callable pods ``f(i) = i * i`` at
   ``parallelism=pods`` against ``client.gather(client.map(f, range(N), pure=False))`` (every
   run computes afresh: ``pure=False`` keeps a later run from finding an earlier run's keys).
   Throughput in pods (tasks) per second; the ratio is kjob's over Dask's.
2. ``--sleep-pods`` (200) callable pods of ``time.sleep(0.05)`` at parallelism 4: wall time
   against the ideal ``pods * 0.05 / 4`` (2.5 s).

A kjob run is timed from ``start()`` to the return of ``results()`` (the Job object is built
before the clock starts and deleted after it stops); every result is checked.

Usage::

    python benches/dask_bench.py [--pods 10000] [--sleep-pods 200] [--runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Any, Callable

import distributed

import kjob

SLEEP_SECONDS = 0.05
SLEEP_PARALLELISM = 4


def f(i: int) -> int:
    return i * i


def nap(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i


def run_kjob(
    executor: kjob.DaskExecutor, fn: Callable[[int], int], pods: int, parallelism: int, want: dict[int, int]
) -> float:
    job = kjob.Job(
        target=fn, completions=pods, parallelism=parallelism, completion_mode="Indexed", executor=executor
    )
    try:
        start = time.perf_counter()
        job.start()
        status = job.wait()
        results = job.results()
        elapsed = time.perf_counter() - start
        if not status.is_complete or results != want:
            raise AssertionError(f"kjob: Job {job.name} did not complete with the right results: {status}")
    finally:
        job.delete()
    return elapsed


def run_dask(client: Any, pods: int, want: list[int]) -> float:
    start = time.perf_counter()
    futures = client.map(f, range(pods), pure=False)
    out = client.gather(futures)
    elapsed = time.perf_counter() - start
    del futures
    if out != want:
        raise AssertionError("client.map: wrong results")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--sleep-pods", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=":0"
    )
    client = distributed.Client(cluster, set_as_default=False)
    executor = kjob.DaskExecutor(client)
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "distributed": distributed.__version__,
        },
        "runs": args.runs,
    }
    try:
        n = args.pods
        want_dict = {i: i * i for i in range(n)}
        want_list = [i * i for i in range(n)]
        run_kjob(executor, f, n, n, want_dict)  # untimed: warm
        run_dask(client, n, want_list)
        kjob_times, dask_times = [], []
        for _ in range(args.runs):
            kjob_times.append(run_kjob(executor, f, n, n, want_dict))
            dask_times.append(run_dask(client, n, want_list))
        k, d = statistics.median(kjob_times), statistics.median(dask_times)
        report["trivial"] = {
            "pods": n,
            "kjob_seconds": kjob_times,
            "dask_seconds": dask_times,
            "kjob_pods_per_second": n / k,
            "dask_tasks_per_second": n / d,
            "ratio": d / k,
        }
        print(f"{n} trivial pods, median of {args.runs}:")
        print(f"  kjob DaskExecutor  {k:7.3f} s  {n / k:9.0f} pods/s")
        print(f"  client.map+gather  {d:7.3f} s  {n / d:9.0f} tasks/s")
        print(f"  ratio (kjob/Dask throughput): {d / k:.2f}x")

        s = args.sleep_pods
        want_naps = {i: i for i in range(s)}
        run_kjob(executor, nap, s, SLEEP_PARALLELISM, want_naps)  # untimed: warm
        sleep_times = [run_kjob(executor, nap, s, SLEEP_PARALLELISM, want_naps) for _ in range(args.runs)]
        ideal = s * SLEEP_SECONDS / SLEEP_PARALLELISM
        m = statistics.median(sleep_times)
        report["sleep"] = {
            "pods": s,
            "seconds": sleep_times,
            "ideal_seconds": ideal,
            "ratio_to_ideal": m / ideal,
        }
        print(
            f"{s} pods of sleep({SLEEP_SECONDS}) at parallelism {SLEEP_PARALLELISM}, median of {args.runs}:"
        )
        print(f"  kjob DaskExecutor  {m:7.3f} s  ideal {ideal:.3f} s  ({m / ideal:.3f}x the ideal)")
    finally:
        client.close()
        cluster.close()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)


if __name__ == "__main__":
    main()
