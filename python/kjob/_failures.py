"""How a failed Job explains itself: :class:`JobFailedError` and the text it shares with
``kjob run``'s report on stderr (the failed pods, each with the end of its log)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._export import status_counts
from ._kjob import KjobError

if TYPE_CHECKING:
    from ._types import JobStatus, Pod

__all__ = ["JobFailedError", "MAX_PODS_SHOWN", "TAIL_LINES", "describe_failed_pods", "failed_pods"]

#: Failed pods described in full; more would bury the first error under its repeats.
MAX_PODS_SHOWN = 5
#: Lines of each described pod's log: enough for a Python traceback's end.
TAIL_LINES = 20


class JobFailedError(KjobError):
    """The Job failed (or, for ``results()``, did not complete).

    The message holds the ``Failed`` condition's reason and message and, for up to five
    failed pods, the pod's name, index, exit code or exception and the last lines of its
    log. ``status`` is the Job's status then; ``failed_pods`` lists every failed pod, most
    informative first."""

    status: JobStatus
    failed_pods: list[Pod]

    def __init__(self, message: str, status: JobStatus, failed_pods: Sequence[Pod]) -> None:
        super().__init__(message)
        self.status = status
        self.failed_pods = list(failed_pods)

    def __reduce__(self) -> tuple[type[JobFailedError], tuple[str, JobStatus, list[Pod]]]:
        # Exceptions pickle their args only; this one needs all three to cross a process.
        return (type(self), (str(self), self.status, self.failed_pods))


def failed_pods(pods: Sequence[Pod]) -> list[Pod]:
    """The failed pods, most informative first: those that raised or exited with a code before
    those killed from outside (deadline, deletion), the latest attempt first within each."""

    def rank(pod: Pod) -> int:
        if pod.exception is not None:
            return 0
        if pod.exit_code is not None and pod.exit_code < 128:
            return 1
        return 2

    failed = [p for p in reversed(pods) if p.phase == "Failed"]
    return sorted(failed, key=rank)


def failed_container_log(pod: Pod) -> str:
    """The log of the container that failed the pod: its own ``<pod>_<container>.log``
    beside the pod's log, unless it is the first main container, whose log is the pod's."""
    from pathlib import Path

    if pod.failed_container is not None and pod.log_range is None:
        own = Path(pod.log_path).with_name(f"{pod.name}_{pod.failed_container}.log")
        if own.exists():
            return str(own)
    return pod.log_path


def log_tail(pod: Pod, lines: int = TAIL_LINES) -> list[str] | None:
    """The last ``lines`` lines of the output of the pod (of its failed container, for a pod
    with several), or None when its log is gone (a private log folder is removed with its
    Job)."""
    from pathlib import Path

    try:
        with Path(failed_container_log(pod)).open("rb") as f:
            if pod.log_range is not None:
                start, end = pod.log_range
                f.seek(start)
                data = f.read(end - start)
            else:
                data = f.read()
    except OSError:
        return None
    text = data.decode("utf-8", errors="replace")
    return list(deque(text.splitlines(), maxlen=lines))


def _signal_note(exit_code: int) -> str:
    """`` (SIGKILL)`` for 137: container runtimes report a signal as 128 + its number."""
    if 128 < exit_code < 128 + 65:
        # Imported here: `import kjob` stays fast (signal builds its enums at import).
        import signal

        try:
            return f" ({signal.Signals(exit_code - 128).name})"
        except ValueError:
            pass
    return ""


def _outcome(pod: Pod) -> str:
    if pod.exception is not None:
        return f"exception {pod.exception.summary}"
    parts = []
    if pod.exit_code is not None:
        parts.append(f"exit code {pod.exit_code}{_signal_note(pod.exit_code)}")
    if pod.reason:
        parts.append(f"reason {pod.reason}" + (f": {pod.message}" if pod.message else ""))
    return ", ".join(parts) or "no exit code"


def describe_pod(pod: Pod, lines: int = TAIL_LINES) -> str:
    """``pod NAME (index I): exit code C`` and the end of its log, indented."""
    where = f" (index {pod.index})" if pod.index is not None else ""
    if pod.failed_container is not None:
        where += f" container {pod.failed_container}"
    head = f"pod {pod.name}{where}: {_outcome(pod)}"
    tail = log_tail(pod, lines)
    if tail is None:
        return f"{head}; its log is no longer available"
    if not tail:
        return f"{head}; its log is empty"
    last = "last line" if len(tail) == 1 else f"last {len(tail)} lines"
    return f"{head}; {last} of its log:\n" + "\n".join(f"    {line}" for line in tail)


def describe_failed_pods(pods: Sequence[Pod], limit: int = MAX_PODS_SHOWN) -> str:
    """Up to ``limit`` of the (already ranked) failed pods, and how many were left out."""
    if not pods:
        return "no pod failed"
    shown = [describe_pod(p) for p in pods[:limit]]
    left = len(pods) - limit
    if left > 0:
        shown.append(f"... and {left} more failed pod{'s' if left > 1 else ''} (job.pods() lists them)")
    return "\n".join(shown)


def failure_message(job_name: str | None, status: JobStatus, pods: Sequence[Pod] | None) -> str:
    """The whole text of a :class:`JobFailedError`: why the Job failed, then its failed pods
    (``pods`` is None when the Job and its pods cannot be reached any more)."""
    job = f"Job {job_name!r}" if job_name is not None else "The Job"
    failed = status.condition("Failed")
    if failed is not None and failed.status == "True":
        head = f"{job} failed: {failed.reason}: {failed.message}"
    else:
        head = f"{job} did not complete ({status_counts(status)})"
    if pods is None:
        return head
    return f"{head}\n{describe_failed_pods(pods)}"


def job_failed_error(job_name: str | None, status: JobStatus, pods: Sequence[Pod] | None) -> JobFailedError:
    """The error for a Job with this status and these pods (all of them, in creation order)."""
    ranked = failed_pods(pods) if pods is not None else []
    return JobFailedError(
        failure_message(job_name, status, ranked if pods is not None else None), status, ranked
    )
