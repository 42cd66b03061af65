"""Jobs out of kjob: manifests a cluster accepts, ``kubectl get``-style objects and tables."""

from __future__ import annotations

import copy
import datetime as _dt
import warnings
from collections.abc import Mapping
from typing import Any

from ._kjob import DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS, prune_manifest
from ._types import JobStatus
from .manifest import KjobWarning

__all__ = [
    "BACKOFF_INITIAL_ANNOTATION",
    "BACKOFF_MAX_ANNOTATION",
    "export_manifest",
    "human_duration",
    "kubectl_object",
    "lossless_document",
    "status_manifest",
    "table",
]

# kjob's own settings travel as annotations, which a cluster keeps and ignores.
BACKOFF_INITIAL_ANNOTATION = "kjob.io/backoff-initial-seconds"
BACKOFF_MAX_ANNOTATION = "kjob.io/backoff-max-seconds"


def rfc3339(t: _dt.datetime | None) -> str | None:
    """``metav1.Time`` as it is serialized: UTC, whole seconds."""
    if t is None:
        return None
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_text(value: float) -> str:
    """Exact (``repr``), without a trailing ``.0``: 0.5 -> "0.5", 2.0 -> "2"."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def export_manifest(
    manifest: Mapping[str, Any],
    *,
    backoff_initial: float,
    backoff_max: float,
    pod_replacement_policy: str,
    original: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Job's manifest as ``kubectl apply`` takes it. Raises ``ValueError`` when a cluster
    would refuse it for want of a container image; kjob-only settings become ``kjob.io/``
    annotations and ``onExceptions`` rules are dropped with a :class:`KjobWarning`.
    ``pod_replacement_policy`` is the one the Job runs with (the controller's default when the
    manifest sets none). With ``original`` (the document the Job was loaded from), the export
    is that document with kjob's state shown in it (:func:`lossless_document`)."""
    out = copy.deepcopy(dict(manifest))
    spec = out.setdefault("spec", {})
    policy = spec.get("podFailurePolicy")
    if isinstance(policy, dict) and isinstance(policy.get("rules"), list):
        rules = policy["rules"]
        kept = [r for r in rules if not (isinstance(r, dict) and "onExceptions" in r)]
        if len(kept) != len(rules):
            dropped = [f"spec.podFailurePolicy.rules[{i}]" for i, r in enumerate(rules) if r not in kept]
            warnings.warn(
                "onExceptions is a kjob extension a cluster does not know; dropped from the export: "
                + ", ".join(dropped),
                KjobWarning,
                stacklevel=3,
            )
            if kept:
                policy["rules"] = kept
            else:
                del spec["podFailurePolicy"]
                # Its presence set podReplacementPolicy's default: keep the policy the Job ran with.
                spec.setdefault("podReplacementPolicy", pod_replacement_policy)
    metadata = out.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    for key, value, default in (
        (BACKOFF_INITIAL_ANNOTATION, backoff_initial, DEFAULT_BACKOFF_INITIAL_SECONDS),
        (BACKOFF_MAX_ANNOTATION, backoff_max, DEFAULT_BACKOFF_MAX_SECONDS),
    ):
        if value != default:
            annotations[key] = _seconds_text(value)
        else:
            annotations.pop(key, None)
    if annotations:
        metadata["annotations"] = annotations
    else:
        metadata.pop("annotations", None)
    if original is not None:
        out = lossless_document(original, out, not_honoured_paths(original))
    _require_images(out)
    return out


_IMAGE_REQUIRED = (
    "Required value: a cluster needs a container image to run this Job; set image= (or the "
    "manifest's image), which kjob ignores locally"
)


