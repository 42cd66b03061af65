"""The keeper: one thread per process that records the Jobs this process owns in the store.

It pins every owned Job until it is finished (a dropped handle no longer kills a running Job),
writes its state in batches (at most once per tick, and less often for Jobs whose writes cost
more: a Job's writes take at most about a tenth of a core), carries out what other processes
ask of it (delete, suspend, resume, scale) within about a tick, and removes a deleted Job's
row and stored logs.
"""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._job import native_of, ttl_after_finished
from ._kjob import KjobError
from ._store import enforce_history_limit, forget, job_doc, my_owner
from ._types import JobStatus

if TYPE_CHECKING:
    from ._job import Job
    from ._kjob import Store

__all__ = ["Keeper", "keeper"]

#: The keeper's tick: requests from other processes are carried out within about this.
TICK_SECONDS = 0.1
#: A Job's state is written at most once per this many times the cost of its last write
#: (and once per tick): the store takes at most about a tenth of a core per busy Job.
WRITE_COST_FACTOR = 10


class _Kept:
    __slots__ = (
        "job",
        "store",
        "home",
        "last_status",
        "event_seq",
        "next_write",
        "dirty",
        "final",
        "finished_at",
        "manifest",
        "flushed_status",
    )

    def __init__(self, job: Job, store: Store, home: Path) -> None:
        self.job = job
        self.store = store
        self.home = home
        self.last_status: JobStatus | None = None
        self.event_seq = 0
        # The row was written as the Job started: the first snapshot waits a tick (a short
        # Job is recorded once, when it ends).
        self.next_write = time.monotonic() + TICK_SECONDS
        self.dirty = True
        self.final = False
        self.finished_at: float | None = None
        # The status flush() wrote last (the full record may lag behind it).
        self.flushed_status: JobStatus | None = None
        # The manifest as recorded when the Job started.
        self.manifest = job.manifest


