"""Bad input never crashes kjob: random and hostile values for every public entry point raise
ValueError or TypeError (naming the field), never a Rust panic, a segfault or a hang.

`KJOB_HYPOTHESIS_EXAMPLES` sets how many examples each property runs (CI: a few hundred; the
long run in benches/hostile_input.sh: 10,000)."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kjob

# Unknown fields are warned about (tested in test_manifest_io); the point here is that nothing
# but ValueError/TypeError escapes.
pytestmark = pytest.mark.filterwarnings("ignore::kjob.KjobWarning")

EXAMPLES = int(os.environ.get("KJOB_HYPOTHESIS_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

# Values a careless caller or a hostile manifest might pass anywhere.
weird_numbers = st.sampled_from(
    [
        -1,
        0,
        1,
        2**31 - 1,
        2**31,
        2**32,
        2**63 - 1,
        2**63,
        -(2**63),
        10**100,
        -0.0,
        0.5,
        math.nan,
        math.inf,
        -math.inf,
        True,
        False,
    ]
)
weird_strings = st.one_of(
    st.text(max_size=50),
    st.sampled_from(["", "\x00", "a\x00b", "\udcff", "💥" * 1000, "x" * 100_000, "Indexed ", "NEVER", "-1"]),
)
anything = st.recursive(
    st.one_of(st.none(), weird_numbers, weird_strings, st.binary(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

KWARGS = [
    "name",
    "command",
    "args",
    "env",
    "working_dir",
    "completions",
    "parallelism",
    "completion_mode",
    "backoff_limit",
    "restart_policy",
    "termination_grace_period_seconds",
    "backoff_initial_seconds",
    "backoff_max_seconds",
    "backoff_limit_per_index",
    "max_failed_indexes",
    "pod_failure_policy",
    "success_policy",
    "active_deadline_seconds",
    "pod_active_deadline_seconds",
    "ttl_seconds_after_finished",
    "suspend",
    "pod_replacement_policy",
    "managed_by",
    "namespace",
    "container_name",
]


def construct(**kwargs: Any) -> kjob.Job | None:
    kwargs.setdefault("name", "hostile")
    kwargs.setdefault("command", ["true"])
    try:
        return kjob.Job(**kwargs)
    except (ValueError, TypeError):
        return None


@SETTINGS
@given(st.dictionaries(st.sampled_from(KWARGS), anything, max_size=4))
def test_constructor_accepts_or_rejects_cleanly(kwargs: dict[str, Any]) -> None:
    job = construct(**kwargs)
    if job is not None:
        assert job.status.active == 0
        job.delete()


@SETTINGS
@given(anything)
def test_manifests_of_any_shape(manifest: Any) -> None:
    try:
        job = kjob.Job.from_manifest(manifest)
    except (ValueError, TypeError):
        return
    job.delete()


def job_manifest(spec: dict[str, Any]) -> dict[str, Any]:
    template = {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "command": ["true"]}]}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "m"},
        "spec": {"template": template, **spec},
    }


@SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "parallelism",
                "completions",
                "completionMode",
                "backoffLimit",
                "backoffLimitPerIndex",
                "maxFailedIndexes",
                "activeDeadlineSeconds",
                "ttlSecondsAfterFinished",
                "suspend",
                "podReplacementPolicy",
                "managedBy",
                "podFailurePolicy",
                "successPolicy",
            ]
        ),
        anything,
        max_size=5,
    )
)
def test_spec_fields_with_hostile_values(spec: dict[str, Any]) -> None:
    try:
        job = kjob.Job.from_manifest(job_manifest(spec))
    except (ValueError, TypeError) as e:
        assert str(e), "errors say what is wrong"
        return
    job.delete()


@SETTINGS
@given(
    st.lists(
        st.one_of(weird_strings, st.builds(lambda s: {"succeededIndexes": s}, weird_strings)), max_size=3
    )
)
def test_success_policy_index_strings(rules: list[Any]) -> None:
    spec = {"completionMode": "Indexed", "completions": 10, "successPolicy": {"rules": rules}}
    try:
        kjob.Job.from_manifest(job_manifest(spec)).delete()
    except (ValueError, TypeError):
        pass


@SETTINGS
@given(weird_numbers, weird_numbers)
def test_scale_with_hostile_numbers(parallelism: Any, completions: Any) -> None:
    job = kjob.Job(name="scaled", command="true", completions=2, parallelism=1, completion_mode="Indexed")
    try:
        job.scale(parallelism=parallelism, completions=completions)
    except (ValueError, TypeError):
        pass
    job.delete()


def test_deep_nesting_and_nul_bytes_are_clean_errors() -> None:
    deep: Any = {}
    for _ in range(100_000):
        deep = {"x": deep}
    with pytest.raises(ValueError, match="nested too deeply"):
        kjob.Job.from_manifest(
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "d"}, "spec": deep}
        )
    with pytest.raises(ValueError, match="NUL"):
        kjob.Job(name="nul", command=["echo", "a\x00b"])
    with pytest.raises(ValueError, match="NUL"):
        kjob.Job(name="nul", command="true", env={"A": "\x00"})
    with pytest.raises(ValueError):
        kjob.Job(name="surrogate", command=["echo", "\udcff"])
