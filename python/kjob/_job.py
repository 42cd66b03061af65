"""The :class:`Job` facade: keyword arguments in, a batch/v1 manifest to the native controller."""

from __future__ import annotations

import atexit
import builtins
import collections
import copy
import datetime as _dt
import io
import os
import sys
import threading
import types
import warnings
import weakref
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _config, _export, _kjob
from . import _shepherd as _shepherd_script
from ._checks import check_command_job
from ._dask import DaskExecutor, prepare_executor
from ._failures import JobFailedError, failed_pods, failure_message
from ._kjob import KjobError, NativeJob, check_seconds
from ._kwargs import Command, EnvLike, manifest_from_kwargs
from ._names import generated_name
from ._signature import check_target_call
from ._types import Event, JobStatus, NativeSpec, Pod, linked_to_job
from .manifest import KjobWarning, load_manifests, normalize_manifest

# Modules only some calls need (PyYAML, pickle, subprocess, secrets, uuid, tempfile, shutil,
# pathlib) are imported where they are used: `import kjob` stays fast (issue 14 §5).
if TYPE_CHECKING:
    import subprocess
    from pathlib import Path

    from ._kjob import ChangeFeed
    from ._stored_job import StoredChangeFeed, StoredNative
    from ._timeline import Timeline

__all__ = ["Job"]


def _job_name(base: str) -> str:
    """``<function name>-<5 random>`` made a DNS label, or ``job-<5 random>``."""
    cleaned = "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-")[:40].strip("-")
    return generated_name(f"{cleaned or 'job'}-")


class _Callable:
    """What a Job with a target runs: the callable, its arguments and its worker pool's
    settings. A plain class: the ``dataclasses`` module would cost ``import kjob`` more than
    anything else of its own (issue 14 §5)."""

    __slots__ = ("target", "args", "kwargs", "env", "max_workers", "working_dir", "reuse_workers")

    def __init__(
        self,
        target: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        env: dict[str, str],
        max_workers: int,
        working_dir: str | None = None,
        reuse_workers: bool = True,
    ) -> None:
        self.target = target
        self.args = args
        self.kwargs = kwargs
        self.env = env
        self.max_workers = max_workers
        self.working_dir = working_dir
        self.reuse_workers = reuse_workers

    def init_payload(self, job_name: str, job_uid: str, indexed: bool) -> bytes:
        """What a worker needs to run this Job's pods (see ``_worker._load_job``), as of now
        (``start()``): the environment and working directory pods see are this process's at
        this moment, as a command pod started now would inherit them."""
        import pickle

        init = {
            "name": job_name,
            "uid": job_uid,
            "fn": _dumps_for_worker(self.target, self.target, "the Job's target"),
            "args": _dumps_for_worker((self.args, self.kwargs), self.target, "the Job's args/kwargs"),
            "indexed": indexed,
            "sys_path": [p for p in sys.path if p],
            "cwd": os.path.abspath(self.working_dir) if self.working_dir else os.getcwd(),
            # Processes a pod starts carry the Job's marker, like a command pod's do.
            "environ": {**os.environ, **self.env, _kjob.JOB_UID_ENV: job_uid},
            "sources": _sources_without_files(),
            "one_pod": not self.reuse_workers,
        }
        return pickle.dumps(init, protocol=pickle.HIGHEST_PROTOCOL)


