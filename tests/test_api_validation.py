"""Defaulting and validation as the API server does them (issue 13 §5): `SetDefaults_Job`
before validation, `ValidateObjectMeta` for the Job and its pod template (with the job-name
labels the API server adds), and `IsQualifiedName`'s message for each of its branches."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest

import kjob

BASE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "api"},
    "spec": {
        "template": {
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "command": ["true"]}]},
        },
    },
}

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
NAME_PART_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
SEVERAL_SLASHES_MSG = (
    "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and "
    "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
    "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
    "prefix and '/' (e.g. 'example.com/MyName')"
)
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def manifest(**metadata: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["metadata"].update(metadata)
    return doc


def errors(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ValueError) as info:
        kjob.Job.from_manifest(doc)
    return str(info.value).splitlines()


# ---- defaulting before validation (SetDefaults_Job, pkg/apis/batch/v1/defaults.go) ---------


@pytest.mark.parametrize(
    "pattern", [{"type": "DisruptionTarget"}, {"type": "DisruptionTarget", "status": ""}]
)
def test_on_pod_conditions_without_status_means_true(pattern: dict[str, str]) -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"]["podFailurePolicy"] = {"rules": [{"action": "Ignore", "onPodConditions": [pattern]}]}
    job = kjob.Job.from_manifest(doc)
    assert job.name == "api"


def test_an_indexed_job_without_completions_nor_parallelism_runs_one_index() -> None:
    """Both unset default to 1 before validation, so `completions` is not "required"."""
    doc = copy.deepcopy(BASE)
    doc["spec"]["completionMode"] = "Indexed"
    status = kjob.Job.from_manifest(doc).run(timeout=20)
    assert (status.succeeded, status.completed_indexes) == (1, "0")


def test_with_parallelism_alone_indexed_still_needs_completions() -> None:
    doc = copy.deepcopy(BASE)
    doc["spec"].update(completionMode="Indexed", parallelism=2)
    assert errors(doc) == ["spec.completions: Required value: when completion mode is Indexed"]


# ---- ValidateObjectMeta -------------------------------------------------------------------


def test_a_name_too_long_for_the_job_name_labels_is_refused_as_on_a_cluster() -> None:
    name = "a" * 64
    assert errors(manifest(name=name)) == [
        f'spec.template.labels: Invalid value: "{name}": must be no more than 63 characters'
    ]
    assert kjob.Job.from_manifest(manifest(name="a" * 63)).name == "a" * 63


def test_a_253_character_name_is_refused_and_254_says_the_subdomain_limit() -> None:
    name = ".".join(["a" * 63] * 4)[:253]
    assert errors(manifest(name=name)) == [
        f'spec.template.labels: Invalid value: "{name}": must be no more than 63 characters'
    ]
    long = "a" * 254
    assert errors(manifest(name=long)) == [
        f'metadata.name: Invalid value: "{long}": must be no more than 253 characters',
        f'spec.template.labels: Invalid value: "{long}": must be no more than 63 characters',
    ]


def test_name_must_be_a_dns_subdomain() -> None:
    # A label value may hold upper case and '_': only the name's own rule fails.
    assert errors(manifest(name="Bad_Name")) == [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']
    assert errors(manifest(name="-bad")) == [
        f'metadata.name: Invalid value: "-bad": {SUBDOMAIN_MSG}',
        f'spec.template.labels: Invalid value: "-bad": {LABEL_VALUE_MSG}',
    ]


@pytest.mark.parametrize(
    ("namespace", "message"),
    [
        ("team.a", "must not contain dots"),
        ("a" * 64, "must be no more than 63 characters"),
        (
            "Team",
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
            "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
            "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
    ],
)
def test_namespace_must_be_an_rfc_1123_label(namespace: str, message: str) -> None:
    assert errors(manifest(namespace=namespace)) == [
        f'metadata.namespace: Invalid value: "{namespace}": {message}'
    ]


def test_a_valid_namespace_is_kept() -> None:
    assert kjob.Job.from_manifest(manifest(namespace="team-a")).namespace == "team-a"


@pytest.mark.parametrize(
    ("key", "messages"),
    [
        ("/app", ["prefix part must be non-empty"]),
        ("a/b/c", [SEVERAL_SLASHES_MSG]),
        ("Example.com/app", [f"prefix part {SUBDOMAIN_MSG}"]),
        ("example.com/-app", [NAME_PART_MSG]),
        ("example.com/", ["name part must be non-empty", NAME_PART_MSG]),
        ("a" * 64, ["name part must be no more than 63 characters"]),
    ],
)
def test_label_keys_give_is_qualified_names_message_for_each_branch(key: str, messages: list[str]) -> None:
    assert errors(manifest(labels={key: "x"})) == [
        f'metadata.labels: Invalid value: "{key}": {message}' for message in messages
    ]


def test_label_values_and_template_labels() -> None:
    doc = manifest(labels={"tier": "-x", "size": "a" * 64})
    doc["spec"]["template"]["metadata"] = {"labels": {"a/b/c": "ok"}}
    assert errors(doc) == [
        f'metadata.labels: Invalid value: "{"a" * 64}": must be no more than 63 characters',
        f'metadata.labels: Invalid value: "-x": {LABEL_VALUE_MSG}',
        f'spec.template.labels: Invalid value: "a/b/c": {SEVERAL_SLASHES_MSG}',
    ]


def test_annotation_keys_ignore_case_and_their_total_size_is_limited() -> None:
    # Upper case is allowed in annotation keys: IsQualifiedName checks them lowercased.
    assert kjob.Job.from_manifest(manifest(annotations={"Example.COM/Note": "x"})).name == "api"
    assert errors(manifest(annotations={"/note": "x"})) == [
        'metadata.annotations: Invalid value: "/note": prefix part must be non-empty'
    ]
    doc = manifest(annotations={"a": "x" * (256 * 1024)})
    assert errors(doc) == ["metadata.annotations: Too long: must have at most 262144 bytes"]
    doc = copy.deepcopy(BASE)
    doc["spec"]["template"]["metadata"] = {"annotations": {"a": "x" * (256 * 1024)}}
    assert errors(doc) == ["spec.template.annotations: Too long: must have at most 262144 bytes"]


@pytest.mark.parametrize(
    ("type_", "messages"),
    [
        ("/Ready", ["prefix part must be non-empty"]),
        ("a/b/Ready", [SEVERAL_SLASHES_MSG]),
        ("Bad_Prefix/Ready", [f"prefix part {SUBDOMAIN_MSG}"]),
        ("Ready!", [NAME_PART_MSG]),
        ("", ["name part must be non-empty", NAME_PART_MSG]),
    ],
)
def test_condition_types_give_is_qualified_names_message_for_each_branch(
    type_: str, messages: list[str]
) -> None:
    doc = copy.deepcopy(BASE)
    pattern = {"type": type_, "status": "True"}
    doc["spec"]["podFailurePolicy"] = {"rules": [{"action": "Ignore", "onPodConditions": [pattern]}]}
    path = "spec.podFailurePolicy.rules[0].onPodConditions[0].type"
    assert errors(doc) == [f'{path}: Invalid value: "{type_}": {message}' for message in messages]


# ---- ready after an in-place restart ----------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_container_restarted_in_place_is_ready_again(tmp_path: Path) -> None:
    """OnFailure: the first run fails, the restarted one keeps running; once its process runs
    the pod counts as ready again (no readiness probe: running is ready)."""
    marker = tmp_path / "ran-once"
    job = kjob.Job(
        name="ready-again",
        command=f"if [ -e {marker} ]; then sleep 30; else touch {marker}; exit 1; fi",
        restart_policy="OnFailure",
        backoff_initial_seconds=0.01,
        backoff_max_seconds=0.05,
    )
    job.start()
    try:
        deadline = time.monotonic() + 10
        seen: list[tuple[int, int]] = []
        while time.monotonic() < deadline:
            [pod] = job.pods() or [None]  # type: ignore[list-item]
            status = job.status
            if pod is not None:
                seen.append((pod.restart_count, status.ready))
                if pod.restart_count == 1 and status.ready == 1:
                    break
            time.sleep(0.02)
        assert seen[-1] == (1, 1), seen
        assert pod is not None and pod.phase == "Running"
    finally:
        job.delete()
