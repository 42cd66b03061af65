"""Smaller hostile input (issue item 7): YAML nested ~900 levels deep is a clean error (exit 2
from the CLI, no RecursionError), and an environment variable name Kubernetes refuses (one
holding '=') is refused the same way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import kjob

KJOB = [sys.executable, "-m", "kjob.cli"]
HEAD = "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: deep\nspec:\n"
# Upstream's IsEnvVarName message (apimachinery pkg/util/validation/validation.go).
ENV_NAME_MSG = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', "
    "or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or "
    "'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)


def block_nested(depth: int) -> str:
    return HEAD + "".join(f"{'  ' * (i + 1)}a:\n" for i in range(depth)) + f"{'  ' * (depth + 1)}b: 1\n"


def flow_nested(depth: int) -> str:
    return HEAD + "  template: " + "[" * depth + "]" * depth + "\n"


@pytest.mark.parametrize("text", [block_nested(900), flow_nested(900)], ids=["block", "flow"])
@pytest.mark.parametrize("command", ["run", "validate"])
def test_yaml_nested_900_deep_is_exit_2_with_a_clear_error(tmp_path: Path, text: str, command: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(text)
    done = subprocess.run([*KJOB, command, "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr == f"error: {path}: manifest nested too deeply (more than 64 levels)\n"
    assert done.stdout == ""


def test_yaml_nested_900_deep_from_yaml_raises_value_error() -> None:
    with pytest.raises(ValueError, match=r"^<text>: manifest nested too deeply \(more than 64 levels\)$"):
        kjob.Job.from_yaml(flow_nested(900))


def test_yaml_nested_moderately_is_still_read() -> None:
    # Real manifests nest a dozen levels; the refusal is for hostile depths only.
    job = kjob.Job.from_yaml(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: ok\n  annotations: {a: '[[[[[[[[]]]]]]]]'}\nspec:\n"
        "  template:\n    spec:\n      restartPolicy: Never\n      containers:\n"
        "      - name: c\n        command: ['true']\n"
    )
    assert job.name == "ok"


def test_env_name_with_equals_sign_is_refused_as_kubernetes_does() -> None:
    with pytest.raises(ValueError) as caught:
        kjob.Job(name="env", command=["true"], env={"A=B": "c"})
    assert str(caught.value) == (
        f'spec.template.spec.containers[0].env[0].name: Invalid value: "A=B": {ENV_NAME_MSG}'
    )


def test_env_name_starting_with_a_digit_is_refused_by_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: env\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Never\n      containers:\n      - name: c\n        command: ['true']\n"
        "        env:\n        - {name: 1X, value: a}\n        - {name: ok.name-1, value: b}\n"
        "        - {name: '..', value: c}\n"
    )
    done = subprocess.run([*KJOB, "validate", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert done.stderr == (
        f'error: {path}: The Job "env" is invalid: \n'
        f'* spec.template.spec.containers[0].env[0].name: Invalid value: "1X": {ENV_NAME_MSG}\n'
        "* spec.template.spec.containers[0].env[2].name: Invalid value: \"..\": must not be '..'\n"
    )