def _dumps_for_worker(value: object, target: Callable[..., Any], what: str) -> bytes:
    """cloudpickle's bytes of ``value``. The modules a fresh interpreter could not import by
    name (the main script under multiprocessing's spawn, ``__mp_main__``; a module loaded by
    ``importlib`` from a file path) travel by value, as ``__main__`` does."""
    import pickle

    import cloudpickle  # type: ignore[import-untyped]

    by_value = [m for m in _unimportable_modules(target) if not _pickled_by_value(cloudpickle, m)]
    for module in by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        buffer = io.BytesIO()
        _pickler_class(cloudpickle)(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return buffer.getvalue()
    except Exception as e:
        raise TypeError(
            f"cannot pickle {what} ({target!r}) for the worker processes: {type(e).__name__}: {e}"
        ) from e
    finally:
        for module in by_value:
            cloudpickle.unregister_pickle_by_value(module)


def _pickler_class(cloudpickle: Any) -> Any:
    """cloudpickle's Pickler, keeping the file names of the code it pickles by value.

    cloudpickle >= 3.1 names every such code object ``<dynamic-code>``; the workers' tracebacks
    could then show no source line of a function defined in ``__main__`` or a notebook."""
    global _PICKLER
    if _PICKLER is not None:
        return _PICKLER
    reduce_code = getattr(cloudpickle.cloudpickle, "_code_reduce", None)
    base = cloudpickle.Pickler
    if reduce_code is None or not isinstance(getattr(base, "dispatch_table", None), Mapping):
        _PICKLER = base
        return base

    def reduce_keeping_filename(code: types.CodeType) -> Any:
        constructor, args = reduce_code(code)
        args = tuple(code.co_filename if arg == "<dynamic-code>" else arg for arg in args)
        return constructor, args

    class _FileNamesKept(base):  # type: ignore[misc, valid-type]
        dispatch_table = collections.ChainMap({types.CodeType: reduce_keeping_filename}, base.dispatch_table)

    _PICKLER = _FileNamesKept
    return _PICKLER


_PICKLER: Any = None


def _pickled_by_value(cloudpickle: Any, module: types.ModuleType) -> bool:
    return module.__name__ in getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", ())


def _unimportable_modules(target: Callable[..., Any]) -> list[types.ModuleType]:
    candidates = [sys.modules.get("__mp_main__"), sys.modules.get(getattr(target, "__module__", "") or "")]
    found: list[types.ModuleType] = []
    for module in candidates:
        if module is None or module.__name__ == "__main__" or module in found:
            continue
        if not _findable_by_name(module.__name__):
            found.append(module)
    return found


def _findable_by_name(name: str) -> bool:
    """Whether a fresh interpreter with this one's ``sys.path`` finds the top-level package of
    module ``name`` (asked of the import system's finders, without importing anything)."""
    top = name.partition(".")[0]
    if top == "__mp_main__":
        return False
    if top in sys.builtin_module_names:
        return True
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            if find_spec(top, None) is not None:
                return True
        except Exception:
            continue
    return False


#: At most this much source text travels to the workers for their tracebacks.
_MAX_SOURCES = 4 << 20

#: kubectl's annotation naming the container ``kubectl logs`` shows by default.
DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"


def _sources_without_files() -> dict[str, list[str]]:
    """Source lines Python knows without a file to read them from: notebook cells (IPython
    puts them in ``linecache`` with no modification time). Workers install them so that the
    tracebacks of functions defined in a notebook show their lines."""
    import linecache

    sources: dict[str, list[str]] = {}
    total = 0
    for filename, entry in list(linecache.cache.items()):
        if len(entry) != 4 or entry[1] is not None:
            continue
        lines = list(entry[2])
        total += sum(len(line) for line in lines)
        if total > _MAX_SOURCES:
            break
        sources[filename] = lines
    return sources


def _first_set(*values: float | None) -> float:
    return next(v for v in values if v is not None)


def _finalize(native: NativeJob, log_dir: str | None, name: str) -> None:
    """Runs when a Job object is garbage-collected, at interpreter exit, or by ``delete()``:
    its pods are deleted in the background and a private log folder is removed. In a forked
    child the Job (and its folder) is the parent's: nothing is done.

    A Job dropped while it still runs is killed with a ``ResourceWarning``, as
    ``subprocess.Popen`` warns of a child still running when it is collected: otherwise the
    lost work would be silent. Not at interpreter exit (every Job ends then, by design), and
    not for a Job that finished or was deleted."""
    if native.forked:
        return
    running = False
    if not _exit.started and native.started and not native.deleted:
        running = not native.status().is_finished
    try:
        native.delete(timeout=0)
    finally:
        if log_dir is not None:
            import shutil

            shutil.rmtree(log_dir, ignore_errors=True)
            _shepherd.disown(log_dir)
    if running:
        # Warned last: with warnings made errors this raises, and the Job must be gone first.
        warnings.warn(
            f"Job {name!r} was garbage-collected while running; its pods were killed. Keep a "
            "reference to the Job until it finishes, or call delete() (or use `with`)",
            ResourceWarning,
            stacklevel=2,
        )


class _ExitFlag:
    """Whether the interpreter is exiting, for ``_finalize``. ``weakref.finalize`` runs the
    finalizers of live Jobs from an atexit hook and flags its own shutdown only afterwards, so
    this flag is set by a hook registered after that one (atexit runs hooks last-in,
    first-out): once, right after the first Job's finalizer is made."""

    def __init__(self) -> None:
        self.started = False
        self._hooked = False

    def hook(self) -> None:
        if not self._hooked:
            self._hooked = True
            atexit.register(self._set)

    def _set(self) -> None:
        self.started = True


_exit = _ExitFlag()


class Job:
    """A Kubernetes ``batch/v1`` Job whose pods are local processes.

    Keyword names are the snake_case of the Kubernetes fields and take the Kubernetes
    defaults. ``command`` is a list (no shell) or a string run by ``/bin/sh -c``.
    ``backoff_initial_seconds``/``backoff_max_seconds`` shorten the 10 s doubling, 10 min
    capped delays before failed pods are replaced (a kjob extension; None means the default
    set with :func:`kjob.configure`).

    A ``target`` callable's signature is checked here against the call its pods make,
    ``fn(index, *args, **kwargs)`` for an Indexed Job and ``fn(*args, **kwargs)`` otherwise:
    a mismatch raises ``TypeError`` at once instead of failing every pod.
    """

    _callable: _Callable | None
    # The extension's Job; for a handle of a Job another process runs, its stand-in.
    _native: NativeJob | StoredNative

    def __init__(
        self,
        *,
        name: str | None = None,
        command: Command | None = None,
        args: Sequence[Any] | None = None,
        env: EnvLike = None,
        working_dir: str | None = None,
        completions: int | None = None,
        parallelism: int | None = None,
        completion_mode: str = "NonIndexed",
        backoff_limit: int | None = None,
        restart_policy: str = "Never",
        termination_grace_period_seconds: int | None = None,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
        backoff_limit_per_index: int | None = None,
        max_failed_indexes: int | None = None,
        pod_failure_policy: Mapping[str, Any] | None = None,
        success_policy: Mapping[str, Any] | None = None,
        active_deadline_seconds: int | None = None,
        pod_active_deadline_seconds: int | None = None,
        ttl_seconds_after_finished: int | None = None,
        suspend: bool | None = None,
        pod_replacement_policy: str | None = None,
        managed_by: str | None = None,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        container_name: str | None = None,
        image: str | None = None,
        target: Callable[..., Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        max_workers: int | None = None,
        reuse_workers: bool = True,
        executor: DaskExecutor | None = None,
    ) -> None:
        callable_pods = target is not None
        if callable_pods:
            if not callable(target):
                raise TypeError(f"target must be callable, not {type(target).__name__}")
            if command is not None:
                raise ValueError("a Job runs either a command or a target callable, not both")
            if max_workers is not None and (
                isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
            ):
                raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
            if kwargs is not None and not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping, not {type(kwargs).__name__}")
            check_target_call(target, tuple(args or ()), dict(kwargs or {}), completion_mode == "Indexed")
            # The container's command only documents the callable; workers run it.
            command = ["kjob-callable", getattr(target, "__qualname__", type(target).__name__)]
            call_args: tuple[Any, ...] = tuple(args or ())
            args = None
        else:
            # These shape the call of a target callable; with a command they would be ignored.
            # reuse_workers counts when changed from its default (True).
            for keyword, value in (
                ("kwargs", kwargs),
                ("max_workers", max_workers),
                ("reuse_workers", None if reuse_workers is True else reuse_workers),
            ):
                if value is not None:
                    raise ValueError(
                        f"{keyword}: Forbidden: only a Job with a target callable uses {keyword}; "
                        "a command Job would ignore it"
                    )
        if name is None:
            base = getattr(target, "__name__", "") if callable_pods else ""
            name = _job_name(base)
        manifest = manifest_from_kwargs(
            name=name,
            namespace=namespace,
            labels=labels,
            annotations=annotations,
            container_name=container_name,
            image=image,
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            completions=completions,
            parallelism=parallelism,
            completion_mode=completion_mode,
            backoff_limit=backoff_limit,
            restart_policy=restart_policy,
            termination_grace_period_seconds=termination_grace_period_seconds,
            backoff_limit_per_index=backoff_limit_per_index,
            max_failed_indexes=max_failed_indexes,
            pod_failure_policy=pod_failure_policy,
            success_policy=success_policy,
            active_deadline_seconds=active_deadline_seconds,
            pod_active_deadline_seconds=pod_active_deadline_seconds,
            ttl_seconds_after_finished=ttl_seconds_after_finished,
            suspend=suspend,
            pod_replacement_policy=pod_replacement_policy,
            managed_by=managed_by,
        )
        if not callable_pods:
            check_command_job(manifest)
        configured_initial, configured_max = _config.default_backoff()
        self._setup(
            manifest,
            log_dir,
            _first_set(backoff_initial_seconds, configured_initial),
            _first_set(backoff_max_seconds, configured_max),
        )
        if target is not None:
            self._callable = _Callable(
                target=target,
                args=call_args,
                kwargs=dict(kwargs or {}),
                env=dict(env.items()) if isinstance(env, Mapping) else dict(env or ()),
                max_workers=max_workers or os.cpu_count() or 1,
                working_dir=working_dir,
                reuse_workers=bool(reuse_workers),
            )
        if executor is not None:
            self.executor = executor

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any],
        *,
        strict: bool = False,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
    ) -> Job:
        """A Job from a ``batch/v1`` Job manifest (a dict, as ``yaml.safe_load`` gives).

        Fields kjob cannot honour here (resources, volumes, a second container, ...) are
        ignored with one :class:`kjob.KjobWarning` naming them; ``strict=True`` makes that a
        ``ValueError``. The backoff delays default to the manifest's ``kjob.io/backoff-*``
        annotations, else those set with :func:`kjob.configure` (Kubernetes' 10 s and 600 s
        unless changed). :meth:`to_manifest` gives the document back, fields kjob ignores
        included."""
        return cls._from_normalized(
            normalize_manifest(manifest, strict=strict),
            log_dir,
            backoff_initial_seconds,
            backoff_max_seconds,
            original=copy.deepcopy(dict(manifest)),
        )

    @classmethod
    def from_yaml(
        cls,
        path_or_text: str | Path,
        *,
        strict: bool = False,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
    ) -> Job:
        """A Job from a YAML file's path (or folder), or from YAML text, holding one
        ``kind: Job`` document. ConfigMaps and Secrets beside it feed its env
        (``configMapKeyRef``, ``secretKeyRef``, ``envFrom``) as on a cluster; other kinds are
        skipped with a :class:`kjob.KjobWarning`. Use :meth:`all_from_yaml` for several Jobs."""
        found = load_manifests(path_or_text)
        if len(found.jobs) > 1:
            raise ValueError(
                f"{found.jobs[0][1]}: {len(found.jobs)} documents of kind Job; expected one "
                "(Job.all_from_yaml reads them all)"
            )
        manifest, where = found.jobs[0]
        return cls._from_normalized(
            normalize_manifest(manifest, strict=strict, where=where),
            log_dir,
            backoff_initial_seconds,
            backoff_max_seconds,
            original=manifest,
            env_sources=found.sources,
            where=where,
        )

    @classmethod
    def all_from_yaml(
        cls,
        path_or_text: str | Path,
        *,
        strict: bool = False,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float | None = None,
        backoff_max_seconds: float | None = None,
    ) -> builtins.list[Job]:
        """Every ``kind: Job`` document of a YAML file (or folder) or text, as Jobs (not
        started), their env read from the ConfigMaps and Secrets beside them. All are checked
        before any is made."""
        found = load_manifests(path_or_text)
        normalized = [(normalize_manifest(m, strict=strict, where=w), w) for m, w in found.jobs]
        return [
            cls._from_normalized(
                m,
                log_dir,
                backoff_initial_seconds,
                backoff_max_seconds,
                original=o,
                env_sources=found.sources,
                where=w,
            )
            for (m, w), (o, _) in zip(normalized, found.jobs)
        ]

    @classmethod
    def get(cls, name: str, namespace: str = "default") -> Job:
        """A handle of the stored Job ``namespace/name``, whichever process runs it (this one,
        another, or none: an orphan, which :meth:`resume` adopts). Its ``status``, ``pods()``,
        ``logs()``, ``events()``, ``results()``, ``watch()``, ``wait()``, ``delete()``,
        ``suspend()``, ``resume()`` and ``scale()`` work across processes: a change is carried
        out by the owning process within about 0.1 s. Raises :class:`kjob.NotFoundError`
        (``jobs.batch "x" not found``)."""
        from ._stored_job import get_job

        return get_job(name, namespace)

    @classmethod
    def list(
        cls, namespace: str | None = None, labels: Mapping[str, str] | str | None = None
    ) -> builtins.list[Job]:
        """Handles of the stored Jobs of ``namespace`` (None: every namespace), ordered by
        namespace and name; ``labels`` keeps those whose labels match (a mapping of equal
        values, or a kubectl label selector such as ``"team=ml,tier!=batch"``)."""
        from ._stored_job import list_jobs

        return list_jobs(namespace, labels)

    @classmethod
    def apply(cls, **kwargs: Any) -> Job:
        """``kubectl apply`` for a Job of these keywords (those of :class:`Job`): starts it
        when no Job of that name is stored; when one is, returns it unchanged (finished: its
        status and results; orphaned: adopted and resumed here), or applies the fields
        Kubernetes lets change (``parallelism``, ``completions`` of an elastic Indexed Job,
        ``suspend``). Any other change raises ``ValueError``: ``field is immutable``.
        Re-running a notebook cell that applies a Job resumes it instead of recomputing."""
        from ._apply import apply_job

        return apply_job(cls(**kwargs))[0]

    @classmethod
    def _from_normalized(
        cls,
        manifest: dict[str, Any],
        log_dir: str | Path | None,
        backoff_initial_seconds: float | None,
        backoff_max_seconds: float | None,
        original: dict[str, Any] | None = None,
        env_sources: builtins.list[dict[str, Any]] | None = None,
        where: str | None = None,
        uid: str | None = None,
    ) -> Job:
        """``original``: the document ``manifest`` was normalized from, which the export gives
        back (the caller's object is not copied: pass a private one)."""
        # A manifest runs a command: kjob's callable-only fields are refused (see Job()).
        check_command_job(manifest)
        annotated_initial, annotated_max = _export.backoff_from_annotations(manifest)
        configured_initial, configured_max = _config.default_backoff()
        job = cls.__new__(cls)
        job._setup(
            manifest,
            log_dir,
            _first_set(backoff_initial_seconds, annotated_initial, configured_initial),
            _first_set(backoff_max_seconds, annotated_max, configured_max),
            env_sources,
            uid,
        )
        job._original = original
        # Said before anything runs: on a cluster the pods would wait, unexplained until
        # someone looks at them (`kubectl describe pod`).
        for problem in job._native.missing_env_references():
            prefix = f"{where}: " if where else ""
            warnings.warn(
                f"{prefix}job.batch/{job.name}: {problem}: its pods will wait in "
                "CreateContainerConfigError (as on a cluster) until the ConfigMap or Secret is given "
                "with the Job (in the same files) or the reference is made optional",
                KjobWarning,
                stacklevel=3,
            )
        return job

    def _setup(
        self,
        manifest: dict[str, Any],
        log_dir: str | Path | None,
        backoff_initial_seconds: float,
        backoff_max_seconds: float,
        env_sources: builtins.list[dict[str, Any]] | None = None,
        uid: str | None = None,
    ) -> None:
        initial = check_seconds("backoff_initial_seconds", backoff_initial_seconds)
        maximum = check_seconds("backoff_max_seconds", backoff_max_seconds)
        self._manifest = manifest
        self._backoff = (initial, maximum)
        self._env_sources = env_sources
        self._created = _dt.datetime.now(_dt.timezone.utc)
        # Wall time of the controller's time 0 (a resumed Job keeps the stored one).
        self._origin_wall = self._created.timestamp()
        # Guards the Python-side copies (_manifest, _spec) that scale() and suspend() update.
        self._lock = threading.Lock()
        import uuid

        if uid is None:
            uid = str(uuid.uuid4())
        # With the store on, the Job is recorded when it starts, and its logs live under the
        # store's home until it is deleted (a log_dir the user gives is the user's).
        self._store_home = _config.store_home() if _config.store_enabled() else None
        self._stored_logs = False
        private_dir: str | None = None
        if log_dir is None and self._store_home is not None:
            from ._store import job_logs_folder

            metadata = manifest.get("metadata")
            meta = metadata if isinstance(metadata, dict) else {}
            log_dir = job_logs_folder(
                self._store_home, str(meta.get("namespace") or "default"), str(meta.get("name") or "job"), uid
            )
            self._stored_logs = True
        if log_dir is None:
            metadata = manifest.get("metadata")
            name = str((metadata.get("name") if isinstance(metadata, dict) else None) or "job")[:40]
            private_dir = _owned_private_dir(name)
            log_dir = private_dir
        try:
            self._native = NativeJob(
                manifest,
                uid,
                str(log_dir),
                initial,
                maximum,
                private_dir is not None,
                env_sources or None,
            )
        except BaseException:
            if private_dir is not None:
                import shutil

                shutil.rmtree(private_dir, ignore_errors=True)
                _shepherd.disown(private_dir)
            raise
        self._log_dir = str(log_dir)
        self._private_log_dir = private_dir
        spec = self._native.spec()
        self._name: str = spec["name"]
        self._uid: str = spec["uid"]
        self._spec = spec
        self._callable = None
        # The document a manifest Job was loaded from (None for keywords): what it exports.
        self._original: dict[str, Any] | None = None
        self._executor: DaskExecutor | None = None
        # A stored callable Job resumed here: its workers' payload, as first recorded, and
        # what apply compares (the target itself is not kept).
        self._stored_init: bytes | None = None
        self._stored_callable_key: str | None = None
        self._record_init: bytes | None = None
        self._finalizer = weakref.finalize(self, _finalize, self._native, private_dir, self._name)
        _exit.hook()

    # ---- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def uid(self) -> str:
        """The Job's UID; every pod process carries it as ``KJOB_JOB_UID``."""
        return self._uid

    @property
    def namespace(self) -> str:
        return str(self._spec["namespace"])

    @property
    def log_dir(self) -> str:
        """Where the pods' log files are (``<pod-name>.log``)."""
        return self._log_dir

    @property
    def manifest(self) -> dict[str, Any]:
        """The batch/v1 manifest this Job runs (a copy), as kjob read it: ignored fields
        dropped, ``generateName`` resolved, ``scale()`` and ``suspend()`` applied."""
        stored = getattr(self._native, "stored_manifest", None)
        if stored is not None:
            # A handle of a Job another process runs: as last recorded.
            with self._lock:
                self._manifest = stored()
        with self._lock:
            return copy.deepcopy(self._manifest)

    def to_manifest(self, *, include_status: bool = False) -> dict[str, Any]:
        """The Job as a batch/v1 manifest that ``kubectl apply`` accepts, and
        :meth:`from_manifest` turns back into an equal Job.

        A Job loaded from a manifest gives back that document: every field, in its order,
        those kjob ignores here included; changed only where kjob's state shows (``scale()``,
        ``suspend()``, a generated name) and without what the API server sets (``status``,
        ``metadata.uid``, ``resourceVersion``, a generated selector, ...). A Job built from
        keywords gives what the keywords say.

        kjob's own settings (non-default backoff delays) travel as ``kjob.io/`` annotations.
        Raises ``ValueError`` for a Job a cluster could not run: one with a target callable,
        or without a container ``image``.

        ``include_status=True`` gives instead what ``kubectl get job -o yaml`` shows: the
        API server's defaults, generated labels and selector, and ``status``. That is a
        report, so it works for every Job."""
        if include_status:
            manifest = self.manifest
            if self._original is not None:
                not_honoured = _export.not_honoured_paths(self._original)
                manifest = _export.lossless_document(self._original, manifest, not_honoured)
            return _export.kubectl_object(manifest, self._spec_copy(), self.status, self._created)
        if self._callable is not None:
            raise ValueError(
                f"Job {self._name!r} runs the Python callable {self._callable.target!r} in worker "
                "processes; a cluster cannot run it, so it has no manifest (only command Jobs export)"
            )
        return _export.export_manifest(
            self.manifest,
            backoff_initial=self._backoff[0],
            backoff_max=self._backoff[1],
            pod_replacement_policy=self._spec_copy()["pod_replacement_policy"],
            original=self._original,
        )

    def to_yaml(self, *, include_status: bool = False) -> str:
        """:meth:`to_manifest` as YAML text."""
        import yaml

        return yaml.safe_dump(self.to_manifest(include_status=include_status), sort_keys=False)

    def _spec_copy(self) -> NativeSpec:
        with self._lock:
            return self._spec.copy()

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Starts the controller: pods are created at once (non-blocking).

        For a callable Job the target is pickled (with cloudpickle) first: a target that
        cannot be pickled raises ``TypeError`` here, before any pod runs."""
        _shepherd.ensure()
        if self._native.started or self._native.deleted:
            self._native.start()  # raises the extension's error
            return
        init = None
        if self._callable is not None:
            indexed = self._spec["completion_mode"] == "Indexed"
            init = self._callable.init_payload(self._name, self._uid, indexed)
        store = None
        if self._store_home is not None:
            from ._store import record_start

            self._record_init = init
            store = record_start(self, self._store_home)
        native = self._native
        assert isinstance(native, NativeJob)  # a stored handle has started (above)
        try:
            if self._executor is not None:
                reuse = self._callable.reuse_workers if self._callable is not None else True
                prepare_executor(self._executor, native, init, reuse)
            elif self._callable is not None and init is not None:
                worker = [sys.executable, os.path.join(os.path.dirname(__file__), "_worker.py")]
                self._native.set_callable(
                    worker, init, self._callable.max_workers, self._callable.reuse_workers
                )
            self._native.start()
        except BaseException:
            if store is not None:
                store.delete_job(self._uid)
            raise
        if store is not None and self._store_home is not None:
            from ._keeper import keeper

            keeper().keep(self, store, self._store_home)

    @property
    def executor(self) -> DaskExecutor | None:
        """Where the pods run: ``None`` for this machine, else a :class:`kjob.DaskExecutor`.
        Settable until the Job starts (``Job.from_yaml(...)`` has no keyword for it)."""
        return self._executor

    @executor.setter
    def executor(self, executor: DaskExecutor | None) -> None:
        if executor is not None and not isinstance(executor, DaskExecutor):
            raise TypeError(f"executor must be a kjob.DaskExecutor or None, not {type(executor).__name__}")
        if self._native.started or self._native.deleted:
            raise KjobError(f"Job {self._name!r} has already been started: its executor cannot change")
        self._executor = executor

    def _require_started(self) -> None:
        if not self._native.started and not self._native.deleted:
            raise KjobError(f"Job {self._name!r} has not been started: call start() or run()")

    def wait(self, timeout: float | None = None, *, progress: bool = False, check: bool = False) -> JobStatus:
        """Blocks until the Job is ``Complete`` or ``Failed`` and returns its status.

        Raises ``TimeoutError`` after ``timeout`` seconds (the Job keeps running). The GIL is
        released while waiting and Ctrl-C raises ``KeyboardInterrupt`` promptly.
        ``progress=True`` draws a bar of succeeded pods out of ``completions`` (tqdm: a
        widget in Jupyter, text in a terminal; ``pip install 'kjob[progress]'``).
        ``check=True`` raises :class:`kjob.JobFailedError` if the Job failed, as
        ``subprocess.run(check=True)`` does for a failed command (see
        :meth:`JobStatus.raise_for_status`).
        """
        self._require_started()
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        if progress:
            from ._progress import wait_with_tqdm

            status = wait_with_tqdm(self, timeout)
        elif not self._native.wait(timeout):
            raise TimeoutError(f"Job {self._name!r} did not finish within {timeout} s")
        else:
            status = self.status
        if self._store_home is not None and isinstance(self._native, NativeJob):
            from ._keeper import keeper

            keeper().flush(self)
        if check:
            status.raise_for_status()
        return status

    def run(self, timeout: float | None = None, *, progress: bool = False, check: bool = False) -> JobStatus:
        """``start()`` then ``wait(timeout, progress=progress, check=check)``."""
        if progress:
            from ._progress import require_tqdm

            require_tqdm()  # before any pod runs
        self.start()
        return self.wait(timeout, progress=progress, check=check)

    async def wait_async(self, timeout: float | None = None, *, check: bool = False) -> JobStatus:
        """``await job.wait_async()``: :meth:`wait` for asyncio code. No thread is parked
        while it waits; cancelling the await leaves the Job running (delete it to stop it).
        ``check=True`` raises :class:`kjob.JobFailedError` if the Job failed, as in :meth:`wait`."""
        from ._watch import wait_async

        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        status = await wait_async(self, timeout)
        if check:
            status.raise_for_status()
        return status

    def __await__(self) -> Generator[Any, None, JobStatus]:
        """``await job`` (after ``start()``) is ``await job.wait_async()``."""
        return self.wait_async().__await__()

    def watch(self, timeout: float | None = None) -> Iterator[JobStatus | Event]:
        """Yields the Job's changes as they happen: each new :class:`JobStatus` snapshot and
        each new :class:`Event`, ending after the Job finishes (or is deleted). Changes
        that come faster than they are read coalesce into the latest status. Raises
        ``TimeoutError`` after ``timeout`` seconds (the Job keeps running)."""
        from ._watch import watch

        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        self._require_started()
        return watch(self, timeout)

    def watch_async(self) -> AsyncIterator[JobStatus | Event]:
        """``async for change in job.watch_async()``: :meth:`watch` for asyncio code."""
        from ._watch import watch_async

        self._require_started()
        return watch_async(self)

    def delete(self, timeout: float | None = None) -> None:
        """Deletes the Job and its pods: each pod's process group gets SIGTERM, then SIGKILL
        after ``termination_grace_period_seconds``. Returns once every process is gone.
        A private log folder is removed. Idempotent."""
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        if not self._native.delete(timeout):
            raise TimeoutError(f"Job {self._name!r}: pods still running after {timeout} s")
        self._finalizer()
        if self._store_home is not None and isinstance(self._native, NativeJob):
            from ._store import forget_if_recorded

            forget_if_recorded(self, self._store_home)

    @property
    def is_deleted(self) -> bool:
        """Whether the Job is gone: deleted by ``delete()`` or by ``ttl_seconds_after_finished``."""
        deleted = self._native.deleted
        if deleted and self._store_home is not None and isinstance(self._native, NativeJob):
            # Gone from the store (and its stored logs with it) as it is gone here.
            from . import _keeper

            running = _keeper.current()
            if running is not None:
                running.flush(self)
        return deleted

    def suspend(self) -> None:
        """Suspends the Job (``spec.suspend: true``): active pods are deleted and no new ones are
        created until :meth:`resume`. Idempotent; before ``start()`` the Job starts suspended."""
        with self._lock:
            self._native.suspend(True)
            self._spec["suspend"] = True
            self._set_manifest_field("suspend", True)

    def resume(self) -> None:
        """Resumes a suspended Job: ``startTime`` is reset and pods are created again.

        A stored Job whose process is gone (an orphan, see :meth:`get`) is adopted: this
        process runs it from now on. Pods that were active when its process died are counted
        ``Failed`` as pods of a lost node (``DisruptionTarget``); completed indexes and their
        results are kept, and deadlines go on from the stored start time."""
        adopt = getattr(self._native, "adopt_if_orphaned", None)
        if adopt is not None:
            adopt()
        with self._lock:
            self._native.suspend(False)
            self._spec["suspend"] = False
            self._set_manifest_field("suspend", False)

    def evict(self, pod_name: str) -> None:
        """The local Eviction API: the pod gets ``DisruptionTarget=True`` (reason
        ``EvictionByEvictionAPI``) and is deleted with its grace period."""
        if not isinstance(pod_name, str):
            raise TypeError(f"pod_name must be a string, not {type(pod_name).__name__}")
        self._native.evict(pod_name)

    def scale(self, parallelism: int | None = None, completions: int | None = None) -> None:
        """Changes ``parallelism`` (any time) and, for Indexed Jobs only, ``completions``
        together with an equal ``parallelism`` (elastic Indexed Jobs). Raises ``ValueError``
        with the Kubernetes message otherwise."""
        with self._lock:
            self._native.scale(parallelism, completions)
            if parallelism is not None:
                self._spec["parallelism"] = parallelism
                self._set_manifest_field("parallelism", parallelism)
            if completions is not None:
                self._spec["completions"] = completions
                self._set_manifest_field("completions", completions)

    def _set_manifest_field(self, key: str, value: object) -> None:
        """Keeps the manifest in step with a change just made to the Job (and to ``_spec``).
        Called with ``_lock`` held, together with the change itself."""
        self._manifest.setdefault("spec", {})[key] = value

    def events(self) -> builtins.list[Event]:
        """The Job's events, oldest first (``SuccessfulCreate``, ``Completed``, ...)."""
        return self._events_since(0)[0]

    def _events_since(self, seq: int) -> tuple[builtins.list[Event], int]:
        """Events numbered ``seq`` and later, and the number of the next one."""
        return self._native.events(f"Job/{self.namespace}/{self._name}", seq)

    # ---- observation ----------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """A snapshot of the Job's status."""
        return linked_to_job(self._native.status(), self)

    def results(self, *, partial: bool = False) -> dict[int, Any] | builtins.list[Any]:
        """Return values of the succeeded pods of a callable Job: ``{index: value}`` ordered by
        index for an Indexed Job, a list in completion order otherwise.

        Raises :class:`kjob.JobFailedError` unless the Job completed (it failed, or has not
        finished yet): a partial answer is easy to take for a whole one. ``partial=True``
        gives the values of the pods that succeeded so far instead."""
        if self._callable is None:
            raise KjobError(f"Job {self._name!r} runs a command; results() needs a target callable")
        if not partial:
            status = self.status
            if not status.is_complete:
                failed = failed_pods(self._all_pods())
                message = failure_message(self._name, status, failed)
                hint = "results(partial=True) gives the values of the pods that succeeded"
                raise JobFailedError(f"{message}\n({hint})", status, failed)
        indexed = self._spec["completion_mode"] == "Indexed"
        import pickle

        # Indexed: a dict in index order (the extension sorts it).
        return self._native.results(pickle.loads, indexed)

    def pods(self) -> builtins.list[Pod]:
        """Every pod the Job has created, oldest first; empty once the Job is deleted (by
        ``delete()`` or ``ttl_seconds_after_finished``), as Kubernetes' garbage collector
        deletes a deleted Job's pods."""
        if self._native.deleted:
            return []
        return self._all_pods()

    def timeline(self) -> Timeline:
        """The Job's pods over time (:class:`kjob.Timeline`): a row per pod with its index,
        attempt, creation and finish in seconds since the Job started, phase and how it
        counted (succeeded, failed, ignored, killed, active), and the Job's conditions as
        marks. Kept after ``delete()``, which a picture of how the Job ended needs.
        ``timeline().svg()`` draws it."""
        from ._timeline import timeline_of

        status = self.status
        end = status.completion_time
        failed = status.condition("Failed")
        if end is None and failed is not None and failed.status == "True":
            end = failed.last_transition_time
        now = _dt.datetime.now(_dt.timezone.utc)
        return timeline_of(self._name, self._all_pods(), status.conditions, status.start_time, end, now)

    def _all_pods(self) -> builtins.list[Pod]:
        """Every pod, even after the Job is deleted: what a report of how it ended needs."""
        return self._native.pods()

    def logs(self, index: int | None = None, pod: str | None = None, container: str | None = None) -> str:
        """The output (stdout and stderr) of one container of one pod.

        ``pod`` names the pod; ``index`` picks the latest pod of that completion index;
        with neither, the latest succeeded pod, else the latest pod (as ``kubectl logs
        job/NAME`` picks one pod). ``container`` names the container (``kubectl logs -c``);
        without it, the pod template's ``kubectl.kubernetes.io/default-container`` annotation
        names it, else the first of ``containers``.
        """
        # Read from every pod, so a deleted Job's logs stay readable while its folder exists.
        pods = self._all_pods()
        if pod is not None:
            chosen = [p for p in pods if p.name == pod]
            if not chosen:
                raise KjobError(f"Job {self._name!r} has no pod named {pod!r}")
        elif index is not None:
            chosen = [p for p in pods if p.index == index]
            if not chosen:
                raise KjobError(f"Job {self._name!r} has no pod for index {index}")
        else:
            chosen = [p for p in pods if p.phase == "Succeeded"] or pods
            if not chosen:
                raise KjobError(f"Job {self._name!r} has no pods yet")
        from pathlib import Path

        chosen_pod = chosen[-1]
        container = self._container_name(chosen_pod, container)
        path = Path(self._container_log_path(chosen_pod, container))
        if not path.exists():
            if chosen_pod.reason == "CreateContainerConfigError":
                # kubectl logs' answer (BadRequest) for a container the kubelet could not make.
                raise KjobError(
                    f'container "{container}" in pod "{chosen_pod.name}" is waiting to start: '
                    "CreateContainerConfigError"
                )
            return ""
        if chosen_pod.log_range is not None:
            start, end = chosen_pod.log_range
            with path.open("rb") as f:
                f.seek(start)
                return f.read(end - start).decode(errors="replace")
        return path.read_text(errors="replace")

    def _container_name(self, pod: Pod, container: str | None) -> str:
        """The container ``logs()`` reads: the one named, else the template's
        ``kubectl.kubernetes.io/default-container``, else the first of ``containers``."""
        main: builtins.list[str] = self._spec["containers"]
        init: builtins.list[str] = self._spec["init_containers"]
        if container is None:
            container = pod.annotations.get(DEFAULT_CONTAINER_ANNOTATION) or main[0]
        if container not in main and container not in init:
            # kubectl's own words for a container the pod does not have.
            raise KjobError(f"container {container} is not valid for pod {pod.name}")
        return container

    def _container_log_path(self, pod: Pod, container: str | None) -> str:
        """Where ``container``'s output is: the pod's log for its first main container,
        ``<pod>_<container>.log`` beside it for the others."""
        main: builtins.list[str] = self._spec["containers"]
        container = self._container_name(pod, container)
        if container == main[0]:
            return pod.log_path
        return os.path.join(os.path.dirname(pod.log_path), f"{pod.name}_{container}.log")

    # ---- protocol -------------------------------------------------------------------------

    def __enter__(self) -> Job:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()

    def _state(self, status: JobStatus) -> str:
        """The Job's state in one word, as ``kubectl get jobs`` prints it (plus NotStarted and
        Deleted, which only a local Job has)."""
        if self._native.deleted:
            return "Deleted"
        if not self._native.started:
            return "NotStarted"
        suspended = bool(self._manifest.get("spec", {}).get("suspend"))
        return _export.job_state(status, suspended=suspended)

    def __repr__(self) -> str:
        spec = self._spec_copy()
        s = self.status
        completions = spec["completions"] if spec["completions"] is not None else "-"
        return (
            f"<kjob.Job {self._name!r} {self._state(s)} {spec['completion_mode']} "
            f"completions={completions} parallelism={spec['parallelism']} "
            f"active={s.active} succeeded={s.succeeded} failed={s.failed}>"
        )

    def _repr_html_(self) -> str:
        from ._html import job_html

        spec = self._spec_copy()
        status = self.status
        details: builtins.list[tuple[str, object]] = [
            (
                "completions",
                _export.completions_column(status.succeeded, spec["completions"], spec["parallelism"]),
            ),
            ("parallelism", spec["parallelism"]),
            ("mode", spec["completion_mode"]),
            ("backoffLimit", spec["backoff_limit"]),
        ]
        if status.start_time is not None:
            end = status.completion_time or _dt.datetime.now(_dt.timezone.utc)
            details.append(("duration", _export.human_duration((end - status.start_time).total_seconds())))
        picture = self.timeline().svg() if self._native.started and self._all_pods() else ""
        return job_html(self._name, self._state(status), details, status, picture)


