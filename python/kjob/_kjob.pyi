"""The native extension behind kjob. Use :class:`kjob.Job`, not this module."""

from collections.abc import Mapping, Sequence
from typing import Any, Callable, ClassVar, Final, final

from typing_extensions import Self

from kjob._types import Event, JobStatus, NativeSpec, Pod

__all__ = [
    "DEFAULT_BACKOFF_INITIAL_SECONDS",
    "DEFAULT_BACKOFF_MAX_SECONDS",
    "GENERATED_NAME_ALPHABET",
    "GENERATED_NAME_SUFFIX_LENGTH",
    "JOB_UID_ENV",
    "MAX_GENERATED_NAME_LENGTH",
    "OWNERS_ENV",
    "SESSION_ENV",
    "SHEPHERD_ENV",
    "Agent",
    "ChangeFeed",
    "KjobError",
    "NativeJob",
    "RemoteNodes",
    "Store",
    "after_fork_in_child",
    "after_fork_in_parent",
    "before_fork",
    "check_env_sources",
    "check_int",
    "check_job_kind",
    "check_seconds",
    "kill_all_jobs",
    "prune_manifest",
    "set_session_token",
    "shutdown_workers",
    "simulate_job",
    "sweep_session",
]

#: Kubernetes' delay before a failed pod is first replaced (it doubles with each failure).
DEFAULT_BACKOFF_INITIAL_SECONDS: Final[float]
#: The cap of that delay.
DEFAULT_BACKOFF_MAX_SECONDS: Final[float]
#: The alphabet of the random suffix of generated names (``generateName``).
GENERATED_NAME_ALPHABET: Final[str]
#: How many random characters a generated name gets.
GENERATED_NAME_SUFFIX_LENGTH: Final[int]
#: A ``generateName`` prefix is cut to this length, so the name fits in 63 characters.
MAX_GENERATED_NAME_LENGTH: Final[int]
#: The variable naming its Job's UID, on every pod process (``KJOB_JOB_UID``).
JOB_UID_ENV: Final[str]
#: The variable holding the interpreter's session token, on every pod and worker process.
SESSION_ENV: Final[str]
#: The variable listing the enclosing Jobs and sessions, on every pod and worker process.
OWNERS_ENV: Final[str]
#: The variable listing the owners a shepherd watches for, on the shepherd only.
SHEPHERD_ENV: Final[str]

class KjobError(Exception):
    """Base class of kjob's own errors."""

@final
class ChangeFeed:
    """A file descriptor that becomes readable after each change of its Job."""
    def fileno(self) -> int: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

@final
class Agent:
    """A kjob agent listening on TCP: it runs the pods that Jobs elsewhere send it."""
    def __new__(cls, host: str, port: int, worker_argv: list[str], log_root: str) -> Agent: ...
    @property
    def address(self) -> str: ...
    @property
    def sessions(self) -> int: ...
    def kill_all(self) -> None: ...

@final
class RemoteNodes:
    """A Job's connections to its agents."""
    def lose(self, node: str) -> bool: ...
    def fail(self, reason: str) -> None: ...

