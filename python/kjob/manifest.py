"""Reading batch/v1 Job manifests (YAML or dicts) for :meth:`kjob.Job.from_yaml`."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["load_job_manifest", "normalize_manifest"]


def _read(path_or_text: str | Path) -> tuple[str, str]:
    """Returns (text, where) for a path or for YAML text itself."""
    if isinstance(path_or_text, Path):
        return path_or_text.read_text(), str(path_or_text)
    if not isinstance(path_or_text, str):
        raise TypeError(f"expected a path or YAML text, not {type(path_or_text).__name__}")
    if "\n" not in path_or_text and os.path.exists(path_or_text):
        return Path(path_or_text).read_text(), path_or_text
    if "\n" not in path_or_text and path_or_text.endswith((".yaml", ".yml", ".json")):
        raise FileNotFoundError(f"no such manifest file: {path_or_text}")
    return path_or_text, "<text>"


def load_job_manifest(path_or_text: str | Path) -> dict[str, Any]:
    """The single ``kind: Job`` document of a YAML file or text."""
    text, where = _read(path_or_text)
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from None
    jobs = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "Job"]
    if not jobs:
        kinds = sorted({str(d["kind"]) for d in docs if isinstance(d, Mapping) and "kind" in d})
        found = f" (found kind: {', '.join(kinds)})" if kinds else ""
        raise ValueError(f"{where}: no document of kind Job{found}")
    if len(jobs) > 1:
        raise ValueError(f"{where}: {len(jobs)} documents of kind Job; expected one")
    return dict(jobs[0])


def normalize_manifest(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Checks the document is a batch/v1 Job and returns a private deep copy."""
    if not isinstance(manifest, Mapping):
        raise TypeError(f"a manifest is a mapping, not {type(manifest).__name__}")
    api_version = manifest.get("apiVersion", "batch/v1")
    kind = manifest.get("kind", "Job")
    if api_version != "batch/v1":
        raise ValueError(f'apiVersion: Unsupported value: {api_version!r}: supported values: "batch/v1"')
    if kind != "Job":
        raise ValueError(f'kind: Unsupported value: {kind!r}: supported values: "Job"')
    return copy.deepcopy(dict(manifest))
