"""``kjob.simulate``: what would Kubernetes do? The real Job controller on a virtual clock.

Nothing runs: each pod "runs" as an outcome table says, and the clock jumps from one event to
the next, so backoff delays (10 s, 20 s, ... up to 10 minutes), ``activeDeadlineSeconds`` and
``ttlSecondsAfterFinished`` take their real values and cost nothing.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, Union

from ._job import Job, unstarted_native
from ._kjob import simulate_job
from ._timeline import Timeline, TimelineMark, TimelineRow
from ._types import Event, JobStatus

#: How one pod run ends: a dict with any of ``exit_code`` (int, default 0, or 1 with an
#: ``exception``), ``exception`` (a class name, e.g. ``"ValueError"`` or
#: ``"mypkg.Retryable"``: what a callable pod raised, for ``onExceptions`` rules),
#: ``condition`` (``"DisruptionTarget"``: the pod is evicted after ``duration``) and
#: ``duration`` (seconds it runs, default 1; None: until something kills it). None or ``{}``
#: is the default: success after 1 s.
Outcome = Union[Mapping[str, Any], None]
#: A table of outcomes by key (see :func:`simulate`) or a function ``(index, attempt) ->
#: Outcome`` (index None for NonIndexed Jobs).
Outcomes = Union[Mapping[Any, Outcome], Callable[[Union[int, None], int], Outcome], None]

_OUTCOME_KEYS = ("exit_code", "exception", "condition", "duration")
_NativeOutcome = tuple[int, Union[list[str], None], bool, Union[float, None]]
_DEFAULT: _NativeOutcome = (0, None, False, 1.0)
# A pod as the native simulator reports it: TimelineRow's fields, in order.
_RawRow = tuple[Union[int, None], int, str, float, Union[float, None], str, str]


class Simulation:
    """The result of :func:`simulate`: the Job's final ``status`` (a :class:`kjob.JobStatus`,
    times on the virtual clock from ``start``), its ``events`` (:class:`kjob.Event`, oldest
    first), ``end`` (virtual seconds when the last thing happened), ``stopped`` (``"settled"``:
    nothing more can happen; ``"pod-limit"`` / ``"time-limit"``: a Job that never ends was cut
    off) and ``deleted`` (its ``ttlSecondsAfterFinished`` expired). :meth:`timeline` gives one
    row per pod."""

    __slots__ = ("_raw_rows", "_rows", "deleted", "end", "events", "job", "start", "status", "stopped")

    def __init__(
        self,
        job: str,
        start: _dt.datetime,
        status: JobStatus,
        events: list[Event],
        rows: list[_RawRow],
        end: float,
        stopped: str,
        deleted: bool,
    ) -> None:
        self.job = job
        self.start = start
        self.status = status
        self.events = events
        # Made into TimelineRows on first use: a 100,000-pod simulation need not pay for them.
        self._raw_rows = rows
        self._rows: list[TimelineRow] | None = None
        self.end = end
        self.stopped = stopped
        self.deleted = deleted

    def timeline(self) -> Timeline:
        """One row per pod (index, attempt, pod name, created, finished, phase, counted as),
        with the Job's condition times as marks; times in virtual seconds since the start."""
        marks = [
            TimelineMark(c.type, c.reason, self._seconds(c.last_transition_time))
            for c in self.status.conditions
            if c.status == "True" and c.last_transition_time is not None
        ]
        return Timeline(self.job, self._timeline_rows(), marks, self.end)

    def _timeline_rows(self) -> list[TimelineRow]:
        if self._rows is None:
            self._rows = [TimelineRow(*row) for row in self._raw_rows]
        return self._rows

    def _seconds(self, t: _dt.datetime) -> float:
        return round((t - self.start).total_seconds(), 6)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``-o yaml|json``): the status as a batch/v1 ``status``, events and
        pods with virtual seconds since the start."""
        return {
            "job": self.job,
            "end": self.end,
            "stopped": self.stopped,
            "deleted": self.deleted,
            "status": self.status.to_dict(),
            "events": [
                {
                    "at": self._seconds(e.time) if e.time is not None else None,
                    "type": e.type,
                    "reason": e.reason,
                    "message": e.message,
                }
                for e in self.events
            ],
            "pods": [
                {
                    "index": r.index,
                    "attempt": r.attempt,
                    "pod": r.pod,
                    "created": r.created,
                    "finished": r.finished,
                    "phase": r.phase,
                    "countedAs": r.counted_as,
                }
                for r in self._timeline_rows()
            ],
        }

    def _repr_html_(self) -> str:
        """In a notebook: the outcome in one line, then the timeline's picture."""
        from html import escape

        s = self.status
        ended = ", ".join(f"{c.type} ({c.reason})" for c in s.conditions if c.status == "True") or "running"
        head = (
            f"<p><b>Simulation of job.batch/{escape(self.job)}</b>: {escape(ended)}; "
            f"{s.succeeded} succeeded, {s.failed} failed, ends at {self.end:g} s (virtual)</p>"
        )
        return head + self.timeline().svg()

    def __repr__(self) -> str:
        s = self.status
        return (
            f"Simulation(job={self.job!r}, succeeded={s.succeeded}, failed={s.failed}, "
            f"pods={len(self._raw_rows)}, end={self.end}, stopped={self.stopped!r})"
        )


