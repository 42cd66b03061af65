"""Nested Jobs: a pod that runs a kjob Job of its own (issue item 4). Everything an outer
pod started, through any depth of nesting, dies with it, and the inner Jobs' private log
folders are removed: after `delete()` of the outer Job, and after its interpreter is
SIGKILLed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import kjob
from conftest import no_pids_left, pids_listing, pids_of_job


@pytest.fixture(autouse=True)
def ephemeral_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about processes and private folders: the Jobs are ephemeral
    (``KJOB_STORE=0``, inherited by the pods' inner Jobs). With the store on, an inner Job whose
    pod is killed is orphaned in the store like any other, its logs kept until it is deleted
    (tests/test_store.py covers orphans)."""
    monkeypatch.setenv("KJOB_STORE", "0")


# A pod's program: runs a Job of `sleep 30` pods, writes its UID and log folder (one JSON
# line appended to REPORT), then waits for ever. Level N > 0 runs a Job whose pod runs the
# same program at level N - 1.
INNER = """
import json, os, sys, time, kjob
report, level = sys.argv[1], int(sys.argv[2])
if level == 0:
    job = kjob.Job(name="inner", command=["sleep", "30"], completions=2, parallelism=2)
else:
    job = kjob.Job(name=f"mid{level}", command=[sys.executable, "-c", sys.argv[3], report, str(level - 1),
                                                 sys.argv[3]])
job.start()
with open(report, "a") as f:
    f.write(json.dumps({"level": level, "uid": job.uid, "log_dir": job.log_dir}) + "\\n")
job.wait()
"""


def nested_pod(report: str, levels: int) -> None:
    """A callable pod that runs the program above in a nested command Job."""
    job = kjob.Job(name="nested", command=[sys.executable, "-c", INNER, report, str(levels), INNER])
    job.start()
    with open(report, "a") as f:
        f.write(json.dumps({"level": levels + 1, "uid": job.uid, "log_dir": job.log_dir}) + "\n")
    job.wait()


