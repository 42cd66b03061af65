"""A worker that cannot start a pod fails the pod, never loops (issue: "Right answers in a
hostile host process", part 3), and the smaller worker cases of that issue: a full disk under
a pod's log, too few file descriptors for every worker, targets from modules a fresh
interpreter cannot import by name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import kjob
from conftest import Backoff, no_pids_left


def _cannot_rebuild() -> None:
    raise RuntimeError("cannot rebuild this argument here")


class UnpicklableInWorker:
    """Pickles fine; unpickling it (in the worker) raises."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_cannot_rebuild, ())


def takes_an_argument(index: int, argument: object) -> int:
    return index


def test_arguments_that_cannot_be_unpickled_fail_each_pod_with_the_reason(fast_backoff: Backoff) -> None:
    job = kjob.Job(
        target=takes_an_argument,
        args=[UnpicklableInWorker()],
        completions=3,
        parallelism=1,
        completion_mode="Indexed",
        backoff_limit=2,
        **fast_backoff,
    )
    status = job.run(timeout=60)
    # Counted by the normal rules: backoffLimit 2 allows 2 failures, the third fails the Job.
    assert status.is_failed
    assert status.succeeded == 0
    assert status.failed == 3
    pods = job.pods()
    assert len(pods) == 3
    for pod in pods:
        assert pod.phase == "Failed"
        assert pod.reason == "StartError"
        assert pod.message == (
            f"the arguments of index {pod.index} could not be unpickled in the worker: "
            "RuntimeError: cannot rebuild this argument here"
        )
    assert [c.reason for c in status.conditions if c.type == "Failed"] == ["BackoffLimitExceeded"]
    job.delete()
    assert no_pids_left(job.uid) == []


class KillsTheWorkerWhenLoaded:
    """A target whose unpickling ends the worker process (before it can report anything)."""

    def __call__(self) -> None:
        return None

    def __reduce__(self) -> tuple[Any, tuple[int]]:
        return (os._exit, (3,))


def test_workers_that_die_before_running_a_pod_are_not_respawned_for_ever(fast_backoff: Backoff) -> None:
    job = kjob.Job(target=KillsTheWorkerWhenLoaded(), backoff_limit=0, max_workers=1, **fast_backoff)
    status = job.run(timeout=60)
    assert status.is_failed
    (pod,) = job.pods()
    assert pod.phase == "Failed"
    assert pod.reason == "StartError"
    assert pod.message is not None
    assert "the Python worker exited before it could run a pod, 3 times in a row" in pod.message
    deaths = [e for e in job.events() if e.reason == "WorkerDied"]
    assert len(deaths) == 3
    assert all(e.type == "Warning" and "exited with code 3 before it ran a pod" in e.message for e in deaths)
    job.delete()
    assert no_pids_left(job.uid) == []


def prints_a_line(index: int) -> int:
    print("a line the full disk cannot take")
    return os.getpid()


def test_a_pod_whose_log_hits_enospc_fails_and_its_worker_lives_on(
    tmp_path: Path, fast_backoff: Backoff
) -> None:
    # /dev/full answers every write with ENOSPC, as a full disk does.
    for n in range(4):
        (tmp_path / f"enospc-worker-{n}.log").symlink_to("/dev/full")
    job = kjob.Job(
        name="enospc",
        target=prints_a_line,
        completions=2,
        completion_mode="Indexed",
        backoff_limit=0,
        max_workers=1,
        log_dir=tmp_path,
        **fast_backoff,
    )
    status = job.run(timeout=60)
    assert status.is_failed
    pod = job.pods()[0]
    assert pod.phase == "Failed"
    assert pod.exit_code == 1
    assert pod.exception is not None
    assert pod.exception.startswith("OSError: [Errno 28] No space left on device")
    # The worker survived its pod's failure: no worker died, no WorkerDied event.
    assert [e for e in job.events() if e.reason == "WorkerDied"] == []
    job.delete()


def test_a_target_from_a_module_loaded_by_path_runs(tmp_path: Path) -> None:
    import importlib.util

    source = tmp_path / "loaded_by_path.py"
    source.write_text("def square(index):\n    return index * index\n")
    spec = importlib.util.spec_from_file_location("kjob_loaded_by_path", source)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kjob_loaded_by_path"] = module
    spec.loader.exec_module(module)
    try:
        job = kjob.Job(target=module.square, completions=3, completion_mode="Indexed", backoff_limit=0)
        assert job.run(timeout=60).succeeded == 3
        assert job.results() == {0: 0, 1: 1, 2: 4}
        job.delete()
    finally:
        del sys.modules["kjob_loaded_by_path"]


def _slot_files() -> set[str]:
    found = set()
    for folder in ("/dev/shm", "/tmp"):
        try:
            found |= {f"{folder}/{n}" for n in os.listdir(folder) if n.startswith("kjob-slot-")}
        except OSError:
            pass
    return found


def test_a_target_defined_in_the_main_script_runs_under_multiprocessing_spawn(tmp_path: Path) -> None:
    script = tmp_path / "spawned.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing
            import kjob

            def cube(index):
                return index ** 3

            def run_job(queue):
                job = kjob.Job(target=cube, completions=3, completion_mode="Indexed", backoff_limit=0)
                status = job.run(timeout=60)
                queue.put((status.succeeded, job.results()))
                job.delete()

            if __name__ == "__main__":
                context = multiprocessing.get_context("spawn")
                queue = context.Queue()
                child = context.Process(target=run_job, args=(queue,))
                child.start()
                print(queue.get(timeout=90))
                child.join(timeout=30)
                print(child.exitcode)
            """
        )
    )
    before = _slot_files()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=150)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["(3, {0: 0, 1: 1, 2: 8})", "0"]
    assert _slot_files() - before == set()


def test_too_few_file_descriptors_for_every_worker_is_said_in_an_event(tmp_path: Path) -> None:
    script = tmp_path / "nofile.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, resource
            import kjob

            def one(index):
                return 1

            # Room for the Job itself and a couple of workers, not for eight.
            job = kjob.Job(target=one, completions=40, parallelism=8, completion_mode="Indexed",
                           max_workers=8, backoff_limit=0)
            open_now = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 14, open_now + 14))
            status = job.run(timeout=60)
            warnings = [e for e in job.events() if e.reason == "FailedCreateWorker"]
            print(status.succeeded, len(warnings), warnings[0].type if warnings else None)
            print(warnings[0].message if warnings else "")
            job.delete()
            """
        )
    )
    # The store off: its database and results log would take descriptors of the room left.
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "KJOB_STORE": "0"},
    )
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[:2]
    assert first == "40 1 Warning"
    assert "instead of 8: failed to start another" in second
