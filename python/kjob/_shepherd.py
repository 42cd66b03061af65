"""The shepherd: kills a kjob session's processes when the Python process that owns them dies,
even by SIGKILL (when no Python code of its can run).

kjob starts one shepherd per interpreter, in its own process group, with a pipe on its stdin
whose only write end the interpreter holds. Every pod and worker process carries the
session's random token in ``KJOB_SESSION``. When the pipe reaches end of file (the owner exited,
however it exited), the shepherd sends SIGKILL to every process that carries the token, which
also reaches descendants that left their pod's process group, then exits.

Run as ``python -S _shepherd.py TOKEN``: it needs nothing but the standard library.
"""

from __future__ import annotations

import os
import signal
import sys


def session_processes(token: str) -> list[int]:
    marker = f"KJOB_SESSION={token}".encode()
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.append(int(name))
    return found


def main() -> None:
    token = sys.argv[1]
    # Terminal signals are for the user's process, not for its watchdog.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while os.read(0, 4096):
        pass
    # Processes may fork while we kill: repeat until none is left (bounded).
    for _ in range(10):
        pids = session_processes(token)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


if __name__ == "__main__":
    main()
