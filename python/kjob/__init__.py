"""kjob: Kubernetes ``batch/v1`` Job semantics on one machine.

>>> import kjob
>>> status = kjob.Job(name="hello", command=["echo", "hi"], completions=3, parallelism=2).run()
>>> status.succeeded
3
"""

from ._job import Job
from ._kjob import KjobError
from ._types import Condition, Event, JobStatus, Pod, PodCondition

__all__ = [
    "Condition",
    "Event",
    "Job",
    "JobStatus",
    "KjobError",
    "Pod",
    "PodCondition",
    "__version__",
]

__version__ = "0.1.0"
