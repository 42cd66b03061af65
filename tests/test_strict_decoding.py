"""Decoding as strict as kubectl's (issue 13 §2): a field Kubernetes' types do not have is an
error in kubectl's words (`strict decoding error: unknown field "spec.backofLimit"`), with a
"did you mean" when one field is close; a field Kubernetes has but kjob cannot honour stays a
`KjobWarning`; a value of the wrong type is reported with every other field error of the
document, in the API server's words."""

from __future__ import annotations

import copy
import importlib.util
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml

import kjob
from conftest import REPO, needs_source_tree

ROOT = REPO
GENERATOR = ROOT / "tools" / "gen_k8s_fields.py"
KJOB = [sys.executable, "-m", "kjob.cli"]
# The generator writes Rust and formats it with rustfmt: where there is no Rust toolchain (the
# wheel run of .ci/run) the source run has checked it.
needs_rustfmt = pytest.mark.skipif(shutil.which("rustfmt") is None, reason="needs rustfmt (a Rust toolchain)")

BASE: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {"name": "strict", "labels": {"app": "strict"}},
    "spec": {
        "backoffLimit": 2,
        "template": {
            "metadata": {"labels": {"app": "strict"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
            },
        },
    },
}


def manifest_with(path: str, value: Any) -> dict[str, Any]:
    """BASE with `value` set at the dotted `path` (`[0]` for a list item)."""
    doc = copy.deepcopy(BASE)
    *parents, last = path.replace("[0]", ".0").split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return doc


def error_of(manifest: dict[str, Any]) -> str:
    with pytest.raises(ValueError) as info:
        kjob.Job.from_manifest(manifest)
    return str(info.value)


@pytest.mark.parametrize(
    ("path", "close"),
    [
        ("spec.backofLimit", "backoffLimit"),
        ("spec.template.spec.restartPolicyy", "restartPolicy"),
        ("spec.template.spec.containers[0].comand", "command"),
        ("metadata.lables", "labels"),
        ("spec.template.metadata.annotatons", "annotations"),
        ("spec.podFailurePolicy", None),  # set below: a typo inside a policy rule
    ],
)
def test_a_typo_at_each_level_is_an_error_with_a_suggestion(path: str, close: str | None) -> None:
    if close is None:
        rule = {"action": "FailJob", "onExitCodes": {"operater": "In", "values": [3]}}
        manifest = manifest_with(path, {"rules": [rule]})
        path, close = "spec.podFailurePolicy.rules[0].onExitCodes.operater", "operator"
    else:
        manifest = manifest_with(path, "x" if "comand" not in path else ["true"])
        if "restartPolicyy" in path:
            del manifest["spec"]["template"]["spec"]["restartPolicy"]
        if "comand" in path:
            del manifest["spec"]["template"]["spec"]["containers"][0]["command"]
    lines = error_of(manifest).splitlines()
    assert lines[:2] == [
        f'strict decoding error: unknown field "{path}"',
        f'{path}: did you mean "{close}"?',
    ]
    # Then the validation of the rest: what the typo left unset.
    assert lines[2:] == {
        "spec.template.spec.restartPolicyy": [
            'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
        ],
        "spec.template.spec.containers[0].comand": [
            "spec.template.spec.containers[0].command: Required value: kjob runs the command on this "
            "machine and has no image entrypoint to fall back on"
        ],
        "spec.podFailurePolicy.rules[0].onExitCodes.operater": [
            'spec.podFailurePolicy.rules[0].onExitCodes.operator: Required value: valid values: ["In" "NotIn"]'
        ],
    }.get(path, [])


def test_a_typo_in_a_field_of_kjobs_own_is_an_error_too() -> None:
    rule = {"action": "FailJob", "onExceptions": {"operator": "In", "valuse": ["ValueError"]}}
    manifest = manifest_with("spec.podFailurePolicy", {"rules": [rule]})
    assert error_of(manifest).splitlines() == [
        'strict decoding error: unknown field "spec.podFailurePolicy.rules[0].onExceptions.valuse"',
        'spec.podFailurePolicy.rules[0].onExceptions.valuse: did you mean "values"?',
        "spec.podFailurePolicy.rules[0].onExceptions.values: Required value: at least one value is required",
    ]


def test_several_unknown_fields_in_one_error_and_a_suggestion_only_when_close() -> None:
    manifest = manifest_with("spec.colour", "blue")
    manifest["spec"]["paralelism"] = 2
    manifest["metadata"]["x"] = 1
    assert error_of(manifest).splitlines() == [
        'strict decoding error: unknown field "metadata.x", unknown field "spec.colour", '
        'unknown field "spec.paralelism"',
        'spec.paralelism: did you mean "parallelism"?',
    ]


