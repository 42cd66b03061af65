"""No pod outlives its Job when the interpreter exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from conftest import pids_of_job


def test_interpreter_exit_kills_running_pods() -> None:
    script = textwrap.dedent(
        """
        import time, kjob
        job = kjob.Job(name="orphan", command="sleep 300 & sleep 300")
        job.start()
        while job.status.active == 0 or not job.pods()[0].pid:
            time.sleep(0.01)
        time.sleep(0.1)
        print(job.uid, flush=True)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    uid = out.stdout.strip()
    assert uid
    deadline = time.monotonic() + 5
    while pids_of_job(uid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pids_of_job(uid) == []
