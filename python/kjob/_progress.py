"""Progress display: a tqdm bar for ``job.wait(progress=True)`` (a widget in Jupyter through
``tqdm.auto``) and a dependency-free one-line bar for the CLI on a terminal."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TextIO

from ._job import job_spec
from ._types import JobStatus

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["TerminalBar", "require_tqdm", "wait_with_tqdm"]

# Redraw at most this often: a bar must not slow down a Job running 50,000 pods a second.
REDRAW_SECONDS = 0.1


def require_tqdm() -> Any:
    """``tqdm.auto.tqdm``, or an ImportError that says how to get it."""
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            "progress=True draws its bar with tqdm, which is not installed: "
            "pip install 'kjob[progress]' (or pip install tqdm)"
        ) from None
    return tqdm


def _total(job: Job) -> int | None:
    """What the bar counts to: completions (a work queue has no known total)."""
    completions = job_spec(job)["completions"]
    return int(completions) if completions is not None else None


def _postfix(status: JobStatus) -> str:
    parts = [f"active={status.active}", f"failed={status.failed}"]
    true = [c.type for c in status.conditions if c.status == "True"]
    if true:
        parts.append(",".join(true))
    return " ".join(parts)


def wait_with_tqdm(job: Job, timeout: float | None) -> JobStatus:
    """``job.wait(timeout)`` drawing a tqdm bar of succeeded pods out of completions."""
    from ._watch import follow

    tqdm = require_tqdm()
    watcher = follow(job)
    deadline = None if timeout is None else time.monotonic() + timeout
    bar = tqdm(total=_total(job), desc=job.name, unit="pod", dynamic_ncols=True)
    try:
        while True:
            watcher.poll()
            status = watcher.status
            bar.n = status.succeeded
            bar.set_postfix_str(_postfix(status), refresh=False)
            bar.refresh()
            if watcher.done:
                return status
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"Job {job.name!r} did not finish within {timeout} s")
            watcher.wait(left)
            # Let a burst of changes coalesce into one redraw.
            time.sleep(REDRAW_SECONDS if left is None else max(0.0, min(REDRAW_SECONDS, left)))
    finally:
        bar.close()
        watcher.close()


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class TerminalBar:
    """One line redrawn in place: ``job.batch/NAME [####....] 3/5 active=2 failed=0
    00:04<00:03 Running``. The ETA comes from the pace of completions so far."""

    WIDTH = 24

    def __init__(self, name: str, total: int | None, out: TextIO) -> None:
        self._name = name
        self._total = total
        self._out = out
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._width = 0

    def update(self, status: JobStatus, state: str, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < REDRAW_SECONDS:
            return
        self._last_draw = now
        elapsed = now - self._started
        done = status.succeeded
        if self._total:
            filled = min(self.WIDTH, self.WIDTH * done // self._total)
            bar = "[" + "#" * filled + "." * (self.WIDTH - filled) + "]"
            count = f"{done}/{self._total}"
            eta = _clock(elapsed * (self._total - done) / done) if 0 < done < self._total else "--:--"
        else:
            bar = ""
            count = f"{done} succeeded"
            eta = "--:--"
        line = (
            f"job.batch/{self._name} {bar} {count} active={status.active} failed={status.failed} "
            f"{_clock(elapsed)}<{eta} {state}"
        )
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self._out.write("\r" + line + " " * pad)
        self._out.flush()

    def clear(self) -> None:
        """Blanks the line so that other output can be printed above the bar."""
        if self._width:
            self._out.write("\r" + " " * self._width + "\r")
            self._width = 0
            self._last_draw = 0.0

    def close(self) -> None:
        self._out.write("\n")
        self._out.flush()
