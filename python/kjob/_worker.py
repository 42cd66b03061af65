"""The worker process that runs Python callables as pods: ``python -m kjob._worker``.

The Rust runtime starts workers (fresh interpreters, never a fork of the user's) and talks
to them over stdin/stdout with length-prefixed frames. At start the worker moves those pipes
to private descriptors and points fd 0 at /dev/null and fds 1 and 2 at a log file, so a pod's
prints (Python-level and fd-level) land in the log, never in the protocol.

Frames (little-endian; typed in ``_frames.py``, whose Rust half is ``src/runtime/frames.rs``)
from the parent:
  ``J`` job:    u32 job key, u32 n, the log path (n bytes, UTF-8), then a pickle of the
                job's init dict (see ``_load_job``)
  ``T`` task:   u32 job key, u64 pod id, i64 index (-1: none), u32 attempt, pod name (UTF-8)
  ``C`` cancel: u32 job key, u64 pod id  -- drop a queued task that has not started
  ``F`` forget: u32 job key              -- the Job is gone; free its function
To the parent:
  ``D`` done:    u32 job key, u64 pod id, i32 exit code, u64 log start, u64 log end,
                 u8 payload kind, payload (UTF-8 unless pickled):
                   0 none;
                   1 result: the pickled return value;
                   2 exception: its class and bases by qualified name joined by newlines, a
                     NUL, its message, a NUL, its formatted traceback;
                   3 start error: the pod could not be set up (its Job's target or arguments
                     could not be unpickled here, its working directory is missing): a message;
                   4 result error: the return value could not be pickled: as 2, for the
                     pickling error, with why the pod failed in place of the traceback
  ``X`` cancelled: u32 job key, u64 pod id
  ``R`` retiring: u32 job key -- the worker's imported modules changed on disk since it
                 loaded them; it exits without running the Job's pods (the parent runs them
                 in a fresh worker)
Each pod sees what a fresh process would (README, "The worker model"): the environment the
parent had when the Job started plus the Job's ``env``, the Job's working directory, and
modules as they are on disk. The environment is installed when the worker moves to a Job and
again after any pod that changed it; a worker whose imported modules changed on disk retires
rather than take a Job; ``one_pod`` Jobs (``reuse_workers=False``) get a worker per pod.

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
import linecache
import mmap
import os
import pickle
import select
import struct
import sys
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if __package__:
    from . import _frames
else:
    # Run as a script (how workers start, see main()): the package folder is sys.path[0]
    # until main() takes it off. The codec is filed under its package name, so that it does
    # not hide a user's module named _frames.
    import _frames  # type: ignore[import-not-found, no-redef]

    sys.modules["kjob._frames"] = sys.modules.pop("_frames")

DONE, HEAD, TASK = _frames.DONE, _frames.HEAD, _frames.TASK
KIND_NONE, KIND_RESULT, KIND_EXCEPTION = _frames.KIND_NONE, _frames.KIND_RESULT, _frames.KIND_EXCEPTION
KIND_RESULT_ERROR = _frames.KIND_RESULT_ERROR

_SLOT = struct.Struct("<Q")

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
    fn: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    indexed: bool
    log_fd: int
    #: The environment its pods see, as bytes (POSIX ``os.environ._data`` form).
    environ: dict[bytes, bytes]
    cwd: str
    #: Why its pods cannot run here (the target or its arguments could not be unpickled); a
    #: format string taking the pod (``{pod}``: "index 3" or "pod NAME").
    error: str | None = None
    #: ``reuse_workers=False``: this worker runs one pod, then exits.
    one_pod: bool = False

    def __post_init__(self) -> None:
        # The pod's call, built once: fn(index, *args, **kwargs) for Indexed Jobs,
        # fn(*args, **kwargs) otherwise (a bare fn(index) when there is nothing to add).
        fn, args, kwargs = self.fn, self.args, self.kwargs
        if fn is None:
            self.call: Callable[[int], Any] = _no_call
        elif self.indexed:
            self.call = fn if not args and not kwargs else lambda index: fn(index, *args, **kwargs)
        else:
            self.call = lambda index: fn(*args, **kwargs)


def _no_call(index: int) -> Any:
    raise AssertionError("a Job that could not be loaded runs no pod")


def _exception_info(exc: BaseException, traceback_text: str) -> bytes:
    """The exception's class and bases by qualified name, for ``onExceptions`` rules, its
    message and its formatted traceback."""
    names = []
    for cls in type(exc).__mro__:
        if cls is object:
            continue
        module = cls.__module__
        qual = cls.__qualname__
        names.append(qual if module in ("builtins", "__main__") else f"{module}.{qual}")
    if len(traceback_text) > _MAX_TRACEBACK:
        # The parent keeps it with the pod: bounded, its end (the innermost frames) kept.
        traceback_text = "[... traceback cut ...]\n" + traceback_text[-_MAX_TRACEBACK:]
    return _frames.exception_text(names, _message_of(exc), traceback_text)


#: The longest traceback sent with a pod's report (the whole one is in the pod's log).
_MAX_TRACEBACK = 16384


def _message_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not take the worker down
        return f"<unprintable {type(exc).__name__}>"


def _pod_words(index: int, name: bytes) -> str:
    """How messages name a pod: by its index when it has one."""
    return f"index {index}" if index >= 0 else f"pod {name.decode(errors='replace')}"


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
        # Files of the modules imported so far, with their (mtime, size) when first seen: a
        # warm worker whose modules changed on disk since must not run pods.
        self._module_stamps: dict[str, tuple[int, int]] = {}
        self._seen_modules = 0
        self._ran_a_job = False
        # The Job whose environment and working directory are installed, and whether
        # installing the working directory failed.
        self._current_job: _Job | None = None
        self._setup_error: str | None = None
        # The current Job's pods cannot run here (one flag for the hot path to test).
        self._blocked = False
        self._tasks: collections.deque[tuple[int, int, int, int, bytes]] = collections.deque()
        self._current_log: int | None = None
        # The log's size after the last pod: the next pod's output starts there (saves a
        # system call per pod; the worker itself writes nothing between pods).
        self._log_end: int | None = None

    # ---- protocol ---------------------------------------------------------------------------

    def _send(self, frame: _frames.Frame) -> None:
        self._outbox += _frames.encode(frame)

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
            size, kind = HEAD.unpack_from(data, pos)
            if available - pos - 4 < size:
                need = 4 + size
                break
            if kind == b"T":
                _, _, key, pod, index, attempt = TASK.unpack_from(data, pos)
                tasks.append((key, pod, index, attempt, data[pos + TASK.size : pos + 4 + size]))
            else:
                self._handle(kind, data[pos + 5 : pos + 4 + size])
            pos += 4 + size
        if pos < available:
            self._pending = [data[pos:]]
            self._pending_size = available - pos
            self._pending_need = need

    def _handle(self, kind: bytes, body: bytes) -> None:
        frame = _frames.decode(kind, body)
        if isinstance(frame, _frames.Job):
            if self._ran_a_job and self._modules_changed():
                # Retire: the parent runs this Job's pods in a fresh worker instead.
                self._send(_frames.Retiring(frame.key))
                self._flush()
                os._exit(0)
            self._jobs[frame.key] = self._load_job(pickle.loads(frame.init), frame.log_path)
            self._loaded_a_job = True
            self._ran_a_job = True
            self._stamp_modules()
        elif isinstance(frame, _frames.Cancel):
            key, pod = frame.key, frame.pod
            for task in list(self._tasks):
                if task[0] == key and task[1] == pod:
                    self._tasks.remove(task)
                    self._send(_frames.Cancelled(key, pod))
        elif isinstance(frame, _frames.Forget):
            key = frame.key
            job = self._jobs.pop(key, None)
            if job is not None and job.log_fd >= 0:
                os.close(job.log_fd)
            if key == self._current_log:
                self._current_log = None
                self._log_end = None
            # Modules the Job's pods imported are checked before the next Job too.
            self._stamp_modules()

    def _load_job(self, init: dict[str, Any], log_path: str) -> _Job:
        """Loads a Job's callable. ``init`` holds: name, uid, fn (cloudpickle bytes of the
        target), args (cloudpickle bytes of the args tuple and kwargs dict), indexed,
        sys_path, cwd, environ (the pods' whole environment), sources (source lines of
        files not on disk, for tracebacks), one_pod.

        A target or arguments that cannot be unpickled here fail each of the Job's pods with
        the reason (a start error), rather than the worker: a worker that died instead would be
        replaced, and the next would die the same way."""
        for entry in reversed(init["sys_path"]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        for filename, lines in init.get("sources", {}).items():
            # mtime None: linecache.checkcache() keeps the entry (there is no file to check).
            linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        fn: Callable[..., Any] | None = None
        args: tuple[Any, ...] = ()
        kwargs: dict[str, Any] = {}
        error: str | None = None
        try:
            fn = pickle.loads(init["fn"])
        except BaseException as exc:
            error = (
                (
                    f"the target of Job {init['name']} could not be unpickled in the worker: "
                    f"{type(exc).__name__}: {_message_of(exc)}"
                )
                .replace("{", "{{")
                .replace("}", "}}")
            )
        else:
            try:
                args, kwargs = pickle.loads(init["args"])
            except BaseException as exc:
                reason = f"{type(exc).__name__}: {_message_of(exc)}".replace("{", "{{").replace("}", "}}")
                error = "the arguments of {pod} could not be unpickled in the worker: " + reason
        environ = {os.fsencode(k): os.fsencode(v) for k, v in init["environ"].items() if k and "=" not in k}
        environ.update(_worker_markers)
        return _Job(
            name=init["name"],
            fn=fn,
            args=tuple(args),
            kwargs=dict(kwargs),
            indexed=init["indexed"],
            log_fd=log_fd,
            environ=environ,
            cwd=init["cwd"],
            error=error,
            one_pod=bool(init.get("one_pod")),
        )

    def _modules_changed(self) -> bool:
        """Whether a module file this worker imported changed on disk since it was imported."""
        for path, stamp in self._module_stamps.items():
            try:
                st = os.stat(path)
            except OSError:
                return True
            if (st.st_mtime_ns, st.st_size) != stamp:
                return True
        return False

    def _stamp_modules(self) -> None:
        """Records the files of modules imported since the last call (the standard library
        aside: it does not change under a running interpreter)."""
        modules = sys.modules
        if len(modules) == self._seen_modules:
            return
        self._seen_modules = len(modules)
        stamps = self._module_stamps
        for module in list(modules.values()):
            path = getattr(module, "__file__", None)
            if not isinstance(path, str) or path in stamps or path.startswith(_STDLIB):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            stamps[path] = (st.st_mtime_ns, st.st_size)

    # ---- running pods -----------------------------------------------------------------------

    def _switch_to(self, key: int, job: _Job) -> None:
        """Moves to another Job's pods: its log, environment and working directory."""
        # By Job key, not descriptor number: a forgotten Job's number may be reused.
        _flush_quietly()
        os.dup2(job.log_fd, 1)
        os.dup2(job.log_fd, 2)
        self._current_log = key
        self._log_end = None
        if job is not self._current_job:
            self._current_job = job
            _install_environment(job.environ)
            self._setup_error = None
            try:
                os.chdir(job.cwd)
            except OSError as exc:
                # Worded as for a command pod (the runtime's WorkingDirError).
                self._setup_error = (
                    f'failed to change to the working directory "{job.cwd}": '
                    f"{exc.strerror or type(exc).__name__} (os error {exc.errno})"
                )
        self._blocked = job.error is not None or self._setup_error is not None

    def _run(
        self, job: _Job, key: int, pod: int, index: int, attempt: int, name: bytes
    ) -> tuple[float, float]:
        """Runs one pod and queues its report; returns when it began and when it finished.
        The hot path of every quick pod: keep it lean."""
        global _running
        if key != self._current_log:
            self._switch_to(key, job)
        if self._blocked:
            return self._cannot_run(job, key, pod, index, name)
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
            except Exception:
                # Plain pickle first (it is faster); cloudpickle sends what pickle cannot by
                # reference, such as instances of classes defined in __main__ or a notebook.
                kind, payload, code = _pickle_result(value, index, name)
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException as exc:
            code = 1
            kind, payload = KIND_EXCEPTION, _exception_info(exc, _print_user_traceback(exc))
        finally:
            _running = None
            _flush_quietly()
        if _environ.dirty:  # type: ignore[attr-defined]
            # The pod changed the environment: the next pod sees the Job's again.
            _install_environment(job.environ)
        end = _log_size()
        self._log_end = end
        if slot is not None:
            slot[0] = 0
        outbox = self._outbox
        size = DONE.size - 4 + len(payload)
        outbox += DONE.pack(size, b"D", key, pod, code, start, end, kind)
        outbox += payload
        finished = _monotonic()
        if not self._held:
            self._held_since = finished
        self._held += 1
        if job.one_pod:
            # reuse_workers=False: a fresh process for every pod.
            self._flush()
            os._exit(0)
        return began, finished

    def _cannot_run(self, job: _Job, key: int, pod: int, index: int, name: bytes) -> tuple[float, float]:
        """Reports a pod that could not be set up (a start error: the pod fails, and is
        counted by the Job's rules, as a container that could not start)."""
        reason = self._setup_error or (job.error or "").format(pod=_pod_words(index, name))
        self._send(_frames.Done(key, pod, 128, 0, 0, _frames.StartError(reason)))
        now = _monotonic()
        self._flush()
        if job.one_pod:
            os._exit(0)
        return now, now

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
_STDLIB = os.path.dirname(os.__file__) + os.sep


