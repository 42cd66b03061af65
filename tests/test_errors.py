"""The Rust→Python error mapping (``src/python/errors.rs``): every runtime error and spec
error reaches Python as its class, with its message word for word."""

from __future__ import annotations

import errno
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import kjob


def _raised(call: Callable[[], object]) -> BaseException:
    try:
        call()
    except Exception as e:
        return e
    raise AssertionError("no exception")


@pytest.fixture
def running() -> Iterator[kjob.Job]:
    job = kjob.Job(name="errs", command="sleep 30", termination_grace_period_seconds=0)
    job.start()
    try:
        yield job
    finally:
        job.delete()


def test_kjob_error_is_shown_under_the_package_name() -> None:
    assert (kjob.KjobError.__module__, kjob.KjobError.__qualname__) == ("kjob", "KjobError")
    assert (kjob.KjobOSError.__module__, kjob.KjobOSError.__qualname__) == ("kjob", "KjobOSError")
    assert kjob.KjobOSError.__mro__[1:3] == (kjob.KjobError, OSError)


def test_kjob_errors_cross_processes() -> None:
    # Pickled by their public name: a KjobError raised in a pod or a worker process reaches
    # the parent (under its old name, `_kjob.KjobError`, pickling failed).
    copy = pickle.loads(pickle.dumps(kjob.KjobError("the Job has been deleted")))
    assert (type(copy), str(copy)) == (kjob.KjobError, "the Job has been deleted")


def test_already_started_is_a_kjob_error(running: kjob.Job) -> None:
    e = _raised(running.start)
    assert (type(e), str(e)) == (kjob.KjobError, "the Job has already been started")


def test_deleted_is_a_kjob_error() -> None:
    job = kjob.Job(name="gone", command="true")
    job.delete()
    e = _raised(job.start)
    assert (type(e), str(e)) == (kjob.KjobError, "the Job has been deleted")


def test_not_found_is_a_kjob_error(running: kjob.Job) -> None:
    e = _raised(lambda: running.evict("nope"))
    assert (type(e), str(e)) == (kjob.KjobError, 'pods "nope" not found')


def test_a_spec_error_at_creation_is_a_value_error() -> None:
    e = _raised(lambda: kjob.Job(name="bad", command="true", completions=-1, parallelism=-2))
    assert type(e) is ValueError
    assert str(e) == (
        "spec.parallelism: Invalid value: -2: must be greater than or equal to 0\n"
        "spec.completions: Invalid value: -1: must be greater than or equal to 0"
    )


def test_a_spec_error_of_a_running_job_is_a_value_error(running: kjob.Job) -> None:
    e = _raised(lambda: running.scale(parallelism=-1))
    assert (type(e), str(e)) == (
        ValueError,
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
    )


def test_a_value_of_the_wrong_shape_is_a_value_error(running: kjob.Job) -> None:
    e = _raised(lambda: running.wait(timeout=float("nan")))
    assert (type(e), str(e)) == (ValueError, "timeout: must be a finite number of seconds >= 0, got nan")


def test_managed_elsewhere_is_a_value_error() -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "theirs"},
        "spec": {
            "managedBy": "example.com/foo",
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "command": ["true"]}]}
            },
        },
    }
    job = kjob.Job.from_manifest(manifest)
    e = _raised(job.start)
    assert (type(e), str(e)) == (
        ValueError,
        'Job default/theirs has spec.managedBy "example.com/foo": another controller owns it, so '
        "kjob's controller (kubernetes.io/job-controller) does not run it",
    )


def test_a_log_folder_that_cannot_be_made_is_an_os_error_and_a_kjob_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    folder = blocker / "logs"
    job = kjob.Job(name="nolog", command="true", log_dir=folder)
    e = _raised(job.start)
    assert type(e) is kjob.KjobOSError
    assert isinstance(e, OSError) and isinstance(e, kjob.KjobError)
    assert str(e) == f'failed to create the log folder "{folder}": Not a directory (os error 20)'
    assert (e.errno, e.strerror, e.filename) == (errno.ENOTDIR, "Not a directory", str(folder))
    # It crosses processes whole, as the errors of pods' callables do.
    copy = pickle.loads(pickle.dumps(e))
    assert (type(copy), str(copy), copy.errno, copy.filename) == (type(e), str(e), e.errno, e.filename)
    job.delete()


def test_a_forked_child_using_its_parents_job_gets_a_kjob_error() -> None:
    script = textwrap.dedent("""
        import os, kjob
        job = kjob.Job(name="parent", command="sleep 30", termination_grace_period_seconds=0)
        job.start()
        pid = os.fork()
        if pid == 0:
            try:
                job.status
            except Exception as e:
                print(type(e).__module__, type(e).__qualname__, e, flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        job.delete()
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, rest = out.stdout.split(" belongs to process ", 1)
    assert first == "kjob KjobError Job 'parent'"
    assert rest.endswith(
        ", which forked this process: a forked child cannot use its parent's Jobs (create a new Job in the child)\n"
    )
