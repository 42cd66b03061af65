"""kjob's pytest plugin (entry point ``pytest11``): the fixtures ``kjob_job`` and ``kjob_home``,
the option ``--kjob-backoff`` (ini ``kjob_backoff``) and a ``kjob`` section in the report of a
failed test.

pytest imports this module in every session of an environment where kjob is installed, used or
not: it imports nothing beyond what ``import kjob`` already loads, and does nothing until a test
asks for a fixture or the option is given (``tests/test_import_cost.py`` checks this).
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pathlib import Path

    from ._job import Job

__all__ = ["JobFactory", "outlived", "processes_of_job"]

#: How long teardown waits for the processes of a deleted Job to disappear: ``delete()`` returns
#: once its pods are reaped, but a process its sweep SIGKILLed can linger in /proc a moment.
GONE_TIMEOUT = 5.0

_JOBS = pytest.StashKey[list["Job"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    help = (
        "initial delay in seconds before a failed pod is replaced, for the Jobs made in tests "
        "(kjob.configure(backoff_initial_seconds=...)); default: Kubernetes' 10 s"
    )
    parser.getgroup("kjob").addoption("--kjob-backoff", metavar="SECONDS", default=None, help=help)
    parser.addini("kjob_backoff", help, default=None)


def pytest_configure(config: pytest.Config) -> None:
    value, source = config.getoption("kjob_backoff"), "--kjob-backoff"
    if value is None:
        value, source = config.getini("kjob_backoff"), "ini kjob_backoff"
    if not value:
        return
    from ._config import configure, default_backoff

    try:
        seconds = float(value)
        previous = default_backoff()
        configure(backoff_initial_seconds=seconds)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(f"{source}: {e}") from None
    # Restored at the end: pytest can run in-process several times (pytester), and a
    # session's option must not leak into the next.
    config.add_cleanup(lambda: configure(backoff_initial_seconds=previous[0]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    jobs = item.stash.get(_JOBS, None)
    # Built when the test body fails, before teardown deletes the Jobs and their log folders.
    if jobs and call.when == "call" and report.failed:
        report.sections.append(("kjob", "\n\n".join(describe_job(job) for job in jobs)))


def describe_job(job: Job) -> str:
    """The Job's name, state, counts and conditions and its failed pods, each with the
    exception or exit code and the last 20 lines of its log."""
    from ._export import status_counts
    from ._failures import describe_failed_pods, failed_pods
    from ._job import all_pods, job_status_word

    status = job.status
    lines = [f"Job {job.name!r}: {job_status_word(job, status)} ({status_counts(status)})"]
    lines += [
        f"  {c.type}={c.status}" + (f" {c.reason}: {c.message}" if c.reason else "")
        for c in status.conditions
    ]
    failed = failed_pods(all_pods(job))
    if failed:
        lines.append("  " + describe_failed_pods(failed).replace("\n", "\n  "))
    return "\n".join(lines)


@pytest.fixture(scope="session")
def kjob_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private kjob home for the test session (one per xdist worker): ``KJOB_HOME`` names a
    new temporary folder while the session runs, in the environment of the tests and of the
    pods they start. kjob keeps no durable store yet: the folder is where the store will live,
    so that tests never touch the user's Jobs. Pods' private log folders stay where they are
    (the temporary folder), removed with their Job."""
    home = tmp_path_factory.mktemp("kjob-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KJOB_HOME", str(home))
        yield home


