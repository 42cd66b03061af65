"""The shepherd: kills a kjob session's processes when the Python process that owns them dies,
even by SIGKILL (when no Python code of its can run).

kjob starts one shepherd per interpreter, in its own process group, with a pipe on its stdin
whose only write end the interpreter holds. Every pod and worker process carries the
session's random token in ``KJOB_SESSION``. When the pipe reaches end of file (the owner exited,
however it exited), the shepherd sends SIGKILL to every process that carries the token, which
also reaches descendants that left their pod's process group, then removes the private log
folders of the session's Jobs that are still there, and exits.

The interpreter names those folders on the pipe, a line each: ``+PATH`` when a Job that owns
one starts, ``-PATH`` once the Job removed it. Paths are UTF-8 with backslash escapes
(``\\``, ``\n``), so any folder name fits on a line.

Run as ``python -S _shepherd.py TOKEN``: it needs nothing but the standard library.
"""

from __future__ import annotations

import os
import shutil
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


def encode_path(path: str) -> bytes:
    """One line of the pipe protocol's path encoding (see the module docstring)."""
    return path.replace("\\", "\\\\").replace("\n", "\\n").encode("utf-8", "surrogateescape")


def decode_path(line: bytes) -> str:
    text = line.decode("utf-8", "surrogateescape")
    out = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def read_folders(fd: int) -> set[str]:
    """Reads the pipe until end of file; returns the folders still owned then."""
    folders: set[str] = set()
    pending = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return folders
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line[:1] == b"+":
                folders.add(decode_path(line[1:]))
            elif line[:1] == b"-":
                folders.discard(decode_path(line[1:]))


def main() -> None:
    token = sys.argv[1]
    # Terminal signals are for the user's process, not for its watchdog.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folders = read_folders(0)
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
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
