"""`kjob run -f`: output and exit codes, through a real subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KJOB = [sys.executable, "-m", "kjob.cli"]
# As from a terminal: SIGINT at its default even when this runner was started in the background
# (shells start background jobs with SIGINT ignored, and Python keeps it so).
KJOB_INTERACTIVE = [
    sys.executable,
    "-c",
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from kjob.cli import main; sys.exit(main(sys.argv[1:]))",
]


def write_job(tmp_path: Path, command: str, extra: str = "") -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: cli\nspec:\n"
        f"{extra}  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        f"      - name: cli\n        command: ['sh', '-c', {command!r}]\n"
    )
    return path


def test_run_pi_example_exits_0() -> None:
    out = subprocess.run([*KJOB, "run", "-f", str(EXAMPLES / "pi.yaml"), "--logs"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "job.batch/pi created" in out.stdout
    assert "condition Complete=True reason=CompletionsReached" in out.stdout
    assert "] 3.14159265358979" in out.stdout


def test_failed_job_exits_1(tmp_path: Path) -> None:
    path = write_job(tmp_path, "exit 4", extra="  backoffLimit: 0\n")
    out = subprocess.run([*KJOB, "run", "-f", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 1
    assert "condition Failed=True reason=BackoffLimitExceeded" in out.stdout


def test_invalid_manifest_exits_2_with_the_field_error(tmp_path: Path) -> None:
    path = write_job(tmp_path, "true", extra="  completions: -1\n")
    out = subprocess.run([*KJOB, "run", "-f", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"error: {path}: spec.completions: Invalid value: -1: must be greater than or equal to 0"
    )


def test_ctrl_c_deletes_the_job_and_exits_130(tmp_path: Path) -> None:
    marker = tmp_path / "started"
    path = write_job(tmp_path, f"touch {marker}; sleep 300")
    proc = subprocess.Popen([*KJOB_INTERACTIVE, "run", "-f", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert marker.exists()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert "interrupted: deleting job.batch/cli" in err
    # The pod's `sleep 300` is gone with the Job.
    ps = subprocess.run(["pgrep", "-f", f"touch {marker}"], capture_output=True, text=True)
    assert ps.stdout == ""


def test_console_script_help() -> None:
    out = subprocess.run([*KJOB, "run", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps lines
    assert "Exit status: 0 Complete, 1 Failed, 2 invalid input, 130 interrupted" in text
