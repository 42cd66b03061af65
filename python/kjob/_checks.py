"""Checks of a manifest made in Python, before the extension reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "check_command_job", "check_depth"]

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
