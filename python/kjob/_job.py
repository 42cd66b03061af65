"""The :class:`Job` facade: keyword arguments in, a batch/v1 manifest to the native controller."""

from __future__ import annotations

import atexit
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from . import _kjob
from ._kjob import KjobError, NativeJob
from ._types import Event, JobStatus, Pod
from .manifest import Command, EnvLike, check_seconds, manifest_from_kwargs

__all__ = ["Job"]

# Kubernetes' generateName alphabet (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _job_name(base: str) -> str:
    """``<function name>-<5 random>`` made a DNS label, or ``job-<5 random>``."""
    cleaned = "".join(c if c.isalnum() else "-" for c in base.lower()).strip("-")[:40].strip("-")
    return f"{cleaned or 'job'}-{_random_suffix()}"


@dataclass
class _Callable:
    target: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    env: dict[str, str]
    max_workers: int

    def init_payload(self, job_name: str, job_uid: str, indexed: bool) -> bytes:
        """What a worker needs to run this Job's pods (see ``_worker._load_job``)."""
        import cloudpickle  # type: ignore[import-untyped]

        try:
            fn = cloudpickle.dumps({"fn": self.target, "args": self.args, "kwargs": self.kwargs})
        except Exception as e:
            raise TypeError(
                f"cannot pickle the Job's target {self.target!r} (or its args) for the worker "
                f"processes: {type(e).__name__}: {e}"
            ) from e
        init = {
            "name": job_name,
            "uid": job_uid,
            "fn": fn,
            "indexed": indexed,
            "sys_path": [p for p in sys.path if p],
            "cwd": os.getcwd(),
            # Processes a pod starts carry the Job's marker, like a command pod's do.
            "env": {**self.env, "KJOB_JOB_UID": job_uid},
        }
        return pickle.dumps(init, protocol=pickle.HIGHEST_PROTOCOL)


def _finalize(native: NativeJob, log_dir: str | None) -> None:
    """Runs when a Job object is garbage-collected (or at interpreter exit): its pods are
    deleted in the background and a private log folder is removed."""
    try:
        native.delete(timeout=0)
    finally:
        if log_dir is not None:
            shutil.rmtree(log_dir, ignore_errors=True)


