"""A Job's pods over time: one row per pod (attempt), for ``Job.timeline()`` and
``Simulation.timeline()``, drawn as an SVG Gantt chart (``Timeline.svg()``).

Times are seconds since the Job started (its ``startTime``; virtual seconds for a
simulation), so a real run and a simulation of the same spec line up.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

if TYPE_CHECKING:
    from ._types import Condition, Pod

# How a pod ended, as the timeline colours it.
SUCCEEDED = "succeeded"  # phase Succeeded, counted in status.succeeded
FAILED = "failed"  # phase Failed, counted toward the backoff limit
IGNORED = "ignored"  # failed, but a podFailurePolicy Ignore rule (or a disruption) kept it out
KILLED = "killed"  # ended by the Job (deleted, suspended, deadline, the Job finished)
ACTIVE = "active"  # not ended yet
COUNTED_AS = (SUCCEEDED, FAILED, IGNORED, KILLED, ACTIVE)

# Colours told apart with the common colour-vision deficiencies (Okabe-Ito palette), and
# ignored bars hatched as well, so the outcome never rests on hue alone.
COLOURS = {
    SUCCEEDED: "#009e73",
    FAILED: "#d55e00",
    IGNORED: "#e69f00",
    KILLED: "#999999",
    ACTIVE: "#0072b2",
}
# A picture of a hundred thousand rows is neither readable nor small: the rest are summed up.
MAX_ROWS = 50


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
    times (``marks``), when it ended (``end``, None while it runs) and when the timeline was
    taken (``now``: where the bars of running pods stop; None means ``end``, else the last
    time the rows and marks name)."""

    __slots__ = ("end", "job", "marks", "now", "rows")

    def __init__(
        self,
        job: str,
        rows: Sequence[TimelineRow],
        marks: Sequence[TimelineMark] = (),
        end: float | None = None,
        now: float | None = None,
    ) -> None:
        self.job = job
        self.rows = tuple(rows)
        self.marks = tuple(marks)
        self.end = end
        self.now = now

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

    def horizon(self) -> float:
        """Where the picture's time axis ends: ``now``, else ``end``, else the last time any
        row or mark names (0 for an empty timeline)."""
        if self.now is not None:
            return self.now
        if self.end is not None:
            return self.end
        times = [m.at for m in self.marks]
        for r in self.rows:
            times.append(r.created if r.finished is None else r.finished)
        return max(times, default=0.0)

    def table(self) -> str:
        """The rows as ``kubectl get``-style columns: INDEX ATTEMPT POD CREATED FINISHED
        PHASE COUNTED-AS (times in seconds since the Job started, ``-`` while it runs)."""
        from ._export import table

        columns = ["INDEX", "ATTEMPT", "POD", "CREATED", "FINISHED", "PHASE", "COUNTED-AS"]
        rows = [
            {
                "INDEX": "-" if r.index is None else str(r.index),
                "ATTEMPT": str(r.attempt),
                "POD": r.pod,
                "CREATED": f"{r.created:.3f}",
                "FINISHED": "-" if r.finished is None else f"{r.finished:.3f}",
                "PHASE": r.phase,
                "COUNTED-AS": r.counted_as,
            }
            for r in self.rows
        ]
        return table(rows, columns)

    def svg(self, *, max_rows: int = MAX_ROWS, width: int = 900) -> str:
        """An SVG Gantt chart of the pods: one row per index (per pod for NonIndexed), one bar
        per attempt coloured by how it counted, a dashed line over the backoff gap between
        attempts, a vertical line at each condition's time, a time axis in seconds since the
        Job started and a legend. Each bar's ``<title>`` names the pod, its times and outcome.
        Past ``max_rows`` rows the rest are left out and a note says how many."""
        return _Svg(self, max_rows, width).render()

    def _repr_html_(self) -> str:
        return self.svg()


def timeline_of(
    job: str,
    pods: Sequence[Pod],
    conditions: Sequence[Condition],
    start: _dt.datetime | None,
    end: _dt.datetime | None,
    now: _dt.datetime,
) -> Timeline:
    """The :class:`Timeline` of a real Job from its pods (oldest first) and conditions.

    Times count from the Job's ``startTime``, or from its first pod when that was made
    earlier (a suspended and resumed Job's ``startTime`` is the resume)."""
    created = [p.creation_time for p in pods if p.creation_time is not None]
    origin = min([t for t in (start, *created) if t is not None], default=now)

    def since(t: _dt.datetime) -> float:
        return (t - origin).total_seconds()

    attempts: dict[int | None, int] = {}
    rows = []
    for number, pod in enumerate(pods):
        if pod.index is None:
            attempt = number
        else:
            attempt = attempts.get(pod.index, 0)
            attempts[pod.index] = attempt + 1
        rows.append(
            TimelineRow(
                index=pod.index,
                attempt=attempt,
                pod=pod.name,
                created=since(pod.creation_time or origin),
                finished=None if pod.finish_time is None else since(pod.finish_time),
                phase=pod.phase,
                # The controller's verdict, the rule a simulation's timeline uses too.
                counted_as=pod.counted_as,
            )
        )
    marks = [
        TimelineMark(
            condition=c.type if c.status == "True" else f"{c.type}={c.status}",
            reason=c.reason,
            at=since(c.last_transition_time),
        )
        for c in conditions
        if c.last_transition_time is not None
    ]
    marks.sort(key=lambda m: m.at)
    return Timeline(job, rows, marks, None if end is None else since(end), since(now))


