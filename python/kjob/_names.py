"""Object names as the API server generates them (``metadata.generateName``)."""

from __future__ import annotations

from ._kjob import GENERATED_NAME_ALPHABET, GENERATED_NAME_SUFFIX_LENGTH, MAX_GENERATED_NAME_LENGTH

__all__ = ["generated_name"]


def generated_name(prefix: str) -> str:
    """``prefix`` cut so the name fits (as upstream cuts it) plus random characters of the
    generated-name alphabet; the extension holds the rule's numbers and alphabet."""
    import secrets  # only when a name is generated: `import kjob` stays fast

    suffix = "".join(secrets.choice(GENERATED_NAME_ALPHABET) for _ in range(GENERATED_NAME_SUFFIX_LENGTH))
    return prefix[:MAX_GENERATED_NAME_LENGTH] + suffix
