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
not reported. With nothing left to run, the worker asks for more for ~50 us before it sleeps.
``D`` reports are written in batches while pods are quick (one write per pod would cost more
than a trivial pod), and at once when a pod was slow or nothing is left to run. The pod
running now is also kept in the slot: the memory file passed as ``--slot-fd``, mapped here, holding the
pod id + 1 (0 between pods) as a little-endian u64, which the parent reads when it must know
for sure (a kill, this worker's death).
"""

from __future__ import annotations

import collections
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
_FRAME_HEAD = struct.Struct("<Ic")
# A task frame's header and fixed fields; the pod name follows.
_TASK_FRAME = struct.Struct("<IcIQqI")
_KEY_POD = struct.Struct("<IQ")
# A done frame's header and fixed fields; the payload follows.
_DONE_FRAME = struct.Struct("<IcIQiQQB")
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
# With nothing to run, the worker asks for work again (yielding the CPU in between) this long
# before it sleeps: the parent usually answers a report within one round trip, and waking a
# sleeping process costs more than that (at parallelism 2, ~30% of the pods' throughput).
SPIN_SECONDS = 0.00005


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


# The pod this worker runs now: (job name, pod name as UTF-8, index or -1, attempt), or None
# between pods. A plain global, not a ContextVar: pods run one at a time in a worker, and
# threads a pod starts see it too. The PodContext is only built when asked for.
_running: tuple[str, bytes, int, int] | None = None


def current_context() -> PodContext | None:
    running = _running
    if running is None:
        return None
    job_name, pod_name, index, attempt = running
    return PodContext(job_name, pod_name.decode(), index if index >= 0 else None, attempt)


@dataclass
class _Job:
    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    indexed: bool
    log_fd: int

    def __post_init__(self) -> None:
        # The pod's call, built once: fn(index, *args, **kwargs) for Indexed Jobs,
        # fn(*args, **kwargs) otherwise (a bare fn(index) when there is nothing to add).
        fn, args, kwargs = self.fn, self.args, self.kwargs
        if self.indexed:
            self.call: Callable[[int], Any] = (
                fn if not args and not kwargs else lambda index: fn(index, *args, **kwargs)
            )
        else:
            self.call = lambda index: fn(*args, **kwargs)


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
        # Input is read without blocking; waiting for it goes through poll().
        os.set_blocking(proto_in, False)
        self._input_ready = select.poll()
        self._input_ready.register(proto_in, select.POLLIN)
        self._out = proto_out
        self._slot = slot
        # The slot as one unsigned 64-bit word (item assignment beats struct.pack_into).
        self._slot_word = memoryview(slot).cast("Q") if slot is not None else None
        # The start of an incomplete frame, in pieces (joined once the frame is whole, so a
        # large frame read in many pieces is not copied again for every piece), their total
        # size, and the size the frame needs.
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._pending_need = 0
        self._outbox = bytearray()
        self._held = 0
        self._held_since = 0.0
        self._last_read = 0.0
        self._loaded_a_job = False
        self._jobs: dict[int, _Job] = {}
        self._tasks: collections.deque[tuple[int, int, int, int, bytes]] = collections.deque()
        self._current_log: int | None = None
        # The log's size after the last pod: the next pod's output starts there (saves a
        # system call per pod; the worker itself writes nothing between pods).
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
        if block:
            give_up = _monotonic() + SPIN_SECONDS
            while True:
                try:
                    chunk = os.read(self._in, 1 << 16)
                    break
                except BlockingIOError:
                    if _monotonic() >= give_up:
                        self._input_ready.poll()
                    else:
                        os.sched_yield()
        else:
            try:
                chunk = os.read(self._in, 1 << 16)
            except BlockingIOError:
                return True
        if not chunk:
            return False
        if self._pending:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size < self._pending_need:
                return True
            chunk = b"".join(self._pending)
            self._pending = []
        self._parse(chunk)
        return True

    def _parse(self, data: bytes) -> None:
        # Task frames, by far the most common, are unpacked in one call with their header.
        pos = 0
        available = len(data)
        tasks = self._tasks
        need = 5
        while available - pos >= 5:
            size, kind = _FRAME_HEAD.unpack_from(data, pos)
            if available - pos - 4 < size:
                need = 4 + size
                break
            if kind == b"T":
                _, _, key, pod, index, attempt = _TASK_FRAME.unpack_from(data, pos)
                tasks.append((key, pod, index, attempt, data[pos + _TASK_FRAME.size : pos + 4 + size]))
            else:
                self._handle(kind, data[pos + 5 : pos + 4 + size])
            pos += 4 + size
        if pos < available:
            self._pending = [data[pos:]]
            self._pending_size = available - pos
            self._pending_need = need

    def _handle(self, kind: bytes, body: bytes) -> None:
        if kind == b"J":
            key, size = _PATH.unpack_from(body)
            log_path = body[_PATH.size : _PATH.size + size].decode()
            self._jobs[key] = self._load_job(pickle.loads(body[_PATH.size + size :]), log_path)
            self._loaded_a_job = True
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
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        self._current_log = key
        self._log_end = None

    def _run(
        self, job: _Job, key: int, pod: int, index: int, attempt: int, name: bytes
    ) -> tuple[float, float]:
        """Runs one pod and queues its report; returns when it began and when it finished.
        The hot path of every quick pod: keep it lean."""
        global _running
        if key != self._current_log:
            self._use_log(key, job.log_fd)
        began = _monotonic()
        # If this process dies from now on, the parent reads which pod it was running here.
        slot = self._slot_word
        if slot is not None:
            slot[0] = pod + 1
        start = self._log_end
        if start is None:
            start = _log_size()
        _set_completion_index(index)
        _running = (job.name, name, index, attempt)
        kind, payload, code = KIND_NONE, b"", 0
        try:
            value = job.call(index)
            try:
                payload = _dumps(value, _PROTOCOL)
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
            _running = None
            sys.stdout.flush()
            sys.stderr.flush()
        end = _log_size()
        self._log_end = end
        if slot is not None:
            slot[0] = 0
        outbox = self._outbox
        size = _DONE_FRAME.size - 4 + len(payload)
        outbox += _DONE_FRAME.pack(size, b"D", key, pod, code, start, end, kind)
        outbox += payload
        finished = _monotonic()
        if not self._held:
            self._held_since = finished
        self._held += 1
        return began, finished

    def serve(self) -> None:
        tasks = self._tasks
        jobs = self._jobs
        run = self._run
        just_read = False
        finished = 0.0
        while True:
            if not tasks:
                self._flush()
                if not self._read(block=True):
                    return
                self._last_read = finished = _monotonic()
                # Right after a read there is nothing new to read, unless loading a Job's
                # function took a while: a cancel may have come in meanwhile.
                just_read = not self._loaded_a_job
                self._loaded_a_job = False
                continue
            # Between pods, pick up cancellations and new work without waiting (not right
            # after a read that waited); when pods are quick, every millisecond is soon enough.
            if not just_read and (self._held == 0 or finished - self._last_read >= BATCH_SECONDS):
                self._last_read = finished
                if not self._read(block=False):
                    return
                if not tasks:
                    continue
            just_read = False
            key, pod, index, attempt, name = tasks.popleft()
            began, finished = run(jobs[key], key, pod, index, attempt, name)
            if (
                not tasks
                or finished - began >= SLOW_POD_SECONDS
                or self._held >= BATCH_REPORTS
                or finished - self._held_since >= BATCH_SECONDS
            ):
                self._flush()


_monotonic = time.monotonic
_dumps = pickle.dumps
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_INDEX_VAR = b"JOB_COMPLETION_INDEX"
# os.environ's own bytes mapping (POSIX), kept in step with the C environment by hand.
_environ_data: dict[bytes, bytes] | None = getattr(os.environ, "_data", None)


class _IndexVariable:
    """JOB_COMPLETION_INDEX, changed for every pod, in ``os.environ`` and in the C environment
    (which subprocesses and C code see).

    ``os.environ[k] = v`` costs a microsecond, most of it in glibc's ``setenv``, which also
    keeps a copy of every value it was ever given: a worker that ran a million indexes would
    hold a million strings. Instead the variable's C entry is a buffer of our own, installed
    once with ``putenv`` and rewritten in place. If the pod replaced or removed the variable
    (``os.environ`` no longer holds the value set last), the buffer is installed again.
    """

    def __init__(self) -> None:
        self._buffer: Any = None  # a ctypes char array once made; False if ctypes is unusable
        self._putenv: Any = None
        self._view: memoryview | None = None
        self._last: bytes | None = None

    def set(self, index: int) -> None:
        data = _environ_data
        if data is None:
            if index >= 0:
                os.environ["JOB_COMPLETION_INDEX"] = str(index)
            else:
                os.environ.pop("JOB_COMPLETION_INDEX", None)
            return
        if index < 0:
            if _INDEX_VAR in data:
                os.unsetenv(_INDEX_VAR)
                del data[_INDEX_VAR]
            self._last = None
            return
        terminated = b"%d\0" % index
        value = terminated[:-1]
        view = self._view
        if view is not None and self._last is not None and data.get(_INDEX_VAR) is self._last:
            view[len(_INDEX_VAR) + 1 : len(_INDEX_VAR) + 1 + len(terminated)] = terminated
        elif not self._install(terminated):
            os.putenv(_INDEX_VAR, value)
        data[_INDEX_VAR] = value
        self._last = value

    def _install(self, terminated: bytes) -> bool:
        if self._buffer is None:
            try:
                import ctypes

                self._putenv = ctypes.CDLL(None).putenv
                # Room for the name, '=', any 64-bit integer and the NUL.
                self._buffer = ctypes.create_string_buffer(len(_INDEX_VAR) + 1 + 21)
                self._view = memoryview(self._buffer).cast("B")
            except (ImportError, OSError, AttributeError):
                self._buffer = False
        if self._buffer is False or self._view is None:
            return False
        prefix = _INDEX_VAR + b"="
        self._view[: len(prefix) + len(terminated)] = prefix + terminated
        return bool(self._putenv(self._buffer) == 0)


_index_variable = _IndexVariable()
_set_completion_index = _index_variable.set


def _log_size() -> int:
    """The size of the log on fd 1 (one lseek: cheaper than fstat); 0 if a pod replaced fd 1
    with something that cannot seek."""
    try:
        return os.lseek(1, 0, os.SEEK_END)
    except OSError:
        return 0


def _print_user_traceback(exc: BaseException) -> None:
    """The traceback as the user's code raised it, without the worker's own frame."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
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
    """Maps the slot, the unnamed memory file inherited as descriptor ``--slot-fd N``, and
    closes the descriptor (the mapping keeps the file; the parent keeps its own descriptor)."""
    if len(argv) < 2 or argv[0] != "--slot-fd":
        return None
    fd = int(argv[1])
    try:
        slot = mmap.mmap(fd, _SLOT.size)
    finally:
        os.close(fd)
    return slot


if __name__ == "__main__":
    main()