class Job:
    """A Kubernetes ``batch/v1`` Job whose pods are local processes.

    Keyword names are the snake_case of the Kubernetes fields and take the Kubernetes
    defaults. ``command`` is a list (no shell) or a string run by ``/bin/sh -c``.
    ``backoff_initial_seconds``/``backoff_max_seconds`` shorten the 10 s doubling, 10 min
    capped delays before failed pods are replaced (a kjob extension).
    """

    _callable: _Callable | None

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
        backoff_initial_seconds: float = 10.0,
        backoff_max_seconds: float = 600.0,
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
        container_name: str | None = None,
        target: Callable[..., Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        max_workers: int | None = None,
    ) -> None:
        callable_pods = target is not None
        if callable_pods:
            if not callable(target):
                raise TypeError(f"target must be callable, not {type(target).__name__}")
            if command is not None:
                raise ValueError("a Job runs either a command or a target callable, not both")
            if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int)
                                            or max_workers < 1):
                raise ValueError(f"max_workers must be a positive int, got {max_workers!r}")
            if kwargs is not None and not isinstance(kwargs, Mapping):
                raise TypeError(f"kwargs must be a mapping, not {type(kwargs).__name__}")
            # The container's command only documents the callable; workers run it.
            command = ["kjob-callable", getattr(target, "__qualname__", type(target).__name__)]
            call_args: tuple[Any, ...] = tuple(args or ())
            args = None
        if name is None:
            base = getattr(target, "__name__", "") if callable_pods else ""
            name = _job_name(base)
        manifest = manifest_from_kwargs(
            name=name,
            namespace=namespace,
            container_name=container_name,
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
        self._setup(manifest, log_dir, backoff_initial_seconds, backoff_max_seconds)
        if target is not None:
            self._callable = _Callable(
                target=target,
                args=call_args,
                kwargs=dict(kwargs or {}),
                env=dict(env.items()) if isinstance(env, Mapping) else dict(env or ()),
                max_workers=max_workers or os.cpu_count() or 1,
            )

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any],
        *,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float = 10.0,
        backoff_max_seconds: float = 600.0,
    ) -> Job:
        """A Job from a ``batch/v1`` Job manifest (a dict, as ``yaml.safe_load`` gives)."""
        from .manifest import normalize_manifest

        job = cls.__new__(cls)
        job._setup(normalize_manifest(manifest), log_dir, backoff_initial_seconds, backoff_max_seconds)
        return job

    @classmethod
    def from_yaml(
        cls,
        path_or_text: str | Path,
        *,
        log_dir: str | Path | None = None,
        backoff_initial_seconds: float = 10.0,
        backoff_max_seconds: float = 600.0,
    ) -> Job:
        """A Job from a YAML file's path, or from YAML text, holding one ``kind: Job``."""
        from .manifest import load_job_manifest

        return cls.from_manifest(
            load_job_manifest(path_or_text),
            log_dir=log_dir,
            backoff_initial_seconds=backoff_initial_seconds,
            backoff_max_seconds=backoff_max_seconds,
        )

    def _setup(
        self,
        manifest: dict[str, Any],
        log_dir: str | Path | None,
        backoff_initial_seconds: float,
        backoff_max_seconds: float,
    ) -> None:
        initial = check_seconds("backoff_initial_seconds", backoff_initial_seconds)
        maximum = check_seconds("backoff_max_seconds", backoff_max_seconds)
        self._manifest = manifest
        private_dir: str | None = None
        if log_dir is None:
            name = str(manifest.get("metadata", {}).get("name") or "job")[:40]
            private_dir = tempfile.mkdtemp(prefix=f"kjob-{name}-")
            log_dir = private_dir
        try:
            self._native = NativeJob(
                manifest, str(uuid.uuid4()), str(log_dir), initial, maximum, private_dir is not None
            )
        except BaseException:
            if private_dir is not None:
                shutil.rmtree(private_dir, ignore_errors=True)
            raise
        self._log_dir = str(log_dir)
        self._private_log_dir = private_dir
        spec = self._native.spec()
        self._name: str = spec["name"]
        self._uid: str = spec["uid"]
        self._spec = spec
        self._callable = None
        self._finalizer = weakref.finalize(self, _finalize, self._native, private_dir)

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
        """The batch/v1 manifest this Job was made from."""
        return self._manifest

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Starts the controller: pods are created at once (non-blocking).

        For a callable Job the target is pickled (with cloudpickle) first: a target that
        cannot be pickled raises ``TypeError`` here, before any pod runs."""
        _shepherd.ensure()
        if self._callable is not None and not self._native.started:
            indexed = self._spec["completion_mode"] == "Indexed"
            init = self._callable.init_payload(self._name, self._uid, indexed)
            worker = [sys.executable, str(Path(__file__).with_name("_worker.py"))]
            self._native.set_callable(worker, init, self._callable.max_workers)
        self._native.start()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Blocks until the Job is ``Complete`` or ``Failed`` and returns its status.

        Raises ``TimeoutError`` after ``timeout`` seconds (the Job keeps running). The GIL is
        released while waiting and Ctrl-C raises ``KeyboardInterrupt`` promptly.
        """
        if not self._native.started and not self._native.deleted:
            raise KjobError(f"Job {self._name!r} has not been started: call start() or run()")
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        if not self._native.wait(timeout):
            raise TimeoutError(f"Job {self._name!r} did not finish within {timeout} s")
        return self.status

    def run(self, timeout: float | None = None) -> JobStatus:
        """``start()`` then ``wait(timeout)``."""
        self.start()
        return self.wait(timeout)

    def delete(self, timeout: float | None = None) -> None:
        """Deletes the Job and its pods: each pod's process group gets SIGTERM, then SIGKILL
        after ``termination_grace_period_seconds``. Returns once every process is gone.
        A private log folder is removed. Idempotent."""
        if timeout is not None:
            timeout = check_seconds("timeout", timeout)
        if not self._native.delete(timeout):
            raise TimeoutError(f"Job {self._name!r}: pods still running after {timeout} s")
        self._finalizer()

    @property
    def is_deleted(self) -> bool:
        """Whether the Job is gone: deleted by ``delete()`` or by ``ttl_seconds_after_finished``."""
        return self._native.deleted

    def suspend(self) -> None:
        """Suspends the Job (``spec.suspend: true``): active pods are deleted and no new ones are
        created until :meth:`resume`. Idempotent; before ``start()`` the Job starts suspended."""
        self._native.suspend(True)

    def resume(self) -> None:
        """Resumes a suspended Job: ``startTime`` is reset and pods are created again."""
        self._native.suspend(False)

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
        for key, value in (("parallelism", parallelism), ("completions", completions)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise TypeError(f"{key} must be an int or None, not {type(value).__name__}")
            if value is not None and not -(2**31) <= value < 2**31:
                # int32 in Kubernetes; negatives get the usual message from validation.
                raise ValueError(
                    f"spec.{key}: Invalid value: {value}: must be less than or equal to 2147483647"
                )
        self._native.scale(parallelism, completions)
        if parallelism is not None:
            self._spec["parallelism"] = parallelism
        if completions is not None:
            self._spec["completions"] = completions

    def events(self) -> list[Event]:
        """The Job's events, oldest first (``SuccessfulCreate``, ``Completed``, ...)."""
        involved = f"Job/{self.namespace}/{self._name}"
        return [Event._from_dict(d, involved) for d in self._native.events()]

    # ---- observation ----------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """A snapshot of the Job's status."""
        return JobStatus._from_dict(self._native.status())

    def results(self) -> dict[int, Any] | list[Any]:
        """Return values of the succeeded pods of a callable Job: ``{index: value}`` for an
        Indexed Job, a list in completion order otherwise."""
        if self._callable is None:
            raise KjobError(f"Job {self._name!r} runs a command; results() needs a target callable")
        pairs = self._native.results()
        if self._spec["completion_mode"] == "Indexed":
            return {index: pickle.loads(value) for index, value in pairs if index is not None}
        return [pickle.loads(value) for _, value in pairs]

    def pods(self) -> list[Pod]:
        """Every pod the Job has created, oldest first."""
        return [Pod._from_dict(d) for d in self._native.pods()]

    def logs(self, index: int | None = None, pod: str | None = None) -> str:
        """The output (stdout and stderr) of one pod.

        ``pod`` names the pod; ``index`` picks the latest pod of that completion index;
        with neither, the latest succeeded pod, else the latest pod (as ``kubectl logs
        job/NAME`` picks one pod).
        """
        pods = self.pods()
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
        chosen_pod = chosen[-1]
        path = Path(chosen_pod.log_path)
        if not path.exists():
            return ""
        if chosen_pod.log_range is not None:
            start, end = chosen_pod.log_range
            with path.open("rb") as f:
                f.seek(start)
                return f.read(end - start).decode(errors="replace")
        return path.read_text(errors="replace")

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

    def __repr__(self) -> str:
        spec = self._spec
        s = self.status
        if self._native.deleted:
            state = "Deleted"
        elif s.is_complete:
            state = "Complete"
        elif s.is_failed:
            state = "Failed"
        elif self._native.started:
            state = "Running"
        else:
            state = "NotStarted"
        completions = spec["completions"] if spec["completions"] is not None else "-"
        return (
            f"<kjob.Job {self._name!r} {state} {spec['completion_mode']} "
            f"completions={completions} parallelism={spec['parallelism']} "
            f"active={s.active} succeeded={s.succeeded} failed={s.failed}>"
        )


class _Shepherd:
    """Starts ``_shepherd.py`` once per interpreter: it kills this session's processes when
    the interpreter dies, even by SIGKILL. Every pod and worker carries the session token."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def ensure(self) -> None:
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                return
            script = Path(__file__).with_name("_shepherd.py")
            self.process = subprocess.Popen(
                [sys.executable, "-S", str(script), self.token],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _kjob.set_session_token(self.token)

    def release(self) -> None:
        """Interpreter exit: closing the pipe lets the shepherd sweep what is left."""
        process = self.process
        if process is not None and process.stdin is not None:
            process.stdin.close()
            # Reaped by the shepherd's exit; not waited for here.
            process.returncode = 0


_shepherd = _Shepherd()

# At interpreter exit every pod of every Job is killed at once (SIGKILL): the grace period of
# a normal delete would hold the interpreter up. Then the shepherd sweeps the rest.
atexit.register(_shepherd.release)
atexit.register(_kjob.kill_all_jobs)
