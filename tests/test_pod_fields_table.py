"""Issue 13, part 6: README's "Pod-spec fields on this machine" lists every field of a PodSpec
and of a Container in the newest Kubernetes schema ``kubernetes-validate`` ships, and says of
each what kjob does with it; what it says agrees with what kjob warns about."""

from __future__ import annotations

import json
import re
import warnings
from importlib import resources
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

import kjob
from conftest import REPO, needs_source_tree
from kjob._kjob import prune_manifest

README = REPO / "README.md"
POD = "spec.template.spec"
KINDS = ("honoured", "mapped", "kept, not applied")

pytestmark = needs_source_tree


_ROW = re.compile(r"^\| `([A-Za-z]+)` \| ([a-z, ]+) \| (.+) \|$")


def schema_fields(kind: str) -> dict[str, Any]:
    """The properties of ``kind`` (``podspec``, ``container``) in the newest schema."""
    version = kubernetes_validate.latest_version()
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{version}-local-strict"
    properties: dict[str, Any] = json.loads((folder / f"{kind}-v1.json").read_text())["properties"]
    return properties


def readme_table(first_column: str) -> dict[str, str]:
    """``{field: kind}`` of the README table whose header starts with ``first_column``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Pod-spec fields on this machine\n", 1)[1].split("\n#", 1)[0]
    table = section.split(f"| {first_column} |", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    for line in table.splitlines()[2:]:
        match = _ROW.match(line)
        assert match, f"not a row of the table: {line!r}"
        field, kind, _ = match.groups()
        assert field not in rows, f"{field} listed twice"
        rows[field] = kind
    return rows


def sample(schema: dict[str, Any]) -> Any:
    """A value of the field's JSON type (kjob's schema walk looks at keys and at bool/integer
    types only)."""
    types = schema.get("type") or ["object"]
    kind = next(t for t in (types if isinstance(types, list) else [types]) if t != "null")
    return {"array": [], "object": {}, "string": "x", "integer": 1, "boolean": False}[kind]


def warned_paths(pod_spec: dict[str, Any]) -> set[str]:
    """The paths of ``pod_spec``'s fields that the extension lists as not honoured here."""
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "t"},
        "spec": {"template": {"spec": pod_spec}},
    }
    return set(prune_manifest(manifest)[1])


@pytest.mark.parametrize(("header", "kind"), [("PodSpec field", "podspec"), ("Container field", "container")])
def test_table_lists_every_field_of_the_schema_in_its_order(header: str, kind: str) -> None:
    table = readme_table(header)
    assert list(table) == list(schema_fields(kind))
    assert set(table.values()) <= set(KINDS)


def test_table_agrees_with_what_kjob_warns_about() -> None:
    pod_table, container_table = readme_table("PodSpec field"), readme_table("Container field")
    container = {field: sample(s) for field, s in schema_fields("container").items()}
    pod_spec = {field: sample(s) for field, s in schema_fields("podspec").items()}
    # A second container: every container of a pod counts, not only the first.
    pod_spec["containers"] = [container, {"name": "second", "image": "busybox", "command": ["true"]}]
    warned = warned_paths(pod_spec)
    said: dict[str, bool] = {
        f"{POD}.{field}": kind == "kept, not applied" for field, kind in pod_table.items()
    }
    said.update(
        {
            f"{POD}.containers[0].{field}": kind == "kept, not applied"
            for field, kind in container_table.items()
        }
    )
    said[f"{POD}.containers[1]"] = pod_table["containers"] == "kept, not applied"
    del said[f"{POD}.containers"]
    assert warned <= set(said), "kjob warns about a path the table does not list"
    disagree = {path for path, kept in said.items() if kept != (path in warned)}
    assert disagree == set()


def test_the_warning_names_exactly_the_fields_the_table_keeps() -> None:
    """Through the public API, on the issue's manifest: the warning names what the table calls
    "kept, not applied", and nothing it calls honoured or mapped."""
    pod_table, container_table = readme_table("PodSpec field"), readme_table("Container field")
    manifest: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "rt"},
        "spec": {
            "template": {
                "spec": {
                    "serviceAccountName": "runner",
                    "terminationGracePeriodSeconds": 3,
                    "containers": [
                        {
                            "name": "main",
                            "image": "python:3.12",
                            "command": ["true"],
                            "workingDir": "/tmp",
                            "resources": {"requests": {"cpu": "1"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "restartPolicy": "Never",
                }
            }
        },
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", kjob.KjobWarning)
        job = kjob.Job.from_manifest(manifest)
    job.delete()
    assert [str(w.message) for w in caught] == [
        "kjob ignores fields it cannot honour on this machine: "
        f"{POD}.serviceAccountName, {POD}.containers[0].resources, {POD}.containers[0].volumeMounts, "
        f"{POD}.volumes"
    ]
    pod = manifest["spec"]["template"]["spec"]
    main = pod["containers"][0]
    assert sorted(f for f in pod if pod_table[f] == "kept, not applied") == ["serviceAccountName", "volumes"]
    assert sorted(f for f in main if container_table[f] == "kept, not applied") == [
        "resources",
        "volumeMounts",
    ]
