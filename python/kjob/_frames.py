"""The worker protocol's frames, typed: the Python half of ``src/runtime/frames.rs``.

``_worker.py`` describes the protocol. A frame is a little-endian u32 size (of what follows),
a kind byte and a body of fixed-width little-endian fields with at most one variable-length
tail. The byte fixtures in ``tests/fixtures/frames/`` pin this module and the Rust one to the
same bytes.

The worker's hot path (a task in, a pod's report out) packs and unpacks with the structs
below directly, header and fixed fields in one call; the typed frames serve everything else
and the tests.
"""

from __future__ import annotations

import struct
from typing import Union

#: A frame's size and kind.
HEAD = struct.Struct("<Ic")
#: A ``T`` frame's fixed fields (key, pod, index or -1, attempt); the pod's name follows.
TASK_FIELDS = struct.Struct("<IQqI")
#: A ``D`` frame's fixed fields (key, pod, exit code, log start, log end, payload kind); the
#: payload follows.
DONE_FIELDS = struct.Struct("<IQiQQB")
#: The hot path's structs: a frame's header and fixed fields in one.
TASK = struct.Struct(HEAD.format + TASK_FIELDS.format[1:])
DONE = struct.Struct(HEAD.format + DONE_FIELDS.format[1:])
#: A ``J`` frame's fixed fields (key, log path length); the path and the pickled init follow.
JOB_FIELDS = struct.Struct("<II")
KEY = struct.Struct("<I")
KEY_POD = struct.Struct("<IQ")

KIND_NONE, KIND_RESULT, KIND_EXCEPTION, KIND_START_ERROR, KIND_RESULT_ERROR = 0, 1, 2, 3, 4
_NO_INDEX = -1


class _Value:
    """Equality (same class, same fields) and a repr over the fields in ``__slots__``. Plain
    slotted classes rather than named tuples: ``import kjob`` imports this module (through
    ``_worker``), and a dozen named tuples would cost it ~1.5 ms."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, _Value)
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class _Key(_Value):
    __slots__ = ("key",)

    def __init__(self, key: int) -> None:
        self.key = key


class _KeyPod(_Value):
    __slots__ = ("key", "pod")

    def __init__(self, key: int, pod: int) -> None:
        self.key, self.pod = key, pod


# ---- from the parent ---------------------------------------------------------------------


class Job(_Value):
    """``J``: load Job ``key``'s callable from ``init`` (a pickled dict); its pods' output
    goes to ``log_path``."""

    __slots__ = ("key", "log_path", "init")

    def __init__(self, key: int, log_path: str, init: bytes) -> None:
        self.key, self.log_path, self.init = key, log_path, init


class Forget(_Key):
    """``F``: Job ``key`` is gone."""

    __slots__ = ()


class Task(_Value):
    """``T``: run pod ``pod`` of Job ``key`` (``index``: None when its Job is NonIndexed)."""

    __slots__ = ("key", "pod", "index", "attempt", "name")

    def __init__(self, key: int, pod: int, index: int | None, attempt: int, name: str) -> None:
        self.key, self.pod, self.index, self.attempt, self.name = key, pod, index, attempt, name


class Cancel(_KeyPod):
    """``C``: drop pod ``pod`` of Job ``key`` if it has not started."""

    __slots__ = ()


# ---- from the worker ---------------------------------------------------------------------


class Result(_Value):
    """Payload 1: the pickled return value."""

    __slots__ = ("pickle",)

    def __init__(self, pickle: bytes) -> None:
        self.pickle = pickle


class _ExceptionInfo(_Value):
    __slots__ = ("types", "message", "detail")

    def __init__(self, types: tuple[str, ...], message: str, detail: str) -> None:
        self.types, self.message, self.detail = types, message, detail


class Raised(_ExceptionInfo):
    """Payload 2: the exception's class and bases by qualified name, its message, and its
    traceback (``detail``)."""

    __slots__ = ()


class StartError(_Value):
    """Payload 3: why the pod could not be set up (its Job's callable or arguments could not be
    unpickled in the worker, its working directory is missing)."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class ResultError(_ExceptionInfo):
    """Payload 4: the return value could not be pickled: the pickling error's class and
    bases, its message, and why the pod failed (``detail``)."""

    __slots__ = ()


#: A ``D`` frame's payload; None is payload 0 (nothing).
Payload = Union[None, Result, Raised, StartError, ResultError]


class Done(_Value):
    """``D``: pod ``pod`` of Job ``key`` ended with ``exit_code``; its output is the byte range
    [``log_start``, ``log_end``) of the worker's log."""

    __slots__ = ("key", "pod", "exit_code", "log_start", "log_end", "payload")

    def __init__(
        self, key: int, pod: int, exit_code: int, log_start: int, log_end: int, payload: Payload
    ) -> None:
        self.key, self.pod, self.exit_code, self.log_start, self.log_end, self.payload = (
            key,
            pod,
            exit_code,
            log_start,
            log_end,
            payload,
        )


