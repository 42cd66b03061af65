"""`os.fork()` after kjob was used: a forked child never affects the parent's Jobs, and kjob
works in the child with a runtime of its own (issue item 2).

Most cases run a small script in a fresh interpreter, so that the child can exit the normal
way (atexit hooks and finalizers run) without running pytest's own exit code."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time

import pytest

import kjob
from conftest import no_pids_left, pids_of_job

# Forking a process with threads (kjob's runtime thread) is what the issue is about.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")

# The parent's Job: two pods that outlive everything the child does.
PARENT = """
import os, sys, time, kjob
job = kjob.Job(name="parent", command=["sleep", "0.6"], completions=2, parallelism=2, backoff_limit=0)
job.start()
deadline = time.monotonic() + 5
while job.status.active < 2 and time.monotonic() < deadline:
    time.sleep(0.005)
"""

REPORT = """
_, child_status = os.waitpid(pid, 0)
status = job.wait(timeout=10)
print(os.waitstatus_to_exitcode(child_status), status.succeeded, status.failed, job.status.active)
job.delete()
"""


def run_script(body: str) -> list[str]:
    script = textwrap.dedent(PARENT) + textwrap.dedent(body) + textwrap.dedent(REPORT)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout.split("\n")


def test_fork_child_exiting_normally_does_not_kill_the_parents_pods() -> None:
    # The inherited atexit hook used to walk the copied Job registry and SIGKILL the pods.
    out = run_script("""
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # a normal exit: atexit hooks and Job finalizers run
    """)
    assert out[0] == "0 2 0 0"


def test_fork_child_using_the_parents_job_gets_a_clear_error_at_once() -> None:
    out = run_script("""
        pid = os.fork()
        if pid == 0:
            for use in (lambda: job.status, lambda: job.run(timeout=1), job.delete, job.pods):
                started = time.monotonic()
                try:
                    use()
                except kjob.KjobError as e:
                    print(f"{time.monotonic() - started < 0.1} {e}", flush=True)
            os._exit(7)
    """)
    errors = out[:4]
    assert len(errors) == 4
    for line in errors:
        quick, message = line.split(" ", 1)
        assert quick == "True"
        assert message.startswith("Job 'parent' belongs to process ")
        assert message.endswith(
            ", which forked this process: a forked child cannot use its parent's Jobs "
            "(create a new Job in the child)"
        )
    assert out[4] == "7 2 0 0"


def test_fork_child_runs_its_own_job_and_its_shepherd_spares_the_parents_pods() -> None:
    # The child's Job used to wait for ever (no runtime thread after fork) and end in
    # TimeoutError; its shepherd, started with the parent's token, killed the parent's pods
    # when the child ended, even by os._exit.
    out = run_script("""
        pid = os.fork()
        if pid == 0:
            child = kjob.Job(name="child", command=["true"], completions=3, parallelism=3)
            status = child.run(timeout=5)
            os._exit(40 + status.succeeded)
        time.sleep(0.2)  # the child's shepherd has swept by now
    """)
    assert out[0] == "43 2 0 0"


def test_fork_child_of_a_callable_job_runs_callables() -> None:
    out = run_script("""
        warm = kjob.Job(name="warm", target=abs, args=(-1,), completions=2, parallelism=2)
        warm.run(timeout=10)  # leaves idle workers in the parent's pool
        pid = os.fork()
        if pid == 0:
            child = kjob.Job(name="child", target=abs, args=(-5,), completions=2, parallelism=2)
            status = child.run(timeout=10)
            os._exit(40 + status.succeeded if child.results() == [5, 5] else 1)
        time.sleep(0.2)
    """)
    assert out[0] == "42 2 0 0"


def child_job(i: int) -> tuple[int, int]:
    job = kjob.Job(name=f"pool-{i}", command=["true"], completions=2, parallelism=2)
    status = job.run(timeout=10)
    job.delete()
    return i, status.succeeded


def test_multiprocessing_fork_pool_leaves_the_parents_job_alone() -> None:
    job = kjob.Job(name="parent", command=["sleep", "0.5"], completions=2, parallelism=2, backoff_limit=0)
    job.start()
    try:
        deadline = time.monotonic() + 5
        while job.status.active < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        pids = sorted(pids_of_job(job.uid))
        assert len(pids) == 2
        with multiprocessing.get_context("fork").Pool(2) as pool:
            assert sorted(pool.map(child_job, range(4))) == [(0, 2), (1, 2), (2, 2), (3, 2)]
        time.sleep(0.1)  # the pool workers' shepherds sweep after the pool ends
        assert sorted(pids_of_job(job.uid)) == pids
        status = job.wait(timeout=10)
        assert (status.succeeded, status.failed) == (2, 0)
    finally:
        job.delete()
    assert no_pids_left(job.uid) == []


def test_fork_in_process_child_sees_the_parents_job_as_forked() -> None:
    job = kjob.Job(name="mine", command=["sleep", "0.3"], completions=1)
    job.start()
    try:
        pid = os.fork()
        if pid == 0:
            # Exit codes tell the parent what the child saw; os._exit skips pytest's exit.
            code = 10
            try:
                assert job.status is None
            except kjob.KjobError:
                code = 11
            os._exit(code)
        _, wait_status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(wait_status) == 11
        assert job.wait(timeout=10).succeeded == 1
    finally:
        job.delete()


def test_a_thread_making_and_dropping_jobs_never_deadlocks_a_fork() -> None:
    """kjob's `before` fork hook holds the runtime's locks until the `after` hook; a hook
    registered before kjob was imported runs in between and may give the GIL up (this one
    sleeps). A thread making and dropping Jobs meanwhile must not wait for those locks with
    the GIL held (it did, as the store's keeper thread dropping finished Jobs: a deadlock)."""
    script = textwrap.dedent("""
        import os, threading, time
        os.register_at_fork(before=lambda: time.sleep(0.002))  # runs after kjob's hook
        import kjob
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                job = kjob.Job(command="true")
                del job
        thread = threading.Thread(target=churn)
        thread.start()
        for _ in range(40):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        stop.set()
        thread.join()
        print("ok")
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KJOB_STORE": "0"},
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "ok\n", "")
