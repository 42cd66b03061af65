"""Reading batch/v1 Job manifests (YAML or dicts) for :meth:`kjob.Job.from_yaml`."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

# PyYAML, json, pathlib and secrets are imported by the functions that need them: `import
# kjob` stays fast (issue 14 §5), and a Job built from keywords never loads them.
if TYPE_CHECKING:
    from pathlib import Path

Command = Union[str, Sequence[str]]
EnvLike = Union[Mapping[str, str], Sequence[tuple[str, str]], None]

__all__ = [
    "KjobWarning",
    "check_command_job",
    "load_job_manifest",
    "load_job_manifests",
    "manifest_from_kwargs",
    "normalize_manifest",
]


class KjobWarning(UserWarning):
    """A manifest asks for something kjob cannot do on this machine (resources, volumes,
    a second container, ...): those fields are ignored. ``strict=True`` makes it an error."""


def _read(path_or_text: str | Path) -> tuple[str, str]:
    """Returns (text, where) for a path or for YAML text itself."""
    from pathlib import Path

    if isinstance(path_or_text, Path):
        return path_or_text.read_text(encoding="utf-8"), str(path_or_text)
    if not isinstance(path_or_text, str):
        raise TypeError(f"expected a path or YAML text, not {type(path_or_text).__name__}")
    if "\n" not in path_or_text and os.path.exists(path_or_text):
        return Path(path_or_text).read_text(encoding="utf-8"), path_or_text
    if "\n" not in path_or_text and path_or_text.endswith((".yaml", ".yml", ".json")):
        raise FileNotFoundError(f"no such manifest file: {path_or_text}")
    return path_or_text, "<text>"


def load_job_manifests(path_or_text: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Every ``kind: Job`` document of a YAML file or text (other kinds are skipped, as a
    file for ``kubectl apply`` may hold a ConfigMap too), and where they came from."""
    import yaml

    text, where = _read(path_or_text)
    _check_yaml_depth(text, where)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from None
    # A kubectl `List` (as `kubectl get jobs -o yaml` prints) holds its documents in items.
    expanded: list[Any] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List" and isinstance(d.get("items"), list):
            expanded.extend(d["items"])
        else:
            expanded.append(d)
    jobs = [d for d in expanded if isinstance(d, Mapping) and d.get("kind") == "Job"]
    if not jobs:
        kinds = sorted({str(d["kind"]) for d in expanded if isinstance(d, Mapping) and "kind" in d})
        found = f" (found kind: {', '.join(kinds)})" if kinds else ""
        raise ValueError(f"{where}: no document of kind Job{found}")
    return [dict(j) for j in jobs], where


def _check_yaml_depth(text: str, where: str) -> None:
    """Refuses YAML nested deeper than MAX_DEPTH before it is loaded: PyYAML builds nodes
    recursively, and a few hundred levels exhaust Python's stack (``RecursionError``). Its
    parser is not recursive, so the events are counted first. Syntax errors are left to the
    load, which reports them."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"{where}: manifest nested too deeply (more than {MAX_DEPTH} levels)")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass


def load_job_manifest(path_or_text: str | Path) -> tuple[dict[str, Any], str]:
    """The single ``kind: Job`` document of a YAML file or text, and where it came from."""
    jobs, where = load_job_manifests(path_or_text)
    if len(jobs) > 1:
        raise ValueError(
            f"{where}: {len(jobs)} documents of kind Job; expected one (Job.all_from_yaml reads them all)"
        )
    return jobs[0], where


# No Kubernetes object comes close; deeper input is hostile and would exhaust the stack.
MAX_DEPTH = 64


def check_depth(value: Any, what: str = "manifest") -> None:
    """Raises ValueError for structures nested deeper than MAX_DEPTH (checked without
    recursion, so the check itself cannot overflow)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    # YAML aliases share nodes: a node is walked again only when reached deeper than before
    # (ten aliases of ten aliases of ... would otherwise take exponential time; a cycle keeps
    # getting deeper, so it is still caught).
    deepest: dict[int, int] = {}
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{what} nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(item, (Mapping, list, tuple)):
            if deepest.get(id(item), -1) >= depth:
                continue
            deepest[id(item)] = depth
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)


