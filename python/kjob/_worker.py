"""The worker process that runs Python callables as pods: ``python -m kjob._worker``.

The Rust runtime starts workers (fresh interpreters, never a fork of the user's) and talks
to them over stdin/stdout with length-prefixed frames. At start the worker moves those pipes
to private descriptors and points fd 0 at /dev/null and fds 1 and 2 at a log file, so a pod's
prints (Python-level and fd-level) land in the log, never in the protocol.

Frames (little-endian) from the parent:
  ``J`` job:    u32 job key, u32 n, the log path (n bytes, UTF-8), then a pickle of the
                job's init dict (see ``_load_job``)
  ``T`` task:   u32 job key, u64 pod id, i64 index (-1: none), u32 attempt, pod name (UTF-8)
  ``C`` cancel: u32 job key, u64 pod id  -- drop a queued task that has not started
  ``F`` forget: u32 job key              -- the Job is gone; free its function
To the parent:
  ``D`` done:    u32 job key, u64 pod id, i32 exit code, u64 log start, u64 log end,
                 u8 payload kind (0 none, 1 result, 2 exception), payload: the pickled
                 result, or the exception's class and bases by qualified name joined by
                 newlines, a NUL, and its message (UTF-8)
  ``X`` cancelled: u32 job key, u64 pod id
A pod's output is the byte range [log start, log end) of the log file the worker was using.
Many pods share one file this way: creating a file per pod would cost more than the pods.

Pods run in the order they came, so the parent knows that the pod after one reported done is
the one running (and a pod sent to a worker with nothing else to do runs at once): starts are
not reported. ``D`` reports are written in batches while pods are quick (one write per pod would cost more
than a trivial pod), and at once when a pod was slow or nothing is left to run. The pod
running now is also kept in the slot: the file named by ``--slot``, mapped here, holding the
pod id + 1 (0 between pods) as a little-endian u64, which the parent reads when it must know
for sure (a kill, this worker's death).
"""

from __future__ import annotations

import collections
import contextvars
import mmap
import os
import pickle
import select
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable

_HEADER = struct.Struct("<I")
_TASK = struct.Struct("<IQqI")
_KEY_POD = struct.Struct("<IQ")
_DONE = struct.Struct("<IQiQQB")
_KEY = struct.Struct("<I")
_PATH = struct.Struct("<II")

_SLOT = struct.Struct("<Q")

KIND_NONE, KIND_RESULT, KIND_EXCEPTION = 0, 1, 2

# Reports of quick pods are held back until this many are waiting...
BATCH_REPORTS = 32
# ...or the first of them has waited this long, or a pod took this long (a slow pod is
# reported at once, and so is everything before it, as the next may be slow too).
BATCH_SECONDS = 0.001
SLOW_POD_SECONDS = 0.0002


