"""Durable Jobs (issue 15): the store, names, get/list/apply across processes, handles that no
longer kill a running Job, adoption of orphans, retention."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import kjob
from conftest import Backoff, no_pids_left, pids_of_job

FAST: Backoff = {"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05}


def child(code: str, *, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` in a new interpreter (same KJOB_HOME): another process, as another shell."""
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert out.returncode == 0, out.stderr
    return out


@contextlib.contextmanager
def owner_process(code: str) -> Iterator[subprocess.Popen[str]]:
    """A process that owns a Job and prints ``ready`` once it started it; killed at the end."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
            yield proc
        finally:
            proc.kill()


def wait_for(predicate, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


# ---- the store ---------------------------------------------------------------------------------


def test_the_store_lives_in_kjob_home(private_kjob_home: Path) -> None:
    job = kjob.Job(name="hello", command="echo hi")
    job.run(timeout=30)
    assert (private_kjob_home / "kjob.db").is_file()
    assert job.log_dir.startswith(str(private_kjob_home / "logs" / "default" / "hello-"))
    assert job.logs() == "hi\n"


def test_the_default_home_is_xdg_state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KJOB_HOME")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    from kjob import _config

    assert _config.store_home() == tmp_path / "kjob"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert _config.store_home() == tmp_path / ".local" / "state" / "kjob"


def test_kjob_store_0_keeps_jobs_ephemeral(private_kjob_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KJOB_STORE", "0")
    job = kjob.Job(name="ephemeral", command="true")
    job.run(timeout=30)
    again = kjob.Job(name="ephemeral", command="true")
    again.run(timeout=30)  # no name clash: nothing is stored
    assert not (private_kjob_home / "kjob.db").exists()
    assert not (private_kjob_home / "logs").exists()
    job.delete()
    again.delete()


def test_configure_rejects_bad_store_settings() -> None:
    with pytest.raises(TypeError, match="store must be True or False, not str"):
        kjob.configure(store="no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history_limit must be >= 0, got -1"):
        kjob.configure(history_limit=-1)


# ---- names -------------------------------------------------------------------------------------


def test_a_second_job_of_a_stored_name_is_already_exists() -> None:
    first = kjob.Job(name="etl", command="true")
    first.run(timeout=30)
    second = kjob.Job(name="etl", command="true")
    with pytest.raises(kjob.AlreadyExistsError, match=r'^jobs\.batch "etl" already exists$'):
        second.start()
    assert isinstance(kjob.AlreadyExistsError("x"), kjob.KjobError)
    first.delete()
    second.start()  # the name is free once the Job is deleted
    assert second.wait(timeout=30).succeeded == 1
    second.delete()


def test_the_same_name_in_another_namespace_is_another_job() -> None:
    a = kjob.Job(name="etl", command="true")
    b = kjob.Job(name="etl", namespace="team-b", command="true")
    a.run(timeout=30)
    b.run(timeout=30)
    assert [(j.namespace, j.name) for j in kjob.Job.list()] == [("default", "etl"), ("team-b", "etl")]
    assert [j.name for j in kjob.Job.list(namespace="team-b")] == ["etl"]


def test_generated_names_never_clash() -> None:
    jobs = [kjob.Job(command="true") for _ in range(3)]
    for job in jobs:
        job.run(timeout=30)
    assert len({j.name for j in kjob.Job.list()}) == 3


# ---- get / list across processes ----------------------------------------------------------------


def test_get_of_a_missing_job_is_not_found() -> None:
    with pytest.raises(kjob.NotFoundError, match=r'^jobs\.batch "nope" not found$'):
        kjob.Job.get("nope")
    assert isinstance(kjob.NotFoundError("x"), LookupError)


def test_a_finished_job_is_read_by_another_process() -> None:
    job = kjob.Job(
        name="done", command="echo out-$JOB_COMPLETION_INDEX", completions=2, completion_mode="Indexed"
    )
    job.run(timeout=30)
    out = child(
        """
        import kjob
        job = kjob.Job.get("done")
        s = job.status
        print(s.succeeded, s.completed_indexes, s.is_complete)
        print(sorted(p.phase for p in job.pods()))
        print(job.logs(index=1).strip())
        print([e.reason for e in job.events()][-1])
        """
    )
    assert out.stdout.splitlines() == [
        "2 0,1 True",  # two indexes are listed, as Kubernetes writes them
        "['Succeeded', 'Succeeded']",
        "out-1",
        "Completed",
    ]


def test_a_running_job_of_another_process_is_followed_and_deleted() -> None:
    with owner_process(
        """
        import kjob, time
        job = kjob.Job(name="longrun", command="sleep 300", parallelism=2, completions=2,
                       termination_grace_period_seconds=0)
        job.start()
        print("ready", flush=True)
        job.wait()
        # A deleted Job's wait() returns; the owner exits when asked to delete it.
        """
    ) as owner:
        job = kjob.Job.get("longrun")
        wait_for(lambda: job.status.active == 2)
        # The pods as the owner last recorded them, each with its process.
        pids = wait_for(lambda: [p.pid for p in job.pods() if p.pid is not None and p.phase == "Running"])
        pids = wait_for(lambda: [p.pid for p in job.pods() if p.pid] if len(job.pods()) == 2 else None)
        started = time.monotonic()
        job.delete(timeout=10)
        assert time.monotonic() - started < 5
        with pytest.raises(kjob.NotFoundError):
            kjob.Job.get("longrun")
        for pid in pids:
            wait_for(lambda pid=pid: not Path(f"/proc/{pid}").exists())
        assert owner.wait(timeout=10) == 0


def test_suspend_resume_and_scale_from_another_process_are_carried_out_by_the_owner() -> None:
    with owner_process(
        """
        import kjob
        job = kjob.Job(name="remote", command="sleep 300", parallelism=1, completions=4,
                       completion_mode="Indexed", termination_grace_period_seconds=0)
        job.start()
        print("ready", flush=True)
        job.wait()
        """
    ) as owner:
        handle = kjob.Job.get("remote")
        wait_for(lambda: handle.status.active == 1)
        handle.scale(parallelism=3)
        wait_for(lambda: handle.status.active == 3)
        assert kjob.Job.get("remote").manifest["spec"]["parallelism"] == 3
        handle.suspend()
        wait_for(
            lambda: handle.status.active == 0 and any(c.type == "Suspended" for c in handle.status.conditions)
        )
        handle.resume()
        wait_for(lambda: handle.status.active == 3)
        handle.delete(timeout=10)
        assert owner.wait(timeout=10) == 0


def test_watch_and_wait_work_across_processes() -> None:
    with owner_process(
        """
        import kjob, time
        job = kjob.Job(name="watched", command="sleep 0.3", completions=2)
        job.start()
        print("ready", flush=True)
        job.wait()
        """
    ) as owner:
        handle = kjob.Job.get("watched")
        statuses = [c for c in handle.watch(timeout=30) if isinstance(c, kjob.JobStatus)]
        assert statuses[-1].is_complete and statuses[-1].succeeded == 2
        assert handle.wait(timeout=10).succeeded == 2
        assert owner.wait(timeout=30) == 0


def test_list_filters_by_labels_and_selector() -> None:
    kjob.Job(name="a", command="true", labels={"team": "ml", "tier": "batch"}).run(timeout=30)
    kjob.Job(name="b", command="true", labels={"team": "web"}).run(timeout=30)
    assert [j.name for j in kjob.Job.list(labels={"team": "ml"})] == ["a"]
    assert [j.name for j in kjob.Job.list(labels="team!=ml")] == ["b"]
    assert [j.name for j in kjob.Job.list(labels="tier")] == ["a"]


# ---- handles -----------------------------------------------------------------------------------


def test_dropping_the_last_reference_no_longer_kills_a_running_job() -> None:
    job = kjob.Job(name="dropped", command="sleep 0.5 && echo done", **FAST)
    job.start()
    uid = job.uid
    del job
    gc.collect()
    again = kjob.Job.get("dropped")
    assert again.uid == uid
    assert again.wait(timeout=30).succeeded == 1
    assert again.logs() == "done\n"


def test_interpreter_exit_kills_owned_pods_and_leaves_the_job_resumable() -> None:
    out = child(
        """
        import kjob
        job = kjob.Job(name="left", command="sleep 300", termination_grace_period_seconds=0)
        job.start()
        import time
        while job.status.active == 0:
            time.sleep(0.01)
        print(job.uid)
        """
    )
    uid = out.stdout.strip()
    assert no_pids_left(uid) == []
    job = kjob.Job.get("left")
    assert job.uid == uid
    assert not job.status.is_finished
    with pytest.raises(kjob.KjobError, match="orphaned"):
        job.wait(timeout=1)


# ---- adoption -----------------------------------------------------------------------------------

SQUARES = """
import kjob, os, signal, sys, time

