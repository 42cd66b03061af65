"""CPU time per trivial callable pod, split between the controller (this interpreter's runtime
thread) and the workers, over several Jobs of ``--pods`` Indexed pods ``f(i) = i * i``.

Wall time on a shared 2-core machine is noisy; CPU time per pod is the steadier figure when
comparing two builds. Run A/B builds alternately, a few times each.

    python benches/cpu_per_pod.py [--pods 10000] [--parallelism 10000] [--jobs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import kjob

TICKS = os.sysconf("SC_CLK_TCK")


def f(i: int) -> int:
    return i * i


def children_cpu() -> dict[int, float]:
    """CPU seconds of this process's live children (the workers), by pid."""
    me = os.getpid()
    found: dict[int, float] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == me:
            found[int(name)] = (int(fields[11]) + int(fields[12])) / TICKS
    return found


def one_job(pods: int, parallelism: int) -> float:
    job = kjob.Job(
        target=f, completions=pods, parallelism=parallelism, completion_mode="Indexed", max_workers=2
    )
    start = time.perf_counter()
    job.start()
    job.wait()
    results = job.results()
    elapsed = time.perf_counter() - start
    job.delete()
    if len(results) != pods:
        raise AssertionError(f"{len(results)} results for {pods} pods")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--parallelism", type=int, default=None, help="default: --pods")
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    parallelism = args.parallelism or args.pods
    one_job(args.pods, parallelism)  # workers started, caches warm
    workers_before, own_before = children_cpu(), os.times()
    times = [one_job(args.pods, parallelism) for _ in range(args.jobs)]
    workers_after, own_after = children_cpu(), os.times()
    pods = args.pods * args.jobs
    own = (own_after.user + own_after.system - own_before.user - own_before.system) / pods
    workers = sum(cpu - workers_before.get(pid, 0.0) for pid, cpu in workers_after.items()) / pods
    print(
        f"pods={args.pods} parallelism={parallelism} jobs={args.jobs}: wall median "
        f"{statistics.median(times) * 1e3:.1f} ms (min {min(times) * 1e3:.1f}); CPU per pod: "
        f"controller process {own * 1e6:.2f} us, workers {workers * 1e6:.2f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