def _require_images(manifest: Mapping[str, Any]) -> None:
    """Raises ``ValueError`` naming every container and init container without an image: the
    API server refuses a pod template with one (``validateContainers``: ``image`` is required),
    while kjob, which runs commands on this machine, does not need it."""
    spec = manifest.get("spec")
    template = spec.get("template") if isinstance(spec, Mapping) else None
    pod = template.get("spec") if isinstance(template, Mapping) else None
    pod = pod if isinstance(pod, Mapping) else {}
    missing: list[str] = []
    for field in ("initContainers", "containers"):
        containers = pod.get(field)
        containers = containers if isinstance(containers, list) else []
        if field == "containers" and not containers:
            missing.append("spec.template.spec.containers[0].image")
        for i, container in enumerate(containers):
            if not (isinstance(container, Mapping) and container.get("image")):
                missing.append(f"spec.template.spec.{field}[{i}].image")
    if missing:
        raise ValueError("\n".join(f"{path}: {_IMAGE_REQUIRED}" for path in missing))


def not_honoured_paths(original: Mapping[str, Any]) -> list[str]:
    """The paths of the fields of ``original`` that kjob keeps for export but does not run, as
    the extension lists them (``spec.template.spec.volumes``, ``...containers[0].resources``)."""
    return list(prune_manifest(copy.deepcopy(dict(original)))[1])


class _Paths:
    """The not-honoured paths, and the question the merge asks of them."""

    def __init__(self, not_honoured: list[str]) -> None:
        self.exact = frozenset(not_honoured)

    def touches(self, path: str) -> bool:
        """Whether ``path`` or a field below it is not honoured (so it was the user's, not the
        API server's, and goes out as written)."""
        return any(p == path or p.startswith((path + ".", path + "[")) for p in self.exact)


def _child(path: str, key: object) -> str:
    """``path.key``, spelled as the extension spells it (``str()`` of the key)."""
    return f"{path}.{key}" if path else str(key)


_EMPTIED = object()


