"""Following Jobs: `watch()`, asyncio (`wait_async`, `await job`, `watch_async`), progress bars,
rich display and use from several threads."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sys
import threading
from typing import Any

import pytest

import kjob
from kjob import Condition, Event, JobStatus


def quick_job(**kwargs: Any) -> kjob.Job:
    defaults: dict[str, Any] = {"command": ["sh", "-c", "sleep 0.05"], "completions": 3, "parallelism": 2}
    return kjob.Job(**{**defaults, **kwargs})


def test_watch_yields_statuses_and_events_until_the_job_ends() -> None:
    with quick_job(name="watched") as job:
        job.start()
        changes = list(job.watch(timeout=30))
    statuses = [c for c in changes if isinstance(c, JobStatus)]
    events = [c for c in changes if isinstance(c, Event)]
    assert statuses[-1].is_complete and statuses[-1].succeeded == 3
    # Each status differs from the one before it: nothing is yielded twice.
    assert all(a != b for a, b in zip(statuses, statuses[1:]))
    succeeded = [s.succeeded for s in statuses]
    assert succeeded == sorted(succeeded)
    reasons = [e.reason for e in events]
    assert reasons.count("SuccessfulCreate") == 3 and reasons[-1] == "Completed"
    assert all(e.involved_object == "Job/default/watched" for e in events)


def test_watch_of_a_finished_job_yields_its_final_state_and_ends() -> None:
    with quick_job() as job:
        job.run(timeout=30)
        changes = list(job.watch())
    assert isinstance(changes[-1], JobStatus) and changes[-1].is_complete


def test_watch_timeout_raises_and_leaves_the_job_running() -> None:
    with quick_job(command=["sleep", "30"], completions=1) as job:
        job.start()
        with pytest.raises(TimeoutError):
            for _ in job.watch(timeout=0.2):
                pass
        assert job.status.active == 1


def test_watch_and_wait_async_need_a_started_job() -> None:
    job = quick_job()
    with pytest.raises(kjob.KjobError, match="has not been started"):
        job.watch()
    with pytest.raises(kjob.KjobError, match="has not been started"):
        asyncio.run(job.wait_async())
    job.delete()


def test_wait_async_and_await_job() -> None:
    async def main() -> tuple[JobStatus, JobStatus]:
        first, second = quick_job(), quick_job(completions=2)
        first.start()
        second.start()
        try:
            # Two Jobs awaited together on one event loop thread.
            return await asyncio.gather(first.wait_async(timeout=30), second)
        finally:
            first.delete()
            second.delete()

    a, b = asyncio.run(main())
    assert a.is_complete and a.succeeded == 3
    assert b.is_complete and b.succeeded == 2


def test_wait_async_timeout_and_cancellation_leave_the_job_running_and_no_thread_behind() -> None:
    threads_before = threading.active_count()

    async def main(job: kjob.Job) -> None:
        with pytest.raises(TimeoutError, match="did not finish within 0.1 s"):
            await job.wait_async(timeout=0.1)
        task = asyncio.create_task(job.wait_async())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        # Only the loop's own self-pipe is registered: the watcher's fd was removed.
        assert len(selector.get_map()) == 1

    with quick_job(command=["sleep", "30"], completions=1) as job:
        job.start()
        asyncio.run(main(job))
        assert job.status.active == 1, "cancelling the await does not touch the Job"
        assert threading.active_count() == threads_before
        assert job._native.started and not job.is_deleted


def test_watch_async_yields_until_the_end() -> None:
    async def main() -> list[JobStatus | Event]:
        with quick_job() as job:
            job.start()
            return [change async for change in job.watch_async()]

    changes = asyncio.run(main())
    final = changes[-1]
    assert isinstance(final, JobStatus) and final.is_complete
    assert any(isinstance(c, Event) and c.reason == "Completed" for c in changes)


def test_progress_bar_counts_succeeded_pods(capsys: pytest.CaptureFixture[str]) -> None:
    with quick_job(name="barred", completions=4) as job:
        status = job.run(timeout=30, progress=True)
    assert status.succeeded == 4
    err = capsys.readouterr().err
    assert "barred" in err and "4/4" in err and "failed=0" in err


def test_progress_without_tqdm_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    job = quick_job()
    with pytest.raises(ImportError, match=r"pip install 'kjob\[progress\]'"):
        job.run(progress=True)
    assert not job._native.started, "nothing ran"
    job.delete()


def test_reprs_read_well() -> None:
    with quick_job(name="shown", completion_mode="Indexed") as job:
        assert repr(job) == (
            "<kjob.Job 'shown' NotStarted Indexed completions=3 parallelism=2 active=0 succeeded=0 failed=0>"
        )
        status = job.run(timeout=30)
        assert repr(job) == (
            "<kjob.Job 'shown' Complete Indexed completions=3 parallelism=2 active=0 succeeded=3 failed=0>"
        )
        assert repr(status) == (
            "JobStatus(SuccessCriteriaMet/Complete active=0 succeeded=3 failed=0 completed_indexes='0-2')"
        )
        html = job._repr_html_()
        assert "<b>kjob.Job shown</b> &mdash; Complete" in html
        assert ">3/3</td>" in html and ">Indexed</td>" in html
        assert ">CompletionsReached</td>" in html and ">0-2</td>" in html
    assert repr(JobStatus()) == "JobStatus(NoCondition active=0 succeeded=0 failed=0)"


def test_html_escapes_what_it_shows() -> None:
    condition = Condition(
        "Failed", "True", "PodFailurePolicy", "exit <42> & more", dt.datetime.now(dt.timezone.utc)
    )
    html = JobStatus(failed=1, conditions=[condition])._repr_html_()
    assert "exit &lt;42&gt; &amp; more" in html and "<42>" not in html


def test_one_job_from_many_threads() -> None:
    """Calls documented as thread-safe, all at once on one Job: none fails or deadlocks."""
    errors: list[BaseException] = []
    with quick_job(completions=20, parallelism=2, completion_mode="Indexed") as job:
        job.start()

        def use(kind: int) -> None:
            try:
                if kind == 0:
                    assert job.wait(timeout=60).is_complete
                elif kind == 1:
                    assert list(job.watch(timeout=60))
                elif kind == 2:
                    for p in (3, 4, 2):
                        job.scale(parallelism=p)
                else:
                    while not job.status.is_finished:
                        job.pods()
                        job.events()
                        repr(job)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=use, args=(i % 4,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert job.status.succeeded == 20


def test_a_job_removed_by_its_ttl_right_after_finishing_is_seen_finished() -> None:
    """ttlSecondsAfterFinished: 0 deletes the Job the moment it ends: a watcher must still see
    the final status (it reads "deleted" before the status)."""
    for _ in range(10):
        job = quick_job(command=["true"], completions=1, parallelism=1, ttl_seconds_after_finished=0)
        job.start()
        assert [c for c in job.watch(timeout=30) if isinstance(c, JobStatus)][-1].is_complete
        job.delete()
        job = quick_job(command=["true"], completions=1, parallelism=1, ttl_seconds_after_finished=0)
        job.start()
        assert asyncio.run(job.wait_async(timeout=30)).is_complete
        job.delete()


def test_wait_async_with_zero_timeout_answers_a_finished_job() -> None:
    with quick_job() as job:
        job.run(timeout=30)
        assert asyncio.run(job.wait_async(timeout=0)).is_complete


def test_watching_works_with_file_descriptors_above_1024() -> None:
    """select() cannot watch descriptors >= 1024; the feed is polled instead."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        if hard != resource.RLIM_INFINITY and hard < 1200:
            pytest.skip("cannot open 1,200 files here")
        resource.setrlimit(resource.RLIMIT_NOFILE, (1200, hard))
    held: list[int] = []
    try:
        with quick_job() as job:
            job.start()
            # Filled once the Job started (which may close another store's files).
            held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
            assert job._native.subscribe().fileno() >= 1024
            assert [c for c in job.watch(timeout=30) if isinstance(c, JobStatus)][-1].is_complete
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_huge_timeouts_mean_no_deadline() -> None:
    with quick_job() as job:
        job.start()
        assert job.wait(timeout=1e19).is_complete
        assert list(job.watch(timeout=1e12))
        job.delete(timeout=1e300)
