"""Issue 14 §1: each rule in one place. The extension builds the snapshot objects, holds the
constants, the seconds and int32 checks and the manifest's schema; Python asks it."""

from __future__ import annotations

import ast
import copy
import math
import os
import pickle
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import kjob
import kjob.manifest
from kjob import _kjob
from kjob._types import Condition, Event, JobStatus, NativeSpec, Pod, PodCondition, linked_to_job

PACKAGE = Path(kjob.__file__).parent


def field_names(cls: Any) -> set[str]:
    """Every slot of a snapshot class: its fields, and JobStatus's link to its Job."""
    return set(cls.__slots__)


def filled(snapshot: object) -> set[str]:
    """The slots of ``snapshot`` that hold a value (an unfilled slot raises AttributeError)."""
    return {name for name in field_names(type(snapshot)) if hasattr(snapshot, name)}


def fields_of(snapshot: Any) -> dict[str, Any]:
    return {name: getattr(snapshot, name) for name in snapshot._fields}


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


# ---- snapshots ------------------------------------------------------------------------------


def test_the_extension_fills_every_field_of_every_snapshot() -> None:
    # A pod evicted while it runs has a PodCondition; a failed Job has Conditions and events.
    with kjob.Job(
        name="snap", command=["sleep", "30"], backoff_limit=0, termination_grace_period_seconds=0
    ) as job:
        job.start()
        wait_for(lambda: any(p.pid is not None for p in job.pods()))
        job.evict(job.pods()[0].name)
        status = job.wait(timeout=10)
        pods = job.pods()
        events = job.events()
    assert len(pods) == 1
    (pod,) = pods
    assert filled(pod) == field_names(Pod)
    assert [filled(c) for c in pod.conditions] == [field_names(PodCondition)]
    assert pod.conditions[0].type == "DisruptionTarget"
    assert filled(status) == field_names(JobStatus)
    assert status.is_failed
    assert {frozenset(filled(c)) for c in status.conditions} == {frozenset(field_names(Condition))}
    assert events and {frozenset(filled(e)) for e in events} == {frozenset(field_names(Event))}
    assert events[0].involved_object == "Job/default/snap"


def test_snapshots_equal_the_objects_built_from_their_fields_and_pickle() -> None:
    job = kjob.Job(name="snap2", command="exit 3", backoff_limit=0)
    try:
        status = job.run(timeout=10)
        pods = job.pods()
    finally:
        job.delete()
    assert status.failed == 1 and len(pods) == 1
    for pod in pods:
        rebuilt = Pod(**fields_of(pod))
        assert rebuilt == pod and repr(rebuilt) == repr(pod)
        assert pickle.loads(pickle.dumps(pod)) == pod
        assert pod.exit_code == 3 and pod.phase == "Failed"
        assert pod.start_time is not None and pod.start_time.tzinfo is not None
    assert JobStatus(**fields_of(status)) == status
    assert repr(JobStatus(**fields_of(status))) == repr(status)
    assert pickle.loads(pickle.dumps(status)) == status


def test_each_pod_owns_its_label_dicts_and_callable_pods_share_their_worker_log() -> None:
    # pods() copies one dict of the Job's labels per pod and shares a worker's log path string.
    with kjob.Job(
        name="shared",
        target=abs,
        completions=3,
        completion_mode="Indexed",
        max_workers=1,
        labels={"team": "a"},
    ) as job:
        job.run(timeout=30)
        pods = sorted(job.pods(), key=lambda p: p.index or 0)
        assert [
            (p.labels["job-name"], p.labels["batch.kubernetes.io/job-completion-index"]) for p in pods
        ] == [
            ("shared", "0"),
            ("shared", "1"),
            ("shared", "2"),
        ]
        assert [p.annotations for p in pods] == [
            {"batch.kubernetes.io/job-completion-index": str(i)} for i in range(3)
        ]
        pods[0].labels["job-name"] = "changed"
        pods[0].annotations.clear()
        assert [p.labels["job-name"] for p in pods] == ["changed", "shared", "shared"]
        assert [p.labels["job-name"] for p in job.pods()] == ["shared", "shared", "shared"]
        assert len({p.log_path for p in pods}) == 1 and pods[0].log_path.endswith("shared-worker-0.log")
        assert [p.log_range is not None for p in pods] == [True, True, True]