@final
class Store:
    """The durable store of Jobs: one SQLite file of opaque records (the caller decides what
    the bytes mean). Every write is one transaction; SQLite and file-system failures raise
    ``OSError(errno, "kjob store {path}: ...")`` and leave the file unchanged; a file of a newer
    kjob, or not a kjob store, raises ``RuntimeError``; a closed store raises ``ValueError``.
    Every method releases the GIL; one object serves several threads.

    A job is a dict with the keys ``uid``, ``namespace``, ``name``, ``created`` (float),
    ``finished`` (float or None), ``labels`` (JSON object text), ``owner`` (str or None),
    ``doc`` (bytes), ``status`` and ``pods`` (bytes or None), ``version`` (int, bumped by each
    write) and ``deleting`` (bool)."""

    SCHEMA_VERSION: ClassVar[int]
    def __new__(cls, path: str, busy_timeout: float = 5.0) -> Self:
        """Opens the store at ``path``, creating the file (not its folder) when absent, and
        migrates an older schema; waits up to ``busy_timeout`` seconds for another process's
        lock before raising ``OSError(EBUSY)``."""
    @property
    def path(self) -> str: ...
    def insert_job(
        self, uid: str, namespace: str, name: str, created: float, labels: str, doc: bytes, owner: str | None
    ) -> bool:
        """Records a new job at version 1; False (and nothing written) when ``namespace/name``
        exists already."""
    def get_job(self, namespace: str, name: str, *, with_pods: bool = True) -> dict[str, Any] | None:
        """The job ``namespace/name``, or None; ``pods`` is None unless ``with_pods``."""
    def get_job_by_uid(self, uid: str, *, with_pods: bool = True) -> dict[str, Any] | None:
        """The job with this UID, or None; ``pods`` is None unless ``with_pods``."""
    def list_jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every job (of a namespace, or all), ordered by namespace then name; ``pods`` is None."""
    def update_job(
        self,
        uid: str,
        *,
        status: bytes | None = None,
        pods: bytes | None = None,
        finished: float | None = None,
        doc: bytes | None = None,
        labels: str | None = None,
        events: Sequence[tuple[int, bytes]] = (),
        expected_version: int | None = None,
    ) -> int | None:
        """One transaction: sets the given columns (None leaves one as it is), inserts the
        ``(seq, body)`` events (one already stored under its seq is kept), bumps and returns
        the new version. None, and nothing written, when the job does not exist or
        ``expected_version`` is given and differs."""
    def set_owner(self, uid: str, owner: str | None, expected: str | None) -> bool:
        """Sets the owner when the stored one equals ``expected`` (None equals None); bumps the
        version. False when it differs or the job is gone."""
    def mark_deleting(self, uid: str) -> bool:
        """Sets ``deleting``, bumps the version; False when the job is gone."""
    def delete_job(self, uid: str) -> bool:
        """Removes the job, its events and its requests; False when it was not stored."""
    def events(self, uid: str, since: int = 0) -> list[tuple[int, bytes]]:
        """The job's ``(seq, body)`` events with ``seq >= since``, in seq order."""
    def push_request(self, uid: str, body: str) -> int:
        """Queues a request for the job's owner; returns its id."""
    def take_requests(self, uid: str) -> list[str]:
        """The job's queued requests, oldest first, removed in the same transaction."""
    def versions(self, namespace: str | None = None) -> dict[str, int]:
        """UID -> version of every job (of a namespace, or all): cheap polling for changes."""
    def finished_beyond(self, limit: int) -> list[str]:
        """UIDs of the finished jobs beyond the newest ``limit`` by finish time, oldest first."""
    def integrity_check(self) -> str:
        """The first row of SQLite's integrity check: ``"ok"`` when the file is sound."""
    def close(self) -> None:
        """Closes the connection; later calls raise ValueError. Closing twice is harmless."""