def _pickle_result(value: Any, index: int, name: bytes) -> tuple[int, bytes, int]:
    """A return value that plain pickle refused: (payload kind, payload, exit code)."""
    try:
        import cloudpickle  # type: ignore[import-untyped]

        return KIND_RESULT, cloudpickle.dumps(value, _PROTOCOL), 0
    except Exception as exc:
        # The value cannot cross to the parent: the pod fails and says why.
        reason = f"the return value of {_pod_words(index, name)} could not be sent back"
        _write_quietly(2, f"kjob: {reason}: {type(exc).__name__}: {_message_of(exc)}\n")
        return KIND_RESULT_ERROR, _exception_info(exc, reason), 1


if TYPE_CHECKING:
    _EnvironBase = os._Environ[str]
else:  # not subscriptable at run time on every Python kjob supports
    _EnvironBase = os._Environ


class _TrackedEnviron(_EnvironBase):
    """The class ``os.environ`` takes in a worker (see :func:`_track_environment`): it notes
    whether a pod changed the environment. Every write through ``os.environ`` (item
    assignment, ``update``, ``pop``, ``clear``, ...) goes through these two methods; kjob's own
    changes go to the mapping underneath and do not count. A change made by C code calling
    ``setenv`` directly is not seen."""

    dirty = False

    def __setitem__(self, key: str, value: str) -> None:
        self.dirty = True
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.dirty = True
        super().__delitem__(key)


