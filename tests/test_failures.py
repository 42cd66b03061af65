"""Failures speak: ``check=True``, ``raise_for_status()``, ``results()`` of a Job that did not
complete, ``kjob run``'s report of a failed Job, the target's signature checked at ``Job()``,
the ResourceWarning of a running Job dropped, and ``kjob.configure``."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import kjob
from conftest import Backoff, no_pids_left

# Kubernetes' message of the Failed condition once backoffLimit is exceeded (job_controller.go).
BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded: Job has reached the specified backoff limit"
# 25 numbered lines on stdout, then exit 3: the report shows only the last 20 (line 6 on).
TWENTY_FIVE_LINES_THEN_EXIT_3 = "for i in $(seq 1 25); do echo line $i; done; exit 3"


def tail_of(message: str, pod_name: str) -> list[str]:
    """The indented log lines printed under one pod in a failure report."""
    lines = message.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"pod {pod_name}"))
    tail = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        tail.append(line[4:])
    return tail


def test_run_check_true_raises_job_failed_error_with_reason_pods_and_log_tails(fast_backoff: Backoff) -> None:
    job = kjob.Job(name="loud", command=TWENTY_FIVE_LINES_THEN_EXIT_3, backoff_limit=1, **fast_backoff)
    with pytest.raises(kjob.JobFailedError) as caught:
        job.run(timeout=30, check=True)
    error = caught.value
    assert isinstance(error, kjob.KjobError)
    assert error.status.is_failed and error.status.failed == 2
    pods = job.pods()
    assert [p.name for p in error.failed_pods] == [pods[1].name, pods[0].name], "latest attempt first"
    message = str(error)
    assert message.splitlines()[0] == f"Job 'loud' failed: {BACKOFF_LIMIT_EXCEEDED}"
    for pod in pods:
        assert f"pod {pod.name}: exit code 3; last 20 lines of its log:" in message
        assert tail_of(message, pod.name) == [f"line {i}" for i in range(6, 26)]
    job.delete()


def test_wait_check_true_raises_and_check_false_returns_the_failed_status(fast_backoff: Backoff) -> None:
    job = kjob.Job(name="quiet", command="exit 7", backoff_limit=0, **fast_backoff)
    job.start()
    status = job.wait(timeout=30)
    assert status.is_failed
    with pytest.raises(
        kjob.JobFailedError,
        match=r"(?s)^Job 'quiet' failed: BackoffLimitExceeded: .*"
        r"exit code 7; its log is empty$",
    ):
        job.wait(timeout=30, check=True)
    job.delete()


def test_wait_async_check_true_raises_too(fast_backoff: Backoff) -> None:
    job = kjob.Job(name="async", command="exit 5", backoff_limit=0, **fast_backoff)
    job.start()
    with pytest.raises(kjob.JobFailedError, match=r"^Job 'async' failed: BackoffLimitExceeded: "):
        asyncio.run(job.wait_async(timeout=30, check=True))
    job.delete()


def test_check_true_on_a_complete_job_returns_its_status() -> None:
    job = kjob.Job(name="fine", command="true")
    status = job.run(timeout=30, check=True)
    assert status.is_complete
    status.raise_for_status()  # a complete Job: nothing
    job.delete()


def test_raise_for_status_lists_the_pods_while_the_job_lives_and_the_condition_always(
    fast_backoff: Backoff,
) -> None:
    job = kjob.Job(name="status", command="echo oops; exit 2", backoff_limit=0, **fast_backoff)
    status = job.run(timeout=30)
    [pod] = job.pods()
    with pytest.raises(kjob.JobFailedError) as caught:
        status.raise_for_status()
    assert caught.value.status is status
    assert caught.value.failed_pods == [pod]
    assert str(caught.value) == (
        f"Job 'status' failed: {BACKOFF_LIMIT_EXCEEDED}\n"
        f"pod {pod.name}: exit code 2; last line of its log:\n    oops"
    )
    # A copy (pickled, or made by hand) has no link to its Job: the Failed condition only.
    copied = pickle.loads(pickle.dumps(status))
    assert copied == status
    with pytest.raises(kjob.JobFailedError) as caught:
        copied.raise_for_status()
    assert str(caught.value) == f"The Job failed: {BACKOFF_LIMIT_EXCEEDED}"
    assert caught.value.failed_pods == []
    job.delete()
    # The error itself crosses processes whole.
    again = pickle.loads(pickle.dumps(caught.value))
    assert (str(again), again.status, again.failed_pods) == (str(caught.value), copied, [])


def test_at_most_five_failed_pods_are_described_and_the_rest_counted() -> None:
    job = kjob.Job(
        name="many",
        command="echo index $JOB_COMPLETION_INDEX; exit 1",
        completions=7,
        parallelism=7,
        completion_mode="Indexed",
        backoff_limit_per_index=0,
    )
    with pytest.raises(kjob.JobFailedError) as caught:
        job.run(timeout=30, check=True)
    message = str(caught.value)
    assert message.splitlines()[0] == "Job 'many' failed: FailedIndexes: Job has failed indexes"
    described = [line for line in message.splitlines() if line.startswith("pod many-")]
    assert len(described) == 5
    assert message.endswith("\n... and 2 more failed pods (job.pods() lists them)")
    assert len(caught.value.failed_pods) == 7
    for pod in caught.value.failed_pods[:5]:
        assert f"pod {pod.name} (index {pod.index}): exit code 1; last line of its log:" in message
        assert tail_of(message, pod.name) == [f"index {pod.index}"]
    job.delete()


def test_a_callable_pods_exception_and_traceback_end_are_in_the_error() -> None:
    def boom(i: int) -> int:
        if i == 1:
            raise ValueError(f"bad input {i}")
        return i

    job = kjob.Job(
        name="calls", target=boom, completions=3, completion_mode="Indexed", backoff_limit_per_index=0
    )
    with pytest.raises(kjob.JobFailedError) as caught:
        job.run(timeout=60, check=True)
    [pod] = caught.value.failed_pods
    message = str(caught.value)
    assert f"pod {pod.name} (index 1): exception ValueError: bad input 1; last " in message
    assert tail_of(message, pod.name)[-1] == "ValueError: bad input 1"
    job.delete()


def test_results_of_a_failed_job_raise_unless_partial() -> None:
    def half(i: int) -> int:
        if i == 1:
            raise RuntimeError("no")
        return i * 10

    job = kjob.Job(
        name="half", target=half, completions=3, completion_mode="Indexed", backoff_limit_per_index=0
    )
    status = job.run(timeout=60)
    assert status.is_failed
    with pytest.raises(kjob.JobFailedError) as caught:
        job.results()
    assert str(caught.value).startswith("Job 'half' failed: FailedIndexes: Job has failed indexes\n")
    assert str(caught.value).endswith("\n(results(partial=True) gives the values of the pods that succeeded)")
    assert [p.index for p in caught.value.failed_pods] == [1]
    assert job.results(partial=True) == {0: 0, 2: 20}
    job.delete()


def test_results_of_a_job_still_running_raise_unless_partial() -> None:
    def slow() -> None:
        time.sleep(30)

    job = kjob.Job(name="slow", target=slow, termination_grace_period_seconds=0)
    job.start()
    # start() returns before the controller's first sync has made the pod active.
    deadline = time.monotonic() + 10
    while job.status.active != 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    with pytest.raises(
        kjob.JobFailedError,
        match=r"^Job 'slow' did not complete \(active=1 succeeded=0 "
        r"failed=0\)\nno pod failed\n\(results\(partial=True\)",
    ):
        job.results()
    assert job.results(partial=True) == []
    job.delete()
    assert no_pids_left(job.uid) == []


# --- the target's signature, checked at Job() ----------------------------------------------


def takes_index_and_one(index: int, x: int) -> int:
    return index + x


def takes_nothing() -> None:
    pass


def test_an_indexed_target_must_take_the_index_then_args_and_kwargs() -> None:
    with pytest.raises(
        TypeError,
        match=r"^target takes_nothing\(\) cannot be called as a pod of an Indexed "
        r"Job calls it, fn\(index, \*args, \*\*kwargs\), with 0 positional "
        r"arguments in args and no kwargs: too many positional arguments$",
    ):
        kjob.Job(target=takes_nothing, completions=2, completion_mode="Indexed")
    with pytest.raises(
        TypeError,
        match=r"fn\(index, \*args, \*\*kwargs\), with 0 positional arguments in "
        r"args and no kwargs: missing a required argument: 'x'$",
    ):
        kjob.Job(target=takes_index_and_one, completions=2, completion_mode="Indexed")
    with pytest.raises(
        TypeError,
        match=r"with 0 positional arguments in args and keyword arguments \['x', 'y'\]: "
        r"got an unexpected keyword argument 'y'$",
    ):
        kjob.Job(
            target=takes_index_and_one, completions=2, completion_mode="Indexed", kwargs={"x": 1, "y": 2}
        )
    for good in ({"args": (1,)}, {"kwargs": {"x": 1}}):
        kjob.Job(target=takes_index_and_one, completions=2, completion_mode="Indexed", **good).delete()


def test_a_non_indexed_target_is_called_with_args_and_kwargs_only() -> None:
    with pytest.raises(
        TypeError,
        match=r"^target takes_index_and_one\(index, x\) cannot be "
        r"called as a pod of a NonIndexed Job calls it, fn\(\*args, \*\*kwargs\), "
        r"with 1 positional argument in args and no kwargs: missing a required "
        r"argument: 'x'$",
    ):
        kjob.Job(target=takes_index_and_one, args=(1,))
    kjob.Job(target=takes_nothing).delete()
    kjob.Job(target=print, args=(1, 2), kwargs={"sep": ","}).delete()
    job = kjob.Job(target=takes_index_and_one, args=(1, 2))
    assert job.run(timeout=60, check=True).succeeded == 1
    assert job.results() == [3]
    job.delete()


# --- a running Job dropped -----------------------------------------------------------------


def test_a_running_job_garbage_collected_is_killed_with_a_resource_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without the store (KJOB_STORE=0) a Job lives and dies with its object, as before issue 15;
    # with it, the Job runs on (tests/test_store.py).
    monkeypatch.setenv("KJOB_STORE", "0")
    job = kjob.Job(name="dropped", command="sleep 300", termination_grace_period_seconds=0)
    job.start()
    uid = job.uid
    with pytest.warns(
        ResourceWarning,
        match=r"^Job 'dropped' was garbage-collected while running; its pods "
        r"were killed\. Keep a reference",
    ):
        del job
        gc.collect()
    assert no_pids_left(uid) == []


def test_no_resource_warning_for_a_job_finished_deleted_or_never_started(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KJOB_STORE", "0")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        finished = kjob.Job(command="true")
        finished.run(timeout=30)
        deleted = kjob.Job(command="sleep 300", termination_grace_period_seconds=0)
        deleted.start()
        deleted.delete()
        idle = kjob.Job(command="sleep 300")
        del finished, deleted, idle
        gc.collect()
    assert [str(w.message) for w in caught] == []


def test_no_resource_warning_for_a_job_running_at_interpreter_exit() -> None:
    code = (
        "import kjob; job = kjob.Job(command='sleep 300', termination_grace_period_seconds=0); "
        "job.start(); print(job.uid)"
    )
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=30
    )
    assert (out.returncode, out.stderr) == (0, "")
    assert no_pids_left(out.stdout.strip()) == []


# --- kjob.configure ------------------------------------------------------------------------


@pytest.fixture
def restore_configuration() -> Iterator[None]:
    yield
    kjob.configure(backoff_initial_seconds=10, backoff_max_seconds=600)


@pytest.mark.usefixtures("restore_configuration")
def test_configure_sets_the_backoff_of_jobs_made_afterwards() -> None:
    assert kjob.Job(command="true")._backoff == (10.0, 600.0)  # Kubernetes' defaults
    kjob.configure(backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
    # Four failures would wait 10+20+40 s with Kubernetes' delays: this takes milliseconds.
    job = kjob.Job(name="configured", command="exit 1", backoff_limit=3)
    assert job._backoff == (0.01, 0.05)
    start = time.monotonic()
    assert job.run(timeout=30).failed == 4
    assert time.monotonic() - start < 5
    job.delete()
    # A Job's own values and a manifest's annotations still win; a keyword left out is kept.
    kjob.configure(backoff_max_seconds=2)
    assert kjob.Job(command="true", backoff_initial_seconds=1)._backoff == (1.0, 2.0)
    annotated = kjob.Job.from_manifest(
        {
            "metadata": {"name": "a", "annotations": {"kjob.io/backoff-initial-seconds": "0.5"}},
            "spec": {
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "a", "command": ["true"]}]}
                }
            },
        }
    )
    assert annotated._backoff == (0.5, 2.0)


@pytest.mark.usefixtures("restore_configuration")
def test_configure_refuses_values_that_are_not_seconds_and_changes_nothing() -> None:
    with pytest.raises(
        ValueError, match=r"^backoff_max_seconds: must be a finite number of seconds >= 0, got -1$"
    ):
        kjob.configure(backoff_initial_seconds=1, backoff_max_seconds=-1)
    with pytest.raises(ValueError, match="backoff_initial_seconds"):
        kjob.configure(backoff_initial_seconds=float("nan"))
    with pytest.raises(TypeError, match="backoff_initial_seconds must be a number of seconds, not str"):
        kjob.configure(backoff_initial_seconds="1")  # type: ignore[arg-type]
    assert kjob.Job(command="true")._backoff == (10.0, 600.0)


# --- kjob run of a failed Job --------------------------------------------------------------


def kjob_run_with_own_tmp(
    tmp_path: Path, manifest: Path, *, store: bool = False
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`kjob run -f MANIFEST` in a fresh interpreter whose TMPDIR is a new, empty folder (where
    the CLI makes its log folder when the store is off)."""
    env_tmp = tmp_path / "tmp"
    env_tmp.mkdir()
    out = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "run", "-f", str(manifest)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "TMPDIR": str(env_tmp),
            "PATH": "/usr/bin:/bin",
            "KJOB_HOME": os.environ["KJOB_HOME"],
            "KJOB_STORE": "1" if store else "0",
        },
    )
    return env_tmp, out


