"""Process-wide defaults for Jobs created afterwards (:func:`kjob.configure`)."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

from ._kjob import DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS, check_seconds

__all__ = ["configure", "default_backoff", "store_home", "store_enabled", "history_limit"]

#: Finished Jobs the store keeps at most (the oldest go first), unless configured.
DEFAULT_HISTORY_LIMIT = 1000

_lock = threading.Lock()
# Kubernetes' pod replacement delays (10 s doubling, capped at 10 min) until configured.
_backoff = (DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS)
# None: from the environment (KJOB_HOME, KJOB_STORE, KJOB_HISTORY_LIMIT), read when used.
_home: Path | None = None
_store: bool | None = None
_history_limit: int | None = None


def _new_lock_after_fork() -> None:
    # Another thread (the store's keeper reads these settings) may hold it at a fork.
    global _lock
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_after_fork)


def configure(
    *,
    backoff_initial_seconds: float | None = None,
    backoff_max_seconds: float | None = None,
    home: str | os.PathLike[str] | None = None,
    store: bool | None = None,
    history_limit: int | None = None,
) -> None:
    """Sets process-wide defaults for the Jobs created after this call.

    ``backoff_initial_seconds`` is the delay before a failed pod is replaced the first time
    (it doubles with each failure) and ``backoff_max_seconds`` caps it; Kubernetes' 10 s and
    600 s stay the defaults until set. A Job's own ``backoff_*_seconds`` arguments, and a
    manifest's ``kjob.io/backoff-*`` annotations, still win.

    ``home`` is the folder of the Job store and of stored Jobs' logs (default ``$KJOB_HOME``,
    else ``$XDG_STATE_HOME/kjob``, i.e. ``~/.local/state/kjob``). ``store=False`` keeps Jobs
    in this process only, as ``KJOB_STORE=0`` does: nothing is written, and a Job lives and
    dies with its Python object. ``history_limit`` is how many finished Jobs the store keeps
    (default ``$KJOB_HISTORY_LIMIT``, else 1000; the oldest are deleted first).

    A keyword left out (or None) keeps its current value. Raises ``TypeError``/``ValueError``
    for a bad value, and changes nothing then.

    >>> import kjob
    >>> kjob.configure(backoff_initial_seconds=0.1, backoff_max_seconds=5)
    """
    global _backoff, _home, _store, _history_limit
    if store is not None and not isinstance(store, bool):
        raise TypeError(f"store must be True or False, not {type(store).__name__}")
    if history_limit is not None:
        _check_history_limit(history_limit, "history_limit")
    new_home = None
    if home is not None:
        from pathlib import Path  # not at import: `import kjob` stays light (issue 14 §5)

        new_home = Path(os.fspath(home)).expanduser().absolute()
    with _lock:
        initial, maximum = _backoff
        if backoff_initial_seconds is not None:
            initial = check_seconds("backoff_initial_seconds", backoff_initial_seconds)
        if backoff_max_seconds is not None:
            maximum = check_seconds("backoff_max_seconds", backoff_max_seconds)
        _backoff = (initial, maximum)
        if new_home is not None:
            _home = new_home
        if store is not None:
            _store = store
        if history_limit is not None:
            _history_limit = history_limit


def _check_history_limit(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{what} must be >= 0, got {value}")
    return value


def default_backoff() -> tuple[float, float]:
    """The configured (initial, max) replacement delays, in seconds."""
    with _lock:
        return _backoff


def store_home() -> Path:
    """The store's folder: configured, else ``$KJOB_HOME``, else ``$XDG_STATE_HOME/kjob``."""
    from pathlib import Path

    with _lock:
        if _home is not None:
            return _home
    env = os.environ.get("KJOB_HOME")
    if env:
        return Path(env).expanduser().absolute()
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(state).absolute() / "kjob"


def store_enabled() -> bool:
    """Whether Jobs are recorded in the store (``configure(store=...)``, else ``KJOB_STORE``
    unless it is ``0``/``false``/``no``/``off``)."""
    with _lock:
        if _store is not None:
            return _store
    return os.environ.get("KJOB_STORE", "1").strip().lower() not in ("0", "false", "no", "off")


def history_limit() -> int:
    """Finished Jobs the store keeps at most."""
    with _lock:
        if _history_limit is not None:
            return _history_limit
    env = os.environ.get("KJOB_HISTORY_LIMIT")
    if env is None or not env.strip():
        return DEFAULT_HISTORY_LIMIT
    try:
        return _check_history_limit(int(env), "KJOB_HISTORY_LIMIT")
    except (TypeError, ValueError) as e:
        raise ValueError(f"KJOB_HISTORY_LIMIT={env!r}: must be an int >= 0") from e