def normalize_manifest(
    manifest: Mapping[str, Any], *, strict: bool = False, where: str | None = None
) -> dict[str, Any]:
    """Checks the document is a batch/v1 Job and returns a private copy holding only what
    kjob runs: fields it cannot honour are dropped with one :class:`KjobWarning` naming their
    paths (a ``ValueError`` when ``strict``), and a ``generateName`` becomes a name."""
    if not isinstance(manifest, Mapping):
        raise TypeError(f"a manifest is a mapping, not {type(manifest).__name__}")
    check_depth(manifest)
    prefix = f"{where}: " if where else ""
    api_version = manifest.get("apiVersion", "batch/v1")
    kind = manifest.get("kind", "Job")
    if api_version != "batch/v1":
        import json

        raise ValueError(
            f'{prefix}apiVersion: Unsupported value: {json.dumps(api_version)}: supported values: "batch/v1" '
            "(kjob runs Jobs of the batch/v1 API)"
        )
    if kind != "Job":
        import json

        raise ValueError(f'{prefix}kind: Unsupported value: {json.dumps(kind)}: supported values: "Job"')
    ignored: list[str] = []
    kept: dict[str, Any] = _prune(_without_server_fields(copy.deepcopy(dict(manifest))), _JOB, "", ignored)
    _drop_unresolvable_env(kept, ignored)
    if ignored:
        listed = ", ".join(ignored)
        if strict:
            raise ValueError(f"{prefix}fields kjob cannot honour on this machine: {listed}")
        warnings.warn(
            f"{prefix}kjob ignores fields it cannot honour on this machine: {listed}",
            KjobWarning,
            stacklevel=3,
        )
    _resolve_generate_name(kept)
    return kept


# Labels the API server derives from a Job's uid: a saved Job's are stale for a new one.
_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _without_server_fields(manifest: dict[str, Any]) -> dict[str, Any]:
    """Drops, quietly, what the API server generated for a Job (as ``kubectl get -o yaml``
    shows it): the selector it made (unless ``manualSelector``) and the uid labels."""
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return manifest
    if spec.get("manualSelector") is not True:
        spec.pop("selector", None)
        if spec.get("manualSelector") is False:
            del spec["manualSelector"]
    template = spec.get("template")
    for meta in (manifest.get("metadata"), template.get("metadata") if isinstance(template, dict) else None):
        labels = meta.get("labels") if isinstance(meta, dict) else None
        if isinstance(labels, dict):
            for key in _UID_LABELS:
                labels.pop(key, None)
    return manifest


def _drop_unresolvable_env(manifest: dict[str, Any], ignored: list[str]) -> None:
    """An env var read from a Secret, ConfigMap or resource limit has no value here: it is
    dropped whole (its source is among the ignored paths) rather than set to nothing."""
    try:
        env = manifest["spec"]["template"]["spec"]["containers"][0]["env"]
    except (KeyError, IndexError, TypeError):
        return
    if not isinstance(env, list):
        return
    prefix = "spec.template.spec.containers[0].env"
    unresolvable = {
        i for i in range(len(env)) if any(p.startswith(f"{prefix}[{i}].valueFrom.") for p in ignored)
    }
    env[:] = [
        var
        for i, var in enumerate(env)
        if not (i in unresolvable and isinstance(var, dict) and var.get("valueFrom") == {})
    ]


def _resolve_generate_name(manifest: dict[str, Any]) -> None:
    """``metadata.generateName`` + 5 random characters, as the API server names objects."""
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name"):
        return
    base = metadata.pop("generateName", None)
    if isinstance(base, str) and base:
        import secrets

        # Upstream cuts the prefix to 58 characters so the name stays within 63.
        metadata["name"] = base[:58] + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


# Kubernetes' generateName alphabet (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# What kjob reads of a batch/v1 Job. A dict maps a field to its schema, `_ANY` takes any
# value, a one-element list is "a list of these", `_FirstOnly` a list of which only the
# first item is run. Anything else is reported and dropped.
_ANY = True