def test_unknown_fields_inside_fields_kjob_does_not_honour_are_errors() -> None:
    """kjob ignores `resources` and `volumes`, but a cluster checks them: so does kjob."""
    manifest = manifest_with("spec.template.spec.containers[0].resources", {"requets": {"cpu": "1"}})
    manifest["spec"]["template"]["spec"]["volumes"] = [{"name": "data", "emptyDir": {"sizeLimt": "1Gi"}}]
    assert error_of(manifest).splitlines() == [
        'strict decoding error: unknown field "spec.template.spec.containers[0].resources.requets", '
        'unknown field "spec.template.spec.volumes[0].emptyDir.sizeLimt"',
        'spec.template.spec.containers[0].resources.requets: did you mean "requests"?',
        'spec.template.spec.volumes[0].emptyDir.sizeLimt: did you mean "sizeLimit"?',
    ]


def test_wrong_types_are_collected_with_every_other_field_error() -> None:
    manifest = manifest_with("spec.parallelism", "two")
    manifest["spec"]["completions"] = -1
    manifest["spec"]["suspend"] = "yes"
    manifest["metadata"]["labels"]["version"] = 2
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["args"] = ["--n", 3]
    container["resources"] = {"limits": {"cpu": [1]}}
    manifest["spec"]["backofLimit"] = 1
    assert error_of(manifest).splitlines() == [
        'strict decoding error: unknown field "spec.backofLimit"',
        'spec.backofLimit: did you mean "backoffLimit"?',
        # In the document's order.
        'metadata.labels.version: Invalid value: "integer": metadata.labels.version in body must be of type string: "integer"',
        'spec.template.spec.containers[0].args[1]: Invalid value: "integer": spec.template.spec.containers[0].args[1] in body must be of type string: "integer"',
        'spec.template.spec.containers[0].resources.limits.cpu: Invalid value: "array": spec.template.spec.containers[0].resources.limits.cpu in body must be of type number,string: "array"',
        'spec.parallelism: Invalid value: "string": spec.parallelism in body must be of type integer: "string"',
        'spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
        "spec.completions: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_a_wrong_type_alone_is_reported_without_the_strict_decoding_line() -> None:
    assert error_of(manifest_with("spec.template.spec", [])) == (
        'spec.template.spec: Invalid value: "array": spec.template.spec in body must be of type object: "array"\n'
        "spec.template.spec.containers: Required value\n"
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    )


def test_fields_kubernetes_has_but_kjob_cannot_honour_stay_a_warning() -> None:
    manifest = manifest_with("spec.template.spec.serviceAccountName", "runner")
    manifest["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "1"}}
    manifest["spec"]["ttlSecondsAfterFinished"] = None  # null unsets a field, as in JSON
    with pytest.warns(kjob.KjobWarning) as caught:
        job = kjob.Job.from_manifest(manifest)
    assert [str(w.message) for w in caught] == [
        "kjob ignores fields it cannot honour on this machine: "
        "spec.template.spec.containers[0].resources, spec.template.spec.serviceAccountName"
    ]
    assert job.name == "strict"


def test_server_written_fields_still_load_quietly() -> None:
    manifest = copy.deepcopy(BASE)
    manifest["metadata"].update(uid="1", resourceVersion="2", creationTimestamp="2024-01-01T00:00:00Z")
    manifest["status"] = {"active": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kjob.Job.from_manifest(manifest).name == "strict"


def test_from_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest_with("spec.backofLimit", 1)))
    with pytest.raises(ValueError) as info:
        kjob.Job.from_yaml(path)
    assert (
        str(info.value).splitlines()[0] == f'{path}: strict decoding error: unknown field "spec.backofLimit"'
    )


def test_kjob_validate_exits_2_with_the_strict_decoding_error(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(manifest_with("spec.backofLimit", 1)))
    out = subprocess.run([*KJOB, "validate", "-f", str(path)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr == (
        f'error: {path}: The Job "strict" is invalid: \n'
        '* strict decoding error: unknown field "spec.backofLimit"\n'
        '* spec.backofLimit: did you mean "backoffLimit"?\n'
    )


def load_generator() -> Any:
    """tools/gen_k8s_fields.py as a module (its globals are set by the test)."""
    spec = importlib.util.spec_from_file_location("gen_k8s_fields", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@needs_source_tree
@needs_rustfmt
def test_the_generated_field_table_is_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stderr) == (0, "")


@needs_source_tree
@needs_rustfmt
def test_the_check_fails_on_a_stale_table(tmp_path: Path) -> None:
    generator = load_generator()
    stale = tmp_path / "k8s_fields.rs"
    committed = (ROOT / "src" / "spec" / "k8s_fields.rs").read_text()
    dropped = committed.replace('("backoffLimit", K8sValue::Integer),', "")
    assert dropped != committed
    stale.write_text(dropped)
    generator.OUTPUT = stale
    assert generator.main(["--check"]) == 1
    stale.write_text(committed)
    assert generator.main(["--check"]) == 0
