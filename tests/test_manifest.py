"""Manifests: the same YAML `kubectl apply` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

import kjob
from conftest import REPO, needs_source_tree

EXAMPLES = REPO / "examples"


@needs_source_tree
def test_pi_example_loads_and_runs() -> None:
    job = kjob.Job.from_yaml(EXAMPLES / "pi.yaml")
    assert job.name == "pi"
    assert job.manifest["spec"]["backoffLimit"] == 4
    status = job.run(timeout=120)
    assert status.is_complete and status.succeeded == 1
    digits = job.logs().strip()
    assert digits.startswith("3.14159265358979323846264338327950288419716939937510")
    assert len(digits) == 2001  # "3." and 1999 more digits, as bpi(2000) prints
    job.delete()


def test_from_yaml_text_and_manifest_dict() -> None:
    text = """
apiVersion: batch/v1
kind: Job
metadata: {name: text}
spec:
  completions: 2
  parallelism: 2
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: ["sh", "-c", "echo $(MSG)-$(JOB_COMPLETION_INDEX)"]
        env: [{name: MSG, value: hi}]
"""
    job = kjob.Job.from_yaml(text)
    assert job.run(timeout=30).completed_indexes == "0,1"
    assert sorted(job.logs(index=i) for i in (0, 1)) == ["hi-0\n", "hi-1\n"]


def test_multi_document_file_picks_the_job(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n"
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n"
        "      restartPolicy: Never\n      containers: [{name: c, command: ['true']}]\n"
    )
    assert kjob.Job.from_yaml(str(path)).name == "j"


def test_wrong_kind_or_api_version_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match='kind: Unsupported value: "Pod"'):
        kjob.Job.from_manifest({"apiVersion": "batch/v1", "kind": "Pod"})
    with pytest.raises(ValueError, match='apiVersion: Unsupported value: "batch/v2"'):
        kjob.Job.from_manifest({"apiVersion": "batch/v2", "kind": "Job"})
    with pytest.raises(ValueError, match="no document of kind Job"):
        kjob.Job.from_yaml("kind: Service\nmetadata: {name: s}\n")
    with pytest.raises(FileNotFoundError):
        kjob.Job.from_yaml("missing.yaml")


def test_manifest_shape_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.completions: .*integer"):
        kjob.Job.from_manifest({"metadata": {"name": "x"}, "spec": {"completions": "five"}})


def test_manifest_validation_reports_kubernetes_messages() -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "m"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "command": ["true"]}]}}},
    }
    with pytest.raises(ValueError) as info:
        kjob.Job.from_manifest(manifest)
    assert str(info.value) == (
        'spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"'
    )
