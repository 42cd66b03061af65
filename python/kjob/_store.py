"""Durable Jobs: the embedded store and what its rows hold.

The database (``$KJOB_HOME/kjob.db``) is SQLite, driven by the extension's
:class:`kjob._kjob.Store`. A row per Job (``namespace/name``) holds what this module pickles:

- ``doc``: how to make the Job again (its manifest, a callable's pickled worker payload,
  backoff delays, log folder, results log, the wall time of its controller's time 0);
- ``status``, ``pods``: the latest :class:`JobStatus` and pod list of the owning process;
- ``events`` (a table): the Job's events, numbered as the controller numbers them;
- ``owner``: the process that runs it (pid, start time, boot id), None once finished;
- ``requests`` (a table): what other processes ask of it (delete, suspend, resume, scale),
  carried out by the owner's keeper (``_keeper.py``) as a controller acts on API writes.

Callable pods' results are not written here: the runtime appends them to a results log
beside the logs before a pod counts (``src/runtime/results_log.rs``); resuming reads it back
(:func:`read_results`). Handles of stored Jobs and adoption are in ``_stored_job.py``,
``apply`` in ``_apply.py``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import pickle
import shutil
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _config
from ._errors import AlreadyExistsError, KjobOSError
from ._job import created_at, has_stored_logs, job_record_parts, native_of, origin_wall, runs_callable
from ._kjob import KjobError
from ._types import Event, JobStatus, Pod

if TYPE_CHECKING:
    from ._job import Job
    from ._kjob import Store

__all__ = [
    "Record",
    "expire",
    "forget",
    "my_owner",
    "open_store",
    "owner_alive",
    "read_results",
    "record_start",
    "remove_record",
    "utc_of",
]

#: The database's file name under the store's home.
DB_NAME = "kjob.db"
#: Version of what ``doc`` holds.
DOC_FORMAT = 1


# ---- the database ----------------------------------------------------------------------------

_stores: dict[str, Store] = {}
#: Stores kept open per process (the oldest opened is let go first).
_OPEN_STORES = 4
_stores_lock = threading.Lock()


def open_store(home: Path | None = None) -> Store:
    """The store under ``home`` (default: the configured one), opened once per process."""
    from ._kjob import Store

    home = _config.store_home() if home is None else home
    path = str(home / DB_NAME)
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            try:
                home.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise KjobOSError(
                    f"kjob store {path}: cannot create its folder {str(home)!r}: {e.strerror}",
                    e.errno,
                    str(home),
                ) from None
            store = Store(path)
            _stores[path] = store
            # A few homes at most stay open (tests make one per test): a store dropped here
            # closes once no kept Job uses it.
            while len(_stores) > _OPEN_STORES:
                del _stores[next(iter(_stores))]
        return store


def _forget_stores_after_fork() -> None:
    # A connection must not cross a fork: the child opens its own.
    global _stores_lock, _deferred_lock
    _stores.clear()
    _stores_lock = threading.Lock()
    # Another thread (the keeper removing a deleted Job's logs) may hold it at the fork.
    _deferred_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_stores_after_fork)


# ---- who owns a Job ----------------------------------------------------------------------------


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


_me: str | None = None


def my_owner() -> str:
    """This process as a Job's owner: pid, start time and boot id (a pid is reused, a start
    time after a reboot too)."""
    global _me
    pid = os.getpid()
    if _me is None or json.loads(_me)["pid"] != pid:
        _me = json.dumps({"pid": pid, "start": _start_ticks(pid), "boot": _boot_id()})
    return _me


def owner_alive(owner: str | None) -> bool:
    """Whether the process recorded as ``owner`` still runs."""
    if not owner:
        return False
    try:
        who = json.loads(owner)
        pid = int(who["pid"])
    except (ValueError, KeyError, TypeError):
        return False
    if who.get("boot") != _boot_id():
        return False
    return bool(_start_ticks(pid) == who.get("start"))


# ---- results logs ----------------------------------------------------------------------------

_RECORD_HEAD = struct.Struct("<2sBIH")


def read_results(path: str, *, repair: bool = False) -> list[tuple[int | None, str, bytes]]:
    """The records of a results log (see ``src/runtime/results_log.rs``): ``(index, pod name,
    pickled value)``. A record cut short by a crash ends the list; ``repair=True`` cuts it
    off the file, so that new records follow whole ones."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    records: list[tuple[int | None, str, bytes]] = []
    at = 0
    while at + _RECORD_HEAD.size <= len(data):
        magic, flags, index, name_len = _RECORD_HEAD.unpack_from(data, at)
        start = at + _RECORD_HEAD.size
        if magic != b"KR" or start + name_len + 4 > len(data):
            break
        name = data[start : start + name_len].decode("utf-8", "replace")
        (size,) = struct.unpack_from("<I", data, start + name_len)
        value_at = start + name_len + 4
        if value_at + size > len(data):
            break
        records.append((index if flags & 1 else None, name, data[value_at : value_at + size]))
        at = value_at + size
    if repair and at < len(data):
        with open(path, "r+b") as f:
            f.truncate(at)
    return records


