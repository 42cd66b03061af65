"""A pod's exit status is never lost or invented, whatever the host program does with SIGCHLD
or ``wait()``; and a pod says how it ended (``exited with code 5``, ``killed by signal 11
(SIGSEGV)``, the kubelet's ``OOMKilled``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import kjob
from conftest import Backoff, no_pids_left

# The kernel keeps a reaped process's exit status for its pidfd since Linux 6.15
# (`PIDFD_INFO_EXIT`); before that a status taken by someone else is lost for good.
PIDFD_KEEPS_STATUS = tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2]) >= (6, 15)
LOST_REASON = "ContainerStatusUnknown"
LOST_MESSAGE = "exit status lost: the process was reaped by someone else (waitpid: "

# Prints one JSON line about a finished Job: its counts and, per pod, how it ended.
REPORT = """
import json
def report(job, status):
    pods = [{"phase": p.phase, "exit_code": p.exit_code, "reason": p.reason, "message": p.message,
             "exception": p.exception, "index": p.index} for p in job.pods()]
    print(json.dumps({"succeeded": status.succeeded, "failed": status.failed,
                      "conditions": [c.type for c in status.conditions if c.status == "True"],
                      "uid": job.uid, "pods": sorted(pods, key=lambda p: (p["index"] or 0))}))
