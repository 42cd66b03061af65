"""Small things seen on the way: messages that name the limit or the field, keywords that
mean nothing for a command Job, results in index order, ``kjob --version``, and no pods
listed for a deleted Job."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

import kjob
from kjob.cli import main

DNS_LABEL_TOO_LONG = "must be no more than 63 characters"  # validation.MaxLenError(63)


def test_a_job_name_over_63_characters_says_the_limit() -> None:
    name = "a" * 70
    # The API server adds job-name labels to the pod template: a label value holds 63.
    labels_too_long = f'spec.template.labels: Invalid value: "{name}": must be no more than 63 characters'
    with pytest.raises(ValueError) as caught:
        kjob.Job(name=name, command="true")
    # The container is named after the Job (as `kubectl create job` names it).
    assert str(caught.value).splitlines() == [
        labels_too_long,
        f'spec.template.spec.containers[0].name: Invalid value: "{name}": {DNS_LABEL_TOO_LONG}',
    ]
    with pytest.raises(ValueError) as caught:
        kjob.Job(name="short", container_name=name, command="true")
    assert str(caught.value) == (
        f'spec.template.spec.containers[0].name: Invalid value: "{name}": {DNS_LABEL_TOO_LONG}'
    )
    with pytest.raises(ValueError) as caught:
        kjob.Job(name=name, container_name="short", command="true")
    assert str(caught.value) == labels_too_long


@pytest.mark.parametrize("command", ["", "   \n"])
def test_an_empty_command_string_is_an_error_not_a_job_that_does_nothing(command: str) -> None:
    with pytest.raises(
        ValueError,
        match=r'^command: Invalid value: ".*": must be a non-empty shell command '
        r"line \(or a list of strings\)$",
    ):
        kjob.Job(command=command)


@pytest.mark.parametrize("keyword", ["kwargs", "max_workers"])
def test_callable_only_keywords_with_a_command_are_an_error(keyword: str) -> None:
    value = {"kwargs": {"x": 1}, "max_workers": 2}[keyword]
    with pytest.raises(
        ValueError,
        match=rf"^{keyword}: Forbidden: only a Job with a target callable uses "
        rf"{keyword}; a command Job would ignore it$",
    ):
        kjob.Job(command="true", **{keyword: value})  # type: ignore[arg-type]


ON_EXCEPTIONS_FORBIDDEN = (
    "spec.podFailurePolicy.rules[1].onExceptions: Forbidden: only a Job with a target callable raises "
    "exceptions; a command Job's pods fail with exit codes (use onExitCodes)"
)
POLICY = {
    "rules": [
        {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        {"action": "FailJob", "onExceptions": {"operator": "In", "values": ["ValueError"]}},
    ]
}


def test_on_exceptions_rules_on_a_command_job_are_an_error() -> None:
    with pytest.raises(ValueError) as caught:
        kjob.Job(command="true", pod_failure_policy=POLICY)
    assert str(caught.value) == ON_EXCEPTIONS_FORBIDDEN
    manifest = {
        "metadata": {"name": "m"},
        "spec": {
            "podFailurePolicy": POLICY,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "m", "command": ["true"]}]}
            },
        },
    }
    with pytest.raises(ValueError) as caught:
        kjob.Job.from_manifest(manifest)
    assert str(caught.value) == ON_EXCEPTIONS_FORBIDDEN


def test_results_of_an_indexed_job_are_ordered_by_index() -> None:
    def later_for_lower(i: int) -> int:
        time.sleep((3 - i) * 0.05)
        return i

    job = kjob.Job(
        target=later_for_lower, completions=4, parallelism=4, completion_mode="Indexed", max_workers=4
    )
    assert job.run(timeout=60).succeeded == 4
    assert list(job.results().items()) == [(0, 0), (1, 1), (2, 2), (3, 3)]  # type: ignore[union-attr]
    job.delete()


@pytest.mark.parametrize("args", [["--version"], ["version"]])
def test_version(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 0
    assert capsys.readouterr().out == f"kjob {kjob.__version__}\n"
    out = subprocess.run(
        [sys.executable, "-m", "kjob.cli", *args], capture_output=True, text=True, timeout=30
    )
    assert (out.returncode, out.stdout, out.stderr) == (0, "kjob 0.1.0\n", "")


def test_a_deleted_job_lists_no_pods() -> None:
    job = kjob.Job(name="gone", command="echo hi", completions=2)
    job.run(timeout=30)
    assert len(job.pods()) == 2
    job.delete()
    assert job.pods() == []


def test_a_job_its_ttl_deleted_lists_no_pods() -> None:
    # ttlSecondsAfterFinished: the TTL controller deletes the Job, and the garbage collector its pods.
    job = kjob.Job(name="ttl", command="echo hi", ttl_seconds_after_finished=0)
    assert job.run(timeout=30).is_complete
    deadline = time.monotonic() + 10
    while not job.is_deleted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.is_deleted
    assert job.pods() == []
