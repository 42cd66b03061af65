"""Following a Job as it changes: ``job.watch()``, ``job.watch_async()``, ``wait_async``.

The native Job hands out a change feed: a file descriptor that becomes readable after each
change. Sync code waits on it with ``poll`` (Ctrl-C interrupts it); asyncio code registers
it with the event loop, so an await parks no thread and cancelling it leaves nothing behind.
Bursts of changes coalesce: a watcher sees the latest status, never a queue of stale ones.
"""

from __future__ import annotations

import asyncio
import math
import select
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Union

from ._job import change_feed, events_since, is_deleted, require_started
from ._types import Event, JobStatus

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["Change", "Watcher"]

#: What a watch yields: a new status snapshot, or a new event of the Job.
Change = Union[JobStatus, Event]


class Watcher:
    """One subscription to a Job's changes. Not thread-safe: one watcher per consumer."""

    def __init__(self, job: Job) -> None:
        self._job = job
        self._feed = change_feed(job)
        self._last: JobStatus | None = None
        self._event_seq = 0
        self._poller = select.poll()
        self._poller.register(self._feed.fileno(), select.POLLIN)
        self._deleted = is_deleted(job)
        self.status: JobStatus = job.status

    def close(self) -> None:
        self._feed.close()

    @property
    def done(self) -> bool:
        """The Job has finished (or is gone): nothing more will change."""
        # `_deleted` was read before `status`: a Job removed (say by its TTL) right after it
        # finished is only "done" once the status read after its removal has been seen.
        return self.status.is_finished or self._deleted

    def poll(self) -> list[Change]:
        """What changed since the last poll: new events first, then the status if it differs."""
        # Clear first: a change after this point makes the feed readable again.
        self._feed.clear()
        self._deleted = is_deleted(self._job)
        self.status = self._job.status
        events, self._event_seq = events_since(self._job, self._event_seq)
        changes: list[Change] = list(events)
        if self.status != self._last:
            self._last = self.status
            changes.append(self.status)
        return changes

    def wait(self, timeout: float | None) -> None:
        """Blocks until the next change or ``timeout`` (Ctrl-C raises at once)."""
        if timeout is None:
            self._poller.poll()
        else:
            # poll() takes whole milliseconds, as an int: round up, and cap at ~24 days.
            self._poller.poll(min(max(0, math.ceil(timeout * 1000)), 2**31 - 1))

    async def wait_async(self) -> None:
        """Until the next change, without blocking the event loop or any thread."""
        loop = asyncio.get_running_loop()
        woken = loop.create_future()
        fd = self._feed.fileno()

        def on_readable() -> None:
            self._feed.clear()
            if not woken.done():
                woken.set_result(None)

        loop.add_reader(fd, on_readable)
        try:
            await woken
        finally:
            loop.remove_reader(fd)


def follow(job: Job) -> Watcher:
    """A watcher of a started Job (or one whose end is already known)."""
    require_started(job)
    return Watcher(job)


def watch(job: Job, timeout: float | None = None) -> Iterator[Change]:
    """Generator behind :meth:`kjob.Job.watch`."""
    watcher = follow(job)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            yield from watcher.poll()
            if watcher.done:
                return
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"Job {job.name!r} did not finish within {timeout} s")
            watcher.wait(left)
    finally:
        watcher.close()


async def watch_async(job: Job) -> AsyncIterator[Change]:
    """Async generator behind :meth:`kjob.Job.watch_async`."""
    watcher = follow(job)
    try:
        while True:
            for change in watcher.poll():
                yield change
            if watcher.done:
                return
            await watcher.wait_async()
    finally:
        watcher.close()


async def wait_async(job: Job, timeout: float | None) -> JobStatus:
    """Coroutine behind :meth:`kjob.Job.wait_async`."""
    watcher = follow(job)

    async def until_done() -> JobStatus:
        while True:
            watcher.poll()
            if watcher.done:
                return watcher.status
            await watcher.wait_async()

    try:
        # A finished Job is answered at once, even with timeout=0 (which wait_for would
        # otherwise cancel before it ran, on Python <= 3.11).
        watcher.poll()
        if watcher.done:
            return watcher.status
        if timeout is None:
            return await until_done()
        try:
            return await asyncio.wait_for(until_done(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"Job {job.name!r} did not finish within {timeout} s") from None
    finally:
        watcher.close()