def simulate(
    job: Job | Mapping[str, Any] | str | os.PathLike[str],
    outcomes: Outcomes = None,
    *,
    start: _dt.datetime | None = None,
    max_pods: int = 10_000_000,
    max_seconds: float = 365 * 24 * 3600.0,
) -> Simulation:
    """Runs the Job controller on a virtual clock: what would Kubernetes do with this spec
    when its pods end as ``outcomes`` says?

    ``job``: a :class:`kjob.Job` that has not started, a batch/v1 manifest dict, or a YAML
    file's path. It is validated and defaulted exactly as for a run.

    ``outcomes``: how each pod run ends, by ``(index, attempt)`` (index None for NonIndexed
    Jobs; attempt 0 for an index's first pod, counting every earlier failed pod of the index,
    or of the Job when NonIndexed, and restarts in place with ``restartPolicy: OnFailure``).
    Either a function ``(index, attempt) -> outcome`` or a dict whose keys are, most
    specific first: ``(index, attempt)`` or ``"index,attempt"``; ``index`` (int or ``"3"``:
    every attempt); ``("*", attempt)`` or ``"*,attempt"``; ``"*"`` (every pod). An outcome
    is a dict ``{"exit_code": 1, "duration": 5}``, ``{"exception": "ValueError"}``,
    ``{"condition": "DisruptionTarget", "duration": 30}`` or ``{"duration": None}`` (runs
    until killed); missing keys take their defaults, and pods no key matches succeed after
    1 s.

    Pods the Job kills (its deadline, failure, success policy, suspension) end at once with
    SIGTERM (exit code 143). ``start`` is the wall time of virtual zero (default: now);
    ``max_pods`` and ``max_seconds`` cut off a Job that would never end. Pods with several
    containers are not simulated (``ValueError``)."""
    ask = _outcome_function(outcomes)
    begin = start if start is not None else _dt.datetime.now(_dt.timezone.utc)
    if begin.tzinfo is None:
        raise ValueError("start: must be an aware datetime (with a tzinfo)")
    target = _job_of(job)
    try:
        status, events, raw_rows, end, stopped, deleted = simulate_job(
            unstarted_native(target), ask, begin.timestamp(), max_pods, max_seconds
        )
    finally:
        if target is not job:
            target.delete()  # the Job made here only lent its validated spec
    return Simulation(target.name, begin, status, events, raw_rows, end, stopped, deleted)