# ---- the package's own access to a Job ---------------------------------------------------
# What other kjob modules (cli, _watch, _progress, _types) need of a Job beyond its public API.
# Functions here rather than methods: the user-visible Job keeps its documented surface, and
# no module reaches into another's private attributes (tests/test_private_access.py).


def job_from_normalized(
    manifest: dict[str, Any],
    log_dir: str | Path | None,
    backoff_initial_seconds: float | None,
    backoff_max_seconds: float | None,
    original: dict[str, Any] | None = None,
    env_sources: list[dict[str, Any]] | None = None,
    where: str | None = None,
) -> Job:
    """A Job from a manifest ``normalize_manifest`` has already checked (the CLI normalizes
    first, to report every document's errors before it makes any Job); ``original`` is the
    document it came from, which the Job exports."""
    return Job._from_normalized(
        manifest,
        log_dir,
        backoff_initial_seconds,
        backoff_max_seconds,
        original=original,
        env_sources=env_sources,
        where=where,
    )


class _StoredTarget:
    """Stands for the target of a callable Job made from the store (its workers' payload is
    what runs): named by its qualified name."""

    def __init__(self, qualname: str) -> None:
        self.qualname = qualname

    def __repr__(self) -> str:
        return f"<stored callable {self.qualname}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise KjobError(f"{self.qualname} was stored pickled for the Job's workers; it cannot be called here")