class Keeper:
    """The thread that records this process's Jobs (see the module's comment)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._kept: dict[str, _Kept] = {}
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="kjob-store-keeper", daemon=True)
        self._thread.start()
        import atexit

        # Registered after the first Job's finalizer: runs before finalizers kill the pods at
        # exit, so the store keeps the Jobs as they were (resumable), not as being deleted.
        atexit.register(self.stop)

    def keep(self, job: Job, store: Store, home: Path) -> None:
        with self._lock:
            self._kept[job.uid] = _Kept(job, store, home)
        self._wake.set()

    def owned(self, home: Path, namespace: str, name: str) -> Job | None:
        with self._lock:
            for kept in self._kept.values():
                job = kept.job
                if kept.home == home and job.namespace == namespace and job.name == name:
                    return job
        return None

    def is_recording(self, uid: str) -> bool:
        """Whether the Job of ``uid`` still has state to record (it runs, or its final record
        is not written yet)."""
        with self._lock:
            return uid in self._kept

    def drop(self, uid: str) -> None:
        with self._lock:
            self._kept.pop(uid, None)

    def flush(self, job: Job) -> None:
        """``wait()`` and ``is_deleted``: the Job's status is written now (one small row), so
        that other processes see it finished as soon as this one does, and a deleted Job
        leaves the store now; its pods and events follow at the keeper's next tick."""
        try:
            self._flush(job)
        except (OSError, RuntimeError) as e:
            # As in the keeper's thread: the Job goes on, with its state in memory.
            _warn_store_error(job, e)
        self._wake.set()

    def _flush(self, job: Job) -> None:
        with self._lock:
            kept = self._kept.get(job.uid)
            if kept is None:
                return
            native = native_of(job)
            if native.deleted:
                self._sync(kept)
                return
            status = native.status()
            if status != kept.last_status and status != kept.flushed_status:
                kept.store.update_job(
                    job.uid,
                    status=pickle.dumps(status, protocol=pickle.HIGHEST_PROTOCOL),
                    finished=_finished_at(kept, status),
                )
                kept.flushed_status = status
                if status.is_finished:
                    # What a finished Job's record says at once: no owner, the history trimmed.
                    kept.store.set_owner(job.uid, None, my_owner())
                    enforce_history_limit(kept.store, kept.home)

    def stop(self) -> None:
        """At interpreter exit (before the pods are killed): Jobs that ended are recorded as
        they ended (a deleted one leaves the store); those still running are left as they
        were last recorded, to be adopted later."""
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        with self._lock:
            kept = list(self._kept.values())
            for one in kept:
                try:
                    native = native_of(one.job)
                    if native.deleted or native.status().is_finished:
                        self._sync(one, force=True)
                except Exception as e:  # noqa: BLE001 - exiting: say it, go on
                    _warn_store_error(one.job, e)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(TICK_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            with self._lock:
                kept = list(self._kept.values())
            for one in kept:
                with self._lock:
                    if self._stopping:
                        return
                    try:
                        self._sync(one)
                    except Exception as e:  # noqa: BLE001 - a store error must not stop the keeper
                        _warn_store_error(one.job, e)

    def _sync(self, kept: _Kept, force: bool = False) -> None:
        """Carries out the Job's requests, and records its state unless it was recorded less
        than a write's cost ago (see ``WRITE_COST_FACTOR``)."""
        job = kept.job
        native = native_of(job)
        if native.deleted:
            forget(job, kept.store, kept.home)
            return
        for body in kept.store.take_requests(job.uid):
            _carry_out(job, json.loads(body))
            kept.dirty = True
        if native.deleted or (kept.final and not force):
            return
        status = native.status()
        if not force and time.monotonic() < kept.next_write and not status.is_finished:
            return
        events, next_seq, count = native.stored_events(kept.event_seq)
        if not (kept.dirty or count or status != kept.last_status):
            return
        started = time.monotonic()
        # scale() and suspend() change the manifest: the stored one follows.
        manifest = job.manifest
        doc = None
        if manifest != kept.manifest:
            doc = pickle.dumps(job_doc(job), protocol=pickle.HIGHEST_PROTOCOL)
        # Events are stored in batches, each under the number of its first event.
        kept.store.update_job(
            job.uid,
            status=pickle.dumps(status, protocol=pickle.HIGHEST_PROTOCOL),
            pods=native.stored_pods(),
            finished=_finished_at(kept, status),
            doc=doc,
            events=[(next_seq - count, events)] if count else [],
        )
        if status.is_finished:
            kept.store.set_owner(job.uid, None, my_owner())
        cost = time.monotonic() - started
        # Only once written: a failed write sends the changed manifest again next time.
        kept.manifest = manifest
        kept.last_status = status
        kept.event_seq = next_seq
        kept.dirty = False
        kept.next_write = time.monotonic() + max(TICK_SECONDS, cost * WRITE_COST_FACTOR)
        if status.is_finished:
            kept.final = True
            enforce_history_limit(kept.store, kept.home)
            if ttl_after_finished(job) is None:
                # Finished and kept as is: nothing more to record; the handle is free to go.
                self.drop(job.uid)


def _finished_at(kept: _Kept, status: JobStatus) -> float | None:
    """When the Job finished (first seen finished), for the store's history order."""
    if status.is_finished and kept.finished_at is None:
        kept.finished_at = time.time()
    return kept.finished_at


_warned: set[str] = set()


def _warn_store_error(job: Job, error: Exception) -> None:
    if job.uid in _warned:
        return
    _warned.add(job.uid)
    import warnings

    from .manifest import KjobWarning

    warnings.warn(
        f"job.batch/{job.name}: cannot record the Job in the store: {error}; it keeps running in this "
        "process, but other processes may not see its latest state",
        KjobWarning,
        stacklevel=1,
    )


_keeper: Keeper | None = None
_keeper_lock = threading.Lock()


def keeper() -> Keeper:
    """This process's keeper, started on first use."""
    global _keeper
    with _keeper_lock:
        if _keeper is None:
            _keeper = Keeper()
        return _keeper


def current() -> Keeper | None:
    """This process's keeper if it runs (none before its first stored Job)."""
    return _keeper


def _forget_keeper_after_fork() -> None:
    # Its thread is the parent's: a forked child owns no Job and starts its own keeper.
    global _keeper, _keeper_lock
    _keeper = None
    _keeper_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_keeper_after_fork)


def _carry_out(job: Job, request: Mapping[str, Any]) -> None:
    """A request from another process, carried out by the owner."""
    op = request.get("op")
    try:
        if op == "delete":
            if request.get("grace") == 0:
                native_of(job).kill()
            else:
                native_of(job).delete(timeout=0)
        elif op == "suspend":
            job.suspend()
        elif op == "resume":
            job.resume()
        elif op == "scale":
            job.scale(request.get("parallelism"), request.get("completions"))
    except (KjobError, ValueError) as e:
        _warn_store_error(job, e)
