"""`kjob run` under SIGTERM, SIGHUP and a closed output pipe (issue item 6): like kubectl, it
cleans up (no pod, no log folder left), exits with 128 + the signal, and prints no traceback
when its reader went away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import pids_with_variable

KJOB = [sys.executable, "-m", "kjob.cli"]


def write_job(tmp_path: Path, command: str, mark: str) -> Path:
    """A Job of two pods running `command`; every pod carries `MARK=<mark>` to be found by."""
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: sig\nspec:\n  completions: 2\n"
        "  parallelism: 2\n  template:\n    spec:\n      restartPolicy: Never\n"
        "      terminationGracePeriodSeconds: 1\n      containers:\n"
        f"      - name: sig\n        command: ['sh', '-c', {command!r}]\n"
        f"        env:\n        - name: MARK\n          value: {mark}\n"
    )
    return path


def marked(mark: str) -> list[int]:
    """Live processes carrying ``MARK=<mark>``."""
    return pids_with_variable("MARK", mark)


def wait_for(condition: object, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def kjob_env(tmp_path: Path) -> dict[str, str]:
    """Temporary folders (the CLI's ``kjob-logs-*``) go to a folder of the test's own."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {**os.environ, "TMPDIR": str(tmp)}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_cli_run_signal_deletes_the_pods_removes_the_logs_and_exits_128_plus_signal(
    tmp_path: Path, signum: int
) -> None:
    mark = uuid.uuid4().hex
    path = write_job(tmp_path, "exec sleep 30", mark)
    env = kjob_env(tmp_path)
    with subprocess.Popen(
        [*KJOB, "run", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        wait_for(lambda: len(marked(mark)) == 2)
        # The stored Job's log folder (issue 15: logs live in KJOB_HOME, removed with the Job).
        logs = Path(env["KJOB_HOME"]) / "logs" / "default"
        assert [p.name.startswith("sig-") for p in logs.iterdir()] == [True]
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 128 + signum
    assert "Traceback" not in err
    assert err.endswith(f"\n{signal.Signals(signum).name}: deleting job.batch/sig\n")
    assert out.startswith("job.batch/sig created\n")
    assert marked(mark) == []
    assert os.listdir(env["TMPDIR"]) == []
    assert list(logs.iterdir()) == []


def test_cli_run_logs_into_a_closed_pipe_is_quiet_and_cleans_up(tmp_path: Path) -> None:
    # `kjob run --logs | head -1`: the reader goes away after one line.
    mark = uuid.uuid4().hex
    path = write_job(tmp_path, "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done", mark)
    env = kjob_env(tmp_path)
    with subprocess.Popen(
        [*KJOB, "run", "--logs", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.readline() == b"job.batch/sig created\n"
        wait_for(lambda: len(marked(mark)) >= 2)
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=10) == 128 + signal.SIGPIPE
    assert err == ""
    assert marked(mark) == []
    assert os.listdir(env["TMPDIR"]) == []


def test_cli_run_logs_piped_to_head_prints_no_traceback(tmp_path: Path) -> None:
    mark = uuid.uuid4().hex
    path = write_job(tmp_path, "i=0; while true; do i=$((i+1)); echo line $i; sleep 0.01; done", mark)
    env = kjob_env(tmp_path)
    command = " ".join([*KJOB, "run", "--logs", "-f", str(path)])
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | head -1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=20,
    )
    assert done.stdout == "job.batch/sig created\n"
    assert done.stderr == ""
    assert done.returncode == 128 + signal.SIGPIPE
    assert marked(mark) == []
    assert os.listdir(env["TMPDIR"]) == []