def test_snapshots_behave_as_the_frozen_dataclasses_they_replace() -> None:
    # Plain slotted classes (no `dataclasses` import at `import kjob`), with the same value
    # semantics: immutable, equal and hashed by their fields, the same repr, copied and pickled
    # without the JobStatus's link to its Job.
    condition = Condition("Complete", "True", "CompletionsReached", "Reached expected number", None)
    same = Condition(
        type="Complete",
        status="True",
        reason="CompletionsReached",
        message="Reached expected number",
        last_transition_time=None,
    )
    assert condition == same and hash(condition) == hash(same) and len({condition, same}) == 1
    assert condition != Condition("Failed", "True", "", "", None)
    assert condition != ("Complete", "True", "CompletionsReached", "Reached expected number", None)
    assert repr(condition) == (
        "Condition(type='Complete', status='True', reason='CompletionsReached', "
        "message='Reached expected number', last_transition_time=None)"
    )
    with pytest.raises(AttributeError, match="cannot assign to field 'status'"):
        condition.status = "False"
    with pytest.raises(AttributeError, match="cannot delete field 'status'"):
        del condition.status
    # `match` by position, as on a dataclass (the statement itself needs Python 3.10).
    assert Condition.__match_args__ == ("type", "status", "reason", "message", "last_transition_time")
    assert condition.__replace__(status="False") == Condition(
        "Complete", "False", "CompletionsReached", "Reached expected number", None
    )

    job = kjob.Job(name="frozen", command=["true"])
    status = linked_to_job(JobStatus(succeeded=1, conditions=[condition]), job)
    assert status._job_ref is not None and status._job_ref() is job
    for copied in (copy.copy(status), copy.deepcopy(status), pickle.loads(pickle.dumps(status))):
        assert copied == status and copied._job_ref is None
    assert JobStatus().conditions == [] and JobStatus().conditions is not JobStatus().conditions
    assert repr(JobStatus(active=1)) == "JobStatus(NoCondition active=1 succeeded=0 failed=0)"
    with pytest.raises(TypeError, match="unhashable type: 'list'"):
        hash(status)
    job.delete()


def test_callable_pod_exception_is_exception_text() -> None:
    def boom() -> None:
        raise ValueError("bad input")

    with kjob.Job(target=boom, backoff_limit=0) as job:
        job.run(timeout=30)
        (pod,) = job.pods()
    assert isinstance(pod.exception, kjob.ExceptionText)
    assert pod.exception == "ValueError: bad input"
    assert "raise ValueError" in pod.exception.traceback
    assert pod.log_range is not None and len(pod.log_range) == 2


def test_the_spec_typed_dict_names_every_key_the_extension_gives() -> None:
    with kjob.Job(name="spec", command="true", suspend=True) as job:
        spec = job._native.spec()
    assert set(spec) == set(NativeSpec.__annotations__)
    assert spec["suspend"] is True and spec["completions"] == 1 and spec["managed_by"] is None


# ---- constants and checks ---------------------------------------------------------------------


def test_constants_come_from_the_extension() -> None:
    assert _kjob.DEFAULT_BACKOFF_INITIAL_SECONDS == 10.0
    assert _kjob.DEFAULT_BACKOFF_MAX_SECONDS == 600.0
    assert _kjob.GENERATED_NAME_ALPHABET == "bcdfghjklmnpqrstvwxz2456789"
    assert _kjob.GENERATED_NAME_SUFFIX_LENGTH == 5
    assert _kjob.MAX_GENERATED_NAME_LENGTH == 58


def test_generate_name_is_cut_and_suffixed_with_the_extensions_alphabet() -> None:
    manifest = {"metadata": {"generateName": "x" * 70}, "spec": {"template": {"spec": {"containers": [{}]}}}}
    name = kjob.manifest.normalize_manifest(manifest)["metadata"]["name"]
    assert len(name) == 63
    assert name[:58] == "x" * 58
    assert set(name[58:]) <= set(_kjob.GENERATED_NAME_ALPHABET)


@pytest.mark.parametrize("value", [0, 0.5, 3, 1e9, -0.0])
def test_check_seconds_accepts_finite_non_negative_numbers(value: float) -> None:
    assert _kjob.check_seconds("t", value) == float(value)
    assert type(_kjob.check_seconds("t", value)) is float


@pytest.mark.parametrize(
    ("value", "shown"),
    [(-1, "-1"), (-0.5, "-0.5"), (math.inf, "inf"), (math.nan, "nan"), (-(10**400), "-1" + "0" * 400)],
)
def test_check_seconds_refuses_other_numbers(value: float, shown: str) -> None:
    with pytest.raises(ValueError) as raised:
        _kjob.check_seconds("timeout", value)
    assert str(raised.value) == f"timeout: must be a finite number of seconds >= 0, got {shown}"