# os.environ's own bytes mapping (POSIX), kept in step with the C environment by hand.
_environ_data: dict[bytes, bytes] | None = None
_environ = os.environ
# Variables of the worker's own that every Job's environment keeps: the markers the shepherd
# and the sweeps of enclosing Jobs find the worker's processes by (see _shepherd.py). Their
# names are the extension's (_kjob.SESSION_ENV, _kjob.OWNERS_ENV), spelled out here because
# a worker starts as a script without it: loading it would add ~3 ms (8%) to every fresh
# worker's start for two strings. tests/test_env_names.py checks that they agree.
_MARKERS = (b"KJOB_SESSION", b"KJOB_OWNERS")
_worker_markers: dict[bytes, bytes] = {}


def _install_environment(environ: dict[bytes, bytes]) -> None:
    """Makes the process environment (``os.environ`` and the C environment that subprocesses
    inherit) exactly ``environ``, changing only the variables that differ."""
    data = _environ_data
    if data is None:
        os.environ.clear()
        os.environ.update({os.fsdecode(k): os.fsdecode(v) for k, v in environ.items()})
    else:
        for key in [k for k in data if k not in environ]:
            os.unsetenv(key)
            del data[key]
        for key, value in environ.items():
            if data.get(key) != value:
                os.putenv(key, value)
                data[key] = value
    # Installed by kjob, not changed by a pod (the fallback above went through os.environ).
    os.environ.dirty = False  # type: ignore[attr-defined]
    # JOB_COMPLETION_INDEX is set again from scratch for the next pod.
    _index_variable.forget()


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

    def forget(self) -> None:
        """The environment was replaced: the next index is installed anew."""
        self._last = None

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


