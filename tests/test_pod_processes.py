"""How pod processes start: default signal dispositions, unique names, and worker slots that
leave nothing behind."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import kjob
from conftest import no_pids_left


def test_pods_start_with_default_signal_dispositions_and_an_empty_mask() -> None:
    # The Python interpreter ignores SIGPIPE and SIGXFSZ; a container starts with neither
    # ignored, as `subprocess.Popen` (restore_signals) starts its children.
    assert signal.getsignal(signal.SIGPIPE) == signal.SIG_IGN
    job = kjob.Job(command="grep -E '^Sig(Blk|Ign)' /proc/self/status", backoff_limit=0)
    assert job.run(timeout=30).succeeded == 1
    assert job.logs() == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    job.delete()


def test_yes_piped_into_head_ends_quietly() -> None:
    # `yes` dies of SIGPIPE once `head` is gone, instead of failing with a write error.
    job = kjob.Job(command="yes | head -1", backoff_limit=0)
    assert job.run(timeout=30).succeeded == 1
    assert job.logs() == "y\n"
    job.delete()


def test_three_thousand_pods_have_three_thousand_names() -> None:
    job = kjob.Job(command="true", completions=3000, parallelism=50, backoff_limit=0)
    status = job.run(timeout=120)
    assert status.succeeded == 3000
    names = [p.name for p in job.pods()]
    assert len(names) == 3000
    assert len(set(names)) == 3000
    job.delete()


def test_pods_of_two_jobs_never_share_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Job `pair-2` and index 2 of Indexed Job `pair` both name pods `pair-2-xxxxx`. Given the
    # same uid (which seeds the suffixes), they would draw the same suffixes in the same order.
    fixed = uuid.UUID("12345678-1234-5678-1234-567812345678")
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)
    # Two Jobs of one UID exist only in this test: the store (which keys Jobs by UID) is off.
    monkeypatch.setenv("KJOB_STORE", "0")
    indexed = kjob.Job(name="pair", command="true", completions=3, parallelism=1, completion_mode="Indexed")
    plain = kjob.Job(name="pair-2", command="true", completions=3, parallelism=1)
    assert indexed.uid == plain.uid == str(fixed)
    indexed.run(timeout=60)
    plain.run(timeout=60)
    pods = [*indexed.pods(), *plain.pods()]
    names = [p.name for p in pods]
    assert len(set(names)) == len(names)
    # Six pods unless one failed to run `true` (a loaded machine); say why if so.
    failed = [(p.name, p.reason, p.message) for p in pods if p.phase == "Failed"]
    assert len(names) == 6 + len(failed), failed
    indexed.delete()
    plain.delete()


def slot_files(pid: int) -> list[Path]:
    """Slot files the old named-file scheme left for a parent `pid`."""
    pattern = f"kjob-slot-{pid}-*"
    return [*Path("/dev/shm").glob(pattern), *Path(tempfile.gettempdir()).glob(pattern)]


def session_processes(token: str) -> list[int]:
    marker = f"KJOB_SESSION={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_a_parent_sigkilled_just_after_starting_a_callable_job_leaves_no_slot_file() -> None:
    body = """
    import os, signal, sys, time, kjob, kjob._job
    def nap() -> None:
        time.sleep(30)
    job = kjob.Job(target=nap, completions=4, parallelism=4, max_workers=4)
    job.start()
    print(kjob._job._shepherd.token, flush=True)
    time.sleep(0.005)
    os.kill(os.getpid(), signal.SIGKILL)
    """
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            token = proc.stdout.readline().strip() if ready else ""
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
    assert token
    # The shepherd kills the session's workers; then nothing of theirs may be left on disk.
    # (A generous budget: on a loaded 2-core machine the shepherd may wait for a core.)
    deadline = time.monotonic() + 30
    while session_processes(token) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert session_processes(token) == []
    assert slot_files(proc.pid) == []


def test_callable_pods_run_with_their_slot_in_memory_only() -> None:
    def where_is_the_slot() -> list[str]:
        # What the worker's descriptors and mappings say about its slot.
        found = []
        for fd in os.listdir("/proc/self/fd"):
            try:
                target = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue  # the descriptor listdir itself used
            if "kjob-slot" in target:
                found.append(target)
        found += [
            line.split()[-2]
            for line in Path("/proc/self/maps").read_text().splitlines()
            if "kjob-slot" in line
        ]
        return found

    job = kjob.Job(target=where_is_the_slot, backoff_limit=0)
    assert job.run(timeout=30).succeeded == 1
    results = job.results()
    assert isinstance(results, list) and len(results) == 1
    references: list[str] = results[0]
    # Mapped (and held by the mapping's own descriptor), never a file with a name on disk.
    assert references and all(r.startswith("/memfd:kjob-slot") for r in references), references
    job.delete()
    assert no_pids_left(job.uid) == []
    assert slot_files(os.getpid()) == []
