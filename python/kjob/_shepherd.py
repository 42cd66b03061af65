"""The shepherd: kills a kjob session's processes when the Python process that owns them dies,
even by SIGKILL (when no Python code of its can run).

kjob starts one shepherd per interpreter, in its own process group, with a pipe on its stdin
whose only write end the interpreter holds. Every pod and worker process carries the
session's random token in ``KJOB_SESSION``, and in ``KJOB_OWNERS`` the tokens and Job UIDs of
every session and Job enclosing it (a pod that runs kjob itself starts processes with its own
markers). When the pipe reaches end of file (the owner exited, however it exited), the
shepherd sends SIGKILL to every process that carries the token in either variable, which also
reaches descendants that left their pod's process group and the processes of nested Jobs at
any depth. It then waits (up to ``SHEPHERD_WAIT`` seconds) for the shepherds of nested
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
the standard library.
"""

from __future__ import annotations

import os
import sys
import time

JOB_UID_ENV = "KJOB_JOB_UID"
SESSION_ENV = "KJOB_SESSION"
OWNERS_ENV = "KJOB_OWNERS"
SHEPHERD_ENV = "KJOB_SHEPHERD_FOR"
#: The variables a shepherd must not inherit from its interpreter.
MARKERS = (JOB_UID_ENV, SESSION_ENV, OWNERS_ENV, SHEPHERD_ENV)
#: How long a shepherd waits for the shepherds of nested interpreters.
SHEPHERD_WAIT = 5.0


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


def _marks(environ: bytes) -> dict[bytes, bytes]:
    marks = {}
    for var in environ.split(b"\0"):
        if var.startswith(b"KJOB_"):
            name, _, value = var.partition(b"=")
            marks[name] = value
    return marks


def _processes() -> list[tuple[int, dict[bytes, bytes]]]:
    """Every other process with the kjob variables of its environment."""
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
        found.append((int(name), _marks(environ)))
    return found


def session_processes(token: str) -> list[int]:
    """The processes that belong to the session, directly or through nested Jobs."""
    owner = token.encode()
    return [
        pid
        for pid, marks in _processes()
        if marks.get(SESSION_ENV.encode()) == owner
        or owner in marks.get(OWNERS_ENV.encode(), b"").split(b",")
    ]


def nested_shepherds(token: str, killed: set[int]) -> list[int]:
    """The shepherds of interpreters that ran inside this session's pods and are dead or
    were just killed (a shepherd whose interpreter lives on is not waited for)."""
    owner = token.encode()
    found = []
    for pid, marks in _processes():
        if owner in marks.get(SHEPHERD_ENV.encode(), b"").split(b","):
            watched = shepherd_owner(pid)
            if watched is None or watched in killed or not is_alive(watched):
                found.append(pid)
    return found


def shepherd_owner(pid: int) -> int | None:
    """The interpreter a shepherd watches (the last argument of its command line)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return int(f.read().rstrip(b"\0").rsplit(b"\0", 1)[-1])
    except (OSError, ValueError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat[stat.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X")


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
    # Imported here: kjob imports this module at `import kjob` for its constants.
    import shutil
    import signal

    token = sys.argv[1]
    # Terminal signals are for the user's process, not for its watchdog.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    folders = read_folders(0)
    # Processes may fork while we kill: repeat until none is left (bounded).
    killed: set[int] = set()
    for _ in range(10):
        pids = session_processes(token)
        if not pids:
            break
        killed.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    # Nested interpreters' shepherds remove their folders once their interpreter is dead.
    shepherds = nested_shepherds(token, killed)
    deadline = time.monotonic() + SHEPHERD_WAIT
    while shepherds and time.monotonic() < deadline:
        time.sleep(0.002)
        shepherds = [pid for pid in shepherds if is_alive(pid)]
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
