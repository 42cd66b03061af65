"""Callable pods behave like fresh processes (issue: "Callable pods that behave like fresh
processes, and failures that speak"): a deleted pod's process is gone, each pod sees the
environment, working directory and module sources of the Job's start, results cross by
cloudpickle, and tracebacks show notebook source lines."""

from __future__ import annotations

import linecache
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path
from typing import Any

import pytest

import kjob
from conftest import Backoff, no_pids_left


def _alive(pid: int) -> bool:
    """Whether `pid` is a live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


def sleepy() -> None:
    time.sleep(3600)


def ignores_sigterm(flag: str) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Path(flag).write_text("ready")
    time.sleep(3600)


# ---- 1. A deleted or suspended pod's process is gone --------------------------------------------


@pytest.mark.parametrize("how", ["delete", "suspend"])
@pytest.mark.parametrize("grace", [0, 1])
def test_the_pid_a_callable_pod_shows_is_gone_after_delete_or_suspend(how: str, grace: int) -> None:
    # Kubernetes: deleting a pod sends SIGTERM, then SIGKILL when the grace period ends; the pod
    # is terminating until its process is gone. The pid pods() shows must not live on (as an
    # idle worker, or still running the function).
    job = kjob.Job(target=sleepy, termination_grace_period_seconds=grace)
    job.start()
    try:
        _wait_for(lambda: bool(job.pods()) and job.pods()[0].pid is not None)
        pid = job.pods()[0].pid
        assert pid is not None
        if how == "delete":
            job.delete(timeout=10)
        else:
            job.suspend()
            _wait_for(lambda: job.status.active == 0 and job.status.terminating in (0, None))
        _wait_for(lambda: not _alive(pid), timeout=grace + 3)
    finally:
        job.delete()


def test_a_pod_ignoring_sigterm_is_killed_when_the_grace_period_ends(tmp_path: Path) -> None:
    flag = tmp_path / "ready"
    job = kjob.Job(target=ignores_sigterm, args=[str(flag)], termination_grace_period_seconds=1)
    job.start()
    try:
        _wait_for(flag.exists)
        pid = job.pods()[0].pid
        assert pid is not None
        started = time.monotonic()
        job.delete(timeout=10)
        took = time.monotonic() - started
        # Not before the grace period (SIGTERM is ignored), and gone once it ends (SIGKILL).
        assert took >= 0.9
        assert not _alive(pid)
        assert no_pids_left(job.uid) == []
    finally:
        job.delete()


# ---- 2. Each callable pod sees what a fresh process would ---------------------------------------


def read_env(name: str) -> str | None:
    return os.environ.get(name)


def read_env_and_change_it(name: str) -> str | None:
    value = os.environ.get(name)
    os.environ[name] = "changed by a pod"
    os.environ["KJOB_TEST_ADDED_BY_POD"] = "1"
    return value


def read_cwd() -> str:
    return os.getcwd()


def test_parent_environment_changes_after_the_first_job_reach_later_callable_pods(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KJOB_TEST_VALUE", "first")
    job = kjob.Job(target=read_env, args=["KJOB_TEST_VALUE"], max_workers=1)
    assert job.run(timeout=60).succeeded == 1
    assert job.results() == ["first"]
    job.delete()
    # The same (warm) worker runs the next Job: it must see the environment as of its start().
    monkeypatch.setenv("KJOB_TEST_VALUE", "second")
    job = kjob.Job(target=read_env, args=["KJOB_TEST_VALUE"], max_workers=1)
    job.run(timeout=60)
    assert job.results() == ["second"]
    job.delete()
    monkeypatch.delenv("KJOB_TEST_VALUE")
    job = kjob.Job(target=read_env, args=["KJOB_TEST_VALUE"], max_workers=1)
    job.run(timeout=60)
    assert job.results() == [None]
    job.delete()


def test_env_of_one_job_does_not_leak_into_the_next() -> None:
    job = kjob.Job(target=read_env, args=["KJOB_TEST_LEAK"], env={"KJOB_TEST_LEAK": "mine"}, max_workers=1)
    job.run(timeout=60)
    assert job.results() == ["mine"]
    job.delete()
    job = kjob.Job(target=read_env, args=["KJOB_TEST_LEAK"], max_workers=1)
    job.run(timeout=60)
    assert job.results() == [None]
    job.delete()


def test_a_pod_that_changes_the_environment_does_not_change_the_next_pods() -> None:
    job = kjob.Job(
        target=read_env_and_change_it,
        args=["KJOB_TEST_SEEN"],
        env={"KJOB_TEST_SEEN": "from the Job"},
        completions=4,
        max_workers=1,
    )
    job.run(timeout=60)
    assert job.results() == ["from the Job"] * 4
    job.delete()
    job = kjob.Job(target=read_env, args=["KJOB_TEST_ADDED_BY_POD"], max_workers=1)
    job.run(timeout=60)
    assert job.results() == [None]
    job.delete()


def test_pytest_current_test_inside_a_pod_names_the_running_test() -> None:
    job = kjob.Job(target=read_env, args=["PYTEST_CURRENT_TEST"])
    job.run(timeout=60)
    (value,) = job.results()
    assert isinstance(value, str)
    assert "test_pytest_current_test_inside_a_pod_names_the_running_test" in value
    job.delete()


def test_working_dir_is_the_callable_pods_current_directory(tmp_path: Path) -> None:
    job = kjob.Job(target=read_cwd, working_dir=str(tmp_path))
    job.run(timeout=60)
    assert job.results() == [str(tmp_path)]
    job.delete()
    # Without working_dir: the parent's current directory at start(), as for command pods.
    job = kjob.Job(target=read_cwd)
    job.run(timeout=60)
    assert job.results() == [os.getcwd()]
    job.delete()


def test_a_missing_working_dir_fails_the_callable_pod_naming_the_directory(
    tmp_path: Path, fast_backoff: Backoff
) -> None:
    missing = tmp_path / "does-not-exist"
    job = kjob.Job(target=read_cwd, working_dir=str(missing), backoff_limit=0, **fast_backoff)
    status = job.run(timeout=60)
    assert status.is_failed
    assert status.succeeded == 0
    (pod,) = job.pods()
    assert pod.phase == "Failed"
    assert pod.reason == "StartError"
    assert pod.message == (
        f'failed to change to the working directory "{missing}": No such file or directory (os error 2)'
    )
    job.delete()


def test_an_edited_module_is_never_run_stale_by_a_warm_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module_file = tmp_path / "kjob_edited_module.py"
    module_file.write_text("def answer():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("kjob_edited_module")
    try:
        job = kjob.Job(target=module.answer, max_workers=1)
        job.run(timeout=60)
        assert job.results() == [1]
        job.delete()
        # Edited (a different size, so the change shows whatever the file system's clock).
        module_file.write_text("def answer():\n    return 22222\n")
        importlib.reload(module)
        job = kjob.Job(target=module.answer, max_workers=1)
        job.run(timeout=60)
        assert job.results() == [22222]
        job.delete()
    finally:
        sys.modules.pop("kjob_edited_module", None)


def own_pid() -> int:
    return os.getpid()


def test_reuse_workers_false_runs_every_pod_in_a_fresh_process() -> None:
    job = kjob.Job(target=own_pid, completions=4, parallelism=2, reuse_workers=False)
    status = job.run(timeout=60)
    assert status.succeeded == 4
    pids = job.results()
    assert isinstance(pids, list)
    assert len(set(pids)) == 4
    job.delete()
    assert no_pids_left(job.uid) == []


def test_shutdown_workers_stops_the_idle_workers() -> None:
    job = kjob.Job(target=own_pid, completions=2, parallelism=2, max_workers=2)
    job.run(timeout=60)
    pids = job.results()
    assert isinstance(pids, list)
    job.delete()
    assert any(_alive(pid) for pid in pids)  # kept for the next Job
    assert kjob.shutdown_workers() >= 1
    _wait_for(lambda: not any(_alive(pid) for pid in pids))
    assert kjob.shutdown_workers() == 0
    # The next callable Job starts fresh workers.
    job = kjob.Job(target=own_pid)
    job.run(timeout=60)
    (pid,) = job.results()
    assert pid not in pids
    job.delete()


# ---- 3. Return values cross by cloudpickle; failures to send them are named ----------------------


def test_a_return_value_of_a_class_defined_in_main_comes_back(tmp_path: Path) -> None:
    script = tmp_path / "main_class.py"
    script.write_text(
        textwrap.dedent(
            """
            import kjob

            class Result:
                def __init__(self, index):
                    self.index = index

            def make(index):
                return Result(index)

            if __name__ == "__main__":
                job = kjob.Job(target=make, completions=3, parallelism=3, completion_mode="Indexed",
                               backoff_limit=0)
                status = job.run(timeout=60)
                results = job.results()
                print(status.succeeded, sorted(results),
                      all(isinstance(r, Result) and r.index == i for i, r in results.items()))
                job.delete()
            """
        )
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3 [0, 1, 2] True"


def returns_a_lock(index: int) -> Any:
    import threading

    return threading.Lock()


def test_an_unpicklable_return_value_fails_the_pod_saying_so(fast_backoff: Backoff) -> None:
    job = kjob.Job(
        target=returns_a_lock, completions=1, completion_mode="Indexed", backoff_limit=0, **fast_backoff
    )
    status = job.run(timeout=60)
    assert status.is_failed
    (pod,) = job.pods()
    assert pod.phase == "Failed"
    assert pod.exit_code == 1
    assert pod.exception is not None
    assert "the return value of index 0 could not be sent back" in pod.exception
    assert "lock" in pod.exception
    assert "could not be sent back" in (pod.reason or "")
    assert "kjob: the return value of index 0 could not be sent back" in job.logs(index=0)
    job.delete()


# ---- 4. Tracebacks show notebook and __main__ source lines ----------------------------------------


def test_a_traceback_shows_the_source_of_a_function_defined_in_a_notebook_cell() -> None:
    # As IPython does: the cell's source is only in linecache (no file, no modification time).
    filename = "/tmp/ipykernel_4242/kjob-test-cell.py"
    source = "def cell_function(index):\n    values = []\n    return values[index]  # the failing line\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType("__main__")
    exec(compile(source, filename, "exec"), module.__dict__)
    fn = module.__dict__["cell_function"]
    try:
        job = kjob.Job(target=fn, completions=1, completion_mode="Indexed", backoff_limit=0)
        job.run(timeout=60)
        (pod,) = job.pods()
        assert pod.phase == "Failed"
        assert "return values[index]  # the failing line" in job.logs(index=0)
        assert pod.exception is not None
        assert "return values[index]  # the failing line" in pod.exception
        assert pod.exception.startswith("IndexError: list index out of range")
        job.delete()
    finally:
        linecache.cache.pop(filename, None)


def test_command_pods_ignoring_sigterm_are_killed_when_the_grace_period_ends() -> None:
    # The same timer path for command pods, with many of them at once: SIGTERM (ignored here),
    # then SIGKILL at the end of the grace period for every one.
    job = kjob.Job(
        command="trap '' TERM; echo started; sleep 60 & wait",
        completions=20,
        parallelism=20,
        termination_grace_period_seconds=1,
    )
    job.start()
    try:
        _wait_for(lambda: job.status.active == 20 and all(p.pid is not None for p in job.pods()))
        time.sleep(0.2)
        started = time.monotonic()
        job.delete(timeout=20)
        assert time.monotonic() - started >= 0.9
        assert no_pids_left(job.uid) == []
    finally:
        job.delete()


def test_a_missing_working_dir_of_a_command_pod_names_the_directory_not_the_program(
    tmp_path: Path, fast_backoff: Backoff
) -> None:
    missing = tmp_path / "nowhere"
    job = kjob.Job(command=["true"], working_dir=str(missing), backoff_limit=0, **fast_backoff)
    assert job.run(timeout=60).is_failed
    (pod,) = job.pods()
    assert (pod.reason, pod.message) == (
        "StartError",
        f'failed to change to the working directory "{missing}": No such file or directory (os error 2)',
    )
    job.delete()


def test_a_callable_pod_is_terminating_until_its_process_is_gone(tmp_path: Path) -> None:
    # Kubernetes: a deleted pod counts in status.terminating until its containers stopped; it is
    # not Failed while its process still runs the function.
    flag = tmp_path / "ready"
    job = kjob.Job(target=ignores_sigterm, args=[str(flag)], termination_grace_period_seconds=2)
    job.start()
    try:
        _wait_for(flag.exists)
        pid = job.pods()[0].pid
        assert pid is not None
        job.suspend()
        _wait_for(lambda: job.status.terminating == 1)
        time.sleep(0.3)
        assert _alive(pid)
        assert job.pods()[0].phase == "Running"
        _wait_for(lambda: not _alive(pid), timeout=5)
        _wait_for(lambda: job.pods()[0].phase == "Failed")
        assert job.pods()[0].exit_code == 137
        assert job.status.terminating == 0
    finally:
        job.delete()


def test_reuse_workers_false_with_a_command_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^reuse_workers: Forbidden: only a Job with a target callable"):
        kjob.Job(command="true", reuse_workers=False)
