"""Process-wide defaults for Jobs created afterwards (:func:`kjob.configure`)."""

from __future__ import annotations

import threading

from ._kjob import DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS, check_seconds

__all__ = ["configure", "default_backoff"]

_lock = threading.Lock()
# Kubernetes' pod replacement delays (10 s doubling, capped at 10 min) until configured.
_backoff = (DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS)


def configure(
    *,
    backoff_initial_seconds: float | None = None,
    backoff_max_seconds: float | None = None,
) -> None:
    """Sets process-wide defaults for the Jobs created after this call.

    ``backoff_initial_seconds`` is the delay before a failed pod is replaced the first time
    (it doubles with each failure) and ``backoff_max_seconds`` caps it; Kubernetes' 10 s and
    600 s stay the defaults until set. A keyword left out (or None) keeps its current value.
    A Job's own ``backoff_*_seconds`` arguments, and a manifest's ``kjob.io/backoff-*``
    annotations, still win. Raises ``TypeError``/``ValueError`` for a value that is not a
    finite number of seconds >= 0, and changes nothing then.

    >>> import kjob
    >>> kjob.configure(backoff_initial_seconds=0.1, backoff_max_seconds=5)
    """
    global _backoff
    with _lock:
        initial, maximum = _backoff
        if backoff_initial_seconds is not None:
            initial = check_seconds("backoff_initial_seconds", backoff_initial_seconds)
        if backoff_max_seconds is not None:
            maximum = check_seconds("backoff_max_seconds", backoff_max_seconds)
        _backoff = (initial, maximum)


def default_backoff() -> tuple[float, float]:
    """The configured (initial, max) replacement delays, in seconds."""
    with _lock:
        return _backoff
