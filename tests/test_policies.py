"""The rest of the Job contract with real processes (docs/semantics.md §1–§7): per-index backoff, pod
failure and success policies, deadlines, suspend, replacement policy, TTL, scaling, managedBy,
events. Every scenario also checks that no pod process outlives it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

import kjob
from conftest import Backoff, no_pids_left, pids_of_job

# A pod that ignores SIGTERM (the disposition is inherited by `sleep`), so only SIGKILL ends it.
# It prints "ready" once the trap is in place: a SIGTERM before that would still end it.
STUBBORN = "trap '' TERM; echo ready; sleep 300"


def wait_for(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def reasons(status: kjob.JobStatus) -> list[tuple[str, str, str, str]]:
    return [(c.type, c.status, c.reason, c.message) for c in status.conditions]


def assert_no_pods_left(job: kjob.Job) -> None:
    wait_for(lambda: pids_of_job(job.uid) == [], timeout=10)


def test_backoff_limit_per_index_fails_only_that_index(fast_backoff: Backoff) -> None:
    # §5.4: index 2 always fails; with backoffLimitPerIndex 1 it gets one retry, then the Job
    # ends Failed with reason FailedIndexes once every other index succeeded.
    job = kjob.Job(
        name="per-index",
        command='[ "$JOB_COMPLETION_INDEX" != 2 ]',
        completions=4,
        parallelism=4,
        completion_mode="Indexed",
        backoff_limit_per_index=1,
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (3, 2)
    assert (status.completed_indexes, status.failed_indexes) == ("0,1,3", "2")
    assert reasons(status) == [
        ("FailureTarget", "True", "FailedIndexes", "Job has failed indexes"),
        ("Failed", "True", "FailedIndexes", "Job has failed indexes"),
    ]
    index2 = [p for p in job.pods() if p.index == 2]
    assert [p.index_failure_count for p in index2] == [0, 1]
    assert [p.annotations["batch.kubernetes.io/job-index-failure-count"] for p in index2] == ["0", "1"]
    assert all(p.index_ignored_failure_count == 0 for p in index2)
    assert kjob.Job(name="x", command="true").status.failed_indexes is None


def test_max_failed_indexes_exceeded(fast_backoff: Backoff) -> None:
    job = kjob.Job(
        name="max-failed",
        command='if [ "$JOB_COMPLETION_INDEX" -lt 2 ]; then exit 1; fi; sleep 300',
        completions=4,
        parallelism=4,
        completion_mode="Indexed",
        backoff_limit_per_index=0,
        max_failed_indexes=1,
        termination_grace_period_seconds=1,
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert reasons(status)[-1] == (
        "Failed",
        "True",
        "MaxFailedIndexesExceeded",
        "Job has exceeded the specified maximal number of failed indexes",
    )
    assert status.failed_indexes == "0,1"
    assert status.failed == 4  # two failed indexes plus the two pods killed with the Job
    assert_no_pods_left(job)


def test_pod_failure_policy_fail_job_message(fast_backoff: Backoff) -> None:
    # §5.5: first matching rule wins; the message names namespace, pod, container, exit code
    # and rule index. Keys may be snake_case.
    job = kjob.Job(
        name="pfp",
        namespace="team-a",
        container_name="main",
        command="exit 42",
        backoff_limit=6,
        pod_failure_policy={
            "rules": [
                {"action": "Ignore", "on_exit_codes": {"operator": "In", "values": [1]}},
                {
                    "action": "FailJob",
                    "on_exit_codes": {"container_name": "main", "operator": "In", "values": [42]},
                },
            ]
        },
        **fast_backoff,
    )
    status = job.run(timeout=30)
    [pod] = job.pods()
    message = (
        f"Container main for pod team-a/{pod.name} failed with exit code 42 matching FailJob rule at index 1"
    )
    assert reasons(status) == [
        ("FailureTarget", "True", "PodFailurePolicy", message),
        ("Failed", "True", "PodFailurePolicy", message),
    ]
    assert status.failed == 1
    assert ("Warning", "PodFailurePolicy", message) in [(e.type, e.reason, e.message) for e in job.events()]
    assert_no_pods_left(job)


def test_pod_failure_policy_ignore_does_not_count(tmp_path: Path, fast_backoff: Backoff) -> None:
    counter = tmp_path / "n"
    job = kjob.Job(
        name="ignore",
        command=f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; [ $n -ge 2 ] || exit 3",
        backoff_limit=0,
        pod_failure_policy={
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}}]
        },
        log_dir=tmp_path / "logs",
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert status.is_complete
    assert (status.succeeded, status.failed) == (1, 0)
    assert [p.exit_code for p in job.pods()] == [3, 3, 0]


def test_fail_index_action(fast_backoff: Backoff) -> None:
    job = kjob.Job(
        name="fail-index",
        command='[ "$JOB_COMPLETION_INDEX" = 1 ] && exit 7; exit 0',
        completions=3,
        parallelism=3,
        completion_mode="Indexed",
        backoff_limit_per_index=5,
        pod_failure_policy={
            "rules": [{"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}}]
        },
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert (status.failed_indexes, status.completed_indexes, status.failed) == ("1", "0,2", 1)
    assert len([p for p in job.pods() if p.index == 1]) == 1, "a FailIndex index is not retried"
    assert status.conditions[-1].reason == "FailedIndexes"


def test_eviction_sets_disruption_target_and_ignore_rule_replaces_the_pod(tmp_path: Path) -> None:
    marker = tmp_path / "evicted-once"
    job = kjob.Job(
        name="evict",
        command=f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; sleep 300",
        backoff_limit=0,
        termination_grace_period_seconds=1,
        pod_failure_policy={
            "rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]
        },
        backoff_initial_seconds=0.01,
        log_dir=tmp_path / "logs",
    )
    job.start()
    wait_for(lambda: marker.exists())
    first = job.pods()[0]
    job.evict(first.name)
    status = job.wait(timeout=30)
    assert status.is_complete
    assert (status.succeeded, status.failed) == (1, 0)
    evicted = job.pods()[0]
    assert [(c.type, c.status, c.reason) for c in evicted.conditions] == [
        ("DisruptionTarget", "True", "EvictionByEvictionAPI")
    ]
    assert (evicted.phase, evicted.exit_code) == ("Failed", 143)
    with pytest.raises(kjob.KjobError, match='pods "nope" not found'):
        job.evict("nope")


def test_success_policy_kills_the_rest_without_counting_them() -> None:
    # §7: SuccessCriteriaMet(SuccessPolicy) at once, lingering pods killed, Complete after.
    job = kjob.Job(
        name="leader",
        command='[ "$JOB_COMPLETION_INDEX" = 0 ] && exit 0; sleep 300',
        completions=3,
        parallelism=3,
        completion_mode="Indexed",
        success_policy={"rules": [{"succeededIndexes": "0"}]},
        termination_grace_period_seconds=1,
    )
    status = job.run(timeout=30)
    assert reasons(status) == [
        ("SuccessCriteriaMet", "True", "SuccessPolicy", "Matched rules at index 0"),
        ("Complete", "True", "SuccessPolicy", "Matched rules at index 0"),
    ]
    assert (status.succeeded, status.failed, status.completed_indexes) == (1, 0, "0")
    assert status.completion_time is not None
    assert_no_pods_left(job)


def test_active_deadline_fails_the_job_and_kills_its_pods() -> None:
    job = kjob.Job(
        name="deadline",
        command="sleep 300",
        parallelism=2,
        completions=2,
        active_deadline_seconds=1,
        termination_grace_period_seconds=1,
    )
    status = job.run(timeout=30)
    assert reasons(status) == [
        ("FailureTarget", "True", "DeadlineExceeded", "Job was active longer than specified deadline"),
        ("Failed", "True", "DeadlineExceeded", "Job was active longer than specified deadline"),
    ]
    assert status.failed == 2
    assert status.start_time is not None and status.conditions[0].last_transition_time is not None
    assert (status.conditions[0].last_transition_time - status.start_time).total_seconds() >= 1
    assert_no_pods_left(job)


def test_pod_active_deadline_fails_just_the_pod() -> None:
    job = kjob.Job(
        name="pod-deadline",
        command="sleep 300",
        backoff_limit=0,
        pod_active_deadline_seconds=1,
        termination_grace_period_seconds=1,
    )
    status = job.run(timeout=30)
    [pod] = job.pods()
    assert (pod.phase, pod.reason) == ("Failed", "DeadlineExceeded")
    assert pod.message == "Pod was active on the node longer than the specified deadline"
    assert status.conditions[-1].reason == "BackoffLimitExceeded"
    assert_no_pods_left(job)


def test_suspend_and_resume() -> None:
    # §6.2: suspend kills active pods and sets Suspended=True; resume flips it to False,
    # resets startTime and creates pods again. Both are idempotent.
    job = kjob.Job(
        name="pausable", command="sleep 300", completions=2, parallelism=2, termination_grace_period_seconds=1
    )
    job.start()
    wait_for(lambda: job.status.active == 2)
    first_start = job.status.start_time
    job.suspend()
    job.suspend()
    wait_for(lambda: job.status.active == 0 and job.status.terminating == 0)
    wait_for(lambda: pids_of_job(job.uid) == [])
    assert reasons(job.status)[0] == ("Suspended", "True", "JobSuspended", "Job suspended")
    time.sleep(0.05)
    job.resume()
    job.resume()
    wait_for(lambda: job.status.active == 2)
    status = job.status
    assert [(c.type, c.status, c.reason, c.message) for c in status.conditions if c.type == "Suspended"] == [
        ("Suspended", "False", "JobResumed", "Job resumed")
    ]
    assert status.start_time is not None and first_start is not None and status.start_time > first_start
    assert len(job.pods()) == 4
    assert [e.reason for e in job.events() if e.reason in ("Suspended", "Resumed")] == [
        "Suspended",
        "Resumed",
    ]
    job.delete()
    assert no_pids_left(job.uid) == []


def test_created_suspended_runs_nothing_until_resumed() -> None:
    job = kjob.Job(name="held", command="true", suspend=True)
    job.start()
    wait_for(lambda: any(c.type == "Suspended" for c in job.status.conditions))
    assert job.pods() == [] and job.status.start_time is None
    job.resume()
    status = job.wait(timeout=30)
    assert status.is_complete
    assert [c.type for c in status.conditions] == ["Suspended", "SuccessCriteriaMet", "Complete"]


@pytest.mark.parametrize(("policy", "early_replacement"), [("TerminatingOrFailed", True), ("Failed", False)])
def test_pod_replacement_policy(policy: str, early_replacement: bool) -> None:
    # §5.6: with TerminatingOrFailed a terminating pod is replaced at once (and counted as
    # failed); with Failed the replacement waits until the old pod is gone.
    job = kjob.Job(
        name="replace",
        command=STUBBORN,
        pod_replacement_policy=policy,
        termination_grace_period_seconds=2,
        backoff_initial_seconds=0.01,
    )
    job.start()
    wait_for(lambda: job.status.active == 1 and job.logs() == "ready\n")
    job.evict(job.pods()[0].name)
    wait_for(lambda: job.status.terminating == 1)
    time.sleep(0.5)  # well inside the 2 s grace period
    status = job.status
    assert status.terminating == 1
    assert status.active == (1 if early_replacement else 0)
    assert status.failed == (1 if early_replacement else 0)
    wait_for(lambda: job.status.active == 1 and job.status.terminating == 0, timeout=10)
    assert job.pods()[0].exit_code == 137  # SIGKILL after the grace period
    assert job.status.failed == 1
    job.delete(timeout=10)
    assert no_pids_left(job.uid) == []


def test_suspend_honours_the_grace_period() -> None:
    job = kjob.Job(name="grace", command=STUBBORN, termination_grace_period_seconds=1)
    job.start()
    wait_for(lambda: job.status.active == 1 and job.logs() == "ready\n")
    t0 = time.monotonic()
    job.suspend()
    wait_for(lambda: job.status.terminating == 1)
    wait_for(lambda: job.status.terminating == 0)
    assert time.monotonic() - t0 >= 1.0
    assert job.pods()[0].exit_code == 137
    job.delete()


def test_ttl_after_finished_deletes_the_job() -> None:
    job = kjob.Job(name="ttl", command="echo done", ttl_seconds_after_finished=0)
    status = job.run(timeout=30)
    assert status.is_complete
    wait_for(lambda: job.is_deleted)
    assert not Path(job.log_dir).exists(), "the private log folder goes with the Job"


def test_elastic_indexed_scaling() -> None:
    job = kjob.Job(
        name="elastic",
        command="sleep 0.2",
        completions=4,
        parallelism=1,
        completion_mode="Indexed",
        termination_grace_period_seconds=1,
    )
    job.start()
    wait_for(lambda: job.status.active == 1)
    job.scale(parallelism=2)
    wait_for(lambda: job.status.active == 2)
    with pytest.raises(ValueError) as info:
        job.scale(completions=3)
    assert (
        str(info.value)
        == "spec.completions: Invalid value: 3: can only be modified in tandem with spec.parallelism"
    )
    job.scale(parallelism=2, completions=2)
    status = job.wait(timeout=30)
    assert status.is_complete and status.succeeded == 2
    assert set(status.completed_indexes.split(",")) <= {"0", "1"}
    assert_no_pods_left(job)

    fixed = kjob.Job(name="fixed", command="true", completions=2)
    with pytest.raises(ValueError, match=r"^spec\.completions: Invalid value: 5: field is immutable$"):
        fixed.scale(completions=5)
    with pytest.raises(ValueError, match="must be greater than or equal to 0"):
        fixed.scale(parallelism=-1)


def test_managed_by_another_controller_is_not_run() -> None:
    job = kjob.Job(name="foreign", command="true", managed_by="example.com/other-controller")
    with pytest.raises(ValueError, match="another controller owns it"):
        job.start()
    assert job.pods() == []
    local = kjob.Job(name="ours", command="true", managed_by="kubernetes.io/job-controller")
    assert local.run(timeout=30).is_complete


def test_events_name_created_pods_and_completion() -> None:
    job = kjob.Job(name="evented", command="true", completions=2, parallelism=2)
    job.run(timeout=30)
    events = job.events()
    created = sorted(e.message for e in events if e.reason == "SuccessfulCreate")
    assert created == sorted(f"Created pod: {p.name}" for p in job.pods())
    assert [(e.type, e.reason, e.message) for e in events][-1] == ("Normal", "Completed", "Job completed")
    assert {e.involved_object for e in events} == {"Job/default/evented"}
    assert all(e.time is not None for e in events)


def test_policy_validation_messages() -> None:
    def errors(**kwargs: object) -> list[str]:
        with pytest.raises(ValueError) as info:
            kjob.Job(name="v", command="true", **kwargs)  # type: ignore[arg-type]
        return str(info.value).splitlines()

    assert errors(backoff_limit_per_index=1) == [
        "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode"
    ]
    assert errors(max_failed_indexes=1, completions=2, completion_mode="Indexed") == [
        "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
    ]
    assert errors(
        restart_policy="OnFailure",
        pod_failure_policy={
            "rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1, 0, 2, 2]}}]
        },
    ) == [
        "spec.podFailurePolicy.rules[0].onExitCodes.values[1]: Invalid value: 0: must not be 0 for the In operator",
        "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 2",
        "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{1, 0, 2, 2}: must be ordered",
        'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when podFailurePolicy is specified',
    ]
    assert errors(pod_failure_policy={"rules": [{"action": "Retry"}]}) == [
        'spec.podFailurePolicy.rules[0].action: Unsupported value: "Retry": supported values: "Count", "FailIndex", "FailJob", "Ignore"',
        "spec.podFailurePolicy.rules[0]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
    ]
    assert errors(success_policy={"rules": []}) == [
        "spec.successPolicy: Invalid value: batch.SuccessPolicy{Rules:[]batch.SuccessPolicyRule{}}: requires indexed completion mode",
    ]
    assert errors(success_policy={"rules": []}, completion_mode="Indexed", completions=2) == [
        "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified",
    ]
    assert errors(
        completions=5,
        completion_mode="Indexed",
        success_policy={"rules": [{"succeededIndexes": "invalid-format"}, {"succeededCount": 6}]},
    ) == [
        'spec.successPolicy.rules[0].succeededIndexes: Invalid value: "invalid-format": error parsing succeededIndexes: cannot convert string to integer for index: "invalid"',
        "spec.successPolicy.rules[1].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
    ]
    assert errors(pod_replacement_policy="Sometimes") == [
        'spec.podReplacementPolicy: Unsupported value: "Sometimes": supported values: "Failed", "TerminatingOrFailed"'
    ]
    assert errors(
        pod_replacement_policy="TerminatingOrFailed",
        pod_failure_policy={
            "rules": [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [1]}}]
        },
    ) == ['spec.podReplacementPolicy: Unsupported value: "TerminatingOrFailed": supported values: "Failed"']
    assert errors(managed_by="invalid custom controller name") == [
        'spec.managedBy: Invalid value: "invalid custom controller name": must be a domain-prefixed path (such as "acme.io/foo")'
    ]
    assert errors(active_deadline_seconds=-1, ttl_seconds_after_finished=-1) == [
        "spec.activeDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0",
        "spec.ttlSecondsAfterFinished: Invalid value: -1: must be greater than or equal to 0",
    ]
