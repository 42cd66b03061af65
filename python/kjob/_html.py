"""Rich display in Jupyter: ``_repr_html_`` of :class:`kjob.Job` and :class:`kjob.JobStatus`
as compact tables (counts, then the conditions). Every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Sequence

from ._types import JobStatus

__all__ = ["job_html", "status_html"]

_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL = "padding:2px 8px;text-align:left;border-bottom:1px solid #ddd"


def _row(cells: Sequence[object], header: bool = False) -> str:
    tag = "th" if header else "td"
    return "<tr>" + "".join(f'<{tag} style="{_CELL}">{html.escape(str(c))}</{tag}>' for c in cells) + "</tr>"


def _table(rows: list[str]) -> str:
    return f'<table style="{_STYLE}">' + "".join(rows) + "</table>"


def status_html(status: JobStatus, title: str = "JobStatus") -> str:
    counts = [
        ("active", status.active),
        ("ready", status.ready),
        ("succeeded", status.succeeded),
        ("failed", status.failed),
        ("terminating", status.terminating),
    ]
    rows = [_row([name for name, _ in counts], header=True), _row([value for _, value in counts])]
    parts = [f"<div><b>{html.escape(title)}</b>", _table(rows)]
    extra = []
    if status.completed_indexes:
        extra.append(("completedIndexes", status.completed_indexes))
    if status.failed_indexes:
        extra.append(("failedIndexes", status.failed_indexes))
    if status.start_time is not None:
        extra.append(("startTime", status.start_time.isoformat(timespec="seconds")))
    if status.completion_time is not None:
        extra.append(("completionTime", status.completion_time.isoformat(timespec="seconds")))
    if extra:
        parts.append(_table([_row(pair) for pair in extra]))
    if status.conditions:
        rows = [_row(["type", "status", "reason", "message"], header=True)]
        rows += [_row([c.type, c.status, c.reason, c.message]) for c in status.conditions]
        parts.append(_table(rows))
    parts.append("</div>")
    return "".join(parts)


def job_html(
    name: str, state: str, details: Sequence[tuple[str, object]], status: JobStatus, picture: str = ""
) -> str:
    """The Job's table, status and ``picture``: the SVG of its timeline (once it has pods)."""
    head = _table([_row([key for key, _ in details], header=True), _row([value for _, value in details])])
    return (
        f"<div><b>kjob.Job {html.escape(name)}</b> &mdash; {html.escape(state)}"
        + head
        + status_html(status, title="status")
        + (f'<div style="margin-top:6px">{picture}</div>' if picture else "")
        + "</div>"
    )