@pytest.mark.parametrize(
    ("value", "type_name"), [("1", "str"), (True, "bool"), (None, "NoneType"), ([1], "list")]
)
def test_check_seconds_refuses_other_types(value: object, type_name: str) -> None:
    with pytest.raises(TypeError) as raised:
        _kjob.check_seconds("backoff_max_seconds", value)
    assert str(raised.value) == f"backoff_max_seconds must be a number of seconds, not {type_name}"


def test_check_seconds_of_an_int_too_big_for_a_float_fails_as_float_does() -> None:
    with pytest.raises(OverflowError):
        _kjob.check_seconds("t", 10**400)


@pytest.mark.parametrize("value", [2**31, 10**100, -(2**31) - 1])
def test_scale_refuses_values_outside_int32_with_the_field_path(value: int) -> None:
    with kjob.Job(name="sc", command="true", suspend=True) as job:
        with pytest.raises(ValueError) as raised:
            job.scale(parallelism=value)
        assert (
            str(raised.value)
            == f"spec.parallelism: Invalid value: {value}: must be less than or equal to 2147483647"
        )
        assert job.manifest["spec"].get("parallelism") is None


@pytest.mark.parametrize(("value", "type_name"), [("2", "str"), (True, "bool"), (2.0, "float")])
def test_scale_refuses_other_types(value: object, type_name: str) -> None:
    with kjob.Job(name="sc", command="true", suspend=True) as job:
        with pytest.raises(TypeError) as raised:
            job.scale(completions=value)  # type: ignore[arg-type]
        assert str(raised.value) == f"completions must be an int or None, not {type_name}"


# ---- the manifest schema ----------------------------------------------------------------------


def pruned(manifest: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    return _kjob.prune_manifest(manifest)


def test_prune_lists_fields_kjob_does_not_honour_and_drops_server_fields_quietly() -> None:
    manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "a", "uid": "u", "finalizers": ["f"]},
        "spec": {
            "completions": 2,
            "template": {
                "spec": {
                    "containers": [
                        {"name": "c", "command": ["true"], "resources": {}},
                        {"name": "d", "ports": []},
                    ],
                    "volumes": [],
                },
            },
        },
        "status": {"active": 1},
    }
    kept, ignored = pruned(manifest)
    assert ignored == [
        "metadata.finalizers",
        "spec.template.spec.containers[0].resources",
        "spec.template.spec.containers[1].ports",
        "spec.template.spec.volumes",
    ]
    assert kept == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "a"},
        "spec": {
            "completions": 2,
            "template": {"spec": {"containers": [{"name": "c", "command": ["true"]}, {"name": "d"}]}},
        },
    }


def test_a_key_that_is_no_string_is_an_unknown_field() -> None:
    with pytest.raises(ValueError) as raised:
        pruned({"metadata": {"name": "a"}, "spec": {1: "a number as a key"}})
    assert str(raised.value).splitlines()[0] == 'strict decoding error: unknown field "spec.1"'


def test_values_of_the_wrong_shape_are_reported_together() -> None:
    manifest = {"spec": {"completions": "two", "template": "nope", "podFailurePolicy": {"rules": {"a": 1}}}}
    with pytest.raises(ValueError) as raised:
        pruned(manifest)
    assert str(raised.value).splitlines()[:3] == [
        'spec.completions: Invalid value: "string": spec.completions in body must be of type integer: "string"',
        'spec.template: Invalid value: "string": spec.template in body must be of type object: "string"',
        'spec.podFailurePolicy.rules: Invalid value: "object": spec.podFailurePolicy.rules in body must be of type array: "object"',
    ]


