"""The shepherd's clean-up after its interpreter dies without running any exit code."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

HOST = """
import os, signal, sys, kjob
job = kjob.Job(target=abs, args=(-1,), completions=4, parallelism=4, max_workers=4)
job.start()
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGTERM)
"""


def test_no_worker_slot_file_outlives_an_interpreter_killed_by_sigterm() -> None:
    # Workers killed before they started used to leave their slot file (/dev/shm/kjob-slot-PID-N),
    # found by the chaos run's file count (sigterm kill path); slots are unnamed memory now.
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", HOST], capture_output=True, text=True, timeout=30)
        assert done.returncode == -signal.SIGTERM
        pid = int(done.stdout)
        deadline = time.monotonic() + 5
        while (left := sorted(Path("/dev/shm").glob(f"kjob-slot-{pid}-*"))) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert left == []