def square(i):
    if i >= 3:
        time.sleep(300)
    return i * i

kjob.configure(backoff_initial_seconds=0.01, backoff_max_seconds=0.05)
job = kjob.Job(name="squares", target=square, completions=5, parallelism=5, completion_mode="Indexed",
               max_workers=5, termination_grace_period_seconds=0)
job.start()
while job.status.succeeded < 3:
    time.sleep(0.01)
print(job.uid, flush=True)
"""


def test_an_orphaned_callable_job_is_adopted_keeping_completed_indexes_and_results() -> None:
    with subprocess.Popen([sys.executable, "-c", SQUARES], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        uid = proc.stdout.readline().strip()
        time.sleep(0.3)  # a snapshot with the three successes and two running pods
        os.kill(proc.pid, signal.SIGKILL)
    wait_for(lambda: not pids_of_job(uid), timeout=10)

    job = kjob.Job.get("squares")
    assert job.uid == uid

    # Adopted: what it kept is checked, then it is deleted (its stored function still sleeps).
    job.resume()
    lost = [p for p in job.pods() if p.index in (3, 4) and p.phase == "Failed"]
    assert len(lost) == 2
    for pod in lost:
        assert [(c.type, c.reason, c.message) for c in pod.conditions] == [
            ("DisruptionTarget", "DeletionByPodGC", "PodGC: node no longer exists")
        ]
    status = job.status
    assert status.completed_indexes == "0-2"
    assert status.failed == 2
    assert job.results(partial=True) == {0: 0, 1: 1, 2: 4}
    job.delete(timeout=10)
    assert no_pids_left(uid) == []


def work(i: int) -> int:
    return i + 100


def test_apply_creates_returns_unchanged_and_resumes() -> None:
    job = kjob.Job.apply(name="cell", target=work, completions=3, completion_mode="Indexed", **FAST)
    assert job.wait(timeout=30).succeeded == 3
    assert job.results() == {0: 100, 1: 101, 2: 102}
    again = kjob.Job.apply(name="cell", target=work, completions=3, completion_mode="Indexed", **FAST)
    assert again.uid == job.uid
    assert again.results() == {0: 100, 1: 101, 2: 102}


def test_apply_of_a_changed_immutable_field_is_field_is_immutable() -> None:
    kjob.Job.apply(name="imm", command="true").wait(timeout=30)
    with pytest.raises(ValueError, match=r'^The Job "imm" is invalid: spec\.template: .*field is immutable'):
        kjob.Job.apply(name="imm", command="false")


def test_apply_of_a_mutable_field_configures_the_running_job() -> None:
    job = kjob.Job.apply(
        name="mut", command="sleep 300", completions=4, parallelism=1, termination_grace_period_seconds=0
    )
    wait_for(lambda: job.status.active == 1)
    same = kjob.Job.apply(
        name="mut", command="sleep 300", completions=4, parallelism=2, termination_grace_period_seconds=0
    )
    assert same is job
    wait_for(lambda: job.status.active == 2)
    job.delete()


# ---- retention ---------------------------------------------------------------------------------


def test_delete_removes_the_stored_logs() -> None:
    job = kjob.Job(name="logs", command="echo hi")
    job.run(timeout=30)
    folder = Path(job.log_dir)
    assert (folder / f"{job.pods()[0].name}.log").is_file()
    job.delete()
    assert not folder.exists()
    with pytest.raises(kjob.NotFoundError):
        kjob.Job.get("logs")


def test_a_user_log_dir_is_kept(tmp_path: Path) -> None:
    job = kjob.Job(name="mine", command="echo hi", log_dir=tmp_path / "mine")
    job.run(timeout=30)
    job.delete()
    assert (tmp_path / "mine").is_dir()


def test_ttl_after_finished_removes_the_job_and_its_logs() -> None:
    job = kjob.Job(name="ttl", command="true", ttl_seconds_after_finished=0)
    job.run(timeout=30)
    folder = Path(job.log_dir)
    wait_for(lambda: job.is_deleted)
    wait_for(lambda: not folder.exists())
    with pytest.raises(kjob.NotFoundError):
        kjob.Job.get("ttl")


def test_history_limit_deletes_the_oldest_finished_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KJOB_HISTORY_LIMIT", "2")
    for name in ("h1", "h2", "h3"):
        kjob.Job(name=name, command="true").run(timeout=30)
    assert [j.name for j in kjob.Job.list()] == ["h2", "h3"]


def test_store_records_are_json_free_of_surprises(private_kjob_home: Path) -> None:
    job = kjob.Job(name="rec", command="true", labels={"a": "b"})
    job.run(timeout=30)
    from kjob._kjob import Store

    store = Store(str(private_kjob_home / "kjob.db"))
    row = store.get_job("default", "rec")
    assert row is not None
    assert json.loads(row["labels"]) == {"a": "b"}
    assert row["finished"] is not None and row["owner"] is None
    assert store.integrity_check() == "ok"
