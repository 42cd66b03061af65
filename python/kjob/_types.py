"""Plain, immutable views of a Job's status and pods (snapshots: they never change).

The extension builds these objects itself (``src/python/snapshots.rs``), filling each field of
the dataclass: a field added here must be filled there too (``tests/test_snapshots.py`` checks
that every field is)."""

from __future__ import annotations

import datetime as _dt
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypedDict

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


@dataclass(frozen=True)
class Condition:
    """A Job condition, as in ``status.conditions`` of a batch/v1 Job."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: _dt.datetime | None


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of ``status`` of a batch/v1 Job."""

    active: int = 0
    ready: int = 0
    succeeded: int = 0
    failed: int = 0
    terminating: int = 0
    completed_indexes: str = ""
    failed_indexes: str | None = None
    start_time: _dt.datetime | None = None
    completion_time: _dt.datetime | None = None
    conditions: list[Condition] = field(default_factory=list)
    # The Job this snapshot came from, weakly (a status must not keep its Job's pods running),
    # so that raise_for_status() can list the failed pods. Not part of the value.
    _job_ref: weakref.ReferenceType[Job] | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        # A weak reference cannot be pickled (nor deep-copied); a copy is a plain snapshot.
        state = dict(self.__dict__)
        state["_job_ref"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def raise_for_status(self) -> None:
        """Raises :class:`kjob.JobFailedError` if the Job failed (``Failed=True``), as
        ``requests``' ``Response.raise_for_status()`` does for an error status; else nothing.

        A status read from a Job (``job.status``, ``job.wait()``) names the Job and lists its
        failed pods with the end of their logs while that Job object is alive; any other
        status gives the Failed condition only (``failed_pods`` is then empty)."""
        if not self.is_failed:
            return
        from ._failures import job_failed_error

        job = self._job_ref() if self._job_ref is not None else None
        if job is None:
            raise job_failed_error(None, self, None)
        raise job_failed_error(job.name, self, job._all_pods())

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


@dataclass(frozen=True)
class PodCondition:
    """A pod condition kjob sets, e.g. ``DisruptionTarget`` on an evicted pod."""

    type: str
    status: str
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes event about the Job (``kubectl describe job`` shows these)."""

    type: str
    reason: str
    message: str
    time: _dt.datetime | None
    involved_object: str


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


@dataclass(frozen=True)
class Pod:
    """A snapshot of one pod (one attempt) of a Job."""

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
    reason: str | None = None
    #: How it ended, for a pod that did not exit 0: ``"exited with code 5"``,
    #: ``"killed by signal 11 (SIGSEGV)"``, ``"exit status lost: ..."``.
    message: str | None = None
    index_failure_count: int = 0
    index_ignored_failure_count: int = 0
    conditions: list[PodCondition] = field(default_factory=list)
    #: Earlier failed attempts of this index (Indexed) or of the Job (NonIndexed).
    attempt: int = 0
    #: Callable pods: the exception that failed it, as :class:`ExceptionText`: its first line
    #: ``"<qualified type name>: <message>"``, then its traceback.
    exception: ExceptionText | None = None
    #: Callable pods share a worker's log file; their output is this byte range of it.
    log_range: tuple[int, int] | None = None
