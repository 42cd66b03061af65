"""Resource hygiene and concurrency: many pods leak no descriptors, threads or memory; many
Jobs driven from several threads at once end consistent. `benches/soak.py` runs the 100,000-pod
version and prints the figures."""

from __future__ import annotations

import os
import random
import resource
import threading
import time
from pathlib import Path

import kjob
from conftest import no_pids_left


def open_files() -> dict[str, str]:
    out = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            out[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    return out


def resources() -> tuple[int, int, int]:
    fds = len(os.listdir("/proc/self/fd"))
    threads = len(os.listdir("/proc/self/task"))
    rss_kib = int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    return fds, threads, rss_kib


def noop(i: int) -> int:
    return i


def run_batch(pods: int) -> None:
    for job in (
        kjob.Job(name="soak-cmd", command=["/bin/true"], completions=pods, parallelism=4),
        kjob.Job(
            name="soak-fn",
            target=noop,
            completions=pods,
            parallelism=pods,
            completion_mode="Indexed",
            max_workers=2,
        ),
    ):
        status = job.run(timeout=300)
        assert status.succeeded == pods
        job.delete()


def test_many_pods_leak_no_descriptors_threads_or_memory() -> None:
    run_batch(200)  # warm-up: runtime threads, idle workers, caches
    before, files_before = resources(), open_files()
    for _ in range(3):
        run_batch(1000)
    # The sweep for escaped descendants runs on a background thread after each Job and holds
    # /proc files open for a moment: let it finish before counting.
    deadline = time.monotonic() + 5
    while (after := resources())[0] > before[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    files_after = open_files()
    # Idle workers hold two pipe ends each and may be fewer now: no more, is the point.
    new = {fd: target for fd, target in files_after.items() if files_before.get(fd) != target}
    assert after[0] <= before[0], f"file descriptors: {before[0]} -> {after[0]}; new: {new}"
    assert after[1] == before[1], f"threads: {before[1]} -> {after[1]}"
    # Finished pods are small and deleted Jobs are freed: a generous bound for 6,000 pods.
    assert after[2] - before[2] < 30_000, f"RSS grew {after[2] - before[2]} KiB"
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 400_000


def test_fifty_jobs_from_several_threads_end_consistent() -> None:
    jobs: list[kjob.Job] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def driver(seed: int) -> None:
        rng = random.Random(seed)
        try:
            mine = []
            for i in range(10):
                if rng.random() < 0.3:
                    job = kjob.Job(
                        name=f"t{seed}-{i}",
                        target=noop,
                        completions=3,
                        parallelism=2,
                        completion_mode="Indexed",
                        max_workers=2,
                        termination_grace_period_seconds=1,
                    )
                else:
                    job = kjob.Job(
                        name=f"t{seed}-{i}",
                        command=f"sleep 0.0{rng.randrange(1, 9)}",
                        completions=3,
                        parallelism=2,
                        termination_grace_period_seconds=1,
                    )
                job.start()
                mine.append(job)
            for _ in range(20):
                job = rng.choice(mine)
                op = rng.choice(["suspend", "resume", "delete", "status", "pods", "scale"])
                if op == "suspend":
                    job.suspend()
                elif op == "resume":
                    job.resume()
                elif op == "delete" and rng.random() < 0.3:
                    job.delete(timeout=30)
                elif op == "scale":
                    job.scale(parallelism=rng.randrange(0, 4))
                else:
                    getattr(job, op) if op == "status" else job.pods()
                time.sleep(rng.random() * 0.02)
            for job in mine:
                if not job.is_deleted:
                    job.resume()
                    job.scale(parallelism=2)
            with lock:
                jobs.extend(mine)
        except BaseException as e:  # reported below, with the thread's traceback
            errors.append(e)

    threads = [threading.Thread(target=driver, args=(seed,)) for seed in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(jobs) == 50
    for job in jobs:
        if not job.is_deleted:
            status = job.wait(timeout=60)
            assert status.is_complete, (job, status.conditions)
        st = job.status
        assert not (st.is_complete and st.is_failed)
        assert st.failed >= 0 and st.succeeded >= 0
        job.delete(timeout=30)
        assert no_pids_left(job.uid) == []
