"""``apply`` and ``patch``: Kubernetes' rules for a Job of a name that may be stored already.
Creating when absent; returning it unchanged (adopting an orphan); changing the fields
Kubernetes lets change (``parallelism``, ``completions`` of an elastic Indexed Job,
``suspend``); refusing the rest with ``field is immutable``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _config
from ._errors import AlreadyExistsError, ConflictError
from ._job import job_record_parts, native_of
from ._store import Record, expire, open_store
from ._stored_job import StoredNative, adopt, get_job, handle_of, owned_job

if TYPE_CHECKING:
    from ._job import Job

__all__ = ["apply_document", "apply_job", "patch_job"]

#: Fields `apply` and `patch` may change on an existing Job (Kubernetes' mutable fields).
MUTABLE_SPEC_FIELDS = ("parallelism", "completions", "suspend", "activeDeadlineSeconds")


def spec_key(manifest: Mapping[str, Any], callable_key: str | None) -> str:
    """What must not change for ``apply`` to accept a Job of the same name: the spec without
    its mutable fields, and a callable's code and arguments."""
    spec = dict(manifest.get("spec") or {})
    for field in MUTABLE_SPEC_FIELDS:
        spec.pop(field, None)
    text = json.dumps({"spec": spec, "callable": callable_key}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def apply_job(new: Job) -> tuple[Job, str]:
    """``kubectl apply`` of ``new`` (not started): creates it, or returns the stored Job of
    that name unchanged, or changes its mutable fields. Raises ``ValueError`` with
    Kubernetes' ``field is immutable`` for any other change."""
    home = _config.store_home()
    for _ in range(3):
        existing = None
        owned = owned_job(home, new.namespace, new.name)
        if owned is None:
            store = open_store(home)
            expire(store, home)
            row = store.get_job(new.namespace, new.name, with_pods=False)
            if row is None or row["deleting"]:
                try:
                    new.start()
                except AlreadyExistsError:
                    continue  # made by another process meanwhile: apply to that one
                return new, "created"
            existing = handle_of(Record(row), store, home)
        else:
            existing = owned
        if native_of(existing).deleted:
            continue  # deleted by another process meanwhile: apply again (to create it)
        mine = job_record_parts(new)
        theirs = job_record_parts(existing)
        if native_of(existing).deleted:
            continue  # deleted while it was read
        if spec_key(mine["manifest"], mine["callable_key"]) != spec_key(
            theirs["manifest"], theirs["callable_key"]
        ):
            raise immutable_error(new.name, mine["manifest"], theirs["manifest"])
        verb = _apply_mutable(
            existing, mine["manifest"].get("spec") or {}, theirs["manifest"].get("spec") or {}
        )
        native = native_of(existing)
        if isinstance(native, StoredNative):
            record = native.fresh()
            if record is not None and record.orphaned:
                adopt(existing, record)
        return existing, verb
    raise ConflictError(f'Operation cannot be fulfilled on jobs.batch "{new.name}": it keeps changing')


def immutable_error(name: str, mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> ValueError:
    """The API server's answer to an update of immutable fields (``ValidateJobSpecUpdate``):
    each changed field with its new value, ``field is immutable``."""
    a, b = dict(mine.get("spec") or {}), dict(theirs.get("spec") or {})
    fields = sorted(k for k in set(a) | set(b) if k not in MUTABLE_SPEC_FIELDS and a.get(k) != b.get(k))
    if not fields:
        # Same manifest, another target callable (or arguments): the pods' template differs.
        fields = ["template"]
    errors = [f"spec.{f}: Invalid value: {_shown(a.get(f))}: field is immutable" for f in fields]
    if len(errors) == 1:
        return ValueError(f'The Job "{name}" is invalid: {errors[0]}')
    return ValueError(f'The Job "{name}" is invalid: \n' + "\n".join(f"* {e}" for e in errors))


def _shown(value: object, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=repr)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _apply_mutable(job: Job, mine: Mapping[str, Any], theirs: Mapping[str, Any]) -> str:
    changed = False
    want_suspend = bool(mine.get("suspend", False))
    if want_suspend != bool(theirs.get("suspend", False)):
        job.suspend() if want_suspend else job.resume()
        changed = True
    parallelism = mine.get("parallelism")
    completions = mine.get("completions")
    new_parallelism = parallelism if parallelism != theirs.get("parallelism") else None
    new_completions = completions if completions != theirs.get("completions") else None
    if new_parallelism is not None or new_completions is not None:
        job.scale(new_parallelism, new_completions)
        changed = True
    if mine.get("activeDeadlineSeconds") != theirs.get("activeDeadlineSeconds"):
        raise ValueError(
            f'The Job "{job.name}" is invalid: spec.activeDeadlineSeconds: Forbidden: kjob changes it '
            "only by deleting and re-creating the Job"
        )
    return "configured" if changed else "unchanged"


def apply_document(
    manifest: Mapping[str, Any], where: str | None = None, env_sources: list[dict[str, Any]] | None = None
) -> tuple[Job, str]:
    """``kjob apply`` of one Job document: like :func:`apply_job`, but a Job to create or to
    adopt is run by a detached controller process (``_controller.py``), so it outlives the
    command. Returns the handle and kubectl's verb (created, unchanged, configured)."""
    import copy
    import warnings

    from ._controller import spawn
    from ._job import job_from_normalized
    from .manifest import KjobWarning, normalize_manifest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KjobWarning)  # the caller said them when it checked
        normalized = normalize_manifest(dict(manifest), where=where)
        new = job_from_normalized(
            normalized,
            None,
            None,
            None,
            original=copy.deepcopy(dict(manifest)),
            env_sources=env_sources,
            where=where,
        )
    home = _config.store_home()
    store = open_store(home)
    expire(store, home)
    row = store.get_job(new.namespace, new.name, with_pods=False)
    if row is None or row["deleting"]:
        spawn(
            {
                "mode": "create",
                "manifest": normalized,
                "original": dict(manifest),
                "env_sources": env_sources,
                "where": where,
            },
            home,
        )
        return get_job(new.name, new.namespace), "created"
    existing = handle_of(Record(row), store, home)
    mine, theirs = job_record_parts(new), job_record_parts(existing)
    if spec_key(mine["manifest"], None) != spec_key(theirs["manifest"], theirs["callable_key"]):
        raise immutable_error(new.name, mine["manifest"], theirs["manifest"])
    verb = _apply_mutable(existing, mine["manifest"].get("spec") or {}, theirs["manifest"].get("spec") or {})
    record = native_of(existing).fresh() if isinstance(native_of(existing), StoredNative) else None
    if record is not None and record.orphaned:
        spawn({"mode": "adopt", "namespace": new.namespace, "name": new.name}, home)
    return existing, verb


def _at(document: Mapping[str, Any], path: str) -> object:
    value: Any = document
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def patch_job(job: Job, patch: Mapping[str, Any]) -> str:
    """``kubectl patch --type=merge`` of a Job's mutable fields (``spec.parallelism``,
    ``spec.completions``, ``spec.suspend``). Returns ``patched`` or ``patched (no change)``;
    raises ``ValueError`` (``field is immutable``) for any other field."""
    if not isinstance(patch, Mapping):
        raise ValueError(f"a merge patch is a JSON object, not {type(patch).__name__}")
    spec_patch = patch.get("spec") or {}
    others = sorted(k for k in patch if k != "spec") + sorted(
        f"spec.{k}" for k in spec_patch if k not in MUTABLE_SPEC_FIELDS
    )
    if others:
        raise ValueError(
            f'The Job "{job.name}" is invalid: {others[0]}: Invalid value: {_shown(_at(patch, others[0]))}: '
            "field is immutable"
        )
    current = job.manifest.get("spec") or {}
    wanted = {**current, **{k: v for k, v in spec_patch.items() if v is not None}}
    verb = _apply_mutable(job, wanted, current)
    return "patched" if verb == "configured" else "patched (no change)"


def replace_finished(job: Job) -> bool:
    """``kjob run`` of a name whose stored Job has finished: that Job (and its logs) is deleted
    first, as ``kubectl replace --force`` would, so that a re-run starts afresh. A Job still
    running keeps its name (``start()`` then raises AlreadyExistsError). Says whether one went."""
    home = _config.store_home()
    store = open_store(home)
    row = store.get_job(job.namespace, job.name, with_pods=False)
    if row is None:
        return False
    record = Record(row)
    if record.finished is None and not record.status().is_finished:
        return False
    owned = owned_job(home, job.namespace, job.name)
    if owned is not None and owned.uid == record.uid:
        owned.delete()
    else:
        handle_of(record, store, home).delete()
    return True
