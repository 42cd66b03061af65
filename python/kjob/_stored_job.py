"""Handles of stored Jobs: a Job run by another process (or by none, an orphan) seen through
the store, and the adoption of orphans (what "resume after a crash" means here).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import pickle
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _config
from ._errors import ConflictError, NotFoundError
from ._keeper import TICK_SECONDS, keeper
from ._kjob import KjobError
from ._store import (
    Record,
    events_from_json,
    expire,
    my_owner,
    open_store,
    owner_alive,
    read_results,
    remove_record,
)
from ._types import Event, JobStatus, Pod

if TYPE_CHECKING:
    from ._job import Job
    from ._kjob import Store

__all__ = ["StoredChangeFeed", "StoredNative", "adopt", "get_job", "handle_of", "list_jobs", "owned_job"]


def owned_job(home: Path, namespace: str, name: str) -> Job | None:
    """This process's own Job of that name, when it runs it."""
    from . import _keeper

    running = _keeper.current()
    return None if running is None else running.owned(home, namespace, name)


class StoredChangeFeed:
    """A change feed for a Job of another process: readable when its row's version changes
    (polled every 0.1 s by a thread), as the native feed is after every change."""

    def __init__(self, store: Store, uid: str) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._closed = threading.Event()
        self._store = store
        self._uid = uid
        threading.Thread(target=self._poll, daemon=True, name="kjob-store-feed").start()

    def _poll(self) -> None:
        last: int | None = -1
        while not self._closed.wait(TICK_SECONDS):
            try:
                version = self._store.versions(None).get(self._uid)
            except Exception:  # noqa: BLE001
                version = None
            if version != last:
                last = version
                with contextlib.suppress(OSError):
                    os.write(self._w, b"x")
            if version is None:
                return

    def fileno(self) -> int:
        return self._r

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._r, 4096):
                pass

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            for fd in (self._r, self._w):
                with contextlib.suppress(OSError):
                    os.close(fd)