def _callable_key(job: Job) -> str | None:
    """What identifies a callable Job's work for ``apply``: the target's name, code and
    constants, and its arguments."""
    if job._stored_callable_key is not None:
        return job._stored_callable_key
    c = job._callable
    if c is None:
        return None
    import hashlib
    import pickle

    target = c.target
    code = getattr(target, "__code__", None)
    parts = [
        getattr(target, "__qualname__", type(target).__name__).encode(),
        code.co_code if code is not None else b"",
        repr(code.co_consts).encode() if code is not None else b"",
    ]
    try:
        parts.append(pickle.dumps((c.args, c.kwargs), protocol=4))
    except Exception:  # noqa: BLE001 - unpicklable arguments are compared by repr
        parts.append(repr((c.args, c.kwargs)).encode())
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def ttl_after_finished(job: Job) -> int | None:
    """The Job's ``ttlSecondsAfterFinished`` (None when unset)."""
    ttl = (job._manifest.get("spec") or {}).get("ttlSecondsAfterFinished")
    return ttl if isinstance(ttl, int) else None


def job_record_parts(job: Job) -> dict[str, Any]:
    """What the store keeps to make ``job`` again (see ``_store.job_doc``)."""
    callable_part = None
    c = job._callable
    if c is not None:
        callable_part = {
            "init": job._stored_init if job._stored_init is not None else getattr(job, "_record_init", None),
            "max_workers": c.max_workers,
            "reuse_workers": c.reuse_workers,
            "qualname": getattr(c.target, "__qualname__", None) or repr(c.target),
        }
    return {
        "manifest": job.manifest,
        "original": job._original,
        "backoff": job._backoff,
        "env_sources": job._env_sources,
        "callable": callable_part,
        "callable_key": _callable_key(job),
        "log_dir": job.log_dir,
        "stored_logs": job._stored_logs,
        "ttl": ttl_after_finished(job),
    }