def _pruned(value: Any, path: str, paths: _Paths) -> Any:
    """``value`` without its not-honoured fields, as the extension prunes it; ``_EMPTIED`` for
    a list item the pruning drops whole (an env var whose only source was not honoured:
    ``spec::schema::DROPPED_WHEN_EMPTIED``). Used to pair a list's items with the kept ones."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            child = _child(path, key)
            if child in paths.exact:
                continue
            out[key] = _pruned(item, child, paths)
        return out
    if isinstance(value, list):
        return [
            pruned
            for i, item in enumerate(value)
            if f"{path}[{i}]" not in paths.exact
            and (pruned := _pruned_item(item, f"{path}[{i}]", paths)) is not _EMPTIED
        ]
    return value


def _emptied(original: Any, pruned: Any, path: str, paths: _Paths) -> bool:
    """Whether a list item lost a whole object field to pruning (every field of it is not
    honoured), which drops the item from its list."""
    if not (isinstance(original, dict) and isinstance(pruned, dict)):
        return False
    return any(
        isinstance(value, dict) and value and pruned.get(key) == {} and paths.touches(_child(path, key))
        for key, value in original.items()
    )


def _pruned_item(item: Any, path: str, paths: _Paths) -> Any:
    pruned = _pruned(item, path, paths)
    return _EMPTIED if _emptied(item, pruned, path, paths) else pruned


def _merge(original: Any, rebuilt: Any, path: str, paths: _Paths) -> Any:
    """``original`` with ``rebuilt``'s values where kjob has them, its not-honoured fields as
    written, and nothing else of it (what the API server set, or kjob dropped)."""
    if isinstance(original, dict) and isinstance(rebuilt, dict):
        out: dict[Any, Any] = {}
        for key, value in original.items():
            child = _child(path, key)
            if key in rebuilt:
                out[key] = _merge(value, rebuilt[key], child, paths)
            elif paths.touches(child):
                out[key] = copy.deepcopy(value)
        for key, value in rebuilt.items():
            if key not in original:
                out[key] = copy.deepcopy(value)
        return out
    if isinstance(original, list) and isinstance(rebuilt, list):
        return _merge_items(original, rebuilt, path, paths)
    return copy.deepcopy(rebuilt)


def _merge_items(original: list[Any], rebuilt: list[Any], path: str, paths: _Paths) -> list[Any]:
    """A list merged item by item. kjob never reorders nor adds items: the rebuilt list is the
    original's items that the pruning kept, in order, unless the export dropped some
    (``onExceptions`` rules). When the counts agree the items pair in order, whatever kjob
    changed inside them; otherwise an item pairs with the next rebuilt one it equals once
    pruned. Unpaired items stay when they are not honoured, else go."""
    kept = [
        i
        for i, item in enumerate(original)
        if f"{path}[{i}]" not in paths.exact and _pruned_item(item, f"{path}[{i}]", paths) is not _EMPTIED
    ]
    if len(kept) == len(rebuilt):
        pairs = dict(zip(kept, rebuilt))
    else:
        pairs, j = {}, 0
        for i in kept:
            if j < len(rebuilt) and _pruned_item(original[i], f"{path}[{i}]", paths) == rebuilt[j]:
                pairs[i] = rebuilt[j]
                j += 1
    items: list[Any] = []
    for i, item in enumerate(original):
        child = f"{path}[{i}]"
        if i in pairs:
            items.append(_merge(item, pairs[i], child, paths))
        elif paths.touches(child):
            items.append(copy.deepcopy(item))
    paired = len(pairs)
    items.extend(copy.deepcopy(rebuilt[paired:]))
    return items


def lossless_document(
    original: Mapping[str, Any], rebuilt: Mapping[str, Any], not_honoured: list[str]
) -> dict[str, Any]:
    """The document a Job was loaded from, as a cluster should get it back: every field the
    user wrote, in the user's order, with kjob's values where kjob's state differs (``scale()``,
    ``suspend()``, a generated name, backoff annotations), new keys of ``rebuilt`` appended.

    ``rebuilt`` is the manifest kjob made of ``original`` (what it runs, as exported);
    ``not_honoured`` the paths ``prune_manifest`` listed. A field of ``original`` missing from
    ``rebuilt`` is kept as written when it (or a field below it) is not honoured here; otherwise
    the API server set it (``status``, ``metadata.uid``, a generated selector, ...) or kjob
    dropped it, and it goes."""
    merged: dict[str, Any] = _merge(dict(original), dict(rebuilt), "", _Paths(not_honoured))
    return merged


def backoff_from_annotations(manifest: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The ``kjob.io/backoff-*-seconds`` annotations of a manifest (``None`` when absent)."""
    metadata = manifest.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return None, None
    values: list[float | None] = []
    for key in (BACKOFF_INITIAL_ANNOTATION, BACKOFF_MAX_ANNOTATION):
        text = annotations.get(key)
        if text is None:
            values.append(None)
            continue
        try:
            value = float(text)
        except (TypeError, ValueError):
            value = -1.0
        if not 0 <= value < float("inf"):
            raise ValueError(
                f"metadata.annotations[{key}]: Invalid value: {text!r}: must be a number of seconds >= 0"
            )
        values.append(value)
    return values[0], values[1]


def status_manifest(status: JobStatus) -> dict[str, Any]:
    """``status`` of a batch/v1 Job, camelCase, zero counts and empty fields left out as the
    API server's JSON does."""
    out: dict[str, Any] = {}
    if status.conditions:
        out["conditions"] = [
            {
                "type": c.type,
                "status": c.status,
                "lastProbeTime": rfc3339(c.last_transition_time),
                "lastTransitionTime": rfc3339(c.last_transition_time),
                "reason": c.reason,
                "message": c.message,
            }
            for c in status.conditions
        ]
    for key, value in (
        ("startTime", rfc3339(status.start_time)),
        ("completionTime", rfc3339(status.completion_time)),
        ("active", status.active),
        ("succeeded", status.succeeded),
        ("failed", status.failed),
        ("completedIndexes", status.completed_indexes),
    ):
        if value:
            out[key] = value
    # Set by the controller even when empty: with backoffLimitPerIndex, failedIndexes.
    if status.failed_indexes is not None:
        out["failedIndexes"] = status.failed_indexes
    out["terminating"] = status.terminating
    out["ready"] = status.ready
    out["uncountedTerminatedPods"] = {}
    return out


