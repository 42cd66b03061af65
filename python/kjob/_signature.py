"""Checks a target callable's signature against the call its pods will make, so that a
mismatch is a ``TypeError`` at ``Job(...)`` instead of every pod failing through backoff."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["check_target_call"]


def check_target_call(
    target: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], indexed: bool
) -> None:
    """Raises ``TypeError`` if ``target`` cannot take the call a pod makes: ``fn(index, *args,
    **kwargs)`` in an Indexed Job, ``fn(*args, **kwargs)`` in a NonIndexed one (see
    ``_worker``). A callable whose signature Python cannot tell (some builtins) passes."""
    # Imported here, not at `import kjob`: only Jobs with a target callable need it.
    import inspect

    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    positional = (0, *args) if indexed else args
    try:
        signature.bind(*positional, **kwargs)
    except TypeError as e:
        mode, expected = (
            ("an Indexed", "fn(index, *args, **kwargs)")
            if indexed
            else ("a NonIndexed", "fn(*args, **kwargs)")
        )
        name = getattr(target, "__qualname__", None) or type(target).__name__
        # Parameter names say what was expected; annotations (maybe strings) only add noise.
        bare = signature.replace(
            parameters=[p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()],
            return_annotation=inspect.Signature.empty,
        )
        given = f"{len(args)} positional argument{'' if len(args) == 1 else 's'} in args"
        given += f" and keyword arguments {sorted(kwargs)}" if kwargs else " and no kwargs"
        raise TypeError(
            f"target {name}{bare} cannot be called as a pod of {mode} Job calls it, "
            f"{expected}, with {given}: {e}"
        ) from None
