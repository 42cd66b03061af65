"""Shared helpers: finding a Job's processes through /proc."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest


def live_environments() -> Iterator[tuple[int, list[bytes]]]:
    """(pid, environment variables as ``NAME=value`` bytes) of every live, non-zombie process."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[0] != "Z":
            yield int(entry.name), environ.split(b"\0")


def pids_with_variable(name: str, value: str) -> list[int]:
    """Live processes whose environment holds ``name=value``."""
    needle = f"{name}={value}".encode()
    return [pid for pid, variables in live_environments() if needle in variables]


def pids_listing(name: str, item: str) -> list[int]:
    """Live processes whose environment variable ``name`` is a comma-separated list holding
    ``item`` (``KJOB_OWNERS``, ``KJOB_SHEPHERD_FOR``)."""
    prefix, wanted = f"{name}=".encode(), item.encode()
    return [
        pid
        for pid, variables in live_environments()
        if any(v.startswith(prefix) and wanted in v[len(prefix) :].split(b",") for v in variables)
    ]


def pids_of_job(uid: str) -> list[int]:
    """Live processes whose environment carries this Job's ``KJOB_JOB_UID`` marker."""
    return pids_with_variable("KJOB_JOB_UID", uid)


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
