"""Shared helpers: finding a Job's processes through /proc."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TypedDict

import pytest


def pids_of_job(uid: str) -> list[int]:
    """Live processes whose environment carries this Job's ``KJOB_JOB_UID`` marker."""
    marker = f"KJOB_JOB_UID={uid}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        state = stat.rsplit(")", 1)[1].split()[0]
        if marker in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


def no_pids_left(uid: str, timeout: float = 5.0) -> list[int]:
    """The Job's processes still alive after up to `timeout` seconds. SIGKILL is asynchronous:
    a killed process can take a moment to disappear from /proc."""
    deadline = time.monotonic() + timeout
    while (left := pids_of_job(uid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


class Backoff(TypedDict):
    backoff_initial_seconds: float
    backoff_max_seconds: float


@pytest.fixture
def fast_backoff() -> Backoff:
    """Replacement delays short enough for tests (a documented kjob extension)."""
    return {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}
