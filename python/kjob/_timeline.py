"""A Job's pods over time: one row per pod (attempt), for ``Job.timeline()`` and
``Simulation.timeline()``, drawn as an SVG Gantt chart (``Timeline.svg()``).

Times are seconds since the Job started (its ``startTime``; virtual seconds for a
simulation), so a real run and a simulation of the same spec line up.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import overload

# How a pod ended, as the timeline colours it.
SUCCEEDED = "succeeded"  # phase Succeeded, counted in status.succeeded
FAILED = "failed"  # phase Failed, counted toward the backoff limit
IGNORED = "ignored"  # failed, but a podFailurePolicy Ignore rule (or a disruption) kept it out
KILLED = "killed"  # ended by the Job (deleted, suspended, deadline, the Job finished)
ACTIVE = "active"  # not ended yet
COUNTED_AS = (SUCCEEDED, FAILED, IGNORED, KILLED, ACTIVE)


@dataclass(frozen=True, slots=True)
class TimelineRow:
    """One pod: ``index`` (None for NonIndexed), ``attempt`` (0 for the first pod of an index,
    or the pod's number among all pods for NonIndexed), ``created``/``finished`` in seconds
    since the Job started (``finished`` None while it runs), its ``phase`` and what it
    ``counted_as`` (one of ``COUNTED_AS``)."""

    index: int | None
    attempt: int
    pod: str
    created: float
    finished: float | None
    phase: str
    counted_as: str


@dataclass(frozen=True, slots=True)
class TimelineMark:
    """A Job condition (``Complete``, ``Failed``, ``Suspended``, ...) and when it became true."""

    condition: str
    reason: str
    at: float


class Timeline(Sequence[TimelineRow]):
    """The rows of a Job's pods (a sequence of :class:`TimelineRow`), with the Job's condition
    times (``marks``) and when it ended (``end``, None while it runs)."""

    __slots__ = ("end", "job", "marks", "rows")

    def __init__(
        self,
        job: str,
        rows: Sequence[TimelineRow],
        marks: Sequence[TimelineMark] = (),
        end: float | None = None,
    ) -> None:
        self.job = job
        self.rows = tuple(rows)
        self.marks = tuple(marks)
        self.end = end

    @overload
    def __getitem__(self, i: int) -> TimelineRow: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[TimelineRow]: ...
    def __getitem__(self, i: int | slice) -> TimelineRow | Sequence[TimelineRow]:
        return self.rows[i]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[TimelineRow]:
        return iter(self.rows)

    def __repr__(self) -> str:
        return f"Timeline(job={self.job!r}, rows={len(self.rows)}, marks={len(self.marks)}, end={self.end!r})"
