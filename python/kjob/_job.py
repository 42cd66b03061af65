"""The :class:`Job` facade: keyword arguments in, a batch/v1 manifest to the native controller."""

from __future__ import annotations

import atexit
import secrets
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Union

from . import _kjob
from ._kjob import KjobError, NativeJob
from ._types import JobStatus, Pod

__all__ = ["Job"]

# Kubernetes' generateName alphabet (no vowels, no look-alikes).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

Command = Union[str, Sequence[str]]
EnvLike = Union[Mapping[str, str], Sequence[tuple[str, str]], None]


def _random_suffix() -> str:
    return "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _check_int(name: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
    return value


def _check_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if not (0 <= value < float("inf")):
        raise ValueError(f"{name}: must be a finite number of seconds >= 0, got {value!r}")
    return float(value)


def _command_list(command: Command | None) -> list[str]:
    if command is None:
        return []
    if isinstance(command, str):
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


def _build_manifest(
    *,
    name: str,
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
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,  # as `kubectl create job` names the container
        "command": _command_list(command),
    }
    if args:
        container["args"] = _args_list(args)
    else:
        _args_list(args)
    env_list = _env_list(env)
    if env_list:
        container["env"] = env_list
    if working_dir is not None:
        container["workingDir"] = str(working_dir)
    pod_spec: dict[str, Any] = {"containers": [container], "restartPolicy": restart_policy}
    if termination_grace_period_seconds is not None:
        pod_spec["terminationGracePeriodSeconds"] = termination_grace_period_seconds
    spec: dict[str, Any] = {"template": {"spec": pod_spec}}
    for key, value in (
        ("parallelism", parallelism),
        ("completions", completions),
        ("backoffLimit", backoff_limit),
    ):
        if value is not None:
            spec[key] = value
    spec["completionMode"] = completion_mode
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": spec}


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

    def __init__(
        self,
        *,
        name: str | None = None,
        command: Command | None = None,
        args: Sequence[str] | None = None,
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
    ) -> None:
        if name is None:
            name = f"job-{_random_suffix()}"
        if not isinstance(name, str):
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        for key, value in (("completion_mode", completion_mode), ("restart_policy", restart_policy)):
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a string, not {type(value).__name__}")
        manifest = _build_manifest(
            name=name,
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            completions=_check_int("completions", completions),
            parallelism=_check_int("parallelism", parallelism),
            completion_mode=completion_mode,
            backoff_limit=_check_int("backoff_limit", backoff_limit),
            restart_policy=restart_policy,
            termination_grace_period_seconds=_check_int(
                "termination_grace_period_seconds", termination_grace_period_seconds
            ),
        )
        self._setup(manifest, log_dir, backoff_initial_seconds, backoff_max_seconds)

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
        initial = _check_seconds("backoff_initial_seconds", backoff_initial_seconds)
        maximum = _check_seconds("backoff_max_seconds", backoff_max_seconds)
        self._manifest = manifest
        private_dir: str | None = None
        if log_dir is None:
            name = str(manifest.get("metadata", {}).get("name") or "job")[:40]
            private_dir = tempfile.mkdtemp(prefix=f"kjob-{name}-")
            log_dir = private_dir
        try:
            self._native = NativeJob(manifest, str(uuid.uuid4()), str(log_dir), initial, maximum)
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
        """Starts the controller: pods are created at once (non-blocking)."""
        self._native.start()

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Blocks until the Job is ``Complete`` or ``Failed`` and returns its status.

        Raises ``TimeoutError`` after ``timeout`` seconds (the Job keeps running). The GIL is
        released while waiting and Ctrl-C raises ``KeyboardInterrupt`` promptly.
        """
        if not self._native.started and not self._native.deleted:
            raise KjobError(f"Job {self._name!r} has not been started: call start() or run()")
        if timeout is not None:
            timeout = _check_seconds("timeout", timeout)
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
            timeout = _check_seconds("timeout", timeout)
        if not self._native.delete(timeout):
            raise TimeoutError(f"Job {self._name!r}: pods still running after {timeout} s")
        self._finalizer()

    @property
    def is_deleted(self) -> bool:
        return self._native.deleted

    # ---- observation ----------------------------------------------------------------------

    @property
    def status(self) -> JobStatus:
        """A snapshot of the Job's status."""
        return JobStatus._from_dict(self._native.status())

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
        path = Path(chosen[-1].log_path)
        if not path.exists():
            return ""
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


# At interpreter exit every pod of every Job is killed at once (SIGKILL): the grace period of
# a normal delete would hold the interpreter up.
atexit.register(_kjob.kill_all_jobs)