"""


def run_script(body: str) -> dict[str, Any]:
    """Runs `body` in a fresh interpreter (it changes process-wide signal state or reaps
    children, which must not touch other tests) and returns the JSON line it printed last."""
    script = textwrap.dedent(REPORT) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    assert no_pids_left(result["uid"]) == []
    return result


def ended(result: dict[str, Any]) -> list[tuple[str, int, str | None, str | None]]:
    return [(p["phase"], p["exit_code"], p["reason"], p["message"]) for p in result["pods"]]


def test_sigchld_ignored_by_the_host_keeps_a_command_pods_exit_code() -> None:
    result = run_script(
        """
        import signal, kjob
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        try:
            job = kjob.Job(command="exit 3", backoff_limit=0)
            report(job, job.run(timeout=30))
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        """
    )
    assert (result["succeeded"], result["failed"], result["conditions"]) == (
        0,
        1,
        ["FailureTarget", "Failed"],
    )
    assert ended(result) == [("Failed", 3, None, "exited with code 3")]


def test_a_host_thread_reaping_every_child_does_not_take_pod_statuses() -> None:
    result = run_script(
        """
        import os, threading, time, kjob
        stop = threading.Event()
        def poll_children():
            while not stop.is_set():
                try:
                    os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    time.sleep(0.0005)
        def wait_children():
            # Blocks while children live (kjob's shepherd lives until exit): a daemon thread.
            while True:
                try:
                    os.wait()
                except ChildProcessError:
                    time.sleep(0.0005)
        # What a careless host does: reap any child, with and without blocking.
        reaper = threading.Thread(target=poll_children)
        reaper.start()
        threading.Thread(target=wait_children, daemon=True).start()
        try:
            # Even indexes succeed, odd ones exit 3 (and fail their index at once).
            job = kjob.Job(command='exit $(( JOB_COMPLETION_INDEX % 2 * 3 ))', completions=12, parallelism=4,
                           completion_mode="Indexed", backoff_limit_per_index=0, max_failed_indexes=12)
            report(job, job.run(timeout=30))
        finally:
            stop.set()
            reaper.join()
        """
    )
    assert (result["succeeded"], result["failed"]) == (6, 6)
    assert [(p["index"], p["exit_code"]) for p in result["pods"]] == [(i, i % 2 * 3) for i in range(12)]
    assert [p["phase"] for p in result["pods"]] == ["Succeeded", "Failed"] * 6


def test_a_sigkilled_callable_worker_fails_its_pod_with_sigchld_ignored() -> None:
    result = run_script(
        """
        import os, signal, kjob
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            job = kjob.Job(target=die, backoff_limit=0)
            report(job, job.run(timeout=30))
        finally:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        """
    )
    assert (result["succeeded"], result["failed"]) == (0, 1)
    assert ended(result) == [("Failed", 137, None, "killed by signal 9 (SIGKILL)")]


def test_a_status_taken_by_waitpid_on_the_pods_pid_is_recovered_or_reported_lost() -> None:
    # A thread blocked in `waitpid(pod_pid, 0)` races kjob for the status when the pod exits:
    # try until it has won (about one try in three here), checking the pod every time.
    steals = 0
    for _attempt in range(60):
        job = kjob.Job(command="sleep 0.05; exit 3", backoff_limit=0)
        job.start()
        while not (job.pods() and job.pods()[0].pid):
            time.sleep(0.002)
        pid = job.pods()[0].pid
        assert pid is not None
        taken: list[int] = []

        def steal(pid: int = pid, taken: list[int] = taken) -> None:
            try:
                taken.append(os.waitpid(pid, 0)[1])
            except ChildProcessError:
                pass  # kjob reaped it first

        thief = threading.Thread(target=steal)
        thief.start()
        status = job.wait(timeout=30)
        thief.join()
        pod = job.pods()[0]
        assert (status.succeeded, status.failed) == (0, 1)
        if taken:
            steals += 1
            assert os.waitstatus_to_exitcode(taken[0]) == 3
        if PIDFD_KEEPS_STATUS or not taken:
            # kjob reaped it, or the pidfd kept the status the thief took.
            assert (pod.phase, pod.exit_code, pod.reason, pod.message) == (
                "Failed",
                3,
                None,
                "exited with code 3",
            )
        else:
            assert (pod.phase, pod.exit_code, pod.reason) == ("Failed", 137, LOST_REASON)
            assert pod.message is not None and pod.message.startswith(LOST_MESSAGE)
        job.delete()
        assert no_pids_left(job.uid) == []
        if steals:
            break
    assert steals == 1


def test_command_pods_say_how_they_ended(fast_backoff: Backoff) -> None:
    # `$$$$` is the shell's `$$` (Kubernetes expands `$$` to `$` in a command).
    command = "case $JOB_COMPLETION_INDEX in 1) exit 5;; 2) kill -11 $$$$;; 3) kill -9 $$$$;; esac"
    job = kjob.Job(
        command=command,
        completions=4,
        parallelism=4,
        completion_mode="Indexed",
        backoff_limit_per_index=0,
        max_failed_indexes=4,
        **fast_backoff,
    )
    job.run(timeout=30)
    pods = sorted(job.pods(), key=lambda p: p.index or 0)
    assert [(p.phase, p.exit_code, p.reason, p.message) for p in pods] == [
        ("Succeeded", 0, None, None),
        ("Failed", 5, None, "exited with code 5"),
        ("Failed", 139, None, "killed by signal 11 (SIGSEGV)"),
        # Not the OOM killer: nothing says OOMKilled.
        ("Failed", 137, None, "killed by signal 9 (SIGKILL)"),
    ]
    job.delete()


def exit_five() -> None:
    os._exit(5)


def segfault() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def raise_value_error() -> None:
    raise ValueError("no good")


def test_callable_pods_that_end_their_worker_say_how() -> None:
    for target, code, message in [
        (exit_five, 5, "exited with code 5"),
        (segfault, 139, "killed by signal 11 (SIGSEGV)"),
    ]:
        job = kjob.Job(target=target, backoff_limit=0)
        job.run(timeout=30)
        pod = job.pods()[0]
        assert (pod.phase, pod.exit_code, pod.reason, pod.message, pod.exception) == (
            "Failed",
            code,
            None,
            message,
            None,
        )
        job.delete()


def test_a_callable_pod_that_raised_shows_its_exception_only() -> None:
    job = kjob.Job(target=raise_value_error, backoff_limit=0)
    job.run(timeout=30)
    pod = job.pods()[0]
    assert (pod.phase, pod.exit_code, pod.reason, pod.message, pod.exception) == (
        "Failed",
        1,
        None,
        None,
        "ValueError: no good",
    )
    job.delete()


def memory_cgroup() -> Path | None:
    """A fresh memory cgroup limited to 32 MiB without swap (cgroup v2, else v1), or None where
    cgroups are not writable here."""
    name = f"kjob-oom-test-{os.getpid()}"
    v2 = Path("/sys/fs/cgroup")
    candidates = (
        [(v2 / name, "memory.max", "memory.swap.max")] if (v2 / "cgroup.controllers").exists() else []
    )
    v1 = Path("/sys/fs/cgroup/memory")
    if (v1 / "memory.limit_in_bytes").exists():
        candidates.append((v1 / name, "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"))
    for path, limit, swap in candidates:
        try:
            path.mkdir()
        except OSError:
            continue
        try:
            (path / limit).write_text(str(32 << 20))
            try:
                (path / swap).write_text("0" if swap == "memory.swap.max" else str(32 << 20))
            except OSError:
                pass  # no swap accounting: no swap to fall back on either
            return path
        except OSError:
            path.rmdir()
    return None


def swell(cgroup: str) -> None:
    """A callable pod that moves its worker into `cgroup`, then touches 256 MiB."""
    Path(cgroup, "cgroup.procs").write_text(str(os.getpid()))
    b = bytearray(256 << 20)
    b[::4096] = b"x" * len(b[::4096])


@pytest.mark.parametrize("kind", ["command", "callable"])
def test_a_pod_killed_by_the_oom_killer_is_oomkilled(kind: str) -> None:
    cgroup = memory_cgroup()
    if cgroup is None:
        pytest.skip("no writable memory cgroup here")
    try:
        if kind == "command":
            # The pod moves itself into the small cgroup, then touches 256 MiB (`$$$$` is `$$`).
            command = (
                f"echo $$$$ > {cgroup}/cgroup.procs && exec {sys.executable} -c "
                "\"b = bytearray(256 << 20); b[::4096] = b'x' * len(b[::4096])\""
            )
            job = kjob.Job(command=command, backoff_limit=0)
        else:
            job = kjob.Job(target=swell, args=(str(cgroup),), backoff_limit=0)
        job.run(timeout=60)
        pod = job.pods()[0]
        assert (pod.phase, pod.exit_code, pod.reason, pod.message) == (
            "Failed",
            137,
            "OOMKilled",
            "killed by signal 9 (SIGKILL)",
        )
        job.delete()
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                cgroup.rmdir()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