# ---- drawing ----------------------------------------------------------------------------

_FONT = "system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"
_ROW = 20  # pixels per row
_BAR = 12  # bar height
_LEFT = 76  # room for the row labels
_RIGHT = 24
_LABEL_LINE = 13  # height of one line of condition labels
_CHAR = 6.2  # the width of a character at 11 px, near enough to keep labels apart
_GAP_LABEL = "wait before the next attempt"


def escape(text: str) -> str:
    """XML text: ``&``, ``<`` and ``>`` escaped (xml.sax.saxutils would cost its imports)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def quoteattr(text: str) -> str:
    """An XML attribute value in double quotes."""
    return '"' + escape(text).replace('"', "&quot;") + '"'


def _el(tag: str, body: str = "", **attrs: object) -> str:
    """One XML element; ``stroke_width`` is written ``stroke-width``, ``klass`` ``class``.
    Attribute values are escaped; ``body`` is markup (escape text before passing it)."""
    text = "".join(
        f" {'class' if k == 'klass' else k.replace('_', '-')}={quoteattr(str(v))}"
        for k, v in attrs.items()
        if v is not None
    )
    return f"<{tag}{text}>{body}</{tag}>" if body else f"<{tag}{text}/>"


def _title(text: str) -> str:
    return f"<title>{escape(text)}</title>"


def _seconds(t: float) -> str:
    return f"{t:.2f} s"


def _tick_step(span: float) -> float:
    """A round step (1, 2 or 5 times a power of ten) giving five to ten ticks over ``span``."""
    raw = span / 8
    power = 10.0 ** math.floor(math.log10(raw))
    return next((m * power for m in (1, 2, 5) if m * power >= raw), 10 * power)


def _tick_label(t: float, step: float) -> str:
    """Seconds, or minutes and seconds once the axis spans minutes (``2m30s``)."""
    if step >= 30:
        minutes, seconds = divmod(round(t), 60)
        if minutes == 0:
            return f"{seconds}s"
        return f"{minutes}m{seconds}s" if seconds else f"{minutes}m"
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{t:.{decimals}f}s"


def _lane_key(row: TimelineRow) -> tuple[int, int]:
    """Indexed pods share their index's row; a NonIndexed pod has a row of its own."""
    return (0, row.index) if row.index is not None else (1, row.attempt)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class _Svg:
    """Lays a :class:`Timeline` out and writes the SVG text."""

    def __init__(self, timeline: Timeline, max_rows: int, width: int) -> None:
        self.t = timeline
        lanes: dict[tuple[int, int], list[TimelineRow]] = {}
        for row in timeline.rows:
            lanes.setdefault(_lane_key(row), []).append(row)
        keys = sorted(lanes)
        self.hidden_rows = max(0, len(keys) - max_rows)
        self.hidden_pods = sum(len(lanes[k]) for k in keys[max_rows:])
        self.lanes = [(k, sorted(lanes[k], key=lambda r: (r.created, r.attempt))) for k in keys[:max_rows]]
        self.width = max(width, _LEFT + _RIGHT + 100)
        self.right = self.width - _RIGHT
        self.horizon = timeline.horizon()
        ends = [r.finished for r in timeline.rows if r.finished is not None]
        self.t0 = min([0.0, *(r.created for r in timeline.rows)])
        self.t1 = max([self.horizon, *ends, *(m.at for m in timeline.marks)])
        if self.t1 - self.t0 <= 0:
            self.t1 = self.t0 + 1.0
        self.marks = self._grouped_marks()
        self.mark_lines = self._place_mark_labels()
        self.top = 48 + _LABEL_LINE * max(1, max(self.mark_lines, default=0) + 1)
        self.bottom = self.top + _ROW * max(1, len(self.lanes))

    def x(self, t: float) -> float:
        return round(_LEFT + (t - self.t0) / (self.t1 - self.t0) * (self.right - _LEFT), 2)

    def _grouped_marks(self) -> list[tuple[float, str, str]]:
        """(time, label, title) per condition line. Conditions set in the same sync
        (``SuccessCriteriaMet`` and ``Complete``) share one line and one label."""
        groups: list[tuple[float, list[TimelineMark]]] = []
        for mark in sorted(self.t.marks, key=lambda m: m.at):
            if groups and self.x(mark.at) - self.x(groups[-1][0]) < 1:
                groups[-1][1].append(mark)
            else:
                groups.append((mark.at, [mark]))
        return [
            (
                at,
                ", ".join(m.condition for m in group),
                "; ".join(f"{m.condition} ({m.reason}) at {_seconds(m.at)}" for m in group),
            )
            for at, group in groups
        ]

    def _label_span(self, at: float, label: str) -> tuple[float, float]:
        """Where a condition's label goes: right of its line, or left of it near the edge."""
        x = self.x(at)
        size = _CHAR * len(label)
        return (x + 3, x + 3 + size) if x + 3 + size <= self.width else (x - 3 - size, x - 3)

    def _place_mark_labels(self) -> list[int]:
        """The line of each condition label: the first where it overlaps no other label."""
        ends: list[float] = []
        lines = []
        for at, label, _ in self.marks:
            start, end = self._label_span(at, label)
            line = next((i for i, e in enumerate(ends) if e + 4 < start), len(ends))
            if line == len(ends):
                ends.append(end)
            else:
                ends[line] = end
            lines.append(line)
        return lines

    def render(self) -> str:
        height = self.bottom + 44 + (16 if self.hidden_rows else 0)
        label = f"Timeline of Job {self.t.job}: {_plural(len(self.t.rows), 'pod')}"
        hatch = _el(
            "pattern",
            _el("rect", width=3, height=6, fill="#ffffff", fill_opacity=0.5),
            id="kjob-hatch",
            width=6,
            height=6,
            patternUnits="userSpaceOnUse",
            patternTransform="rotate(45)",
        )
        body = [
            _title(label),
            _el("defs", hatch),
            _el("rect", width=self.width, height=height, fill="#ffffff"),
            _el("text", escape(label), x=8, y=17, font_size=13, font_weight="bold", klass="heading"),
            self._legend(),
            self._grid(),
            self._lanes(),
            self._axis(),
            self._mark_lines(),
        ]
        if self.hidden_rows:
            note = f"{_plural(self.hidden_rows, 'more row')} ({_plural(self.hidden_pods, 'pod')}) not drawn"
            body.append(_el("text", escape(note), x=_LEFT, y=height - 6, fill="#555555", klass="truncated"))
        return _el(
            "svg",
            "\n" + "\n".join(body) + "\n",
            xmlns="http://www.w3.org/2000/svg",
            width=self.width,
            height=height,
            viewBox=f"0 0 {self.width} {height}",
            role="img",
            aria_label=label,
            font_family=_FONT,
            font_size=11,
            klass="kjob-timeline",
        )

    def _legend(self) -> str:
        present = {r.counted_as for r in self.t.rows}
        items = []
        x = 8.0
        for outcome in (o for o in COUNTED_AS if o in present):
            swatch = _el("rect", x=x, y=26, width=12, height=10, fill=COLOURS[outcome])
            if outcome == IGNORED:
                swatch += _el("rect", x=x, y=26, width=12, height=10, fill="url(#kjob-hatch)")
            text = _el("text", outcome, x=x + 16, y=35)
            items.append(_el("g", swatch + text, klass="legend-item", data_counted_as=outcome))
            x += 16 + _CHAR * len(outcome) + 14
        dash = _el("line", x1=x, y1=31, x2=x + 18, y2=31, stroke="#555555", stroke_dasharray="3 2")
        items.append(
            _el("g", dash + _el("text", _GAP_LABEL, x=x + 22, y=35), klass="legend-item", data_legend="gap")
        )
        x += 22 + _CHAR * len(_GAP_LABEL) + 14
        if self.marks:
            line = _el("line", x1=x + 6, y1=25, x2=x + 6, y2=37, stroke="#333333", stroke_dasharray="4 3")
            text = _el("text", "Job condition", x=x + 12, y=35)
            items.append(_el("g", line + text, klass="legend-item", data_legend="condition"))
        return _el("g", "".join(items), klass="legend")

    def _lanes(self) -> str:
        if not self.lanes:
            return _el(
                "g", _el("text", "no pods yet", x=_LEFT + 4, y=self.top + 14, fill="#555555"), klass="rows"
            )
        lanes = []
        for n, ((kind, number), rows) in enumerate(self.lanes):
            y = self.top + n * _ROW
            name = f"index {number}" if kind == 0 else f"pod {number}"
            shade = "#f2f2f2" if n % 2 == 0 else "#ffffff"
            parts = [
                _el("rect", x=_LEFT, y=y, width=self.right - _LEFT, height=_ROW, fill=shade),
                _el("text", name, x=_LEFT - 6, y=y + 14, text_anchor="end", klass="row-label"),
            ]
            previous: TimelineRow | None = None
            for row in rows:
                if previous is not None and previous.finished is not None and row.created > previous.finished:
                    parts.append(self._gap(previous, previous.finished, row, y))
                parts.append(self._bar(row, y))
                previous = row
            lanes.append(_el("g", "".join(parts), klass="row", data_row=name))
        return _el("g", "\n".join(lanes), klass="rows")

    def _gap(self, before: TimelineRow, finished: float, after: TimelineRow, y: float) -> str:
        wait = after.created - finished
        title = _title(f"{_seconds(wait)} from the end of {before.pod} to the creation of {after.pod}")
        mid = y + _ROW / 2
        return _el(
            "line",
            title,
            klass="gap",
            x1=self.x(finished),
            y1=mid,
            x2=self.x(after.created),
            y2=mid,
            stroke="#555555",
            stroke_width=1.2,
            stroke_dasharray="3 2",
        )

    def _bar(self, row: TimelineRow, y: float) -> str:
        x0 = self.x(row.created)
        running = row.finished is None
        end = self.horizon if row.finished is None else row.finished
        width = round(max(self.x(end) - x0, 2.0), 2)
        where = f"index {row.index}, attempt {row.attempt}" if row.index is not None else f"pod {row.attempt}"
        ended = f"still running at {_seconds(end)}" if running else f"finished {_seconds(end)}"
        title = (
            f"{row.pod} ({where}): {row.counted_as}, phase {row.phase}; created {_seconds(row.created)}, "
            f"{ended}, {_seconds(end - row.created)} in all"
        )
        top = y + (_ROW - _BAR) / 2
        bar = _el(
            "rect",
            _title(title),
            klass="bar running" if running else "bar",
            x=x0,
            y=top,
            width=width,
            height=_BAR,
            rx=2,
            fill=COLOURS.get(row.counted_as, "#000000"),
            data_pod=row.pod,
            data_counted_as=row.counted_as,
        )
        if row.counted_as == IGNORED:
            bar += _el(
                "rect", x=x0, y=top, width=width, height=_BAR, fill="url(#kjob-hatch)", pointer_events="none"
            )
        return bar

    def _ticks(self) -> tuple[float, range]:
        """The axis' step and the multiples of it that fall on the axis."""
        step = _tick_step(self.t1 - self.t0)
        return step, range(math.ceil(self.t0 / step - 1e-9), math.floor(self.t1 / step + 1e-9) + 1)

    def _grid(self) -> str:
        """Faint lines at the ticks, under the bars."""
        step, ticks = self._ticks()
        lines = []
        for k in ticks:
            x = self.x(k * step)
            lines.append(
                _el("line", x1=x, y1=self.top, x2=x, y2=self.bottom, stroke="#d0d0d0", stroke_width=0.6)
            )
        return _el("g", "".join(lines), klass="grid")

    def _axis(self) -> str:
        step, ticks = self._ticks()
        parts = [_el("line", x1=_LEFT, y1=self.bottom, x2=self.right, y2=self.bottom, stroke="#333333")]
        for k in ticks:
            x = self.x(k * step)
            parts += [
                _el("line", klass="tick", x1=x, y1=self.bottom, x2=x, y2=self.bottom + 4, stroke="#333333"),
                _el("text", _tick_label(k * step, step), x=x, y=self.bottom + 15, text_anchor="middle"),
            ]
        middle = (_LEFT + self.right) / 2
        parts.append(
            _el(
                "text",
                "time since the Job started",
                x=middle,
                y=self.bottom + 31,
                text_anchor="middle",
                fill="#555555",
            )
        )
        return _el("g", "".join(parts), klass="axis")

    def _mark_lines(self) -> str:
        marks = []
        for (at, label, title), line in zip(self.marks, self.mark_lines):
            x = self.x(at)
            y = 48 + line * _LABEL_LINE + 8
            start, end = self._label_span(at, label)
            anchor = "start" if start > x else "end"
            rule = _el("line", x1=x, y1=y - 9, x2=x, y2=self.bottom, stroke="#333333", stroke_dasharray="4 3")
            text = _el("text", escape(label), x=start if anchor == "start" else end, y=y, text_anchor=anchor)
            marks.append(
                _el("g", _title(title) + rule + text, klass="mark", data_conditions=label, font_weight="bold")
            )
        return _el("g", "".join(marks), klass="marks")
