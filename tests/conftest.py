"""Shared helpers: finding a Job's processes through /proc; finding the repository's files."""

from __future__ import annotations

import os
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest


def _source_tree() -> Path | None:
    """The kjob checkout these tests belong to: the one ``KJOB_SOURCE_TREE`` names (the wheel
    run in .ci/run copies tests/ out of the checkout, away from python/), else the folder above
    tests/ when it is a checkout; None when neither is."""
    named = os.environ.get("KJOB_SOURCE_TREE")
    if named:
        tree = Path(named).resolve()
        if not (tree / "Cargo.toml").is_file():
            raise pytest.UsageError(f"KJOB_SOURCE_TREE={named}: not a kjob checkout (no Cargo.toml)")
        return tree
    here = Path(__file__).resolve().parent.parent
    return here if (here / "Cargo.toml").is_file() else None


SOURCE_TREE = _source_tree()
# The repository's root, for README.md, examples/, docs/, tools/, src/: a test that reads them
# carries `needs_source_tree`, so that it skips (with the reason) where there is no checkout.
REPO = SOURCE_TREE or Path(__file__).resolve().parent.parent
needs_source_tree = pytest.mark.skipif(
    SOURCE_TREE is None, reason="needs the kjob source tree: set KJOB_SOURCE_TREE to a checkout"
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """With ``KJOB_EXPECT_INSTALLED=1`` (the wheel run of .ci/run) the tests must import kjob
    from the venv's site-packages, not from a source tree: a run against the wrong kjob stops."""
    if os.environ.get("KJOB_EXPECT_INSTALLED") != "1":
        return
    import kjob
    from kjob import _kjob

    site = {Path(sysconfig.get_paths()[key]).resolve() for key in ("purelib", "platlib")}
    for module in (kjob, _kjob):
        where = Path(str(module.__file__)).resolve()
        if not any(where.is_relative_to(folder) for folder in site):
            raise pytest.UsageError(f"{module.__name__} is {where}, not in site-packages {sorted(site)}")


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


@pytest.fixture(autouse=True)
def private_kjob_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test has a store of its own (``KJOB_HOME``, inherited by the processes it
    starts): Job names never clash between tests, and no test sees the user's Jobs. What a
    test sets with ``kjob.configure`` is undone after it."""
    from kjob import _config

    home = tmp_path_factory.mktemp("kjob-home")
    monkeypatch.setenv("KJOB_HOME", str(home))
    monkeypatch.delenv("KJOB_STORE", raising=False)
    monkeypatch.delenv("KJOB_HISTORY_LIMIT", raising=False)
    for name in ("_backoff", "_home", "_store", "_history_limit"):
        monkeypatch.setattr(_config, name, getattr(_config, name))
    return home