def test_kjob_run_of_a_failed_job_prints_the_pods_log_tails_and_keeps_the_logs(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: fails\n"
        "  annotations:\n    kjob.io/backoff-initial-seconds: '0.01'\n"
        "spec:\n  backoffLimit: 1\n  template:\n    spec:\n      restartPolicy: Never\n"
        f"      containers:\n      - name: fails\n        command: ['sh', '-c', {TWENTY_FIVE_LINES_THEN_EXIT_3!r}]\n"
    )
    # Without the store (KJOB_STORE=0), the CLI's own log folder is kept and named.
    env_tmp, out = kjob_run_with_own_tmp(tmp_path, path)
    assert out.returncode == 1, out.stderr
    [log_dir] = env_tmp.iterdir()
    logs = sorted(log_dir.iterdir())
    assert len(logs) == 2
    names = [p.name.removesuffix(".log") for p in logs]
    stderr = out.stderr.splitlines()
    assert stderr[0] == f"error: job.batch/fails failed: {BACKOFF_LIMIT_EXCEEDED}"
    assert stderr[-1] == f"pod logs kept in {log_dir}"
    for name in names:
        assert f"pod {name}: exit code 3; last 20 lines of its log:" in stderr
        assert tail_of(out.stderr, name) == [f"line {i}" for i in range(6, 26)]