class JobFactory:
    """``kjob_job(**keywords)`` makes a :class:`kjob.Job` (not started) that teardown deletes;
    ``from_yaml``/``from_manifest``/``all_from_yaml`` do the same for manifests."""

    def __init__(self, jobs: list[Job]) -> None:
        self._jobs = jobs

    def _keep(self, job: Job) -> Job:
        self._jobs.append(job)
        return job

    def __call__(self, **keywords: Any) -> Job:
        from ._job import Job

        return self._keep(Job(**keywords))

    def from_yaml(self, path_or_text: str | Path, **keywords: Any) -> Job:
        from ._job import Job

        return self._keep(Job.from_yaml(path_or_text, **keywords))

    def from_manifest(self, manifest: Mapping[str, Any], **keywords: Any) -> Job:
        from ._job import Job

        return self._keep(Job.from_manifest(manifest, **keywords))

    def all_from_yaml(self, path_or_text: str | Path, **keywords: Any) -> list[Job]:
        from ._job import Job

        return [self._keep(job) for job in Job.all_from_yaml(path_or_text, **keywords)]

    @property
    def jobs(self) -> list[Job]:
        """The Jobs made so far in this test, in order."""
        return list(self._jobs)


@pytest.fixture
def kjob_job(request: pytest.FixtureRequest, kjob_home: Path) -> Iterator[JobFactory]:
    """A factory of Jobs deleted (with their pods) at teardown. Teardown fails the test with
    ``kjob: N pod processes of Job 'x' outlived it`` when a process of a Job survives its
    delete (a pod's descendant that left its process group and dropped kjob's environment
    markers, say); such processes are SIGKILLed then."""
    jobs: list[Job] = []
    request.node.stash[_JOBS] = jobs
    yield JobFactory(jobs)
    problems = []
    for job in jobs:
        try:
            problems += delete_and_check(job)
        except Exception as e:  # every Job is deleted, whatever one of them raises
            problems.append(f"kjob: deleting Job {job.name!r} failed: {type(e).__name__}: {e}")
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


def delete_and_check(job: Job) -> list[str]:
    """Deletes the Job, and returns what outlived it (nothing, normally)."""
    if job.executor is not None:
        # Its pods are processes of other machines (Dask workers); kjob's delete reaches them.
        job.delete()
        return []
    before = processes_of_job(job)
    job.delete()
    left = outlived(before)
    if not left:
        return []
    details = "".join(f"\n  pid {pid}: {_cmdline(pid)}" for pid in left)
    for pid in left:
        _kill(pid)
    count = f"{len(left)} pod process{'es' if len(left) != 1 else ''}"
    return [f"kjob: {count} of Job {job.name!r} outlived it (SIGKILLed now):{details}"]


# A process is named by its pid and its start time (in clock ticks since boot): a pid reused
# by a new process after the old one died is then a different process.
Process = tuple[int, int]


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time) of a live, non-zombie process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may hold any byte: the fields follow its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[19])


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            table[int(name)] = stat
    return table


def _marked(pid: int, uid: bytes) -> bool:
    """Whether the process's environment carries the Job's UID (``KJOB_JOB_UID``, or in
    ``KJOB_OWNERS`` for the pods of Jobs nested in its pods)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read()
    except OSError:
        return False
    for var in environ.split(b"\0"):
        if var == b"KJOB_JOB_UID=" + uid:
            return True
        if var.startswith(b"KJOB_OWNERS=") and uid in var[len(b"KJOB_OWNERS=") :].split(b","):
            return True
    return False


def processes_of_job(job: Job) -> set[Process]:
    """The Job's processes now: its running pods with every descendant (also those that left
    the pod's process group and environment), and every process carrying its marker."""
    from ._job import all_pods

    table = _table()
    uid = job.uid.encode()
    roots = {pid for pid in table if _marked(pid, uid)}
    # A running pod's process (for a callable pod, the worker running it: deleting the Job
    # ends that worker too). A finished pod's pid may have been reused.
    roots |= {p.pid for p in all_pods(job) if p.pid in table and p.finish_time is None}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    found.discard(os.getpid())
    return {(pid, table[pid][1]) for pid in found}


def outlived(processes: set[Process], timeout: float = GONE_TIMEOUT) -> list[int]:
    """The pids of those processes still alive (the same process, not a reused pid) after up
    to ``timeout`` seconds, sorted."""
    deadline = time.monotonic() + timeout
    while True:
        left = sorted(pid for pid, start in processes if (s := _stat(pid)) is not None and s[1] == start)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.01)


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
