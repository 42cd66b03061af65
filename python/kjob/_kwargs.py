"""Keyword arguments of :class:`kjob.Job` as a batch/v1 manifest: snake_case keywords become the
manifest's camelCase fields. Python types are checked here (``TypeError``); values are the
extension's to validate, with Kubernetes' messages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from ._checks import check_depth
from ._kjob import check_int

__all__ = ["Command", "EnvLike", "manifest_from_kwargs"]

Command = Union[str, Sequence[str]]
EnvLike = Union[Mapping[str, str], Sequence[tuple[str, str]], None]


def _json_text(value: Any) -> str:
    import json  # only for an error message: `import kjob` stays fast

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


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