def _print_user_traceback(exc: BaseException) -> str:
    """Writes the traceback as the user's code raised it, without the worker's own frame, to
    the pod's log, and returns it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # a broken __str__ or __repr__ in the user's exception
        text = f"{type(exc).__qualname__}: {_message_of(exc)}\n"
    _write_quietly(2, text)
    return text


def _write_quietly(fd: int, text: str) -> None:
    """Writes to the pod's log; a log that cannot be written (a full disk: ENOSPC) must not
    take the worker down with it: the pod's report goes over the pipe, not the log."""
    try:
        sys.stderr.flush()
        data = text.encode("utf-8", errors="replace")
        while data:
            data = data[os.write(fd, data) :]
    except OSError:
        pass


def _flush_quietly() -> None:
    """Flushes the pod's output; a log that cannot take it (ENOSPC) loses it, quietly: the pod
    already saw the error if it printed, and the worker must go on."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


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
    _track_environment()
    Worker(proto_in, proto_out, _map_slot(sys.argv[1:])).serve()


def _track_environment() -> None:
    """Makes ``os.environ`` a :class:`_TrackedEnviron` and notes the worker's markers."""
    global _environ_data
    if type(os.environ) is os._Environ:
        os.environ.__class__ = _TrackedEnviron
    data = getattr(os.environ, "_data", None)
    if isinstance(data, dict):
        _environ_data = data
    for name in _MARKERS:
        value = os.environb.get(name) if hasattr(os, "environb") else None
        if value is not None:
            _worker_markers[name] = value


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
