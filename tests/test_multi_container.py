"""Pods with several containers, init containers and native sidecars, run as processes of one
pod: each container its own command, environment and log (issue 13 §4)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

import kjob
from conftest import Backoff, no_pids_left, pids_of_job


def manifest(
    name: str,
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    restart_policy: str = "Never",
    annotations: dict[str, str] | None = None,
    grace: int | None = None,
    **spec: Any,
) -> dict[str, Any]:
    pod: dict[str, Any] = {"restartPolicy": restart_policy, "containers": containers}
    if grace is not None:
        pod["terminationGracePeriodSeconds"] = grace
    if init is not None:
        pod["initContainers"] = init
    template: dict[str, Any] = {"spec": pod}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": template, **spec},
    }


def sh(name: str, script: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "command": ["sh", "-c", script], **more}


def test_two_containers_that_exit_0_make_a_succeeded_pod(tmp_path: Path) -> None:
    job = kjob.Job.from_manifest(
        manifest(
            "two",
            [
                sh("a", "echo from-a"),
                sh("b", "echo from-b; echo $WHO", env=[{"name": "WHO", "value": "bee"}]),
            ],
        ),
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (1, 0)
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.failed_container) == ("Succeeded", 0, None)
    assert pod.container_exit_codes == {"a": 0, "b": 0}
    assert job.logs() == "from-a\n"
    assert job.logs(container="b") == "from-b\nbee\n"
    assert (tmp_path / f"{pod.name}.log").read_text() == "from-a\n"
    assert (tmp_path / f"{pod.name}_b.log").read_text() == "from-b\nbee\n"
    job.delete()


def test_one_failed_container_fails_the_pod_and_the_other_is_killed(tmp_path: Path) -> None:
    job = kjob.Job.from_manifest(
        manifest(
            "onefails",
            [sh("sleeper", "echo up; exec sleep 60"), sh("worker", "echo broken; exit 3")],
            grace=1,
        ),
        log_dir=tmp_path,
    )
    started = time.monotonic()
    status = job.run(timeout=30)
    assert time.monotonic() - started < 10, "the sleeper was killed, not waited for"
    assert status.failed == 1
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.failed_container) == ("Failed", 3, "worker")
    # The sleeper ended by SIGTERM (128 + 15).
    assert pod.container_exit_codes == {"sleeper": 143, "worker": 3}
    assert no_pids_left(job.uid) == []
    with pytest.raises(kjob.JobFailedError) as raised:
        job.wait(timeout=1, check=True)
    text = str(raised.value)
    assert f"pod {pod.name} container worker: exit code 3" in text
    assert "    broken" in text
    job.delete()


def test_init_containers_run_in_order_before_the_main_container(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    job = kjob.Job.from_manifest(
        manifest(
            "inits",
            [sh("main", f"echo main >> {trail}; cat {trail}")],
            init=[
                sh("first", f"sleep 0.2; echo first >> {trail}"),
                sh("second", f"echo second >> {trail}"),
            ],
        ),
        log_dir=tmp_path / "logs",
    )
    assert job.run(timeout=30).succeeded == 1
    assert trail.read_text() == "first\nsecond\nmain\n"
    [pod] = job.pods()
    assert pod.container_exit_codes == {"first": 0, "second": 0, "main": 0}
    assert job.logs() == "first\nsecond\nmain\n"
    job.delete()


def test_a_failed_init_container_fails_the_pod_under_never(tmp_path: Path) -> None:
    marker = tmp_path / "main-ran"
    job = kjob.Job.from_manifest(
        manifest("initfails", [sh("main", f"touch {marker}")], init=[sh("setup", "echo no; exit 4")]),
        log_dir=tmp_path / "logs",
    )
    status = job.run(timeout=30)
    assert status.failed == 1
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.failed_container) == ("Failed", 4, "setup")
    assert pod.container_exit_codes == {"setup": 4}
    assert not marker.exists()
    assert job.logs(container="setup") == "no\n"
    job.delete()


def test_a_failed_init_container_restarts_in_place_under_on_failure(
    tmp_path: Path, fast_backoff: Backoff
) -> None:
    count = tmp_path / "count"
    # Fails on its first run, succeeds on its second.
    setup = f"echo x >> {count}; test $(wc -l < {count}) -ge 2"
    job = kjob.Job.from_manifest(
        manifest(
            "initretry",
            [sh("main", "echo done")],
            init=[sh("setup", setup)],
            restart_policy="OnFailure",
            backoffLimit=3,
        ),
        log_dir=tmp_path / "logs",
        **fast_backoff,
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (1, 0)
    [pod] = job.pods()
    assert (pod.phase, pod.restart_count) == ("Succeeded", 1)
    assert count.read_text() == "x\nx\n"
    job.delete()


def test_a_sidecar_runs_beside_the_main_container_and_is_stopped_after_it(tmp_path: Path) -> None:
    trail = tmp_path / "trail"
    sidecar = sh(
        "proxy",
        f"trap 'echo proxy-stopped >> {trail}; exit 0' TERM; echo proxy-up >> {trail}; while :; do sleep 0.05; done",
        restartPolicy="Always",
    )
    # The main container sees the sidecar running beside it.
    main = sh("main", f"sleep 0.3; echo main-saw-$(grep -c proxy-up {trail}) >> {trail}")
    job = kjob.Job.from_manifest(
        manifest("sidecar", [main], init=[sidecar], grace=5),
        log_dir=tmp_path / "logs",
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (1, 0)
    assert trail.read_text() == "proxy-up\nmain-saw-1\nproxy-stopped\n"
    [pod] = job.pods()
    assert (pod.phase, pod.exit_code, pod.failed_container) == ("Succeeded", 0, None)
    assert pod.container_exit_codes == {"proxy": 0, "main": 0}
    assert no_pids_left(job.uid) == []
    job.delete()


def test_a_sidecar_killed_by_sigterm_does_not_fail_the_pod(tmp_path: Path) -> None:
    sidecar = sh("proxy", "exec sleep 60", restartPolicy="Always")
    job = kjob.Job.from_manifest(
        manifest("sidecarterm", [sh("main", "true")], init=[sidecar]), log_dir=tmp_path
    )
    status = job.run(timeout=30)
    assert (status.succeeded, status.failed) == (1, 0)
    [pod] = job.pods()
    assert pod.container_exit_codes == {"proxy": 143, "main": 0}
    assert no_pids_left(job.uid) == []
    job.delete()


@pytest.mark.parametrize(
    ("container", "values", "reason"),
    [("worker", [42], "PodFailurePolicy"), ("helper", [42], "BackoffLimitExceeded")],
)
def test_a_pod_failure_policy_rule_matches_the_named_container(
    tmp_path: Path, container: str, values: list[int], reason: str
) -> None:
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": container, "operator": "In", "values": values},
            }
        ]
    }
    job = kjob.Job.from_manifest(
        manifest(
            "pfp",
            [sh("helper", "exec sleep 60"), sh("worker", "exit 42")],
            podFailurePolicy=policy,
            grace=1,
        ),
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    failed = status.condition("Failed")
    assert failed is not None
    assert failed.reason == reason
    if reason == "PodFailurePolicy":
        [pod] = job.pods()
        assert failed.message == (
            f"Container worker for pod default/{pod.name} failed with exit code 42 matching FailJob rule at index 0"
        )
    job.delete()


def test_logs_per_container_and_the_default_container_annotation(tmp_path: Path) -> None:
    job = kjob.Job.from_manifest(
        manifest(
            "logs",
            [sh("a", "echo from-a"), sh("b", "echo from-b")],
            init=[sh("setup", "echo from-setup")],
            annotations={"kubectl.kubernetes.io/default-container": "b"},
        ),
        log_dir=tmp_path,
    )
    job.run(timeout=30)
    [pod] = job.pods()
    assert job.logs() == "from-b\n"
    assert job.logs(pod=pod.name, container="a") == "from-a\n"
    assert job.logs(container="setup") == "from-setup\n"
    with pytest.raises(kjob.KjobError, match=f"^container nope is not valid for pod {pod.name}$"):
        job.logs(container="nope")
    job.delete()


def test_deleting_the_job_kills_every_container_process(tmp_path: Path) -> None:
    sidecar = sh("proxy", "exec sleep 60", restartPolicy="Always")
    job = kjob.Job.from_manifest(
        manifest("deleteall", [sh("a", "exec sleep 60"), sh("b", "exec sleep 60")], init=[sidecar]),
        log_dir=tmp_path,
    )
    job.start()
    deadline = time.monotonic() + 10
    while len(pids_of_job(job.uid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(pids_of_job(job.uid)) == 3
    job.delete()
    assert no_pids_left(job.uid) == []


def test_names_must_be_unique_across_containers_and_init_containers() -> None:
    with pytest.raises(ValueError) as raised:
        kjob.Job.from_manifest(
            manifest("dupes", [sh("a", "true")], init=[sh("a", "true", restartPolicy="OnFailure")])
        )
    assert str(raised.value).splitlines()[-2:] == [
        'spec.template.spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"',
        'spec.template.spec.initContainers[0].name: Duplicate value: "a"',
    ]


def test_the_jobs_deadline_kills_every_container(tmp_path: Path) -> None:
    sidecar = sh("proxy", "exec sleep 60", restartPolicy="Always")
    job = kjob.Job.from_manifest(
        manifest(
            "deadline",
            [sh("a", "exec sleep 60"), sh("b", "exec sleep 60")],
            init=[sidecar],
            grace=1,
            activeDeadlineSeconds=1,
        ),
        log_dir=tmp_path,
    )
    status = job.run(timeout=30)
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "DeadlineExceeded"
    assert no_pids_left(job.uid) == []
    [pod] = job.pods()
    assert pod.phase == "Failed"
    assert pod.container_exit_codes == {"proxy": 143, "a": 143, "b": 143}
    job.delete()