class _Scalar:
    """A leaf whose JSON type is checked here: YAML's ``suspend: "false"`` is a string, and
    the Rust side would take any Python value's truthiness for a bool (and True for 1)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def check(self, value: Any, path: str) -> None:
        if value is None:
            return
        if self.kind == "boolean" and not isinstance(value, bool):
            raise ValueError(f"{path}: Invalid value: {_json_text(value)}: must be a boolean (true or false)")
        if self.kind == "integer" and isinstance(value, bool):
            raise ValueError(f"{path}: Invalid value: {_json_text(value)}: must be an integer")


def _json_text(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


_BOOL = _Scalar("boolean")
_INT = _Scalar("integer")


class _FirstOnly:
    def __init__(self, item: Any) -> None:
        self.item = item


_ENV_VAR = {
    "name": _ANY,
    "value": _ANY,
    "valueFrom": {"fieldRef": {"apiVersion": _ANY, "fieldPath": _ANY}},
}
_CONTAINER = {
    "name": _ANY,
    "image": _ANY,
    "command": _ANY,
    "args": _ANY,
    "env": [_ENV_VAR],
    "workingDir": _ANY,
}
_POD_FAILURE_RULE = {
    "action": _ANY,
    "onExitCodes": {"containerName": _ANY, "operator": _ANY, "values": [_INT]},
    "onPodConditions": [{"type": _ANY, "status": _ANY}],
    # kjob's extension for callable pods (see README); never exported.
    "onExceptions": {"operator": _ANY, "values": _ANY},
}
_METADATA = {"name": _ANY, "generateName": _ANY, "namespace": _ANY, "labels": _ANY, "annotations": _ANY}
# Written by the API server: meaningless in a manifest, so dropped without a word (a Job
# saved with `kubectl get -o yaml` loads quietly).
_SERVER_METADATA = {"uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink"}
_JOB: dict[str, Any] = {
    "apiVersion": _ANY,
    "kind": _ANY,
    "metadata": _METADATA,
    "spec": {
        "parallelism": _INT,
        "completions": _INT,
        "activeDeadlineSeconds": _INT,
        "podFailurePolicy": {"rules": [_POD_FAILURE_RULE]},
        "successPolicy": {"rules": [{"succeededIndexes": _ANY, "succeededCount": _INT}]},
        "backoffLimit": _INT,
        "backoffLimitPerIndex": _INT,
        "maxFailedIndexes": _INT,
        "ttlSecondsAfterFinished": _INT,
        "completionMode": _ANY,
        "suspend": _BOOL,
        "podReplacementPolicy": _ANY,
        "managedBy": _ANY,
        "template": {
            "metadata": _METADATA,
            "spec": {
                "containers": _FirstOnly(_CONTAINER),
                "restartPolicy": _ANY,
                "activeDeadlineSeconds": _INT,
                "terminationGracePeriodSeconds": _INT,
            },
        },
    },
}


def _prune(value: Any, schema: Any, path: str, ignored: list[str]) -> Any:
    """``value`` without the fields ``schema`` lacks (their paths go to ``ignored``). Values
    of the wrong shape are kept: validation reports them with their path."""
    if schema is _ANY:
        return value
    if isinstance(schema, _Scalar):
        schema.check(value, path)
        return value
    if isinstance(schema, dict) and isinstance(value, dict):
        kept: dict[str, Any] = {}
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key in schema:
                kept[key] = _prune(item, schema[key], child, ignored)
            elif path == "" and key == "status" or path.endswith("metadata") and key in _SERVER_METADATA:
                continue
            else:
                ignored.append(child)
        return kept
    if isinstance(schema, _FirstOnly) and isinstance(value, list):
        first = [_prune(item, schema.item, f"{path}[0]", ignored) for item in value[:1]]
        ignored.extend(f"{path}[{i}]" for i in range(1, len(value)))
        return first
    if isinstance(schema, list) and isinstance(value, list):
        return [_prune(item, schema[0], f"{path}[{i}]", ignored) for i, item in enumerate(value)]
    return value


def check_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    return value


def check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (0 <= value < float("inf")):
        raise ValueError(f"{name}: must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _command_list(command: Command | None) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
        if not command.strip():
            # `sh -c ""` succeeds doing nothing: a Job of it would "complete" silently.
            raise ValueError(
                f"command: Invalid value: {_json_text(command)}: must be a non-empty "
                "shell command line (or a list of strings)"
            )
        # A string is a shell command line, as users of subprocess(shell=True) expect.
        return ["/bin/sh", "-c", command]
    if isinstance(command, (bytes, bytearray)) or not isinstance(command, Sequence):
        raise TypeError(f"command must be a string or a list of strings, not {type(command).__name__}")
    items = list(command)
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise TypeError(f"command[{i}] must be a string, not {type(item).__name__}")
    return items


def check_command_job(manifest: Mapping[str, Any]) -> None:
    """Refuses what only a Job with a target callable can use: ``onExceptions`` rules match
    the exception a callable raised, and a command's pods only exit with a code, so such a
    rule would never match."""
    try:
        rules = manifest["spec"]["podFailurePolicy"]["rules"]
    except (KeyError, TypeError):
        return
    if not isinstance(rules, list):
        return
    for i, rule in enumerate(rules):
        if isinstance(rule, Mapping) and "onExceptions" in rule:
            raise ValueError(
                f"spec.podFailurePolicy.rules[{i}].onExceptions: Forbidden: only a Job with a target "
                "callable raises exceptions; a command Job's pods fail with exit codes (use onExitCodes)"
            )


def _args_list(args: Sequence[str] | None) -> list[str]:
    if args is None:
        return []
    if isinstance(args, (str, bytes)) or not isinstance(args, Sequence):
        raise TypeError(f"args must be a list of strings, not {type(args).__name__}")
    for i, item in enumerate(args):
        if not isinstance(item, str):
            raise TypeError(f"args[{i}] must be a string, not {type(item).__name__}")
    return list(args)


def _env_list(env: EnvLike) -> list[dict[str, str]]:
    if env is None:
        return []
    pairs = list(env.items()) if isinstance(env, Mapping) else list(env)
    out = []
    for pair in pairs:
        if not (isinstance(pair, tuple) and len(pair) == 2):
            raise TypeError("env must be a mapping of names to values or a list of (name, value) pairs")
        name, value = pair
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"env entries must be strings, got {name!r}: {value!r}")
        out.append({"name": name, "value": value})
    return out


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def camel_keys(value: Any) -> Any:
    """Policies may be written with snake_case keys (``on_exit_codes``); manifests use
    camelCase (``onExitCodes``). Values are left alone."""
    if isinstance(value, Mapping):
        return {_camel(str(k)): camel_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [camel_keys(v) for v in value]
    return value


def _check_str(name: str, value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} must be a string or None, not {type(value).__name__}")
    return value


def _check_policy(name: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict in the Kubernetes shape, not {type(value).__name__}")
    check_depth(value, name)
    converted: dict[str, Any] = camel_keys(value)
    return converted


def manifest_from_kwargs(
    *,
    name: str,
    namespace: str,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    container_name: str | None,
    image: str | None = None,
    command: Command | None,
    args: Sequence[str] | None,
    env: EnvLike,
    working_dir: str | None,
    completions: int | None,
    parallelism: int | None,
    completion_mode: str,
    backoff_limit: int | None,
    restart_policy: str,
    termination_grace_period_seconds: int | None,
    backoff_limit_per_index: int | None,
    max_failed_indexes: int | None,
    pod_failure_policy: Mapping[str, Any] | None,
    success_policy: Mapping[str, Any] | None,
    active_deadline_seconds: int | None,
    pod_active_deadline_seconds: int | None,
    ttl_seconds_after_finished: int | None,
    suspend: bool | None,
    pod_replacement_policy: str | None,
    managed_by: str | None,
) -> dict[str, Any]:
    """The batch/v1 manifest for :class:`kjob.Job`'s keyword arguments (snake_case of the
    Kubernetes fields). Wrong Python types raise ``TypeError`` here; values are validated by
    the controller with Kubernetes' messages."""
    for key, text in (
        ("name", name),
        ("namespace", namespace),
        ("completion_mode", completion_mode),
        ("restart_policy", restart_policy),
    ):
        if not isinstance(text, str):
            raise TypeError(f"{key} must be a string, not {type(text).__name__}")
    if suspend is not None and not isinstance(suspend, bool):
        raise TypeError(f"suspend must be a bool or None, not {type(suspend).__name__}")
    container: dict[str, Any] = {
        # As `kubectl create job` does, the container is named after the Job by default.
        "name": _check_str("container_name", container_name) or name,
    }
    if _check_str("image", image) is not None:
        container["image"] = image
    container["command"] = _command_list(command)
    args_list = _args_list(args)
    if args_list:
        container["args"] = args_list
    env_list = _env_list(env)
    if env_list:
        container["env"] = env_list
    if working_dir is not None:
        container["workingDir"] = str(working_dir)
    pod_spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    for key, value in (
        (
            "terminationGracePeriodSeconds",
            check_int("termination_grace_period_seconds", termination_grace_period_seconds),
        ),
        ("activeDeadlineSeconds", check_int("pod_active_deadline_seconds", pod_active_deadline_seconds)),
    ):
        if value is not None:
            pod_spec[key] = value
    spec: dict[str, Any] = {}
    fields: list[tuple[str, object]] = [
        ("parallelism", check_int("parallelism", parallelism)),
        ("completions", check_int("completions", completions)),
        ("activeDeadlineSeconds", check_int("active_deadline_seconds", active_deadline_seconds)),
        ("podFailurePolicy", _check_policy("pod_failure_policy", pod_failure_policy)),
        ("successPolicy", _check_policy("success_policy", success_policy)),
        ("backoffLimit", check_int("backoff_limit", backoff_limit)),
        ("backoffLimitPerIndex", check_int("backoff_limit_per_index", backoff_limit_per_index)),
        ("maxFailedIndexes", check_int("max_failed_indexes", max_failed_indexes)),
        ("ttlSecondsAfterFinished", check_int("ttl_seconds_after_finished", ttl_seconds_after_finished)),
        ("completionMode", completion_mode),
        ("suspend", suspend),
        ("podReplacementPolicy", _check_str("pod_replacement_policy", pod_replacement_policy)),
        ("managedBy", _check_str("managed_by", managed_by)),
    ]
    for key, field_value in fields:
        if field_value is not None:
            spec[key] = field_value
    spec["template"] = {"spec": pod_spec}
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    for key, mapping in (("labels", labels), ("annotations", annotations)):
        if mapping is not None:
            metadata[key] = _string_map(key, mapping)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec}


def _string_map(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of strings to strings, not {type(value).__name__}")
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError(f"{name} must map strings to strings, got {k!r}: {v!r}")
    return dict(value)
