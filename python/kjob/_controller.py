"""The detached controller of ``kjob apply``: one process per Job, in a session of its own
(``setsid``), so that the Job runs on after the shell that applied it closes.

``kjob apply`` starts ``python -m kjob._controller`` with a request on stdin (JSON: create a
Job from a manifest, or adopt an orphan of the store), and reads one line back: ``ok`` once
the Job is recorded and started, else ``error: <message>``. The controller then closes its
end, runs the Job to its end, and stays until its ``ttlSecondsAfterFinished`` (if any) has
deleted it. Its own messages go to ``$KJOB_HOME/controllers.log``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["spawn"]


def spawn(request: dict[str, Any], home: Path) -> None:
    """Starts a detached controller for ``request`` and waits for its answer; raises
    ``RuntimeError`` with its message when it could not start the Job."""
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "controllers.log", "ab")  # noqa: SIM115 - handed to the child
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kjob._controller"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            env={**os.environ, "KJOB_HOME": str(home)},
        )
    finally:
        log.close()
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(json.dumps(request).encode())
    proc.stdin.close()
    answer = proc.stdout.readline().decode().strip()
    proc.stdout.close()
    if answer != "ok":
        proc.wait()
        raise RuntimeError(
            answer.removeprefix("error: ") or "the controller process ended before starting the Job"
        )


def _serve(request: dict[str, Any]) -> Any:
    import kjob

    from . import _stored_job
    from ._job import job_from_normalized, native_of

    if request["mode"] == "create":
        job = job_from_normalized(
            request["manifest"],
            None,
            None,
            None,
            original=request.get("original"),
            env_sources=request.get("env_sources"),
            where=request.get("where"),
        )
        job.start()
        return job
    job = kjob.Job.get(request["name"], request["namespace"])
    native = native_of(job)
    if isinstance(native, _stored_job.StoredNative):
        record = native.fresh()
        if record is not None and record.orphaned:
            _stored_job.adopt(job, record)
    return job


def main() -> int:
    from ._job import ttl_after_finished

    request = json.loads(sys.stdin.read())
    try:
        job = _serve(request)
    except Exception as e:  # noqa: BLE001 - reported to `kjob apply`, which prints it
        print(f"error: {e}", flush=True)
        return 1
    print("ok", flush=True)
    # Nothing more to say: the shell may be gone.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        job.wait()
    except Exception as e:  # noqa: BLE001
        print(f"kjob controller {job.namespace}/{job.name}: {e}", file=sys.stderr, flush=True)
        return 1
    # ttlSecondsAfterFinished: this controller deletes the Job when it expires.
    while not job.is_deleted and ttl_after_finished(job) is not None:
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
