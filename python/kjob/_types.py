"""Plain, immutable views of a Job's status and pods (snapshots: they never change).

The extension builds these objects itself (``src/python/snapshots.rs``), filling each slot of
the class: a field added here must be filled there too (``tests/test_one_schema.py`` checks
that every field is).

They are small hand-written classes with ``__slots__`` rather than frozen dataclasses: the
``dataclasses`` module (and the ``inspect`` it imports) was a third of what ``import kjob`` cost
(issue 14 §5), and a slotted object is smaller and quicker to fill. They behave as the frozen
dataclasses did: keyword or positional construction, ``==`` and ``hash()`` over the fields,
the same ``repr()``, pickling and copying, ``match`` by position, assignment refused."""

from __future__ import annotations

import datetime as _dt
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["Condition", "Event", "JobStatus", "Pod", "PodCondition"]


class NativeSpec(TypedDict):
    """The defaulted spec a Job runs, as the extension gives it (``NativeJob.spec()``); the
    Job keeps its copy in step with ``scale()`` and ``suspend()``."""

    name: str
    namespace: str
    uid: str
    parallelism: int
    completions: int | None
    completion_mode: str
    backoff_limit: int
    termination_grace_period_seconds: float
    backoff_limit_per_index: int | None
    suspend: bool
    #: The pod template's labels with those the API server adds (the selector's).
    labels: dict[str, str]
    pod_replacement_policy: str
    restart_policy: str
    managed_by: str | None
    container_name: str
    #: The pod's containers by name (the first is the pod's log), and its init containers.
    containers: list[str]
    init_containers: list[str]


class _Snapshot:
    """What the snapshot classes share: immutable, and compared, hashed, printed and pickled by
    their ``_fields``, as a frozen dataclass is by its fields."""

    __slots__ = ()
    #: The fields in order: the constructor's parameters, and what ``==``, ``hash()``,
    #: ``repr()``, pickling and ``match`` use. Each class's ``__slots__`` holds them.
    _fields: ClassVar[tuple[str, ...]] = ()

    def _fill(self, values: dict[str, Any]) -> None:
        """Sets every field from ``values``: an ``__init__``'s ``locals()``."""
        for name in self._fields:
            object.__setattr__(self, name, values[name])

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    # The messages of dataclasses.FrozenInstanceError, an AttributeError too.
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Snapshot)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt through the constructor: a pickle or a copy holds the fields and nothing else.
        return (type(self), self._values())

    def __replace__(self, **changes: Any) -> Any:
        """``copy.replace(snapshot, field=value)`` (Python 3.13), as for a dataclass."""
        cls: Any = type(self)
        return cls(**{**dict(zip(self._fields, self._values())), **changes})


class Condition(_Snapshot):
    """A Job condition, as in ``status.conditions`` of a batch/v1 Job."""

    _fields = ("type", "status", "reason", "message", "last_transition_time")
    __slots__ = __match_args__ = _fields
    type: str
    status: str
    reason: str
    message: str
    last_transition_time: _dt.datetime | None

    def __init__(
        self, type: str, status: str, reason: str, message: str, last_transition_time: _dt.datetime | None
    ) -> None:
        self._fill(locals())