def test_kjob_run_of_a_failed_job_leaves_it_and_its_logs_to_the_store(tmp_path: Path) -> None:
    """Issue 15: `kjob run` no longer deletes a failed Job's logs: the Job stays in the store,
    and `kjob logs` reads them from any shell."""
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: fails\n"
        "spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      containers:\n      - name: fails\n        command: ['sh', '-c', 'echo oops; exit 3']\n"
    )
    env_tmp, out = kjob_run_with_own_tmp(tmp_path, path, store=True)
    assert out.returncode == 1, out.stderr
    assert list(env_tmp.iterdir()) == []
    assert out.stderr.splitlines()[-1] == "pod logs: kjob logs job/fails"
    logs = subprocess.run(
        [sys.executable, "-m", "kjob.cli", "logs", "job/fails"], capture_output=True, text=True, timeout=60
    )
    assert (logs.returncode, logs.stdout) == (0, "oops\n")
    job = kjob.Job.get("fails")
    assert job.status.is_failed


def test_kjob_run_of_a_complete_job_removes_its_log_folder(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: fine\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Never\n      containers:\n      - name: fine\n        command: ['true']\n"
    )
    env_tmp, out = kjob_run_with_own_tmp(tmp_path, path)
    assert (out.returncode, out.stderr) == (0, "")
    assert list(env_tmp.iterdir()) == []
