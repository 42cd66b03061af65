"""Jobs whose parallelism exceeds what one sync may create (Kubernetes' 500 per sync): most of
their pods wait, active and unchanged, while a few change. What the controller counts of
them must stay exact whatever the scale."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path

import kjob

# Five times what one sync may create.
PODS = 2500


def _gated(i: int, gate: str) -> int:
    while not os.path.exists(gate):
        time.sleep(0.001)
    return i


def _wait_for(
    job: kjob.Job, what: str, check: Callable[[kjob.JobStatus], bool], deadline: float
) -> kjob.JobStatus:
    while True:
        status = job.status
        if check(status):
            return status
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
        time.sleep(0.005)


def test_scaling_down_a_job_of_thousands_of_waiting_pods_and_finishing_it(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    # Two workers run two pods; the other pods wait for them, active and unchanged.
    target = functools.partial(_gated, gate=str(gate))
    job = kjob.Job(
        target=target, completions=PODS, parallelism=PODS, completion_mode="Indexed", max_workers=2
    )
    job.start()
    deadline = time.monotonic() + 60
    # Created over five syncs of 500.
    full = _wait_for(job, f"{PODS} active pods", lambda s: s.active == PODS, deadline)
    assert (full.succeeded, full.failed) == (0, 0)
    job.scale(parallelism=7)
    # The controller deletes the surplus (500 per sync), keeping the two running pods; the
    # deleted pods are never counted as failed.
    scaled = _wait_for(job, "7 active pods", lambda s: s.active == 7, deadline)
    assert (scaled.succeeded, scaled.failed) == (0, 0)
    gate.touch()
    status = job.wait(timeout=60)
    assert status.is_complete and status.succeeded == PODS and status.failed == 0
    assert job.results() == {i: i for i in range(PODS)}
    job.delete()
