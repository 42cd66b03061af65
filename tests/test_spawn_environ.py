"""Pods inherit the environment as it was when their Job started: a snapshot, never the live
environment that other Python threads may be changing (``os.environ[...] = ...`` calls
``setenv``, which may free the strings a spawning thread reads)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

import kjob

HAMMERED = [f"KJOB_TEST_HAMMER_{i}" for i in range(40)]


@pytest.fixture
def clean_environ() -> Iterator[None]:
    names = ["KJOB_TEST_EARLY", "KJOB_TEST_LATE", *HAMMERED]
    yield
    for name in names:
        os.environ.pop(name, None)


def test_pods_started_after_an_environment_change_see_the_environment_of_start(clean_environ: None) -> None:
    os.environ["KJOB_TEST_EARLY"] = "as of start"
    echo_both = 'echo "$KJOB_TEST_EARLY/${KJOB_TEST_LATE-unset}"'
    job = kjob.Job(
        command=echo_both, completions=12, parallelism=1, completion_mode="Indexed", backoff_limit=0
    )
    job.start()
    # One pod at a time: all but (at most) the first start after these changes.
    os.environ["KJOB_TEST_EARLY"] = "changed after start"
    os.environ["KJOB_TEST_LATE"] = "added after start"
    status = job.wait(timeout=60)
    assert (status.succeeded, status.failed) == (12, 0)
    assert [job.logs(index=i) for i in range(12)] == ["as of start/unset\n"] * 12
    job.delete()


def test_a_job_spawns_500_pods_while_a_thread_rewrites_the_environment(clean_environ: None) -> None:
    stop = threading.Event()
    rewrites = 0

    def hammer() -> None:
        # Setting, growing and deleting variables makes libc reallocate the environment array
        # and free old entries: a spawn reading the live environment would see both.
        nonlocal rewrites
        while not stop.is_set():
            name = HAMMERED[rewrites % len(HAMMERED)]
            if rewrites % 3 == 2:
                os.environ.pop(name, None)
            else:
                os.environ[name] = "x" * (rewrites % 300)
            rewrites += 1

    job = kjob.Job(command=["/bin/true"], completions=500, parallelism=8, backoff_limit=0)
    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        status = job.run(timeout=120)
    finally:
        stop.set()
        thread.join()
    assert (status.succeeded, status.failed) == (500, 0)
    assert rewrites > 500
    job.delete()