def wait_for_reports(report: Path, count: int, inner_pods: int = 2) -> list[dict[str, object]]:
    """The reports, once every level has written its own and the innermost pods run."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = report.read_text().splitlines() if report.exists() else []
        if len(lines) == count:
            reports = [json.loads(line) for line in lines]
            inner = next(r for r in reports if r["level"] == 0)
            if len(pids_of_job(str(inner["uid"]))) == inner_pods:
                return reports
        time.sleep(0.01)
    raise AssertionError(f"nested Jobs did not start: {report.read_text() if report.exists() else ''}")


def shepherds_for(owner: str) -> list[int]:
    """Live shepherds whose interpreter ran inside `owner` (a Job UID or session token)."""
    return pids_listing("KJOB_SHEPHERD_FOR", owner)


def gone(paths: list[str], timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := [p for p in paths if os.path.exists(p)]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def test_nested_delete_of_outer_callable_job_kills_inner_pods_and_removes_inner_folders(
    tmp_path: Path,
) -> None:
    report = tmp_path / "report"
    outer = kjob.Job(
        name="outer", target=nested_pod, args=(str(report), 0), termination_grace_period_seconds=0
    )
    outer.start()
    reports = wait_for_reports(report, 2)
    outer.delete()
    # delete() returns once the nested interpreters' shepherds have removed their folders.
    for r in reports:
        assert pids_of_job(str(r["uid"])) == [] or no_pids_left(str(r["uid"]), 2) == []
        assert not os.path.exists(str(r["log_dir"])), r
    assert shepherds_for(outer.uid) == []
    assert no_pids_left(outer.uid) == []


def test_nested_depth_two_command_pods_die_with_the_outer_job(tmp_path: Path) -> None:
    report = tmp_path / "report"
    outer = kjob.Job(name="outer", target=nested_pod, args=(str(report), 1))
    outer.start()
    reports = wait_for_reports(report, 3)
    assert sorted(int(str(r["level"])) for r in reports) == [0, 1, 2]
    outer.delete()
    for r in reports:
        assert no_pids_left(str(r["uid"]), 2) == []
        assert not os.path.exists(str(r["log_dir"])), r
    assert shepherds_for(outer.uid) == []


OUTER_SCRIPT = """
import sys, kjob
sys.path.insert(0, sys.argv[2])
from test_nested import nested_pod
outer = kjob.Job(name="outer", target=nested_pod, args=(sys.argv[1], int(sys.argv[3])))
outer.start()
print(outer.uid, outer.log_dir, flush=True)
outer.wait()
"""


def test_nested_sigkill_of_the_outer_interpreter_leaves_nothing(tmp_path: Path) -> None:
    report = tmp_path / "report"
    tests_dir = str(Path(__file__).parent)
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(OUTER_SCRIPT), str(report), tests_dir, "1"],
        stdout=subprocess.PIPE,
        text=True,
    ) as host:
        assert host.stdout is not None
        outer_uid, outer_dir = host.stdout.readline().split()
        reports = wait_for_reports(report, 3)
        host.send_signal(signal.SIGKILL)
        assert host.wait(timeout=5) == -signal.SIGKILL
    for uid in [outer_uid] + [str(r["uid"]) for r in reports]:
        assert no_pids_left(uid, 5) == [], uid
    assert gone([outer_dir] + [str(r["log_dir"]) for r in reports], 5) == []
    deadline = time.monotonic() + 5
    while shepherds_for(outer_uid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert shepherds_for(outer_uid) == []


def test_nested_pods_keep_the_innermost_job_uid_and_list_every_owner(tmp_path: Path) -> None:
    # KJOB_JOB_UID keeps naming the innermost Job; KJOB_OWNERS lists the enclosing ones too.
    report = tmp_path / "report"
    outer = kjob.Job(name="outer", target=nested_pod, args=(str(report), 0))
    outer.start()
    try:
        reports = wait_for_reports(report, 2)
        inner = next(r for r in reports if r["level"] == 0)
        middle = next(r for r in reports if r["level"] == 1)
        pid = pids_of_job(str(inner["uid"]))[0]
        environ = dict(
            v.split("=", 1) for v in Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in v
        )
        owners = environ["KJOB_OWNERS"].split(",")
        assert environ["KJOB_JOB_UID"] == inner["uid"]
        assert owners.index(outer.uid) < owners.index(str(middle["uid"])) < owners.index(str(inner["uid"]))
        assert environ["KJOB_SESSION"] == owners[-1]
        assert len(owners) == 6  # three Jobs, three sessions
    finally:
        outer.delete()


def pids_owned_by(owner: str) -> list[int]:
    """Live processes that list `owner` in ``KJOB_OWNERS``."""
    return pids_listing("KJOB_OWNERS", owner)


def callable_in_callable(report: str) -> None:
    """A callable pod running a callable Job: its pods run in workers of the pod's own."""
    job = kjob.Job(name="inner", target=time.sleep, args=(30,), completions=2, parallelism=2)
    job.start()
    with open(report, "a") as f:
        f.write(json.dumps({"level": 0, "uid": job.uid, "log_dir": job.log_dir}) + "\n")
    job.wait()


def test_nested_callable_job_workers_die_with_the_outer_job(tmp_path: Path) -> None:
    report = tmp_path / "report"
    outer = kjob.Job(name="outer", target=callable_in_callable, args=(str(report),))
    outer.start()
    deadline = time.monotonic() + 20
    # The outer worker, and the inner Job's two workers.
    while (len(pids_owned_by(outer.uid)) < 2 or not report.exists()) and time.monotonic() < deadline:
        time.sleep(0.01)
    inner = json.loads(report.read_text())
    assert len(pids_owned_by(outer.uid)) == 2
    outer.delete()
    assert not os.path.exists(inner["log_dir"])
    deadline = time.monotonic() + 2
    while pids_owned_by(outer.uid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pids_owned_by(outer.uid) == []


def inner_and_return() -> int:
    """A callable pod that runs a short nested Job and returns: its worker (with the shepherd
    of its kjob session) lives on in the pool."""
    job = kjob.Job(name="inner", command=["true"])
    job.run(timeout=20)
    job.delete()
    return 1


def test_nested_outer_job_is_deleted_at_once_while_a_worker_that_ran_kjob_lives_on() -> None:
    outer = kjob.Job(name="outer", target=inner_and_return)
    assert outer.run(timeout=30).succeeded == 1
    started = time.monotonic()
    outer.delete()
    # The sweep must not wait for the shepherd of a live worker (it would wait 5 s).
    assert time.monotonic() - started < 2