class PodContext:
    """What a callable pod knows about itself (see :func:`kjob.pod_context`). A plain slotted
    class: one is made per pod, and a frozen dataclass costs several times more."""

    __slots__ = ("attempt", "index", "job_name", "pod_name")

    def __init__(self, job_name: str, pod_name: str, index: int | None, attempt: int) -> None:
        self.job_name = job_name
        self.pod_name = pod_name
        self.index = index
        self.attempt = attempt

    def __repr__(self) -> str:
        return (
            f"PodContext(job_name={self.job_name!r}, pod_name={self.pod_name!r}, "
            f"index={self.index!r}, attempt={self.attempt!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PodContext):
            return NotImplemented
        return (self.job_name, self.pod_name, self.index, self.attempt) == (
            other.job_name,
            other.pod_name,
            other.index,
            other.attempt,
        )

    __hash__ = None  # type: ignore[assignment]


_context: contextvars.ContextVar[PodContext | None] = contextvars.ContextVar("kjob_pod", default=None)


def current_context() -> PodContext | None:
    return _context.get()


@dataclass
class _Job:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    indexed: bool
    log_fd: int


def _exception_info(exc: BaseException) -> bytes:
    """The exception's class and bases by qualified name, for ``onExceptions`` rules, and its
    message."""
    names = []
    for cls in type(exc).__mro__:
        if cls is object:
            continue
        module = cls.__module__
        qual = cls.__qualname__
        names.append(qual if module in ("builtins", "__main__") else f"{module}.{qual}")
    return ("\n".join(names) + "\0" + str(exc)).encode("utf-8", errors="replace")


class Worker:
    def __init__(self, proto_in: int, proto_out: int, slot: mmap.mmap | None = None) -> None:
        self._in = proto_in
        self._out = proto_out
        self._slot = slot
        self._buffer = bytearray()
        self._outbox = bytearray()
        self._held = 0
        self._held_since = 0.0
        self._last_read = 0.0
        self._jobs: dict[int, _Job] = {}
        self._tasks: collections.deque[tuple[int, int, int, int, str]] = collections.deque()
        self._current_log: int | None = None
        # The log's size after the last pod: the next pod's output starts there (saves an
        # fstat per pod; the worker itself writes nothing between pods).
        self._log_end: int | None = None

    # ---- protocol ---------------------------------------------------------------------------

    def _send(self, kind: bytes, body: bytes) -> None:
        self._outbox += _HEADER.pack(len(body) + 1) + kind + body

    def _flush(self) -> None:
        self._held = 0
        if not self._outbox:
            return
        with memoryview(self._outbox) as view:
            done = 0
            while done < len(view):
                done += os.write(self._out, view[done:])
        self._outbox.clear()

    def _read(self, block: bool) -> bool:
        """Reads what is available (waiting when ``block``); False at end of input."""
        if not block:
            ready, _, _ = select.select([self._in], [], [], 0)
            if not ready:
                return True
        chunk = os.read(self._in, 1 << 16)
        if not chunk:
            return False
        self._buffer += chunk
        self._parse()
        return True

    def _parse(self) -> None:
        buf = self._buffer
        pos = 0
        while len(buf) - pos >= 4:
            (size,) = _HEADER.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            kind = bytes(buf[pos + 4 : pos + 5])
            body = bytes(buf[pos + 5 : pos + 4 + size])
            pos += 4 + size
            self._handle(kind, body)
        del buf[:pos]

    def _handle(self, kind: bytes, body: bytes) -> None:
        if kind == b"T":
            key, pod, index, attempt = _TASK.unpack_from(body)
            self._tasks.append((key, pod, index, attempt, body[_TASK.size :].decode()))
        elif kind == b"J":
            key, size = _PATH.unpack_from(body)
            log_path = body[_PATH.size : _PATH.size + size].decode()
            self._jobs[key] = self._load_job(pickle.loads(body[_PATH.size + size :]), log_path)
        elif kind == b"C":
            key, pod = _KEY_POD.unpack_from(body)
            for task in list(self._tasks):
                if task[0] == key and task[1] == pod:
                    self._tasks.remove(task)
                    self._send(b"X", _KEY_POD.pack(key, pod))
        elif kind == b"F":
            (key,) = _KEY.unpack_from(body)
            job = self._jobs.pop(key, None)
            if job is not None and job.log_fd >= 0:
                os.close(job.log_fd)
            if key == self._current_log:
                self._current_log = None
                self._log_end = None

    def _load_job(self, init: dict[str, Any], log_path: str) -> _Job:
        """Loads a Job's callable. ``init`` holds: name, uid, fn (cloudpickle bytes of a dict
        with fn, args and kwargs), indexed, sys_path, cwd, env."""
        for entry in reversed(init["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        if init["cwd"]:
            os.chdir(init["cwd"])
        os.environ.update(init["env"])
        payload = pickle.loads(init["fn"])
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        return _Job(
            name=init["name"],
            fn=payload["fn"],
            args=tuple(payload["args"]),
            kwargs=dict(payload["kwargs"]),
            indexed=init["indexed"],
            log_fd=log_fd,
        )

    # ---- running pods -----------------------------------------------------------------------

    def _use_log(self, key: int, fd: int) -> None:
        # By Job key, not descriptor number: a forgotten Job's number may be reused.
        if key != self._current_log:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            self._current_log = key
            self._log_end = None

    def _run(self, key: int, pod: int, index: int, attempt: int, name: str) -> float:
        """Runs one pod and queues its report; returns how long it took."""
        job = self._jobs[key]
        self._use_log(key, job.log_fd)
        began = time.monotonic()
        # If this process dies from now on, the parent reads which pod it was running here.
        if self._slot is not None:
            _SLOT.pack_into(self._slot, 0, pod + 1)
        start = self._log_end if self._log_end is not None else os.fstat(1).st_size
        os.environ["JOB_COMPLETION_INDEX"] = str(index) if index >= 0 else ""
        if index < 0:
            del os.environ["JOB_COMPLETION_INDEX"]
        token = _context.set(PodContext(job.name, name, index if index >= 0 else None, attempt))
        kind, payload, code = KIND_NONE, b"", 0
        try:
            if job.indexed:
                value = job.fn(index, *job.args, **job.kwargs)
            else:
                value = job.fn(*job.args, **job.kwargs)
            try:
                payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
                kind = KIND_RESULT
            except Exception as exc:  # an unpicklable return value fails the pod
                code = 1
                _print_user_traceback(exc)
                kind, payload = KIND_EXCEPTION, _exception_info(exc)
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException as exc:
            code = 1
            _print_user_traceback(exc)
            kind, payload = KIND_EXCEPTION, _exception_info(exc)
        finally:
            _context.reset(token)
            sys.stdout.flush()
            sys.stderr.flush()
        end = os.fstat(1).st_size
        self._log_end = end
        if self._slot is not None:
            _SLOT.pack_into(self._slot, 0, 0)
        self._send(b"D", _DONE.pack(key, pod, code, start, end, kind) + payload)
        finished = time.monotonic()
        if not self._held:
            self._held_since = finished
        self._held += 1
        return finished - began

    def serve(self) -> None:
        just_read = False
        while True:
            if not self._tasks:
                self._flush()
                if not self._read(block=True):
                    return
                self._last_read = time.monotonic()
                just_read = True
                continue
            # Between pods, pick up cancellations and new work without waiting (not right
            # after a read that waited); when pods are quick, every millisecond is soon enough.
            now = time.monotonic()
            if not just_read and (self._held == 0 or now - self._last_read >= BATCH_SECONDS):
                self._last_read = now
                if not self._read(block=False):
                    return
            just_read = False
            if not self._tasks:
                continue
            took = self._run(*self._tasks.popleft())
            if (
                not self._tasks
                or took >= SLOW_POD_SECONDS
                or self._held >= BATCH_REPORTS
                or time.monotonic() - self._held_since >= BATCH_SECONDS
            ):
                self._flush()


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as the user's code raised it, without the worker's own frame."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)


def _exit_code(code: object) -> int:
    """``SystemExit`` semantics: None is 0, an int is itself, anything else is printed, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main() -> None:
    # Run as a script, this module is __main__; user code reaches it as kjob._worker (for
    # pod_context), and the kjob package folder must not shadow user modules on sys.path.
    sys.modules.setdefault("kjob._worker", sys.modules[__name__])
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]
    # Keep the protocol pipes on private descriptors, then give the pods /dev/null for stdin
    # and the log (installed per Job) for stdout and stderr.
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    os.set_inheritable(proto_in, False)
    os.set_inheritable(proto_out, False)
    Worker(proto_in, proto_out, _map_slot(sys.argv[1:])).serve()


def _map_slot(argv: list[str]) -> mmap.mmap | None:
    """Maps the slot file named by ``--slot PATH`` and removes its name (the parent keeps its
    own descriptor)."""
    if len(argv) < 2 or argv[0] != "--slot":
        return None
    fd = os.open(argv[1], os.O_RDWR)
    try:
        slot = mmap.mmap(fd, _SLOT.size)
    finally:
        os.close(fd)
    os.unlink(argv[1])
    return slot


if __name__ == "__main__":
    main()