def native_of(job: Job) -> Any:
    """The Job's native side: the extension's Job, or a stored Job's stand-in (``_stored_job``)."""
    return job._native


def has_stored_logs(job: Job) -> bool:
    """Whether the Job's logs are the store's (removed with the Job), not a folder of the user's."""
    return job._stored_logs


def origin_wall(job: Job) -> float:
    """Epoch seconds of the Job controller's time 0."""
    return job._origin_wall


def runs_callable(job: Job) -> bool:
    return job._callable is not None


def job_from_record(doc: Mapping[str, Any], uid: str, created: _dt.datetime) -> Job:
    """A Job (not started) made again from what the store keeps, with its UID."""
    initial, maximum = doc["backoff"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KjobWarning)  # said when the Job was first made
        job = Job._from_normalized(
            copy.deepcopy(doc["manifest"]),
            doc["log_dir"],
            initial,
            maximum,
            original=copy.deepcopy(doc["original"]),
            env_sources=doc["env_sources"],
            uid=uid,
        )
    job._stored_logs = bool(doc.get("stored_logs"))
    job._created = created
    job._stored_callable_key = doc.get("callable_key")
    stored = doc.get("callable")
    if stored is not None:
        job._callable = _Callable(
            target=_StoredTarget(str(stored["qualname"])),
            args=(),
            kwargs={},
            env={},
            max_workers=int(stored["max_workers"]),
            reuse_workers=bool(stored["reuse_workers"]),
        )
        job._stored_init = stored["init"]
    return job


