"""The shepherd: kills a kjob session's processes when the Python process that owns them dies,
even by SIGKILL (when no Python code of its can run).

kjob starts one shepherd per interpreter, in its own process group, with a pipe on its stdin
whose only write end the interpreter holds. Every pod and worker process carries the
session's random token in ``KJOB_SESSION``, and in ``KJOB_OWNERS`` the tokens and Job UIDs of
every session and Job enclosing it (a pod that runs kjob itself starts processes with its own
markers). When the pipe reaches end of file (the owner exited, however it exited), the
shepherd sends SIGKILL to every process that carries the token in either variable, which also
reaches descendants that left their pod's process group and the processes of nested Jobs at
any depth. It then waits (up to five seconds) for the shepherds of nested
interpreters to finish their own clean-up, removes the private log folders of the session's
Jobs that are still there, and exits.

A shepherd carries none of those markers itself, so that an outer sweep leaves it alive to
remove its folders once its interpreter is dead; instead ``KJOB_SHEPHERD_FOR`` lists the
owners of the interpreter it watches, and outer sweeps wait for it to end.

The interpreter names those folders on the pipe, a line each: ``+PATH`` when a Job that owns
one starts, ``-PATH`` once the Job removed it. Paths are UTF-8 with backslash escapes
(``\\``, ``\n``), so any folder name fits on a line.

(Worker slots are unnamed memory files, see ``src/runtime/workers.rs``: there is nothing of
them to remove.)

Run as ``python -S _shepherd.py TOKEN PID`` (PID: the interpreter it watches, which outer sweeps
read to tell a dead nested interpreter's shepherd from a living one's): it needs nothing but
the standard library and the extension next to it, whose sweep (``src/runtime/process.rs``)
finds and kills the session's processes, as it does at the end of each Job.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

if __package__:
    # The markers' names are the extension's (src/runtime/job.rs), which sets and sweeps them.
    # Run as a script, the shepherd needs none of them: the sweep finds them itself.
    from ._kjob import JOB_UID_ENV, OWNERS_ENV, SESSION_ENV, SHEPHERD_ENV

    #: The variables a shepherd must not inherit from its interpreter.
    MARKERS = (JOB_UID_ENV, SESSION_ENV, OWNERS_ENV, SHEPHERD_ENV)


def owners_of(environ: dict[str, str]) -> list[str]:
    """The sessions and Jobs a process with this environment belongs to, outermost first."""
    owners: list[str] = []
    for value in [
        *environ.get(OWNERS_ENV, "").split(","),
        environ.get(JOB_UID_ENV, ""),
        environ.get(SESSION_ENV, ""),
    ]:
        if value and value not in owners:
            owners.append(value)
    return owners


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


def _extension_sweep() -> Callable[[str], int]:
    """``_kjob.sweep_session``, imported from the extension next to this script. The script's
    folder is put first on ``sys.path`` explicitly: ``PYTHONSAFEPATH`` in the user's environment
    would leave it out."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _kjob  # type: ignore[import-not-found]

    sweep: Callable[[str], int] = _kjob.sweep_session
    return sweep


def main() -> None:
    # Imported here: kjob imports this module at `import kjob` for its constants.
    import shutil
    import signal

    token = sys.argv[1]
    # Terminal signals are for the user's process, not for its watchdog.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folders = read_folders(0)
    # The extension's sweep, the one a Job's end runs: SIGKILL to every process that carries
    # the token, then a wait for the shepherds of nested interpreters it killed, which remove
    # their own folders. Processes may fork while it kills: repeated until none is left
    # (bounded).
    sweep = _extension_sweep()
    for _ in range(10):
        if not sweep(token):
            break
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
