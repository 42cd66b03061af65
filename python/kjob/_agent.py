"""The kjob agent: runs, on its machine, the pods that a Job's owner elsewhere sends it.

``python -m kjob._agent [HOST]`` listens on ``HOST`` (default ``127.0.0.1``), a free port,
and prints ``HOST:PORT`` on its first line of stdout once it does. The Job's owner connects
once per Job (see ``src/runtime/agent.rs``): command pods run as processes of their own here,
callable pods in kjob worker processes here, and their events and output go back over the
connection. A connection that drops without the owner saying goodbye kills that Job's pods.

The agent lives as long as its stdin: its parent (a Dask worker, see :mod:`kjob._dask`)
holds the only write end of that pipe, so the agent sees end of file when the parent closes
it or dies, however it dies. It then kills every pod it runs and exits. Should the agent
itself be killed, its shepherd (started here, as in any kjob interpreter) kills its pods
and workers: no process outlives it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

from . import _kjob
from ._job import ensure_shepherd


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    host = args[0] if args else "127.0.0.1"
    ensure_shepherd()
    log_root = tempfile.mkdtemp(prefix="kjob-agent-")
    worker = [sys.executable, os.path.join(os.path.dirname(__file__), "_worker.py")]
    try:
        agent = _kjob.Agent(host, 0, worker, log_root)
        sys.stdout.write(agent.address + "\n")
        sys.stdout.flush()
        stdin = sys.stdin.buffer
        while stdin.read(65536):
            pass
        agent.kill_all()
    finally:
        shutil.rmtree(log_root, ignore_errors=True)
    # Without the interpreter's exit hooks: the pods are killed, the shepherd sweeps the
    # rest (idle workers) once this process is gone.
    os._exit(0)


if __name__ == "__main__":
    main()
