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
from typing import NamedTuple, Union

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


# ---- from the parent ---------------------------------------------------------------------


class Job(NamedTuple):
    """``J``: load Job ``key``'s callable from ``init`` (a pickled dict); its pods' output
    goes to ``log_path``."""

    key: int
    log_path: str
    init: bytes


class Task(NamedTuple):
    """``T``: run pod ``pod`` of Job ``key`` (``completion_index``: its index, None when its
    Job is NonIndexed; named so as not to hide ``tuple.index``)."""

    key: int
    pod: int
    completion_index: int | None
    attempt: int
    name: str


class Cancel(NamedTuple):
    """``C``: drop pod ``pod`` if it has not started."""

    key: int
    pod: int


class Forget(NamedTuple):
    """``F``: Job ``key`` is gone."""

    key: int


# ---- from the worker ---------------------------------------------------------------------


class Result(NamedTuple):
    """Payload 1: the pickled return value."""

    pickle: bytes


class Raised(NamedTuple):
    """Payload 2: the exception's class and bases by qualified name, its message, its
    traceback."""

    types: tuple[str, ...]
    message: str
    traceback: str


class StartError(NamedTuple):
    """Payload 3: why the pod could not be set up."""

    message: str


class ResultError(NamedTuple):
    """Payload 4: the return value could not be pickled: the pickling error's class and
    bases, its message, and why the pod failed."""

    types: tuple[str, ...]
    message: str
    reason: str


#: A ``D`` frame's payload; None is payload 0 (nothing).
Payload = Union[None, Result, Raised, StartError, ResultError]


class Done(NamedTuple):
    """``D``: pod ``pod`` of Job ``key`` ended with ``exit_code``; its output is the byte range
    [``log_start``, ``log_end``) of the worker's log."""

    key: int
    pod: int
    exit_code: int
    log_start: int
    log_end: int
    payload: Payload


class Cancelled(NamedTuple):
    """``X``: pod ``pod`` was dropped before it started."""

    key: int
    pod: int


class Retiring(NamedTuple):
    """``R``: the worker exits without running Job ``key``'s pods."""

    key: int


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
    if isinstance(payload, Raised):
        return KIND_EXCEPTION, exception_text(payload.types, payload.message, payload.traceback)
    if isinstance(payload, StartError):
        return KIND_START_ERROR, payload.message.encode("utf-8", errors="replace")
    return KIND_RESULT_ERROR, exception_text(payload.types, payload.message, payload.reason)


def encode(frame: Frame) -> bytes:
    """The whole frame, header included."""
    if isinstance(frame, Task):
        name = frame.name.encode()
        index = _NO_INDEX if frame.completion_index is None else frame.completion_index
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
