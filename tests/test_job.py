"""End-to-end behaviour of subprocess pods: real processes, real files, exact counts. Comments
citing §x refer to docs/semantics.md."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import kjob
from conftest import Backoff, no_pids_left, pids_of_job


def test_completions_never_exceed_parallelism(tmp_path: Path) -> None:
    job = kjob.Job(
        name="cap",
        command="echo start $(date +%s%N); sleep 0.15; echo end $(date +%s%N)",
        completions=6,
        parallelism=2,
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed, status.active) == (6, 0, 0)
    pods = job.pods()
    assert len(pods) == 6
    intervals = []
    for pod in pods:
        lines = dict(line.split() for line in Path(pod.log_path).read_text().splitlines())
        intervals.append((int(lines["start"]), int(lines["end"])))
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak == 2
    assert [c.type for c in status.conditions] == ["SuccessCriteriaMet", "Complete"]
    assert status.completion_time is not None and status.start_time is not None
    assert status.completion_time >= status.start_time


def test_indexed_pods_see_each_completion_index_once(tmp_path: Path) -> None:
    job = kjob.Job(
        name="idx",
        command=["sh", "-c", "echo $JOB_COMPLETION_INDEX"],
        completions=5,
        parallelism=3,
        completion_mode="Indexed",
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    assert status.succeeded == 5
    assert status.completed_indexes == "0-4"
    assert status.failed_indexes is None
    pods = job.pods()
    seen = sorted(int(Path(p.log_path).read_text()) for p in pods)
    assert seen == [0, 1, 2, 3, 4]
    for pod in pods:
        assert pod.name.startswith(f"idx-{pod.index}-") and len(pod.name) == len(f"idx-{pod.index}-") + 5
        assert pod.labels["batch.kubernetes.io/job-completion-index"] == str(pod.index)
        assert pod.annotations == {"batch.kubernetes.io/job-completion-index": str(pod.index)}
        assert pod.labels["batch.kubernetes.io/job-name"] == "idx"
        assert pod.labels["batch.kubernetes.io/controller-uid"] == job.uid
        assert pod.phase == "Succeeded" and pod.exit_code == 0
    assert job.logs(index=3) == "3\n"


def test_work_queue_completes_after_first_success_without_new_pods(tmp_path: Path) -> None:
    # §4.3: completions unset, the first success stops creation; the Job completes when the
    # other pods end.
    lock = tmp_path / "first"
    job = kjob.Job(
        name="wq",
        command=f"mkdir {lock} 2>/dev/null && exit 0; sleep 0.3",
        parallelism=3,
        log_dir=tmp_path / "logs",
    )
    status = job.run(timeout=30)
    assert status.is_complete
    assert (status.succeeded, status.failed) == (3, 0)
    assert len(job.pods()) == 3
    assert all(p.index is None and p.name.startswith("wq-") for p in job.pods())


def test_backoff_limit_gives_exact_failed_count_and_conditions(fast_backoff: Backoff) -> None:
    # §5.2: the Job fails when failed > backoffLimit, so backoffLimit 2 allows 3 pods.
    job = kjob.Job(name="fails", command="exit 3", backoff_limit=2, **fast_backoff)
    status = job.run(timeout=30)
    assert (status.failed, status.succeeded, status.active) == (3, 0, 0)
    assert [(c.type, c.status, c.reason, c.message) for c in status.conditions] == [
        ("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
    ]
    assert status.is_failed and not status.is_complete and status.completion_time is None
    pods = job.pods()
    assert [(p.phase, p.exit_code) for p in pods] == [("Failed", 3)] * 3
    job.delete()


def test_failure_kills_the_remaining_pods_and_counts_them(fast_backoff: Backoff) -> None:
    # §4.6: on FailureTarget the running pods are killed and counted as failed.
    job = kjob.Job(
        name="fail-fast",
        command='if [ "$JOB_COMPLETION_INDEX" = 0 ]; then exit 1; fi; sleep 30',
        completions=3,
        parallelism=3,
        completion_mode="Indexed",
        backoff_limit=0,
        termination_grace_period_seconds=1,
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert (status.failed, status.succeeded, status.terminating) == (3, 0, 0)
    assert [c.type for c in status.conditions] == ["FailureTarget", "Failed"]
    killed = [p for p in job.pods() if p.index != 0]
    assert [p.exit_code for p in killed] == [143, 143]  # 128 + SIGTERM
    assert no_pids_left(job.uid) == []


def test_on_failure_restarts_in_place_until_success(tmp_path: Path, fast_backoff: Backoff) -> None:
    counter = tmp_path / "attempts"
    job = kjob.Job(
        name="flaky",
        command=f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; "
        f'echo "attempt $n"; [ "$n" -ge 2 ]',
        restart_policy="OnFailure",
        log_dir=tmp_path / "logs",
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert status.is_complete
    assert (status.succeeded, status.failed) == (1, 0)
    [pod] = job.pods()
    assert (pod.restart_count, pod.exit_code, pod.phase) == (2, 0, "Succeeded")
    # Restarts append to the same pod's log.
    assert job.logs() == "attempt 0\nattempt 1\nattempt 2\n"


def test_on_failure_restarts_count_toward_backoff_limit(fast_backoff: Backoff) -> None:
    # §5.2 pastBackoffLimitOnFailure: restarts of running pods reaching backoffLimit fail the Job.
    job = kjob.Job(
        name="crashloop", command="exit 1", restart_policy="OnFailure", backoff_limit=2, **fast_backoff
    )
    status = job.run(timeout=30)
    assert status.is_failed
    assert status.conditions[-1].reason == "BackoffLimitExceeded"
    [pod] = job.pods()
    assert (pod.restart_count, pod.phase, status.failed) == (2, "Failed", 1)


def test_recreation_delay_doubles_between_attempts() -> None:
    # §5.3: replacements wait initial * 2^(n-1) after the n-th consecutive failure.
    job = kjob.Job(
        name="delayed", command="exit 1", backoff_limit=2, backoff_initial_seconds=0.2, backoff_max_seconds=10
    )
    job.run(timeout=30)
    pods = job.pods()
    assert len(pods) == 3
    gaps = []
    for before, after in zip(pods, pods[1:]):
        assert before.finish_time is not None and after.start_time is not None
        gaps.append((after.start_time - before.finish_time).total_seconds())
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4, gaps


def test_pod_killed_by_sigkill_reports_137() -> None:
    # `$$` is Kubernetes' escape for `$` in command and args, so the shell's `$$` is `$$$$`.
    job = kjob.Job(name="sigkill", command="kill -s KILL $$$$", backoff_limit=0)
    status = job.run(timeout=30)
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code) == ("Failed", 137)
    assert status.failed == 1


def test_missing_executable_fails_the_pod_with_start_error() -> None:
    job = kjob.Job(name="nope", command=["/nonexistent/kjob-test-binary"], backoff_limit=0)
    job.run(timeout=30)
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.reason) == ("Failed", 128, "StartError")
    assert "kjob: failed to start" in job.logs()


def test_delete_kills_the_pod_and_its_grandchildren() -> None:
    job = kjob.Job(name="tree", command="sleep 300 & sleep 300 & wait", termination_grace_period_seconds=5)
    job.start()
    deadline = time.monotonic() + 10
    while len(pids_of_job(job.uid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(pids_of_job(job.uid)) == 3  # the shell and its two sleeps
    job.delete()
    assert no_pids_left(job.uid) == []
    assert job.is_deleted
    job.delete()  # idempotent


def test_zero_grace_period_kills_at_once() -> None:
    job = kjob.Job(name="trap", command="trap '' TERM; sleep 300", termination_grace_period_seconds=0)
    job.start()
    while not job.pods() or job.pods()[0].phase != "Running":
        time.sleep(0.01)
    t0 = time.monotonic()
    job.delete()
    assert time.monotonic() - t0 < 5  # far below the 30 s default grace
    assert no_pids_left(job.uid) == []
    # pods() of a deleted Job is empty, as in Kubernetes; the record of how its pod ended is not.
    assert job._all_pods()[0].exit_code == 137


def test_ctrl_c_during_wait_raises_and_job_can_still_be_deleted() -> None:
    job = kjob.Job(name="interrupted", command="sleep 300", termination_grace_period_seconds=1)
    job.start()
    # Started in the background, the test runner may have inherited SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            job.wait()
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert job.status.active == 1
    job.delete()
    assert no_pids_left(job.uid) == []


def test_wait_timeout_raises_timeout_error_and_job_keeps_running() -> None:
    with kjob.Job(name="slow", command="sleep 300", termination_grace_period_seconds=1) as job:
        job.start()
        with pytest.raises(TimeoutError):
            job.wait(timeout=0.1)
        assert job.status.active == 1
    assert job.is_deleted
    assert no_pids_left(job.uid) == []


def test_wait_before_start_is_an_error() -> None:
    job = kjob.Job(name="idle", command="true")
    with pytest.raises(kjob.KjobError, match="has not been started"):
        job.wait()
    job.start()
    with pytest.raises(kjob.KjobError, match="already been started"):
        job.start()
    job.wait(timeout=30)


def test_command_expansion_env_and_working_dir(tmp_path: Path) -> None:
    # §1.3: $(VAR) expands from the container env, $$ escapes, unknown references stay.
    job = kjob.Job(
        name="expand",
        command=["sh", "-c"],
        args=["echo '$(GREETING) $$(GREETING) $(UNKNOWN)' $GREETING '$(JOB_COMPLETION_INDEX)'; pwd"],
        env={"GREETING": "hello"},
        working_dir=str(tmp_path),
        completions=1,
        completion_mode="Indexed",
    )
    job.run(timeout=30)
    assert job.logs() == f"hello $(GREETING) $(UNKNOWN) hello 0\n{tmp_path}\n"


def test_private_log_dir_is_removed_on_delete_and_given_one_is_kept(tmp_path: Path) -> None:
    job = kjob.Job(name="logs", command="echo hi")
    job.run(timeout=30)
    private = Path(job.log_dir)
    assert private.is_dir()
    job.delete()
    assert not private.exists()
    kept = kjob.Job(name="logs", command="echo hi", log_dir=tmp_path)
    kept.run(timeout=30)
    kept.delete()
    assert [p.read_text() for p in tmp_path.iterdir()] == ["hi\n"]


def test_repr_reads_well() -> None:
    job = kjob.Job(name="pretty", command="true", completions=2, parallelism=2)
    assert repr(job) == (
        "<kjob.Job 'pretty' NotStarted NonIndexed completions=2 parallelism=2 active=0 succeeded=0 failed=0>"
    )
    job.run(timeout=30)
    assert repr(job).startswith("<kjob.Job 'pretty' Complete ")


def test_a_local_pod_runs_on_this_machine_whose_host_name_is_its_node_name(tmp_path: Path) -> None:
    import socket

    job = kjob.Job(command=["sh", "-c", "true"], log_dir=tmp_path)
    job.run(timeout=30)
    assert job.pods()[0].node_name == socket.gethostname()