class Cancelled(_KeyPod):
    """``X``: pod ``pod`` of Job ``key`` was dropped before it started."""

    __slots__ = ()


class Retiring(_Key):
    """``R``: the worker exits without running Job ``key``'s pods."""

    __slots__ = ()


Frame = Union[Job, Task, Cancel, Forget, Done, Cancelled, Retiring]


def exception_text(types: list[str] | tuple[str, ...], message: str, detail: str) -> bytes:
    """Payloads 2 and 4: class names joined by newlines, a NUL, the message, a NUL, the
    traceback (or why the pod failed). Text that cannot be encoded is replaced, not lost."""
    return ("\n".join(types) + "\0" + message + "\0" + detail).encode("utf-8", errors="replace")


def _frame(kind: bytes, body: bytes) -> bytes:
    return KEY.pack(len(body) + 1) + kind + body


def _payload_kind_and_bytes(payload: Payload) -> tuple[int, bytes]:
    if payload is None:
        return KIND_NONE, b""
    if isinstance(payload, Result):
        return KIND_RESULT, payload.pickle
    if isinstance(payload, StartError):
        return KIND_START_ERROR, payload.message.encode("utf-8", errors="replace")
    kind = KIND_EXCEPTION if isinstance(payload, Raised) else KIND_RESULT_ERROR
    return kind, exception_text(payload.types, payload.message, payload.detail)


def encode(frame: Frame) -> bytes:
    """The whole frame, header included."""
    if isinstance(frame, Task):
        name = frame.name.encode()
        index = _NO_INDEX if frame.index is None else frame.index
        size = TASK.size - KEY.size + len(name)
        return TASK.pack(size, b"T", frame.key, frame.pod, index, frame.attempt) + name
    if isinstance(frame, Done):
        kind, payload = _payload_kind_and_bytes(frame.payload)
        size = DONE.size - KEY.size + len(payload)
        key, pod, code, start, end = frame.key, frame.pod, frame.exit_code, frame.log_start, frame.log_end
        return DONE.pack(size, b"D", key, pod, code, start, end, kind) + payload
    if isinstance(frame, Job):
        path = frame.log_path.encode()
        return _frame(b"J", JOB_FIELDS.pack(frame.key, len(path)) + path + frame.init)
    if isinstance(frame, (Cancel, Cancelled)):
        return _frame(b"C" if isinstance(frame, Cancel) else b"X", KEY_POD.pack(frame.key, frame.pod))
    return _frame(b"F" if isinstance(frame, Forget) else b"R", KEY.pack(frame.key))


def _split_exception(rest: bytes) -> tuple[tuple[str, ...], str, str]:
    types, _, tail = rest.decode("utf-8", errors="replace").partition("\0")
    message, _, detail = tail.partition("\0")
    return tuple(types.split("\n")), message, detail


def _decode_payload(kind: int, rest: bytes) -> Payload:
    if kind == KIND_RESULT:
        return Result(rest)
    if kind == KIND_EXCEPTION:
        return Raised(*_split_exception(rest))
    if kind == KIND_START_ERROR:
        return StartError(rest.decode("utf-8", errors="replace"))
    if kind == KIND_RESULT_ERROR:
        return ResultError(*_split_exception(rest))
    return None


def decode(kind: bytes, body: bytes) -> Frame | None:
    """Decodes a frame's body: None for a kind this side does not know (ignored, as the
    Rust half does); ``ValueError`` (``struct.error`` included) if the body is malformed."""
    if kind == b"T":
        key, pod, index, attempt = TASK_FIELDS.unpack_from(body)
        name = body[TASK_FIELDS.size :].decode()
        return Task(key, pod, None if index == _NO_INDEX else index, attempt, name)
    if kind == b"D":
        key, pod, exit_code, log_start, log_end, payload_kind = DONE_FIELDS.unpack_from(body)
        payload = _decode_payload(payload_kind, body[DONE_FIELDS.size :])
        return Done(key, pod, exit_code, log_start, log_end, payload)
    if kind == b"J":
        key, size = JOB_FIELDS.unpack_from(body)
        start = JOB_FIELDS.size
        if len(body) < start + size:
            raise ValueError("a J frame shorter than its log path")
        return Job(key, body[start : start + size].decode(), body[start + size :])
    if kind in (b"C", b"X"):
        key, pod = KEY_POD.unpack_from(body)
        return Cancel(key, pod) if kind == b"C" else Cancelled(key, pod)
    if kind in (b"F", b"R"):
        (key,) = KEY.unpack_from(body)
        return Forget(key) if kind == b"F" else Retiring(key)
    return None


def read_frame(data: bytes, pos: int = 0) -> tuple[Frame | None, int] | None:
    """The frame at ``data[pos:]`` and where the next one starts; None while incomplete."""
    if len(data) - pos < HEAD.size:
        return None
    size, kind = HEAD.unpack_from(data, pos)
    end = pos + KEY.size + size
    if size == 0 or end > len(data):
        return None
    return decode(kind, data[pos + HEAD.size : end]), end