class JobStatus(_Snapshot):
    """A snapshot of ``status`` of a batch/v1 Job."""

    _fields = (
        "active",
        "ready",
        "succeeded",
        "failed",
        "terminating",
        "completed_indexes",
        "failed_indexes",
        "start_time",
        "completion_time",
        "conditions",
    )
    # The Job this snapshot came from, weakly (a status must not keep its Job's pods running),
    # so that raise_for_status() can list the failed pods. Not a field: not part of the value,
    # and neither pickled nor copied (a weak reference cannot be; a copy is a plain snapshot).
    __slots__ = (*_fields, "_job_ref")
    __match_args__ = _fields
    active: int
    ready: int
    succeeded: int
    failed: int
    terminating: int
    completed_indexes: str
    failed_indexes: str | None
    start_time: _dt.datetime | None
    completion_time: _dt.datetime | None
    conditions: list[Condition]
    _job_ref: weakref.ReferenceType[Job] | None

    def __init__(
        self,
        active: int = 0,
        ready: int = 0,
        succeeded: int = 0,
        failed: int = 0,
        terminating: int = 0,
        completed_indexes: str = "",
        failed_indexes: str | None = None,
        start_time: _dt.datetime | None = None,
        completion_time: _dt.datetime | None = None,
        conditions: list[Condition] | None = None,
    ) -> None:
        conditions = [] if conditions is None else conditions
        self._fill(locals())
        object.__setattr__(self, "_job_ref", None)

    def raise_for_status(self) -> None:
        """Raises :class:`kjob.JobFailedError` if the Job failed (``Failed=True``), as
        ``requests``' ``Response.raise_for_status()`` does for an error status; else nothing.

        A status read from a Job (``job.status``, ``job.wait()``) names the Job and lists its
        failed pods with the end of their logs while that Job object is alive; any other
        status gives the Failed condition only (``failed_pods`` is then empty)."""
        if not self.is_failed:
            return
        from ._failures import job_failed_error
        from ._job import all_pods

        job = self._job_ref() if self._job_ref is not None else None
        if job is None:
            raise job_failed_error(None, self, None)
        raise job_failed_error(job.name, self, all_pods(job))

    def __repr__(self) -> str:
        from ._export import status_counts

        true = [c.type for c in self.conditions if c.status == "True"]
        return f"JobStatus({'/'.join(true) if true else 'NoCondition'} {status_counts(self)})"

    def _repr_html_(self) -> str:
        from ._html import status_html

        return status_html(self)

    def to_dict(self) -> dict[str, Any]:
        """This status as a batch/v1 Job's ``status`` (camelCase, RFC 3339 times)."""
        from ._export import status_manifest

        return status_manifest(self)

    def condition(self, type: str) -> Condition | None:
        """The condition of this type, if the Job has one."""
        return next((c for c in self.conditions if c.type == type), None)

    def _is_true(self, type: str) -> bool:
        c = self.condition(type)
        return c is not None and c.status == "True"

    @property
    def is_complete(self) -> bool:
        """``Complete=True``: the Job succeeded and none of its pods is still terminating."""
        return self._is_true("Complete")

    @property
    def is_failed(self) -> bool:
        """``Failed=True``: the Job failed and none of its pods is still terminating."""
        return self._is_true("Failed")

    @property
    def is_finished(self) -> bool:
        return self.is_complete or self.is_failed


def linked_to_job(status: JobStatus, job: Job) -> JobStatus:
    """The snapshot, remembering (weakly) the Job it came from; returns it."""
    object.__setattr__(status, "_job_ref", weakref.ref(job))
    return status


class PodCondition(_Snapshot):
    """A pod condition kjob sets, e.g. ``DisruptionTarget`` on an evicted pod."""

    _fields = ("type", "status", "reason", "message")
    __slots__ = __match_args__ = _fields
    type: str
    status: str
    reason: str
    message: str

    def __init__(self, type: str, status: str, reason: str, message: str) -> None:
        self._fill(locals())


class Event(_Snapshot):
    """A Kubernetes event about the Job (``kubectl describe job`` shows these)."""

    _fields = ("type", "reason", "message", "time", "involved_object")
    __slots__ = __match_args__ = _fields
    type: str
    reason: str
    message: str
    time: _dt.datetime | None
    involved_object: str

    def __init__(
        self, type: str, reason: str, message: str, time: _dt.datetime | None, involved_object: str
    ) -> None:
        self._fill(locals())


class ExceptionText(str):
    """The exception that failed a callable pod: ``"<qualified type>: <message>"`` on the first
    line (:attr:`summary`), then the traceback as the pod's log shows it (:attr:`traceback`),
    source lines of functions from a notebook or ``__main__`` included.

    It compares equal to its full text and to its summary line alone, so
    ``pod.exception == "ValueError: bad input"`` reads as one would expect."""

    __slots__ = ()

    @classmethod
    def _from_parts(cls, summary: str | None, traceback: str | None) -> ExceptionText | None:
        if summary is None:
            return None
        traceback = (traceback or "").rstrip("\n")
        return cls(f"{summary}\n{traceback}" if traceback else summary)

    @property
    def summary(self) -> str:
        """``"<qualified type>: <message>"`` (the first line)."""
        return self.partition("\n")[0]

    @property
    def traceback(self) -> str:
        """The formatted traceback (empty when there is none)."""
        return self.partition("\n")[2]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str) and not isinstance(other, ExceptionText):
            return str.__eq__(self, other) or self.summary == other
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        # Equal to its summary, so hashed as it.
        return hash(self.summary)