def wrong_type(path: str, expected: str, actual: str) -> str:
    return f'{path}: Invalid value: "{actual}": {path} in body must be of type {expected}: "{actual}"'


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"suspend": "false"}, wrong_type("spec.suspend", "boolean", "string")),
        ({"suspend": 0}, wrong_type("spec.suspend", "boolean", "integer")),
        ({"parallelism": True}, wrong_type("spec.parallelism", "integer", "boolean")),
        ({"backoffLimit": 1.5}, wrong_type("spec.backoffLimit", "integer", "number")),
        (
            {"podFailurePolicy": {"rules": [{"action": "Ignore", "onExitCodes": {"values": [1, False]}}]}},
            wrong_type("spec.podFailurePolicy.rules[0].onExitCodes.values[1]", "integer", "boolean"),
        ),
        (
            {"template": {"spec": {"terminationGracePeriodSeconds": True}}},
            wrong_type("spec.template.spec.terminationGracePeriodSeconds", "integer", "boolean"),
        ),
        ({"suspend": {1, 2}}, wrong_type("spec.suspend", "boolean", "unknown")),
        # Only a bool is a manual selector.
        ({"manualSelector": "true"}, wrong_type("spec.manualSelector", "boolean", "string")),
    ],
)
def test_yaml_look_alike_scalars_are_refused_with_their_path(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        pruned({"spec": spec})
    # Then the validation of the rest of the (empty) document.
    assert str(raised.value).splitlines()[0] == message


def test_null_and_real_scalars_pass() -> None:
    spec = {"suspend": None, "parallelism": None, "completions": 3, "backoffLimit": 1}
    assert pruned({"spec": spec}) == ({"spec": spec}, [])


# ---- the public surface -----------------------------------------------------------------------


def test_kjob_manifest_exports_what_users_may_import() -> None:
    assert sorted(kjob.manifest.__all__) == [
        "KjobWarning",
        "Manifests",
        "load_job_manifest",
        "load_job_manifests",
        "load_manifests",
        "normalize_manifest",
    ]
    for name in kjob.manifest.__all__:
        assert hasattr(kjob.manifest, name)


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            # `from . import _module` is how private modules use each other; `from .x import _y`
            # reaches into another module's privates.
            if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module is not None:
                offenders += [
                    f"{path.name}: {node.module}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert offenders == []


@pytest.mark.parametrize(
    ("manual", "kept_spec", "ignored"),
    [
        ({}, {}, []),
        ({"manualSelector": False}, {}, []),
        ({"manualSelector": True}, {}, ["spec.selector", "spec.manualSelector"]),
    ],
)
def test_the_generated_selector_goes_quietly(
    manual: dict[str, Any], kept_spec: dict[str, Any], ignored: list[str]
) -> None:
    spec = {"selector": {"matchLabels": {"a": "b"}}, **manual}
    assert pruned({"spec": spec}) == ({"spec": kept_spec}, ignored)


def test_uid_labels_go_quietly_from_both_metadata() -> None:
    labels = {"controller-uid": "u", "batch.kubernetes.io/controller-uid": "u", "team": "x"}
    manifest = {
        "metadata": {"labels": dict(labels)},
        "spec": {"template": {"metadata": {"labels": dict(labels)}}},
    }
    kept, ignored = pruned(manifest)
    assert ignored == []
    assert kept["metadata"]["labels"] == {"team": "x"}
    assert kept["spec"]["template"]["metadata"]["labels"] == {"team": "x"}


def test_env_vars_left_without_a_source_go_whole() -> None:
    env = [
        {"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
        {"name": "B", "valueFrom": {}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}, "resourceFieldRef": {}}},
    ]
    manifest = {"spec": {"template": {"spec": {"containers": [{"env": env}]}}}}
    kept, ignored = pruned(manifest)
    assert kept["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "B", "valueFrom": {}},
        {"name": "C", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    assert ignored == [
        "spec.template.spec.containers[0].env[0].valueFrom.resourceFieldRef",
        "spec.template.spec.containers[0].env[2].valueFrom.resourceFieldRef",
    ]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"apiVersion": "batch/v2"},
            'job.yaml: apiVersion: Unsupported value: "batch/v2": supported values: "batch/v1" '
            "(kjob runs Jobs of the batch/v1 API)",
        ),
        ({"kind": "Pod"}, 'job.yaml: kind: Unsupported value: "Pod": supported values: "Job"'),
        ({"kind": None}, 'job.yaml: kind: Unsupported value: null: supported values: "Job"'),
    ],
)
def test_only_batch_v1_jobs_are_read(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        _kjob.check_job_kind(document, "job.yaml")
    assert str(raised.value) == message
    _kjob.check_job_kind({"apiVersion": "batch/v1", "kind": "Job"})
    _kjob.check_job_kind({})


@pytest.mark.parametrize("safe_path", [False, True])
def test_the_shepherd_kills_the_session_with_the_extensions_sweep(safe_path: bool) -> None:
    token = secrets.token_hex(8)
    marked = subprocess.Popen(["sleep", "30"], env={**os.environ, "KJOB_SESSION": token})
    env = {k: v for k, v in os.environ.items() if not k.startswith("KJOB_")}
    if safe_path:
        env["PYTHONSAFEPATH"] = "1"
    try:
        # The pipe reaches end of file at once: the owner is "dead".
        shepherd = subprocess.run(
            [sys.executable, "-S", str(PACKAGE / "_shepherd.py"), token, "1"],
            stdin=subprocess.DEVNULL,
            env=env,
            capture_output=True,
            timeout=30,
        )
        assert (shepherd.returncode, shepherd.stderr) == (0, b"")
        assert marked.wait(timeout=5) == -9
    finally:
        marked.kill()
        marked.wait()