def _job_of(job: Job | Mapping[str, Any] | str | os.PathLike[str]) -> Job:
    if isinstance(job, Job):
        unstarted_native(job)
        return job
    if isinstance(job, Mapping):
        return Job.from_manifest(job)
    if isinstance(job, (str, os.PathLike)):
        return Job.from_yaml(os.fspath(job))
    raise TypeError(
        f"simulate: expected a kjob.Job, a manifest dict or a YAML path, not {type(job).__name__}"
    )


def _outcome_function(outcomes: Outcomes) -> Callable[[int | None, int], _NativeOutcome]:
    """``outcomes`` as the function the native simulator calls per pod run."""
    if outcomes is None:
        return lambda index, attempt: _DEFAULT
    if callable(outcomes):
        user = outcomes

        def call(index: int | None, attempt: int) -> _NativeOutcome:
            return _native_outcome(user(index, attempt), f"outcomes({index}, {attempt})")

        return call
    if not isinstance(outcomes, Mapping):
        raise TypeError(f"outcomes: expected a dict or a callable, not {type(outcomes).__name__}")
    table: dict[tuple[int | str, int | str], _NativeOutcome] = {}
    for key, value in outcomes.items():
        table[_key(key)] = _native_outcome(value, f"outcomes[{key!r}]")

    def look_up(index: int | None, attempt: int) -> _NativeOutcome:
        ix: int | str = "*" if index is None else index
        for k in ((ix, attempt), (ix, "*"), ("*", attempt), ("*", "*")):
            found = table.get(k)
            if found is not None:
                return found
        return _DEFAULT

    return look_up


def _key(key: object) -> tuple[int | str, int | str]:
    """A table key as ``(index or "*", attempt or "*")``."""
    where = f"outcomes: key {key!r}"
    parts: tuple[object, ...]
    if isinstance(key, tuple):
        parts = key
    elif isinstance(key, str):
        parts = tuple(p.strip() for p in key.split(","))
    else:
        parts = (key,)
    if len(parts) == 1:
        parts = (parts[0], "*")
    if len(parts) != 2:
        raise ValueError(f"{where}: expected INDEX, (INDEX, ATTEMPT), '*' or '*,ATTEMPT'")
    out: list[int | str] = []
    for part in parts:
        if part == "*" or part is None:
            out.append("*")
        elif isinstance(part, int) and not isinstance(part, bool) and part >= 0:
            out.append(part)
        elif isinstance(part, str) and part.isdigit():
            out.append(int(part))
        else:
            raise ValueError(f"{where}: {part!r} is not a number >= 0 or '*'")
    return out[0], out[1]


def _native_outcome(value: Outcome, where: str) -> _NativeOutcome:
    if value is None:
        return _DEFAULT
    if not isinstance(value, Mapping):
        raise TypeError(f"{where}: expected a dict like {{'exit_code': 1}}, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in _OUTCOME_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown field {unknown[0]!r} (expected one of {', '.join(_OUTCOME_KEYS)})"
        )
    exception = value.get("exception")
    types = None if exception is None else _exception_types(exception, f"{where}.exception")
    exit_code = value.get("exit_code", 1 if types else 0)
    if not isinstance(exit_code, int) or isinstance(exit_code, bool) or not -(2**31) <= exit_code < 2**31:
        raise ValueError(f"{where}.exit_code: Invalid value: {exit_code!r}: must be a 32-bit integer")
    if types and exit_code == 0:
        raise ValueError(f"{where}: a pod that raised {exception} fails: exit_code cannot be 0")
    condition = value.get("condition")
    if condition not in (None, "DisruptionTarget"):
        raise ValueError(
            f'{where}.condition: Unsupported value: {condition!r}: supported values: "DisruptionTarget"'
        )
    duration = value.get("duration", 1.0)
    if duration is not None:
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (int, float))
            or not 0 <= duration < math.inf
        ):
            raise ValueError(f"{where}.duration: Invalid value: {duration!r}: must be seconds >= 0 (or None)")
        duration = float(duration)
    return exit_code, types, condition is not None, duration


