"""Invalid specs: ValueError with every Kubernetes-formatted field error (docs/semantics.md §0.4, §1.6)."""

from __future__ import annotations

import math

import pytest

import kjob


def error_lines(**kwargs: object) -> list[str]:
    kwargs.setdefault("name", "bad")
    kwargs.setdefault("command", "true")
    with pytest.raises(ValueError) as info:
        kjob.Job(**kwargs)  # type: ignore[arg-type]
    return str(info.value).splitlines()


def test_negative_completions_message_is_exact() -> None:
    assert error_lines(completions=-1) == [
        "spec.completions: Invalid value: -1: must be greater than or equal to 0"
    ]


def test_every_error_is_reported_at_once_in_kubernetes_order() -> None:
    assert error_lines(
        parallelism=-1, completions=-2, backoff_limit=-3, termination_grace_period_seconds=-4
    ) == [
        "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
        "spec.completions: Invalid value: -2: must be greater than or equal to 0",
        "spec.backoffLimit: Invalid value: -3: must be greater than or equal to 0",
        "spec.template.spec.terminationGracePeriodSeconds: Invalid value: -4: must be greater than or equal to 0",
    ]


def test_indexed_needs_completions_and_bounded_parallelism() -> None:
    assert error_lines(completion_mode="Indexed", parallelism=100001) == [
        "spec.completions: Required value: when completion mode is Indexed",
        "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed",
    ]


def test_unknown_enums_are_unsupported_values() -> None:
    assert error_lines(completion_mode="Sometimes") == [
        'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"'
    ]
    assert error_lines(restart_policy="Always") == [
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    ]
    assert error_lines(restart_policy="Sometimes") == [
        'spec.template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: "OnFailure", "Never"'
    ]


def test_names_must_be_dns_subdomains_and_indexed_hostnames_labels() -> None:
    # The container is named after the Job (as `kubectl create job` does), so both fail.
    job_name, container_name = error_lines(name="Not_Valid")
    assert job_name.startswith('metadata.name: Invalid value: "Not_Valid": a lowercase RFC 1123 subdomain')
    assert container_name.startswith(
        'spec.template.spec.containers[0].name: Invalid value: "Not_Valid": a lowercase RFC 1123 label'
    )
    long_name = "a" * 62
    assert error_lines(name=long_name, completions=10, completion_mode="Indexed") == [
        f'metadata.name: Invalid value: "{long_name}": will not able to create pod with invalid '
        f"DNS label: {long_name}-9"
    ]


def test_missing_command_is_required() -> None:
    [line] = error_lines(command=None)
    assert line.startswith("spec.template.spec.containers[0].command: Required value")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"completions": "3"}, "completions must be an int or None, not str"),
        ({"parallelism": 2.5}, "parallelism must be an int or None, not float"),
        ({"backoff_limit": True}, "backoff_limit must be an int or None, not bool"),
        ({"command": 42}, "command must be a string or a list of strings, not int"),
        ({"command": ["echo", 1]}, r"command\[1\] must be a string, not int"),
        ({"env": {"A": 1}}, "env entries must be strings"),
        ({"args": "x"}, "args must be a list of strings, not str"),
        ({"backoff_initial_seconds": "1"}, "backoff_initial_seconds must be a number"),
    ],
)
def test_wrong_types_raise_type_error(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(TypeError, match=match):
        kjob.Job(**{"name": "t", "command": "true", **kwargs})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1.0, math.inf, math.nan])
def test_bad_backoff_seconds_raise_value_error(value: float) -> None:
    with pytest.raises(ValueError, match="backoff_max_seconds: must be a finite number of seconds"):
        kjob.Job(name="t", command="true", backoff_max_seconds=value)


def test_out_of_range_integers_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.completions"):
        kjob.Job(name="t", command="true", completions=2**31)