def kubectl_object(
    manifest: Mapping[str, Any],
    native_spec: Mapping[str, Any],
    status: JobStatus,
    creation_time: _dt.datetime,
) -> dict[str, Any]:
    """The Job as ``kubectl get job -o yaml`` shows it: the manifest with the API server's
    defaults, generated labels and selector, and the status."""
    out = copy.deepcopy(dict(manifest))
    out["apiVersion"] = "batch/v1"
    out["kind"] = "Job"
    uid = str(native_spec["uid"])
    name = str(native_spec["name"])
    # The template's labels with the generated ones, as the controller puts them on pods.
    pod_labels = dict(native_spec["labels"])
    metadata = out.setdefault("metadata", {})
    metadata["name"] = name
    metadata["namespace"] = native_spec["namespace"]
    metadata["uid"] = uid
    metadata["creationTimestamp"] = rfc3339(creation_time)
    # Defaulting: a Job without labels gets its pod template's.
    metadata["labels"] = metadata.get("labels") or pod_labels
    spec = out.setdefault("spec", {})
    spec["parallelism"] = native_spec["parallelism"]
    if native_spec["completions"] is not None:
        spec["completions"] = native_spec["completions"]
    # The defaults are the controller's (src/controller/defaults.rs), not worked out here.
    spec["backoffLimit"] = native_spec["backoff_limit"]
    spec["completionMode"] = native_spec["completion_mode"]
    spec.setdefault("suspend", native_spec["suspend"])
    spec["podReplacementPolicy"] = native_spec["pod_replacement_policy"]
    spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    template = spec.get("template") or {}
    template_meta = dict(template.get("metadata") or {})
    template_meta["labels"] = pod_labels
    pod_spec = dict(template.get("spec") or {})
    spec["template"] = {"metadata": template_meta, "spec": pod_spec}
    pod_spec["restartPolicy"] = native_spec["restart_policy"]
    pod_spec["terminationGracePeriodSeconds"] = int(native_spec["termination_grace_period_seconds"])
    out["status"] = status_manifest(status)
    return out


def job_state(status: JobStatus, *, suspended: bool = False, deleting: bool = False) -> str:
    """The STATUS column of ``kubectl get jobs`` (kubectl's printer, in its order)."""
    true = {c.type for c in status.conditions if c.status == "True"}
    for kind in ("Complete", "Failed"):
        if kind in true:
            return kind
    if deleting:
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if kind in true:
            return kind
    return "Suspended" if suspended else "Running"


def status_counts(status: JobStatus, manifest_keys: bool = False) -> str:
    """``active=1 succeeded=2 failed=0`` and, when set, terminating and the index sets:
    with Python names (quoted strings) or, for ``manifest_keys``, the manifest's."""
    parts = [f"active={status.active}", f"succeeded={status.succeeded}", f"failed={status.failed}"]
    if status.terminating:
        parts.append(f"terminating={status.terminating}")
    for name, key, value in (
        ("completed_indexes", "completedIndexes", status.completed_indexes),
        ("failed_indexes", "failedIndexes", status.failed_indexes),
    ):
        if value:
            parts.append(f"{key}={value}" if manifest_keys else f"{name}={value!r}")
    return " ".join(parts)


def completions_column(succeeded: int, completions: int | None, parallelism: int) -> str:
    """The COMPLETIONS column: ``3/5``, or for a work queue ``0/1 of 3``."""
    if completions is not None:
        return f"{succeeded}/{completions}"
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def human_duration(seconds: float) -> str:
    """Kubernetes' ``duration.HumanDuration`` (as in the AGE and DURATION columns)."""
    # Go truncates to whole seconds first: -1.5 s is -1 s, shown as 0s.
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    s = max(0, s)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def table(rows: list[dict[str, str]], columns: list[str]) -> str:
    """Left-aligned columns three spaces apart, as kubectl prints them."""
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in columns]
    lines = ["   ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip()]
    for r in rows:
        lines.append("   ".join(r[c].ljust(w) for c, w in zip(columns, widths)).rstrip())
    return "\n".join(lines)