def _exception_types(name: object, where: str) -> list[str]:
    """The class and bases of exception ``name``, most derived first, as a callable pod reports
    them: a builtin's real bases (``KeyError`` is a ``LookupError``), otherwise the name then
    ``Exception``'s."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: expected a class name such as 'ValueError'")
    builtin = getattr(builtins, name, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return [cls.__qualname__ for cls in builtin.__mro__ if cls is not object]
    return [name, "Exception", "BaseException"]


# ---- the CLI's side (`kjob simulate`) -------------------------------------------------------


def load_outcomes(path: str) -> dict[Any, Outcome]:
    """An outcome table from a YAML (or JSON) file: a mapping as :func:`simulate` takes, keys
    ``3``, ``"3,1"``, ``"*"`` or ``"*,1"``; an empty file is no table (every pod succeeds)."""
    import yaml

    with open(path, encoding="utf-8") as f:
        table = yaml.safe_load(f)
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise ValueError(
            f"{path}: expected a mapping of outcomes (e.g. '*': {{exit_code: 1}}), not {type(table).__name__}"
        )
    return table


def render(sim: Simulation, output: str) -> str:
    """``sim`` as ``kjob simulate -o OUTPUT`` prints it: ``table`` (the timeline, the final
    status and the events), ``yaml`` or ``json`` (:meth:`Simulation.to_dict`), or ``svg``
    (the timeline's picture, :meth:`kjob.Timeline.svg`)."""
    if output == "json":
        import json

        return json.dumps(sim.to_dict(), indent=4) + "\n"
    if output == "yaml":
        import yaml

        return str(yaml.safe_dump(sim.to_dict(), sort_keys=False))
    if output == "table":
        return _table(sim)
    if output == "svg":
        return sim.timeline().svg() + "\n"
    raise ValueError(f"unknown output format {output!r} (expected table, yaml, json or svg)")


def _secs(t: float | None) -> str:
    return "-" if t is None else f"{t:g}s"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _table(sim: Simulation) -> str:
    timeline = sim.timeline()
    pods = [["INDEX", "ATTEMPT", "POD", "CREATED", "FINISHED", "PHASE", "COUNTED AS"]]
    for r in timeline:
        index = "-" if r.index is None else str(r.index)
        pods.append(
            [index, str(r.attempt), r.pod, _secs(r.created), _secs(r.finished), r.phase, r.counted_as]
        )
    s = sim.status
    lines = _columns(pods) if len(pods) > 1 else ["No pods."]
    lines.append("")
    marks = ", ".join(f"{m.condition} ({m.reason}) at {_secs(m.at)}" for m in timeline.marks) or "none"
    lines.append(f"Conditions:  {marks}")
    counts = f"Pods:        {s.active} active / {s.succeeded} succeeded / {s.failed} failed"
    lines.append(counts)
    if s.completed_indexes:
        lines.append(f"Completed Indexes:  {s.completed_indexes}")
    if s.failed_indexes is not None:
        lines.append(f"Failed Indexes:     {s.failed_indexes or '<none>'}")
    ended = {"settled": "", "pod-limit": " (stopped: pod limit)", "time-limit": " (stopped: time limit)"}
    deleted = ", then deleted (ttlSecondsAfterFinished)" if sim.deleted else ""
    lines.append(f"Ends at:     {_secs(sim.end)}{deleted}{ended.get(sim.stopped, '')}")
    lines.append("")
    events = [["AT", "TYPE", "REASON", "MESSAGE"]]
    for e in sim.events:
        at = None if e.time is None else sim._seconds(e.time)
        events.append([_secs(at), e.type, e.reason, e.message])
    lines.append("Events:")
    lines.extend("  " + line for line in _columns(events)) if len(events) > 1 else lines.append("  <none>")
    return "\n".join(lines) + "\n"
