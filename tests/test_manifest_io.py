"""One spec, two worlds: manifests in and out. What kjob exports, a cluster accepts (checked by
`kubernetes-validate` in strict mode: structure only; kjob's own validation is the semantic
check) and kjob reads back into an equal Job."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

import kjob
from conftest import REPO, needs_source_tree
from kjob import _export

EXAMPLES = REPO / "examples"


def cluster_accepts(manifest: dict[str, Any]) -> None:
    """Raises unless the API's OpenAPI schema (newest Kubernetes) accepts the document, with
    no field it does not know."""
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


def load_quietly(manifest: dict[str, Any], **kwargs: Any) -> kjob.Job:
    with warnings.catch_warnings():
        warnings.simplefilter("error", kjob.KjobWarning)
        return kjob.Job.from_manifest(manifest, **kwargs)


def native_spec(job: kjob.Job) -> dict[str, Any]:
    """The controller's spec without what differs between two equal Jobs: the uid (also
    the value of the generated controller-uid labels)."""
    native = job._native.spec()
    spec: dict[str, Any] = {k: v for k, v in native.items() if k != "uid"}
    spec["labels"] = {k: v for k, v in native["labels"].items() if v != native["uid"]}
    return spec


EVERY_FIELD: dict[str, Any] = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": {
        "name": "every-field",
        "namespace": "team-a",
        "labels": {"app": "demo"},
        "annotations": {"owner": "me@example.com"},
    },
    "spec": {
        "parallelism": 2,
        "completions": 4,
        "activeDeadlineSeconds": 600,
        "podFailurePolicy": {
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
                },
                {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [7]}},
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]
        },
        "successPolicy": {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}]},
        "backoffLimit": 3,
        "backoffLimitPerIndex": 1,
        "maxFailedIndexes": 2,
        "ttlSecondsAfterFinished": 100,
        "completionMode": "Indexed",
        "suspend": True,
        "podReplacementPolicy": "Failed",
        "managedBy": "kubernetes.io/job-controller",
        "template": {
            "metadata": {"labels": {"tier": "batch"}, "annotations": {"note": "x"}},
            "spec": {
                "restartPolicy": "Never",
                "activeDeadlineSeconds": 60,
                "terminationGracePeriodSeconds": 5,
                "containers": [
                    {
                        "name": "main",
                        "image": "busybox:1.36",
                        "command": ["sh", "-c"],
                        "args": ["echo $(GREETING) $POD"],
                        "env": [
                            {"name": "GREETING", "value": "hi"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {
                                "name": "IX",
                                "valueFrom": {
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']",
                                    }
                                },
                            },
                        ],
                        "workingDir": "/tmp",
                    }
                ],
            },
        },
    },
}


def test_every_supported_field_round_trips_and_a_cluster_accepts_it() -> None:
    cluster_accepts(EVERY_FIELD)
    job = load_quietly(EVERY_FIELD)
    exported = job.to_manifest()
    assert exported == EVERY_FIELD
    cluster_accepts(exported)
    again = load_quietly(exported)
    assert native_spec(again) == native_spec(job)
    assert again.to_manifest() == exported
    assert yaml.safe_load(job.to_yaml()) == exported


def test_keyword_job_exports_with_kjob_settings_as_annotations() -> None:
    job = kjob.Job(
        name="kw",
        image="python:3.12",
        command=["python", "-c", "print(1)"],
        completions=3,
        parallelism=2,
        completion_mode="Indexed",
        backoff_limit=2,
        env={"A": "1"},
        labels={"team": "data"},
        annotations={"why": "test"},
        backoff_initial_seconds=0.5,
        backoff_max_seconds=2,
    )
    exported = job.to_manifest()
    cluster_accepts(exported)
    assert exported["metadata"]["annotations"] == {
        "why": "test",
        "kjob.io/backoff-initial-seconds": "0.5",
        "kjob.io/backoff-max-seconds": "2",
    }
    assert exported["metadata"]["labels"] == {"team": "data"}
    container = exported["spec"]["template"]["spec"]["containers"][0]
    assert container == {
        "name": "kw",
        "image": "python:3.12",
        "command": ["python", "-c", "print(1)"],
        "env": [{"name": "A", "value": "1"}],
    }
    back = load_quietly(exported)
    assert back._backoff == (0.5, 2.0)
    assert native_spec(back) == native_spec(job)
    assert back.to_manifest() == exported
    # Explicit arguments beat the annotations.
    assert kjob.Job.from_manifest(exported, backoff_initial_seconds=3)._backoff == (3.0, 2.0)


def test_default_backoff_is_not_written_out() -> None:
    exported = kjob.Job(name="d", image="busybox", command=["true"]).to_manifest()
    assert "annotations" not in exported["metadata"]


def test_bad_backoff_annotation_is_a_field_error() -> None:
    manifest = copy.deepcopy(EVERY_FIELD)
    manifest["metadata"]["annotations"]["kjob.io/backoff-initial-seconds"] = "soon"
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest(manifest)
    assert str(e.value) == (
        "metadata.annotations[kjob.io/backoff-initial-seconds]: Invalid value: 'soon': "
        "must be a number of seconds >= 0"
    )


def test_export_needs_an_image() -> None:
    job = kjob.Job(name="noimage", command=["true"])
    with pytest.raises(ValueError, match=r"^spec\.template\.spec\.containers\[0\]\.image: Required value"):
        job.to_manifest()
    # The kubectl-get view is a report of what ran, so it has no such requirement.
    assert job.to_manifest(include_status=True)["kind"] == "Job"


def test_callable_job_cannot_be_exported() -> None:
    job = kjob.Job(target=abs, args=(-1,), image="python:3.12")
    with pytest.raises(ValueError, match="a cluster cannot run it"):
        job.to_manifest()


def command_manifest(name: str, policy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "podFailurePolicy": policy,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": name, "image": "busybox", "command": ["true"]}],
                }
            },
        },
    }


def test_on_exceptions_rules_are_dropped_from_an_export_with_a_warning() -> None:
    policy = {
        "rules": [
            {"action": "FailJob", "onExceptions": {"operator": "In", "values": ["ValueError"]}},
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
        ]
    }
    # A command Job refuses onExceptions rules (test_small_fixes.py), so the export's own guard
    # is tested on a manifest directly.
    manifest = command_manifest("exc", policy)
    with pytest.warns(kjob.KjobWarning, match=r"dropped from the export: spec\.podFailurePolicy\.rules\[0\]"):
        exported = _export.export_manifest(
            manifest, backoff_initial=10.0, backoff_max=600.0, pod_replacement_policy="Failed"
        )
    assert exported["spec"]["podFailurePolicy"] == {"rules": [policy["rules"][1]]}
    cluster_accepts(exported)


def test_unsupported_fields_are_ignored_with_one_warning_naming_them() -> None:
    manifest = copy.deepcopy(EVERY_FIELD)
    manifest["spec"]["suspend"] = False
    pod = manifest["spec"]["template"]["spec"]
    pod["nodeSelector"] = {"disk": "ssd"}
    pod["volumes"] = [{"name": "data", "emptyDir": {}}]
    # Init containers and a second container run (tests/test_multi_container.py); their own
    # unsupported fields are reported like the first container's.
    pod["initContainers"] = [{"name": "init", "image": "busybox", "command": ["true"], "resources": {}}]
    container = pod["containers"][0]
    container["resources"] = {"limits": {"cpu": "1"}}
    container["imagePullPolicy"] = "Always"
    # A resource limit has no value here (a Secret's key does: tests/test_env_sources.py).
    container["env"].append({"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}})
    pod["containers"].append({"name": "sidecar", "image": "envoy", "command": ["true"]})
    cluster_accepts(manifest)
    with pytest.warns(kjob.KjobWarning) as caught:
        job = kjob.Job.from_manifest(manifest)
    assert len(caught) == 1
    assert str(caught[0].message) == (
        "kjob ignores fields it cannot honour on this machine: "
        "spec.template.spec.containers[0].env[3].valueFrom.resourceFieldRef, "
        "spec.template.spec.containers[0].resources, spec.template.spec.containers[0].imagePullPolicy, "
        "spec.template.spec.nodeSelector, spec.template.spec.volumes, "
        "spec.template.spec.initContainers[0].resources"
    )
    # The env var whose source is unavailable is dropped whole; the rest runs as written.
    env = job.manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e["name"] for e in env] == ["GREETING", "POD", "IX"]
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest(manifest, strict=True)
    assert str(e.value).startswith(
        "fields kjob cannot honour on this machine: spec.template.spec.containers[0].env[3]"
    )


def test_yaml_warning_and_error_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    doc = copy.deepcopy(EVERY_FIELD)
    doc["spec"]["template"]["spec"]["containers"][0]["resources"] = {}
    path.write_text(yaml.safe_dump(doc))
    with pytest.warns(kjob.KjobWarning, match=f"^{path}: kjob ignores fields"):
        kjob.Job.from_yaml(path)
    with pytest.raises(ValueError, match=f"^{path}: fields kjob cannot honour"):
        kjob.Job.from_yaml(str(path), strict=True)


def test_status_and_server_set_metadata_are_dropped_quietly() -> None:
    job = kjob.Job(name="view", image="busybox", command=["true"])
    job.run(timeout=30)
    seen = job.to_manifest(include_status=True)
    cluster_accepts(seen)
    again = load_quietly(seen)
    assert "status" not in again.manifest
    assert "uid" not in again.manifest["metadata"]
    assert "selector" not in again.manifest["spec"]
    assert again.uid != job.uid
    # The uid labels the API server made for the old Job are not carried over to the new one.
    view = again.to_manifest(include_status=True)
    assert view["spec"]["template"]["metadata"]["labels"]["controller-uid"] == again.uid
    # The Job's own labels are the user's (defaulted from the template only when empty).
    assert job.uid not in view["metadata"]["labels"].values()
    cluster_accepts(view)


def test_kubectl_view_has_defaults_labels_selector_and_status() -> None:
    job = kjob.Job(name="kv", image="busybox", command=["sh", "-c", "exit 0"], completions=2, parallelism=2)
    job.run(timeout=30)
    seen = job.to_manifest(include_status=True)
    cluster_accepts(seen)
    assert seen["metadata"]["uid"] == job.uid
    assert seen["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "kv"
    assert seen["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": job.uid}}
    assert seen["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/controller-uid"] == job.uid
    assert (seen["spec"]["backoffLimit"], seen["spec"]["completionMode"], seen["spec"]["suspend"]) == (
        6,
        "NonIndexed",
        False,
    )
    assert seen["spec"]["podReplacementPolicy"] == "TerminatingOrFailed"
    assert seen["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    status = seen["status"]
    assert status["succeeded"] == 2 and status["ready"] == 0 and status["terminating"] == 0
    assert "failedIndexes" not in status
    assert [c["type"] for c in status["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert status["conditions"][1]["reason"] == "CompletionsReached"
    assert status["startTime"].endswith("Z") and status["completionTime"].endswith("Z")
    assert job.status.to_dict() == status


def test_scale_and_suspend_show_in_the_manifest() -> None:
    job = kjob.Job(
        name="sc",
        image="busybox",
        command=["true"],
        completions=4,
        parallelism=1,
        completion_mode="Indexed",
        suspend=True,
    )
    job.scale(parallelism=3, completions=3)
    job.resume()
    job.suspend()
    spec = job.to_manifest()["spec"]
    assert (spec["parallelism"], spec["completions"], spec["suspend"]) == (3, 3, True)
    job.delete()


def test_generate_name_gets_five_random_characters() -> None:
    manifest = copy.deepcopy(EVERY_FIELD)
    del manifest["metadata"]["name"]
    manifest["metadata"]["generateName"] = "batch-run-"
    job = load_quietly(manifest)
    assert job.name.startswith("batch-run-") and len(job.name) == len("batch-run-") + 5
    assert job.to_manifest()["metadata"]["name"] == job.name
    assert "generateName" not in job.to_manifest()["metadata"]


def test_all_from_yaml_returns_every_job_and_from_yaml_refuses_two(tmp_path: Path) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}},
        {**copy.deepcopy(EVERY_FIELD), "metadata": {"name": "one"}},
        {**copy.deepcopy(EVERY_FIELD), "metadata": {"name": "two"}},
    ]
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    jobs = kjob.Job.all_from_yaml(path)
    assert [j.name for j in jobs] == ["one", "two"]
    with pytest.raises(ValueError, match=r"2 documents of kind Job; expected one \(Job.all_from_yaml"):
        kjob.Job.from_yaml(path)
    # A kubectl List (as `kubectl get jobs -o yaml` prints) holds its Jobs in items.
    listed = {"apiVersion": "v1", "kind": "List", "items": docs[1:]}
    assert [j.name for j in kjob.Job.all_from_yaml(yaml.safe_dump(listed))] == ["one", "two"]


def test_wrong_api_version_names_the_supported_one() -> None:
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest({**EVERY_FIELD, "apiVersion": "batch/v1beta1"})
    assert str(e.value) == (
        'apiVersion: Unsupported value: "batch/v1beta1": supported values: "batch/v1" '
        "(kjob runs Jobs of the batch/v1 API)"
    )


def test_field_refs_reach_the_pods(tmp_path: Path) -> None:
    manifest = copy.deepcopy(EVERY_FIELD)
    spec = manifest["spec"]
    for key in ("suspend", "successPolicy", "podFailurePolicy", "backoffLimitPerIndex", "maxFailedIndexes"):
        del spec[key]
    spec["completions"] = 2
    container = spec["template"]["spec"]["containers"][0]
    container["env"] += [
        {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "NOTE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations['note']"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    container["args"] = ['echo "$(GREETING) $POD $IX $NS $TIER $NOTE $IP $PWD"']
    job = load_quietly(manifest)
    assert job.run(timeout=30).succeeded == 2
    for pod in job.pods():
        assert job.logs(pod=pod.name) == f"hi {pod.name} {pod.index} team-a batch x 127.0.0.1 /tmp\n"
        assert pod.annotations["note"] == "x"


def test_unsupported_field_path_is_refused_with_the_api_servers_words() -> None:
    manifest = copy.deepcopy(EVERY_FIELD)
    manifest["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.containers"}}},
    ]
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest(manifest)
    assert str(e.value) == (
        "spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Invalid value: "
        '"spec.containers": error converting fieldPath: field label not supported: spec.containers'
    )


# ---- the documentation's examples -------------------------------------------------------


@needs_source_tree
def test_docs_pi_example() -> None:
    job = kjob.Job.from_yaml(EXAMPLES / "pi.yaml")
    cluster_accepts(job.to_manifest())
    assert job.run(timeout=120).is_complete
    assert job.logs().startswith("3.14159265358979")


@needs_source_tree
def test_docs_indexed_example_reads_its_index_through_field_ref() -> None:
    job = kjob.Job.from_yaml(EXAMPLES / "indexed-job.yaml", backoff_initial_seconds=0.01)
    cluster_accepts(job.to_manifest())
    status = job.run(timeout=60)
    assert status.is_complete and status.completed_indexes == "0-4"
    for pod in job.pods():
        assert job.logs(pod=pod.name) == (
            f"item {pod.index} of 5 in pod {pod.name}, JOB_COMPLETION_INDEX={pod.index}\n"
        )


@needs_source_tree
def test_docs_pod_failure_policy_example_fails_the_job_on_exit_42() -> None:
    job = kjob.Job.from_yaml(EXAMPLES / "pod-failure-policy.yaml")
    cluster_accepts(job.to_manifest())
    status = job.run(timeout=60)
    failed = status.condition("Failed")
    assert failed is not None and failed.reason == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed.message
    # The first failure ends the Job: no replacement pods, far from 12 completions.
    assert status.succeeded == 0 and len(job.pods()) == 3


def test_view_of_a_per_index_job_has_failed_indexes_even_when_empty() -> None:
    job = kjob.Job(
        name="pi-ix",
        image="busybox",
        command=["true"],
        completions=2,
        completion_mode="Indexed",
        backoff_limit_per_index=1,
    )
    job.run(timeout=30)
    status = job.to_manifest(include_status=True)["status"]
    assert status["failedIndexes"] == "" and status["completedIndexes"] == "0,1"
    assert job.to_manifest(include_status=True)["spec"]["backoffLimit"] == 2147483647


def test_backoff_annotations_round_trip_exactly() -> None:
    job = kjob.Job(
        name="exact",
        image="busybox",
        command=["true"],
        backoff_initial_seconds=0.1234567,
        backoff_max_seconds=1234567.0,
    )
    annotations = job.to_manifest()["metadata"]["annotations"]
    assert annotations == {
        "kjob.io/backoff-initial-seconds": "0.1234567",
        "kjob.io/backoff-max-seconds": "1234567",
    }
    assert kjob.Job.from_manifest(job.to_manifest())._backoff == (0.1234567, 1234567.0)


def test_dropping_on_exceptions_rules_keeps_the_replacement_policy() -> None:
    policy = {"rules": [{"action": "FailJob", "onExceptions": {"operator": "In", "values": ["E"]}}]}
    with pytest.warns(kjob.KjobWarning):
        spec = _export.export_manifest(
            command_manifest("keep", policy),
            backoff_initial=10.0,
            backoff_max=600.0,
            # As the controller defaults it for a Job with a pod failure policy.
            pod_replacement_policy="Failed",
        )["spec"]
    assert "podFailurePolicy" not in spec and spec["podReplacementPolicy"] == "Failed"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "suspend",
            "false",
            'spec.suspend: Invalid value: "string": spec.suspend in body must be of type boolean: "string"',
        ),
        (
            "suspend",
            1,
            'spec.suspend: Invalid value: "integer": spec.suspend in body must be of type boolean: "integer"',
        ),
        (
            "completions",
            True,
            'spec.completions: Invalid value: "boolean": spec.completions in body must be of type integer: "boolean"',
        ),
        (
            "backoffLimit",
            False,
            'spec.backoffLimit: Invalid value: "boolean": spec.backoffLimit in body must be of type integer: "boolean"',
        ),
    ],
)
def test_json_types_are_checked_not_coerced(field: str, value: Any, message: str) -> None:
    """YAML's `suspend: "false"` is a string: Kubernetes refuses it, and so does kjob (rather
    than take its truthiness), in the API server's words for a value of the wrong type."""
    manifest = copy.deepcopy(EVERY_FIELD)
    manifest["spec"][field] = value
    with pytest.raises(ValueError) as e:
        kjob.Job.from_manifest(manifest)
    # Then the validation errors of the rest of the document, if any.
    assert str(e.value).splitlines()[0] == message


@pytest.mark.timeout(20)
@pytest.mark.filterwarnings("ignore::kjob.KjobWarning")
def test_yaml_alias_bombs_load_in_linear_time() -> None:
    text = "a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
    for level in range(1, 9):
        text += f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]\n"
    text += "apiVersion: batch/v1\nkind: Job\nmetadata: {name: bomb, labels: *a8}\n"
    with pytest.raises(ValueError):
        kjob.Job.from_yaml(text)


def test_self_referencing_yaml_is_refused() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        kjob.Job.from_yaml("apiVersion: batch/v1\nkind: Job\nmetadata: &m {name: x, labels: {a: *m}}\n")


def test_view_defaults_come_from_the_controller() -> None:
    """With a podFailurePolicy, podReplacementPolicy defaults to Failed (docs/semantics.md §1.1)."""
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    job = kjob.Job(
        name="dflt",
        image="busybox",
        command=["true"],
        pod_failure_policy=policy,
        restart_policy="Never",
        suspend=True,
    )
    seen = job.to_manifest(include_status=True)
    assert seen["spec"]["podReplacementPolicy"] == "Failed"
    assert seen["spec"]["suspend"] is True
    assert seen["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    cluster_accepts(seen)
    job.delete()
