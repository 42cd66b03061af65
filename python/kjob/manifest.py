"""Reading batch/v1 Job manifests (YAML or dicts) for :meth:`kjob.Job.from_yaml`."""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._checks import MAX_DEPTH, check_depth
from ._kjob import check_env_sources, check_job_kind, prune_manifest
from ._names import generated_name

# PyYAML and pathlib are imported by the functions that need them: `import kjob` stays fast
# (issue 14 §5), and a Job built from keywords never loads them.
if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "KjobWarning",
    "Manifests",
    "load_job_manifest",
    "load_job_manifests",
    "load_manifests",
    "normalize_manifest",
]

#: The file names ``-f DIR`` reads, as ``kubectl apply -f DIR`` (not recursive).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Kinds that feed a Job's env (``configMapKeyRef``, ``secretKeyRef``, ``envFrom``).
SOURCE_KINDS = ("ConfigMap", "Secret")


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


class Manifests:
    """What manifest files hold for kjob: the Jobs (each with the file it came from), the
    ConfigMaps and Secrets their env may read, and the kinds skipped (``Kind/name``)."""

    def __init__(self) -> None:
        self.jobs: list[tuple[dict[str, Any], str]] = []
        self.sources: list[dict[str, Any]] = []
        self.skipped: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"Manifests(jobs={len(self.jobs)}, sources={len(self.sources)}, skipped={len(self.skipped)})"


def _documents(text: str, where: str) -> list[Any]:
    """The documents of YAML (or JSON) text; a kubectl ``List`` gives its items."""
    import yaml

    _check_yaml_depth(text, where)
    try:
        docs = [d for d in yaml.load_all(text, Loader=_safe_loader()) if d is not None]
    except yaml.YAMLError as e:
        raise ValueError(f"{where}: not valid YAML: {e}") from None
    # A kubectl `List` (as `kubectl get jobs -o yaml` prints) holds its documents in items.
    expanded: list[Any] = []
    for d in docs:
        if isinstance(d, Mapping) and d.get("kind") == "List" and isinstance(d.get("items"), list):
            expanded.extend(d["items"])
        else:
            expanded.append(d)
    return expanded


def _texts(path_or_text: str | Path) -> list[tuple[str, str]]:
    """(text, where) of every file a ``-f`` argument names: ``-`` is standard input, a folder
    gives its ``*.yaml``, ``*.yml`` and ``*.json`` files in name order; a string that is no
    path is YAML text."""
    import sys
    from pathlib import Path

    if path_or_text == "-":
        return [(sys.stdin.read() + "\n", "<stdin>")]
    if (
        isinstance(path_or_text, (str, Path))
        and "\n" not in str(path_or_text)
        and os.path.isdir(path_or_text)
    ):
        folder = Path(path_or_text)
        files = sorted(p for p in folder.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
        return [(f.read_text(encoding="utf-8"), str(f)) for f in files]
    return [_read(path_or_text)]


def load_manifests(*paths: str | Path) -> Manifests:
    """Every Job, ConfigMap and Secret of the files (or folders, ``-`` for standard input,
    or YAML text) given, as ``kubectl apply -f`` reads them. Other kinds are skipped with one
    :class:`KjobWarning` each. A ``ValueError`` when no Job is found, or when a ConfigMap or
    Secret is one the API server would refuse."""
    found = Manifests()
    kinds: set[str] = set()
    wheres: list[str] = []
    for path in paths:
        for text, where in _texts(path):
            wheres.append(where)
            for doc in _documents(text, where):
                if not isinstance(doc, Mapping):
                    continue
                kind = doc.get("kind")
                if kind == "Job":
                    found.jobs.append((dict(doc), where))
                elif kind in SOURCE_KINDS and doc.get("apiVersion", "v1") == "v1":
                    source = dict(doc)
                    try:
                        check_env_sources([source])
                    except ValueError as e:
                        raise ValueError(f"{where}: {e}") from None
                    found.sources.append(source)
                elif "kind" in doc:
                    kinds.add(str(kind))
                    metadata = doc.get("metadata")
                    name = metadata.get("name") if isinstance(metadata, Mapping) else None
                    found.skipped.append((f"{kind}/{name or ''}", where))
    if not found.jobs:
        kinds.update(str(s.get("kind")) for s in found.sources)
        listed = f" (found kind: {', '.join(sorted(kinds))})" if kinds else ""
        where = wheres[0] if len(wheres) == 1 else ", ".join(str(p) for p in paths) or "<none>"
        raise ValueError(f"{where}: no document of kind Job{listed}")
    for what, where in found.skipped:
        kind, _, name = what.partition("/")
        warnings.warn(
            f'{where}: kjob skips kind {kind} "{name}": it runs Jobs, and reads the ConfigMaps and '
            "Secrets beside them for their env",
            KjobWarning,
            stacklevel=3,
        )
    return found


def load_job_manifests(path_or_text: str | Path) -> tuple[list[dict[str, Any]], str]:
    """Every ``kind: Job`` document of a YAML file or text (ConfigMaps and Secrets are read
    by :func:`load_manifests`), and where they came from."""
    found = load_manifests(path_or_text)
    return [job for job, _ in found.jobs], found.jobs[0][1]


def _safe_loader() -> Any:
    """PyYAML's safe loader, libyaml's C one when PyYAML was built with it (about 5x faster
    on a Job manifest; the same documents and the same safe types)."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_yaml_depth(text: str, where: str) -> None:
    """Refuses YAML nested deeper than MAX_DEPTH before it is loaded: PyYAML builds nodes
    recursively, and a few hundred levels exhaust Python's stack (``RecursionError``). Its
    parser is not recursive, so the events are counted first. Syntax errors are left to the
    load, which reports them."""
    import yaml

    depth = 0
    try:
        for event in yaml.parse(text, Loader=_safe_loader()):
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


def normalize_manifest(
    manifest: Mapping[str, Any], *, strict: bool = False, where: str | None = None
) -> dict[str, Any]:
    """Checks the document is a batch/v1 Job and returns a private copy holding only what
    kjob runs: fields it cannot honour are dropped with one :class:`KjobWarning` naming their
    paths (a ``ValueError`` when ``strict``), and a ``generateName`` becomes a name. Fields
    Kubernetes does not have and values of the wrong type are a ``ValueError`` whatever
    ``strict`` says, as ``kubectl apply`` refuses them."""
    if not isinstance(manifest, Mapping):
        raise TypeError(f"a manifest is a mapping, not {type(manifest).__name__}")
    check_depth(manifest)
    check_job_kind(manifest, where)
    # The extension walks the schema derived from its types and Kubernetes' own (unknown
    # fields and wrong types are a ValueError, as kubectl's strict decoding); the copy keeps
    # the caller's objects out of the Job's manifest.
    prefix = f"{where}: " if where else ""
    try:
        kept, ignored = prune_manifest(copy.deepcopy(dict(manifest)))
    except ValueError as e:
        raise ValueError(f"{prefix}{e}") from None
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


def _resolve_generate_name(manifest: dict[str, Any]) -> None:
    """``metadata.generateName`` + 5 random characters, as the API server names objects."""
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or metadata.get("name"):
        return
    base = metadata.pop("generateName", None)
    if isinstance(base, str) and base:
        metadata["name"] = generated_name(base)