class StoredNative:
    """What a handle of a Job run by another process (or by none) uses in place of the
    extension's Job: state is read from the store, changes are requests to the owner, and an
    orphan is adopted (``resume()``) or changed in place."""

    def __init__(self, job: Job, real: Any, store: Store, home: Path, record: Record) -> None:
        self._job = weakref.ref(job)
        self._real = real
        self._store = store
        self._home = home
        self._uid = record.uid
        self._record: Record | None = record

    # What does not change with the state: the spec, the env references.
    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def fresh(self, with_pods: bool = False) -> Record | None:
        row = self._store.get_job_by_uid(self._uid, with_pods=with_pods)
        self._record = None if row is None else Record(row)
        return self._record

    def stored_manifest(self) -> dict[str, Any]:
        """The manifest as the owner last recorded it (``scale()``, ``suspend()`` change it)."""
        known = self._record
        # A Job deleted meanwhile keeps the manifest it had (the caller sees it is gone).
        record = self.fresh() or known
        if record is None:
            return {}
        manifest: dict[str, Any] = record.doc["manifest"]
        return manifest

    @property
    def started(self) -> bool:
        return True

    @property
    def deleted(self) -> bool:
        return self.fresh() is None

    @property
    def forked(self) -> bool:
        return False

    def status(self) -> JobStatus:
        record = self.fresh()
        return JobStatus() if record is None else record.status()

    def pods(self) -> list[Pod]:
        record = self.fresh(with_pods=True)
        return [] if record is None else record.pods()

    def events(self, involved_object: str, since: int = 0) -> tuple[list[Event], int]:
        # Batches are stored under their first event's number: read them all, keep the rest.
        return events_from_json(self._store.events(self._uid, 0), involved_object, since)

    def subscribe(self) -> StoredChangeFeed:
        return StoredChangeFeed(self._store, self._uid)

    def wait(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            record = self.fresh()
            if record is None or record.finished is not None or record.status().is_finished:
                return True
            if record.orphaned:
                raise KjobError(
                    f"Job {record.name!r} is orphaned: the process that ran it is gone; resume() "
                    "(or apply) adopts it in this process"
                )
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def delete(self, timeout: float | None = None, grace: int | None = None) -> bool:
        record = self.fresh()
        if record is None:
            return True
        if not owner_alive(record.owner):
            remove_record(self._store, record, self._home)
            return True
        body: dict[str, Any] = {"op": "delete"}
        if grace is not None:
            body["grace"] = grace
        self._store.push_request(self._uid, json.dumps(body))
        self._store.mark_deleting(self._uid)
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.fresh() is not None:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            record = self._record
            if record is not None and not owner_alive(record.owner):
                remove_record(self._store, record, self._home)
                return True
            time.sleep(0.05)
        return True

    def kill(self) -> None:
        self.delete(timeout=None, grace=0)

    def _ask_or_change(self, request: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> None:
        """A live owner is asked; an orphan's stored manifest is changed in place."""
        record = self.fresh()
        if record is None:
            raise NotFoundError(f'jobs.batch "{self._job_name()}" not found')
        if owner_alive(record.owner):
            self._store.push_request(self._uid, json.dumps(request))
            return
        doc = dict(record.doc)
        manifest = json.loads(json.dumps(doc["manifest"]))
        change(manifest.setdefault("spec", {}))
        doc["manifest"] = manifest
        if (
            self._store.update_job(
                self._uid, doc=pickle.dumps(doc, protocol=4), expected_version=record.version
            )
            is None
        ):
            raise ConflictError(
                f'Operation cannot be fulfilled on jobs.batch "{record.name}": the object has been '
                "modified; please apply your changes to the latest version and try again"
            )

    def _job_name(self) -> str:
        job = self._job()
        return job.name if job is not None else self._uid

    def adopt_if_orphaned(self) -> bool:
        """Adopts the Job when it is an orphan (see :func:`adopt`); says whether it did."""
        record = self.fresh()
        job = self._job()
        if record is None or job is None or not record.orphaned:
            return False
        adopt(job, record)
        return True

    def suspend(self, suspend: bool) -> None:
        self._ask_or_change(
            {"op": "suspend" if suspend else "resume"}, lambda spec: spec.__setitem__("suspend", suspend)
        )

    def scale(self, parallelism: int | None = None, completions: int | None = None) -> None:
        # Checked here as the owner would (the Kubernetes messages), before asking it.
        self._real.scale(parallelism, completions)

        def change(spec: dict[str, Any]) -> None:
            if parallelism is not None:
                spec["parallelism"] = parallelism
            if completions is not None:
                spec["completions"] = completions

        self._ask_or_change({"op": "scale", "parallelism": parallelism, "completions": completions}, change)

    def evict(self, pod_name: str) -> None:
        raise KjobError("evict() works in the process that runs the Job")

    def results(self, loads: Callable[[bytes], Any], indexed: bool) -> dict[int, Any] | list[Any]:
        record = self.fresh()
        path = None if record is None else record.doc.get("results_path")
        records = read_results(path) if path else []
        if indexed:
            by_index = {index: value for index, _, value in records if index is not None}
            return {index: loads(by_index[index]) for index in sorted(by_index)}
        return [loads(value) for _, _, value in records]

    def start(self) -> None:
        raise KjobError(f"Job {self._job_name()!r} has already been started")


def handle_of(record: Record, store: Store, home: Path) -> Job:
    """A handle of a stored Job."""
    from ._job import job_from_record

    job = job_from_record(
        record.doc, record.uid, _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
    )
    job._native = StoredNative(job, job._native, store, home, record)
    return job


def adopt(job: Job, record: Record) -> None:
    """Takes over an orphaned Job in this process: its pods that were active when the owner
    died are failed as pods of a lost node, completed indexes and results are kept, deadlines
    go on from the stored start time; then it runs here."""
    native = job._native
    if not isinstance(native, StoredNative):
        return
    store, home = native._store, native._home
    if not store.set_owner(record.uid, my_owner(), record.owner):
        raise ConflictError(
            f'Operation cannot be fulfilled on jobs.batch "{record.name}": another process adopted it first'
        )
    fresh = store.get_job_by_uid(record.uid, with_pods=True)
    if fresh is None:
        raise NotFoundError(f'jobs.batch "{record.name}" not found')
    record = Record(fresh)
    doc = record.doc
    real = native._real
    origin_wall = float(doc["origin_wall"])
    results_path = doc.get("results_path")
    results = read_results(results_path, repair=True) if results_path else []
    prior = prior_state(record.status(), record.pods(), results, origin_wall, doc)
    if doc["manifest"].get("spec", {}).get("suspend"):
        real.suspend(True)
    real.restore(prior, origin_wall, [(index, value) for index, _, value in results])
    if results_path:
        real.set_results_log(results_path)
    job._native = real
    job._origin_wall = origin_wall
    from ._job import start_adopted

    start_adopted(job, doc)
    keeper().keep(job, store, home)


def prior_state(
    status: JobStatus,
    pods: list[Pod],
    results: list[tuple[int | None, str, bytes]],
    origin_wall: float,
    doc: Mapping[str, Any],
) -> dict[str, Any]:
    """The dict the extension's ``restore`` reads: the stored status and pods, corrected by
    the results log. A callable Job's results log is the truth for its successes: a pod
    with a result succeeded (even if the last snapshot still showed it running), and one
    without was not counted complete."""

    def since(t: _dt.datetime | None) -> float | None:
        return None if t is None else max(0.0, t.timestamp() - origin_wall)

    callable_job = doc.get("callable") is not None
    with_result = {name: index for index, name, _ in results}
    indexed = (doc["manifest"].get("spec") or {}).get("completionMode") == "Indexed"
    prior_pods = []
    known = set()
    for pod in pods:
        known.add(pod.name)
        phase = pod.phase
        if callable_job:
            if pod.name in with_result:
                phase = "Succeeded"
            elif phase == "Succeeded":
                phase = "Running"  # counted nowhere durable: run again
        prior_pods.append(
            {
                "name": pod.name,
                "index": pod.index,
                "phase": phase,
                "exit_code": 0 if phase == "Succeeded" else pod.exit_code,
                "reason": pod.reason,
                "message": pod.message,
                "created": since(pod.creation_time) or 0.0,
                "started": since(pod.start_time),
                "finished": since(pod.finish_time) if phase in ("Succeeded", "Failed") else None,
                "deleted": since(pod.deletion_time) if phase in ("Succeeded", "Failed") else None,
                "restart_count": pod.restart_count,
                "index_failure_count": pod.index_failure_count,
                "index_ignored_failure_count": pod.index_ignored_failure_count,
                "attempt": pod.attempt,
                "conditions": [(c.type, c.reason, c.message) for c in pod.conditions if c.status == "True"],
                "node_name": pod.node_name,
            }
        )
    # Pods made and finished between two snapshots: known from their results only.
    for index, name, _ in results:
        if name not in known:
            known.add(name)
            prior_pods.append(
                {
                    "name": name,
                    "index": index,
                    "phase": "Succeeded",
                    "exit_code": 0,
                    "reason": None,
                    "message": None,
                    "created": 0.0,
                    "started": None,
                    "finished": None,
                    "deleted": None,
                    "restart_count": 0,
                    "index_failure_count": 0,
                    "index_ignored_failure_count": 0,
                    "attempt": 0,
                    "conditions": [],
                    "node_name": None,
                }
            )
    succeeded = status.succeeded
    completed = status.completed_indexes
    if callable_job:
        if indexed:
            indexes = sorted({index for index, _, _ in results if index is not None})
            # Listed one by one: the extension parses the list and writes Kubernetes' form.
            completed = ",".join(map(str, indexes))
            succeeded = len(indexes)
        else:
            succeeded = len(results)
    conditions = [
        (c.type, c.status == "True", c.reason, c.message, since(c.last_transition_time) or 0.0)
        for c in status.conditions
        if c.type not in ("Complete", "Failed")
    ]
    return {
        "succeeded": succeeded,
        "failed": status.failed,
        "completed_indexes": completed,
        "failed_indexes": status.failed_indexes,
        "start_time": since(status.start_time),
        "completion_time": None,
        "conditions": conditions,
        "pods": prior_pods,
    }


# ---- get, list, apply ------------------------------------------------------------------------


def get_job(name: str, namespace: str = "default") -> Job:
    home = _config.store_home()
    owned = owned_job(home, namespace, name)
    if owned is not None:
        return owned
    store = open_store(home)
    expire(store, home)
    row = store.get_job(namespace, name, with_pods=False)
    if row is None:
        raise NotFoundError(f'jobs.batch "{name}" not found')
    return handle_of(Record(row), store, home)


def list_jobs(namespace: str | None = None, labels: Mapping[str, str] | str | None = None) -> list[Job]:
    home = _config.store_home()
    store = open_store(home)
    expire(store, home)
    matches = _label_matcher(labels)
    jobs = []
    for row in store.list_jobs(namespace):
        record = Record(row)
        if not matches(record.labels):
            continue
        owned = owned_job(home, record.namespace, record.name)
        jobs.append(
            owned if owned is not None and owned.uid == record.uid else handle_of(record, store, home)
        )
    return jobs


def _label_matcher(labels: Mapping[str, str] | str | None) -> Callable[[Mapping[str, str]], bool]:
    """``labels`` as ``Job.list`` takes it (a mapping or a kubectl selector) as a test."""
    from ._selectors import selector_of

    return selector_of(labels).matches