def start_adopted(job: Job, doc: Mapping[str, Any]) -> None:
    """Starts a Job taken over from the store (see ``_store.adopt``) on this machine."""
    _shepherd.ensure()
    c = job._callable
    if c is not None and job._stored_init is not None:
        worker = [sys.executable, os.path.join(os.path.dirname(__file__), "_worker.py")]
        job._native.set_callable(worker, job._stored_init, c.max_workers, c.reuse_workers)
    job._native.start()


def ensure_shepherd() -> None:
    """Starts this interpreter's shepherd unless it runs (a kjob agent starts it at once)."""
    _shepherd.ensure()


def job_spec(job: Job) -> NativeSpec:
    """A copy of the defaulted spec the Job runs, as ``scale()`` and ``suspend()`` left it."""
    return job._spec_copy()


def job_status_word(job: Job, status: JobStatus) -> str:
    """The Job's STATUS column as ``kubectl get jobs`` prints it, plus NotStarted/Deleted."""
    return job._state(status)


def created_at(job: Job) -> _dt.datetime:
    """When the Job object was made (the AGE column counts from it)."""
    return job._created


def all_pods(job: Job) -> list[Pod]:
    """Every pod, even after the Job is deleted: what a report of how it ended needs."""
    return job._all_pods()


def require_started(job: Job) -> None:
    """Raises :class:`KjobError` for a Job neither started nor deleted (nothing to follow)."""
    job._require_started()