def exception_text(summary: str | None, traceback: str | None) -> ExceptionText | None:
    """An :class:`ExceptionText` from its two parts (None without a summary)."""
    return ExceptionText._from_parts(summary, traceback)


class Pod(_Snapshot):
    """A snapshot of one pod (one attempt) of a Job."""

    _fields = (
        "name",
        "index",
        "phase",
        "exit_code",
        "restart_count",
        "start_time",
        "finish_time",
        "log_path",
        "pid",
        "labels",
        "annotations",
        "reason",
        "message",
        "index_failure_count",
        "index_ignored_failure_count",
        "conditions",
        "attempt",
        "exception",
        "log_range",
        "container_exit_codes",
        "failed_container",
        "node_name",
        "creation_time",
        "deletion_time",
        "counted_as",
    )
    __slots__ = __match_args__ = _fields
    name: str
    index: int | None
    phase: str
    exit_code: int | None
    restart_count: int
    start_time: _dt.datetime | None
    finish_time: _dt.datetime | None
    log_path: str
    pid: int | None
    labels: dict[str, str]
    annotations: dict[str, str]
    #: Why the pod ended when not by an ordinary exit: ``StartError``, ``DeadlineExceeded``,
    #: ``OOMKilled``, ``ContainerStatusUnknown`` (its exit status was lost), ...
    reason: str | None
    #: How it ended, for a pod that did not exit 0: ``"exited with code 5"``,
    #: ``"killed by signal 11 (SIGSEGV)"``, ``"exit status lost: ..."``.
    message: str | None
    index_failure_count: int
    index_ignored_failure_count: int
    conditions: list[PodCondition]
    #: Earlier failed attempts of this index (Indexed) or of the Job (NonIndexed).
    attempt: int
    #: Callable pods: the exception that failed it, as :class:`ExceptionText`: its first line
    #: ``"<qualified type name>: <message>"``, then its traceback.
    exception: ExceptionText | None
    #: Callable pods share a worker's log file; their output is this byte range of it.
    log_range: tuple[int, int] | None
    #: A pod with several containers (init containers, sidecars, several main ones): each
    #: terminated container's last exit code, by container name, as ``containerStatuses``
    #: show it. Empty for a pod of one container (see :attr:`exit_code`).
    container_exit_codes: dict[str, int]
    #: The container whose failure failed the pod (a pod with several containers), else None.
    failed_container: str | None
    #: Where the pod ran (``spec.nodeName``): the address of the Dask worker for a pod of
    #: :class:`kjob.DaskExecutor`, this machine's host name for a local pod.
    node_name: str | None
    #: When the Job made the pod (``metadata.creationTimestamp``).
    creation_time: _dt.datetime | None
    #: When the pod was asked to stop (``metadata.deletionTimestamp``): by the Job (deleted,
    #: suspended, past a deadline, finished) or by an eviction; None otherwise.
    deletion_time: _dt.datetime | None
    #: How the Job counted the pod: ``"succeeded"``, ``"failed"`` (toward the backoff limit),
    #: ``"ignored"`` (a ``podFailurePolicy`` ``Ignore`` rule kept it out of ``status.failed``),
    #: ``"killed"`` (stopped by the Job: deleted, suspended, finished) or ``"active"``.
    counted_as: str

    def __init__(
        self,
        name: str,
        index: int | None,
        phase: str,
        exit_code: int | None,
        restart_count: int,
        start_time: _dt.datetime | None,
        finish_time: _dt.datetime | None,
        log_path: str,
        pid: int | None,
        labels: dict[str, str],
        annotations: dict[str, str],
        reason: str | None = None,
        message: str | None = None,
        index_failure_count: int = 0,
        index_ignored_failure_count: int = 0,
        conditions: list[PodCondition] | None = None,
        attempt: int = 0,
        exception: ExceptionText | None = None,
        log_range: tuple[int, int] | None = None,
        container_exit_codes: dict[str, int] | None = None,
        failed_container: str | None = None,
        node_name: str | None = None,
        creation_time: _dt.datetime | None = None,
        deletion_time: _dt.datetime | None = None,
        counted_as: str = "active",
    ) -> None:
        conditions = [] if conditions is None else conditions
        container_exit_codes = {} if container_exit_codes is None else container_exit_codes
        self._fill(locals())
