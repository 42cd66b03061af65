"""kjob: Kubernetes ``batch/v1`` Job semantics on one machine.

>>> import kjob
>>> status = kjob.Job(name="hello", command=["echo", "hi"], completions=3, parallelism=2).run()
>>> status.succeeded
3
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from ._config import configure
from ._dask import DaskExecutor
from ._errors import AlreadyExistsError, ConflictError, KjobOSError, NotFoundError
from ._failures import JobFailedError
from ._job import Job
from ._kjob import KjobError
from ._kjob import shutdown_workers as _shutdown_workers
from ._types import Condition, Event, ExceptionText, JobStatus, Pod, PodCondition
from .manifest import KjobWarning

if TYPE_CHECKING:
    from ._simulate import Simulation, simulate
    from ._timeline import Timeline, TimelineMark, TimelineRow
    from ._worker import PodContext

# Loaded on first use, as `import kjob` must stay cheap (tests/test_import_cost.py).
_LAZY = {
    "PodContext": "_worker",
    "Simulation": "_simulate",
    "simulate": "_simulate",
    "Timeline": "_timeline",
    "TimelineMark": "_timeline",
    "TimelineRow": "_timeline",
}


def __getattr__(name: str) -> Any:
    # `kjob.PodContext` lives in the worker module, which `import kjob` leaves unloaded: only
    # pods (and code that names the class) need it. `kjob.simulate` brings dataclasses along.
    module = _LAZY.get(name)
    if module is not None:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # Tab completion lists the lazy names too.
    return sorted({*globals(), *_LAZY})


def pod_context() -> PodContext:
    """Inside a pod of a callable Job: its Job's name, its own name, its completion index
    (None for NonIndexed Jobs) and attempt (earlier failed attempts of this index, or of the
    Job when NonIndexed). Raises ``KjobError`` anywhere else."""
    worker = sys.modules.get("kjob._worker")
    context: PodContext | None = worker.current_context() if worker is not None else None
    if context is None:
        raise KjobError("pod_context() is only available inside a pod of a Job with a target callable")
    return context


def shutdown_workers() -> int:
    """Stops the idle Python worker processes that kjob keeps for later callable Jobs (the next
    callable Job starts fresh ones) and returns how many there were. Workers busy with a
    running Job are not touched: they go when their Job ends."""
    return _shutdown_workers()


__all__ = [
    "AlreadyExistsError",
    "Condition",
    "ConflictError",
    "DaskExecutor",
    "Event",
    "ExceptionText",
    "Job",
    "JobFailedError",
    "JobStatus",
    "KjobError",
    "KjobOSError",
    "KjobWarning",
    "NotFoundError",
    "Pod",
    "PodCondition",
    "PodContext",
    "Simulation",
    "Timeline",
    "TimelineMark",
    "TimelineRow",
    "configure",
    "pod_context",
    "shutdown_workers",
    "simulate",
    "__version__",
]

__version__ = "0.1.0"