def change_feed(job: Job) -> ChangeFeed | StoredChangeFeed:
    """A new subscription to the Job's changes (a file descriptor readable after each one)."""
    return job._native.subscribe()


def is_deleted(job: Job) -> bool:
    return job._native.deleted


def unstarted_native(job: Job) -> NativeJob:
    """The native Job of a Job that has not started (``kjob.simulate`` runs its spec); raises
    ``ValueError`` once it has started or was deleted."""
    native = job._native
    if not isinstance(native, NativeJob) or native.started or native.deleted:
        raise ValueError(
            f"Job {job.name!r} has started (or was deleted); simulate a Job that has not started"
        )
    return native


def events_since(job: Job, seq: int) -> tuple[list[Event], int]:
    """The Job's events numbered ``seq`` and later, and the number of the next one."""
    return job._events_since(seq)


class _Shepherd:
    """Starts ``_shepherd.py`` once per interpreter: it kills this session's processes when
    the interpreter dies, even by SIGKILL. Every pod and worker carries the session token."""

    def __init__(self) -> None:
        # secrets.token_hex(16)'s bytes and text, without importing secrets (made at import).
        self.token = os.urandom(16).hex()
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def ensure(self) -> None:
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                return
            import subprocess

            script = os.path.join(os.path.dirname(__file__), "_shepherd.py")
            # Without this interpreter's markers (when it is itself a pod): the sweeps of the
            # Jobs and sessions enclosing it must let the shepherd live to remove its folders.
            env = {k: v for k, v in os.environ.items() if k not in _shepherd_script.MARKERS}
            owners = [*_shepherd_script.owners_of(dict(os.environ)), self.token]
            env[_kjob.SHEPHERD_ENV] = ",".join(owners)
            self.process = subprocess.Popen(
                [sys.executable, "-S", str(script), self.token, str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
                # Unbuffered: a buffered writer's lock, held by another thread at a fork, would
                # hang the child that closes its copy (see after_fork_in_child).
                bufsize=0,
            )
            _kjob.set_session_token(self.token)

    def after_fork_in_child(self) -> None:
        """A forked child is a session of its own: it closes its copy of the pipe to the
        parent's shepherd (which must see end of file when the parent dies) and starts its
        own shepherd, with a new token, when it first starts a Job."""
        self.lock = threading.Lock()  # another thread may have held it at the fork
        process, self.process = self.process, None
        self.token = os.urandom(16).hex()
        if process is not None:
            if process.stdin is not None:
                # The raw pipe (no buffer, no lock another thread could have held at the
                # fork): closing it flushes nothing and waits for nothing.
                stdin = process.stdin
                process.stdin = None
                stdin.close()
            # Not this process's child: never waited for, never signalled here.
            process.returncode = 0

    def own(self, folder: str) -> None:
        """The shepherd removes this folder if the interpreter dies first."""
        self._tell(b"+" + _shepherd_script.encode_path(folder) + b"\n")

    def disown(self, folder: str) -> None:
        """The folder is gone (or no longer ours)."""
        self._tell(b"-" + _shepherd_script.encode_path(folder) + b"\n")

    def _tell(self, line: bytes) -> None:
        with self.lock:
            pipe = self.process.stdin if self.process is not None else None
            if pipe is None or pipe.closed:
                return
            try:
                # One write of a short line to a pipe is whole (at most PIPE_BUF bytes are
                # written at once); a longer one is written in pieces.
                view = memoryview(line)
                while view:
                    view = view[pipe.write(view) or 0 :]
            except (OSError, ValueError):  # the shepherd is gone, or the interpreter is exiting
                pass

    def release(self) -> None:
        """Interpreter exit: closing the pipe lets the shepherd sweep what is left."""
        process = self.process
        if process is not None and process.stdin is not None:
            process.stdin.close()
            # Reaped by the shepherd's exit; not waited for here.
            process.returncode = 0


_shepherd = _Shepherd()


def _owned_private_dir(name: str) -> str:
    """Makes a private log folder (``kjob-<name>-<random>`` in the temporary folder) that the
    shepherd owns before it exists: an interpreter killed at any moment (say, a pod running a
    nested Job, deleted with its outer Job) leaves no folder behind."""
    import secrets
    import tempfile

    _shepherd.ensure()
    base = tempfile.gettempdir()
    for _ in range(100):
        path = os.path.join(base, f"kjob-{name}-{secrets.token_hex(4)}")
        _shepherd.own(path)
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            _shepherd.disown(path)
    raise FileExistsError(f"no free name for a log folder kjob-{name}-* in {base}")


def _after_fork_in_child() -> None:
    _kjob.after_fork_in_child()
    _shepherd.after_fork_in_child()


# A forked child never touches its parent's Jobs, pods or workers (see src/runtime/fork.rs);
# kjob works in it with a runtime and a shepherd of its own.
os.register_at_fork(
    before=_kjob.before_fork,
    after_in_parent=_kjob.after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)

# At interpreter exit every pod of every Job is killed at once (SIGKILL): the grace period of
# a normal delete would hold the interpreter up. Then the shepherd sweeps the rest.
atexit.register(_shepherd.release)
atexit.register(_kjob.kill_all_jobs)