# ---- what a row holds ------------------------------------------------------------------------


class Record:
    """A Job's row, its pickles opened on demand."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        self.row = row
        self.uid: str = row["uid"]
        self.namespace: str = row["namespace"]
        self.name: str = row["name"]
        self.created: float = row["created"]
        self.finished: float | None = row["finished"]
        self.owner: str | None = row["owner"]
        self.version: int = row["version"]
        self.deleting: bool = bool(row["deleting"])
        self.labels: dict[str, str] = json.loads(row["labels"] or "{}")
        self._doc: dict[str, Any] | None = None

    @property
    def doc(self) -> dict[str, Any]:
        if self._doc is None:
            doc = pickle.loads(self.row["doc"])
            if not isinstance(doc, dict) or doc.get("format") != DOC_FORMAT:
                raise KjobError(
                    f"job {self.namespace}/{self.name}: stored by another kjob version (record format "
                    f"{doc.get('format') if isinstance(doc, dict) else '?'}, this kjob reads {DOC_FORMAT})"
                )
            self._doc = doc
        return self._doc

    def status(self) -> JobStatus:
        blob = self.row["status"]
        return pickle.loads(blob) if blob else JobStatus()

    def pods(self) -> list[Pod]:
        blob = self.row.get("pods")
        return pods_from_json(blob) if blob else []

    @property
    def orphaned(self) -> bool:
        """Unfinished, and its owner is gone (or it never had one)."""
        return self.finished is None and not owner_alive(self.owner)


def utc_of(t: float | None) -> _dt.datetime | None:
    """Epoch seconds as a UTC datetime (None stays None)."""
    return None if t is None else _dt.datetime.fromtimestamp(t, _dt.timezone.utc)


#: The pods' own labels and annotations (``src/controller/labels.rs``).
_INDEX_KEY = "batch.kubernetes.io/job-completion-index"
_FAILURES_KEY = "batch.kubernetes.io/job-index-failure-count"
_IGNORED_KEY = "batch.kubernetes.io/job-index-ignored-failure-count"


def pods_from_json(blob: bytes) -> list[Pod]:
    """The pods as the owner recorded them (``src/python/stored_rows.rs``: one JSON array per
    pod, what pods share once per list)."""
    from ._types import PodCondition, exception_text

    stored = json.loads(blob)
    job_labels = dict(stored["job_labels"])
    job_annotations = dict(stored["job_annotations"])
    host = stored["host"]
    counts_per_index = stored["counts_per_index"]
    log_paths = stored["log_paths"]
    pods = []
    for (
        name,
        index,
        phase,
        exit_code,
        restart_count,
        start_time,
        finish_time,
        creation_time,
        deletion_time,
        counted_as,
        log_path,
        log_range,
        pid,
        reason,
        message,
        failures,
        ignored,
        attempt,
        conditions,
        exception,
        container_exit_codes,
        failed_container,
        node_name,
    ) in stored["pods"]:
        labels, annotations = job_labels, job_annotations
        if index is not None:
            labels = {**job_labels, _INDEX_KEY: str(index)}
            annotations = {**job_annotations, _INDEX_KEY: str(index)}
            if counts_per_index:
                annotations[_FAILURES_KEY] = str(failures)
                if ignored:
                    annotations[_IGNORED_KEY] = str(ignored)
        pods.append(
            Pod(
                name,
                index,
                phase,
                exit_code,
                restart_count,
                utc_of(start_time),
                utc_of(finish_time),
                log_paths[log_path],
                pid,
                dict(labels),
                dict(annotations),
                reason,
                message,
                failures,
                ignored,
                [PodCondition(*c) for c in conditions],
                attempt,
                None if exception is None else exception_text(*exception),
                None if log_range is None else (log_range[0], log_range[1]),
                dict(container_exit_codes),
                failed_container,
                node_name or host,
                utc_of(creation_time),
                utc_of(deletion_time),
                counted_as,
            )
        )
    return pods


def events_from_json(
    rows: list[tuple[int, bytes]], involved_object: str, since: int
) -> tuple[list[Event], int]:
    """Events numbered ``since`` and later from the stored batches, and the next number."""
    events: list[Event] = []
    next_seq = since
    for _, body in rows:
        for seq, type_, reason, message, at in json.loads(body):
            if seq >= since:
                events.append(Event(type_, reason, message, utc_of(at), involved_object))
                next_seq = seq + 1
    return events, next_seq


def _labels_of(manifest: Mapping[str, Any]) -> dict[str, str]:
    metadata = manifest.get("metadata") or {}
    return dict(metadata.get("labels") or {})


def job_doc(job: Job) -> dict[str, Any]:
    """What it takes to make ``job`` again in another process."""
    results_path = str(Path(job.log_dir) / "results.bin") if runs_callable(job) else None
    return {
        "format": DOC_FORMAT,
        "results_path": results_path,
        "origin_wall": origin_wall(job),
        **job_record_parts(job),
    }


def job_logs_folder(home: Path, namespace: str, name: str, uid: str) -> Path:
    """Where a stored Job's logs (and results log) live: removed with the Job."""
    return home / "logs" / namespace / f"{name}-{uid[:8]}"


