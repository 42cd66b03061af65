"""No pod outlives its Job: interpreter exit, signals to it (SIGKILL included), escaped
descendants, outside kills, huge output."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from conftest import pids_of_job


def test_interpreter_exit_kills_running_pods() -> None:
    script = textwrap.dedent(
        """
        import time, kjob
        job = kjob.Job(name="orphan", command="sleep 300 & sleep 300")
        job.start()
        while job.status.active == 0 or not job.pods()[0].pid:
            time.sleep(0.01)
        time.sleep(0.1)
        print(job.uid, flush=True)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    uid = out.stdout.strip()
    assert uid
    deadline = time.monotonic() + 5
    while pids_of_job(uid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pids_of_job(uid) == []


def _run_and_kill_parent(body: str, sig: int) -> str:
    """Runs `body` (which prints a Job uid once its pods run) in a child interpreter, then
    kills that interpreter with `sig` and returns the uid."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            # Never leave the child behind if it does not get as far as printing the uid.
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            uid = proc.stdout.readline().strip() if ready else ""
            assert uid, "the child printed no Job uid"
            proc.send_signal(sig)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    return uid


def wait_gone(uid: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while pids_of_job(uid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids_of_job(uid)


BODY_WITH_ESCAPE = """
import time, kjob
# A pod with a grandchild in its group and one that left it with setsid.
job = kjob.Job(name="victim", command="sleep 300 & setsid sleep 300 & wait", termination_grace_period_seconds=30)
job.start()
import subprocess
def count():
    return int(subprocess.run(["sh", "-c", f"grep -l KJOB_JOB_UID={job.uid} /proc/[0-9]*/environ 2>/dev/null | wc -l"],
                              capture_output=True, text=True).stdout)
while count() < 3:  # the shell, its sleep and the escaped sleep
    time.sleep(0.01)
print(job.uid, flush=True)
time.sleep(300)
"""


def test_sigkill_of_the_python_process_kills_every_pod_process() -> None:
    # No Python code runs after SIGKILL: the shepherd sees its pipe close and sweeps the
    # session's processes, including the one that escaped its process group.
    import signal

    uid = _run_and_kill_parent(BODY_WITH_ESCAPE, signal.SIGKILL)
    assert wait_gone(uid) == []


def test_sigkill_of_the_python_process_removes_private_log_folders_only(tmp_path: Path) -> None:
    # The Job's own temporary log folder cannot be found by anyone once its interpreter is
    # gone: the shepherd removes it. A folder the user chose stays.
    import signal

    # Without the store: with it, the folder is the stored Job's, kept for its resumption
    # (tests/test_store.py).
    body = f"""
    import os
    os.environ["KJOB_STORE"] = "0"
    import time, kjob
    mine = kjob.Job(name="private", command="echo hi; sleep 300")
    theirs = kjob.Job(name="chosen", command="echo hi; sleep 300", log_dir={str(tmp_path)!r})
    mine.start()
    theirs.start()
    while not all(j.pods() and j.pods()[0].pid for j in (mine, theirs)):
        time.sleep(0.01)
    print(mine.uid, mine.log_dir, flush=True)
    time.sleep(300)
    """
    uid, folder = _run_and_kill_parent(body, signal.SIGKILL).split(" ", 1)
    assert wait_gone(uid) == []
    deadline = time.monotonic() + 10
    while Path(folder).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(folder).exists()
    assert tmp_path.is_dir() and [p.name for p in tmp_path.iterdir()] != []


def test_sigterm_of_the_python_process_kills_every_pod_process() -> None:
    import signal

    uid = _run_and_kill_parent(BODY_WITH_ESCAPE, signal.SIGTERM)
    assert wait_gone(uid) == []


def test_callable_pod_survives_no_parent_sigkill() -> None:
    import signal

    body = """
    import os, time, kjob
    def stuck():
        import subprocess
        subprocess.Popen(["sleep", "300"])  # a child of the worker, marked with the Job
        time.sleep(300)
    job = kjob.Job(target=stuck)
    job.start()
    while not (job.pods() and job.pods()[0].phase == "Running"):
        time.sleep(0.01)
    time.sleep(0.3)
    print(job.uid, flush=True)
    time.sleep(300)
    """
    uid = _run_and_kill_parent(body, signal.SIGKILL)
    assert wait_gone(uid) == []


def test_descendants_that_escape_the_group_die_with_the_job() -> None:
    import kjob

    job = kjob.Job(name="daemon", command="setsid sleep 300 & sleep 0.2")
    status = job.run(timeout=30)
    assert status.is_complete
    assert wait_gone(job.uid) == []


def test_outside_sigkill_fails_the_pod_and_the_job_goes_on() -> None:
    import signal

    import kjob

    job = kjob.Job(
        name="victim2",
        command="sleep 300",
        completions=2,
        parallelism=1,
        backoff_limit=1,
        backoff_initial_seconds=0.01,
    )
    job.start()
    deadline = time.monotonic() + 20
    while not (job.pods() and job.pods()[0].pid):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    pid = job.pods()[0].pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    while job.status.failed < 1:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert job.pods()[0].exit_code == 137
    while len(job.pods()) < 2:  # a replacement, after the 10 ms backoff
        assert time.monotonic() < deadline
        time.sleep(0.005)
    job.delete()


def test_huge_output_goes_to_disk_without_blocking(tmp_path: Path) -> None:
    import resource

    import kjob

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # 256 MiB on stdout, a line without newline and binary bytes: the pod never blocks.
    job = kjob.Job(
        name="loud",
        command="head -c 268435456 /dev/zero; printf 'no newline'; head -c 1024 /dev/urandom",
        log_dir=tmp_path,
    )
    status = job.run(timeout=120)
    assert status.is_complete
    [pod] = job.pods()
    assert Path(pod.log_path).stat().st_size == 268435456 + len("no newline") + 1024
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 50 * 1024, "logs do not pass through this process's memory (KiB)"
