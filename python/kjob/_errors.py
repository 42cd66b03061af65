"""kjob's exceptions that Python defines: :class:`KjobOSError`. (``KjobError``, their base, is
defined by the extension; ``src/python/errors.rs`` maps each Rust error to its class.)"""

from __future__ import annotations

import os

from ._kjob import KjobError

__all__ = ["AlreadyExistsError", "ConflictError", "KjobOSError", "NotFoundError"]


class KjobOSError(KjobError, OSError):
    """An operating-system error kjob met on the Job's behalf (its log folder could not be
    made, ...). Both a :class:`KjobError`, so ``except kjob.KjobError`` catches it, and an
    :class:`OSError` with ``errno``, ``strerror`` and ``filename``; its message is kjob's,
    which says what kjob was doing."""

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.strerror = os.strerror(errno) if errno is not None else None
        self.filename = filename

    def __str__(self) -> str:
        # OSError would print "[Errno N] strerror: 'filename'" and lose what kjob was doing.
        return str(self.args[0]) if self.args else ""

    def __reduce__(self) -> tuple[type[KjobOSError], tuple[str, int | None, str | None]]:
        # Exceptions pickle their args only; errno and filename must cross a process too.
        return (type(self), (str(self), self.errno, self.filename))


class AlreadyExistsError(KjobError):
    """A Job of that namespace and name exists already (Kubernetes' ``AlreadyExists``):
    ``jobs.batch "etl" already exists``. Delete it first, or use :meth:`kjob.Job.apply`."""


class NotFoundError(KjobError, LookupError):
    """No stored Job of that namespace and name (Kubernetes' ``NotFound``):
    ``jobs.batch "etl" not found``."""


class ConflictError(KjobError):
    """Another process changed or took over the Job at the same moment (Kubernetes'
    ``Conflict``): read it again and retry."""


# Shown and pickled as the public name it is exported under.
for _class in (KjobOSError, AlreadyExistsError, NotFoundError, ConflictError):
    _class.__module__ = "kjob"