# ---- creating, forgetting --------------------------------------------------------------------


def record_start(job: Job, home: Path) -> Store:
    """Records ``job`` as it starts (before any pod runs): raises AlreadyExistsError when its
    name is taken, ``OSError`` when the store cannot be written."""
    store = open_store(home)
    expire(store, home)
    doc = job_doc(job)
    results_path = doc["results_path"]
    created = created_at(job).timestamp()
    labels = json.dumps(_labels_of(job.manifest))
    inserted = store.insert_job(
        job.uid, job.namespace, job.name, created, labels, pickle.dumps(doc, protocol=4), my_owner()
    )
    if not inserted:
        raise AlreadyExistsError(f'jobs.batch "{job.name}" already exists')
    if results_path is not None:
        Path(job.log_dir).mkdir(parents=True, exist_ok=True)
        native_of(job).set_results_log(results_path)
    return store


# Folders of deleted Jobs whose removal waits for the end of a `logs_held()` block.
_deferred: list[list[str]] = []
_deferred_lock = threading.Lock()


@contextlib.contextmanager
def logs_held() -> Iterator[None]:
    """Within this block, the stored logs of Jobs deleted (say by a ``ttlSecondsAfterFinished``
    of 0) stay until the block ends: ``kjob run --logs`` prints a Job's last lines after the
    Job is gone, as ``kubectl logs`` reads a pod that is terminating."""
    held: list[str] = []
    with _deferred_lock:
        _deferred.append(held)
    try:
        yield
    finally:
        with _deferred_lock:
            _deferred.remove(held)
        for path in held:
            shutil.rmtree(path, ignore_errors=True)


def remove_logs(path: str) -> None:
    """Removes a deleted Job's stored log folder (at the end of a :func:`logs_held` block)."""
    with _deferred_lock:
        if _deferred:
            _deferred[-1].append(path)
            return
    shutil.rmtree(path, ignore_errors=True)


def forget(job: Job, store: Store, home: Path) -> None:
    """A deleted Job leaves the store, and its stored logs go with it."""
    from ._keeper import current

    store.delete_job(job.uid)
    running = current()
    if running is not None:
        running.drop(job.uid)
    if has_stored_logs(job):
        remove_logs(job.log_dir)


def remove_record(store: Store, record: Record, home: Path) -> None:
    store.delete_job(record.uid)
    try:
        doc = record.doc
    except Exception:  # noqa: BLE001 - an unreadable record is deleted all the same
        return
    if doc.get("stored_logs"):
        remove_logs(doc["log_dir"])


def enforce_history_limit(store: Store, home: Path) -> None:
    """The store keeps at most ``history_limit`` finished Jobs: the oldest go first."""
    for uid in store.finished_beyond(_config.history_limit()):
        row = store.get_job_by_uid(uid, with_pods=False)
        if row is not None:
            remove_record(store, Record(row), home)


# Finished Jobs seen without a TTL (their records need no second look).
_without_ttl: set[str] = set()


def expire(store: Store, home: Path) -> None:
    """``ttlSecondsAfterFinished`` of finished Jobs whose process is gone: the TTL controller's
    work, done when the store is read (a live owner's controller does its own)."""
    now = time.time()
    for row in store.list_jobs(None):
        if row["finished"] is None or row["uid"] in _without_ttl:
            continue
        record = Record(row)
        try:
            ttl = record.doc.get("ttl")
        except KjobError:
            continue
        if ttl is None:
            # A Job's TTL never changes: its record is not opened again by this process.
            _without_ttl.add(record.uid)
        elif record.finished is not None and now >= record.finished + ttl:
            if not owner_alive(record.owner):
                remove_record(store, record, home)


# ---- handles of stored Jobs ------------------------------------------------------------------


def forget_if_recorded(job: Job, home: Path) -> None:
    """After ``delete()`` of a Job this process ran: its row and stored logs go."""
    store = open_store(home)
    row = store.get_job_by_uid(job.uid, with_pods=False)
    if row is not None:
        forget(job, store, home)
    elif has_stored_logs(job):
        remove_logs(job.log_dir)