@final
class NativeJob:
    def __new__(
        cls,
        manifest: dict[str, Any],
        uid: str,
        log_dir: str,
        backoff_initial_seconds: float,
        backoff_max_seconds: float,
        owns_log_dir: bool = False,
        env_sources: list[dict[str, Any]] | None = None,
    ) -> Self: ...
    def missing_env_references(self) -> list[str]:
        """The container's env references that no ConfigMap or Secret given with the Job
        satisfies, in the kubelet's words: its pods would wait in ``CreateContainerConfigError``."""
    def start(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def delete(self, timeout: float | None = None) -> bool: ...
    def kill(self) -> None: ...
    def suspend(self, suspend: bool) -> None: ...
    def set_callable(
        self, worker_argv: list[str], init: bytes, max_workers: int, reuse_workers: bool = True
    ) -> None: ...
    def set_remote(
        self,
        agents: list[tuple[str, str, int]],
        init: bytes | None = None,
        reuse_workers: bool = True,
        connect_timeout: float = 10.0,
    ) -> RemoteNodes:
        """Makes the pods run on remote agents, ``(node, address, capacity)`` each (before
        ``start()``); raises ``KjobError`` when none can be reached."""
    def stored_pods(self) -> bytes:
        """Every pod as the store records it: JSON (see ``src/python/stored_rows.rs``)."""
    def stored_events(self, since: int) -> tuple[bytes, int, int]:
        """The events numbered ``since`` and later as the store records them (JSON rows
        ``[seq, type, reason, message, time]``), the number of the next one, and how many."""
    def set_results_log(self, path: str) -> None:
        """Appends every succeeded pod's pickled result to the file at ``path`` before the pod
        counts (a stored callable Job). Before ``start()``."""
    def restore(
        self, prior: dict[str, Any], origin_wall: float, results: list[tuple[int | None, bytes]]
    ) -> None:
        """Takes over a stored Job before ``start()``: its status and pods (times in seconds
        from ``origin_wall``, the epoch seconds of its time 0) and its stored results."""
    def results(self, loads: Callable[[bytes], Any], indexed: bool) -> dict[int, Any] | list[Any]: ...
    def evict(self, pod_name: str) -> None: ...
    def scale(self, parallelism: int | None = None, completions: int | None = None) -> None:
        """Changes ``parallelism`` and (Indexed Jobs, in tandem) ``completions``. Raises ``TypeError``
        for a value that is not an int, ``ValueError`` with the Kubernetes message otherwise."""
    def events(self, involved_object: str, since: int = 0) -> tuple[list[Event], int]:
        """``(events numbered since and later, the next number)``: watchers pass the number back.
        Each is a ``kjob.Event`` about ``involved_object`` (``Job/<namespace>/<name>``)."""
    def subscribe(self) -> ChangeFeed: ...
    @property
    def started(self) -> bool: ...
    @property
    def deleted(self) -> bool: ...
    @property
    def forked(self) -> bool:
        """Whether the Job was made by the parent of a fork (every other call then raises)."""
    def spec(self) -> NativeSpec:
        """The defaulted spec, as the controller runs it."""
    def status(self) -> JobStatus:
        """A ``kjob.JobStatus`` (not yet linked to its ``kjob.Job``)."""
    def pods(self) -> list[Pod]:
        r"""Every pod, oldest first, as ``kjob.Pod``\ s."""

def check_env_sources(documents: list[dict[str, Any]]) -> None:
    """Checks ConfigMaps and Secrets as the API server would store them (keys, names, a
    Secret's base64 ``data``); raises ``ValueError`` naming the document and field."""

def check_int(name: str, value: object) -> int | None:
    """``value`` itself if it is an int (not a bool) or None; else ``TypeError``. The Job's integer
    keywords and ``scale()`` share this check."""

def check_seconds(name: str, value: object) -> float:
    """``value`` as a number of seconds (an int or a float, finite, >= 0): ``TypeError`` for another
    type, ``ValueError`` for another number."""

def check_job_kind(manifest: Mapping[str, Any], where_: str | None = None) -> None:
    """Refuses a document that is not a ``batch/v1`` Job (a missing ``apiVersion`` or ``kind`` is
    taken for one); ``where_`` (a file name) prefixes the message."""

def prune_manifest(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``(the manifest without the fields kjob does not honour, their paths)``; what the API server
    writes (``status``, ``metadata.uid``, a generated selector, ...) is dropped without being listed.
    Decoding is as strict as ``kubectl apply``'s: a field Kubernetes' type does not have
    (``strict decoding error: unknown field "spec.backofLimit"``, with a "did you mean" line when
    one field is close) and a value of the wrong type (``spec.parallelism: Invalid value:
    "string": spec.parallelism in body must be of type integer: "string"``) raise one
    ``ValueError`` that also lists the validation errors of the rest of the document.
    ``manifest`` is the caller's private copy: its labels are edited in place."""

def kill_all_jobs() -> None: ...
def sweep_session(token: str) -> int:
    """The shepherd's sweep of a dead interpreter's session (``_shepherd.py``): SIGKILL to every
    process that carries the session token, then a wait for the nested interpreters' shepherds.
    Returns how many processes were signalled."""

def shutdown_workers() -> int: ...
def simulate_job(
    job: NativeJob,
    outcome: Callable[[int | None, int], tuple[int, list[str] | None, bool, float | None]],
    start: float,
    max_pods: int = 10_000_000,
    max_seconds: float = 31_536_000.0,
) -> tuple[
    JobStatus,
    list[Event],
    list[tuple[int | None, int, str, float, float | None, str, str]],
    float,
    str,
    bool,
]:
    """Runs ``job``'s validated spec on a virtual clock (``kjob.simulate``): ``outcome(index,
    attempt)`` gives ``(exit_code, exception_types, disruption, duration)`` per container run.
    Returns ``(status, events, rows, end, stop, deleted)``, rows ``(index, attempt, pod,
    created, finished, phase, counted_as)`` in virtual seconds."""

def set_session_token(token: str) -> None: ...
def before_fork() -> None: ...
def after_fork_in_parent() -> None: ...
def after_fork_in_child() -> None: ...
