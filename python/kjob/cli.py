"""``kjob``: run Kubernetes Job manifests on this machine, in the spirit of kubectl.

Exit codes: 0 the Job completed (or the input is valid), 1 it failed or timed out, 2 invalid
input, 130 interrupted (Ctrl-C deletes the Job first, so nothing is left running), 128 + the
signal's number after SIGTERM (143) or SIGHUP (129), which clean up the same way, and 141
(128 + SIGPIPE) when the reader of the output went away (``kjob run --logs | head -1``):
the Job is deleted quietly, as a command killed by SIGPIPE would print nothing either.

The kubectl verbs (get, describe, logs, wait, delete, patch, apply) reach the stored Jobs of
any process and exit as kubectl does: 0, or 1 for any error; apply keeps 2 for an invalid
manifest. Their formatting is in ``_kubectl.py``, label selectors in ``_selectors.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import yaml

from . import _config, _export
from ._apply import replace_finished
from ._cli_kubectl import (
    EXIT_BROKEN_PIPE,
    EXIT_COMPLETE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    KUBECTL_HANDLERS,
    LOG_POLL_SECONDS,
    InvalidInput,
    KubectlError,
    add_filename,
    add_kubectl_verbs,
    inputs,
    invalid_message,
    load_files,
    printed_warnings,
)
from ._dask import DaskExecutor
from ._failures import describe_failed_pods, failed_pods
from ._job import Job, all_pods, created_at, job_from_normalized, job_spec, job_status_word
from ._kjob import DEFAULT_BACKOFF_INITIAL_SECONDS, DEFAULT_BACKOFF_MAX_SECONDS, KjobError
from ._kwargs import manifest_from_kwargs
from ._progress import TerminalBar
from ._store import logs_held
from ._types import JobStatus
from ._watch import Watcher
from .manifest import normalize_manifest

# How often a live bar redraws its elapsed time when nothing else changes.
_CLOCK_SECONDS = 0.5


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: like Ctrl-C, the Job is deleted and kjob exits with
    ``128 + signal``. A BaseException, so that no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: object) -> None:
    raise Terminated(signum)


def _say(line: str) -> None:
    """A message on stderr, which may be gone (a closed terminal, a closed pipe)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _quiet_closed_pipes() -> None:
    """After a write to a closed pipe: what is still buffered for stdout and stderr could
    only fail again when the interpreter flushes them at exit (with a traceback of its own),
    so each of them whose reader is gone writes to /dev/null from now on."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)
            except (OSError, ValueError):
                pass


def _load_jobs(args: argparse.Namespace) -> list[tuple[Job, str]]:
    """Every Job of the ``-f`` files (folders, ``-``), each validated, with the ConfigMaps
    and Secrets beside them; raises InvalidInput naming file and field."""
    found = load_files(args)
    jobs: list[tuple[Job, str]] = []
    try:
        for manifest, job_where in found.jobs:
            with printed_warnings():
                try:
                    normalized = normalize_manifest(manifest, strict=args.strict, where=job_where)
                    job = job_from_normalized(
                        normalized,
                        getattr(args, "log_dir", None),
                        getattr(args, "backoff_initial_seconds", None),
                        getattr(args, "backoff_max_seconds", None),
                        original=manifest,
                        env_sources=found.sources,
                        where=job_where,
                    )
                    jobs.append((job, job_where))
                except (ValueError, TypeError) as e:
                    raise InvalidInput(invalid_message(job_where, manifest, e)) from None
    except BaseException:
        for job, _ in jobs:
            job.delete()
        raise
    return jobs


class _Prefixed(io.StringIO):
    """Writes each complete line to ``out`` behind ``prefix`` (``[job/NAME] ``), under a lock
    shared by the Jobs that run together, so their lines never mix."""

    def __init__(self, out: TextIO, prefix: str, lock: threading.Lock) -> None:
        super().__init__()
        self._out = out
        self._prefix = prefix
        self._lock = lock
        self._partial = ""

    def write(self, text: str) -> int:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        if lines:
            with self._lock:
                self._out.write("".join(f"{self._prefix}{line}\n" for line in lines))
                self._out.flush()
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self._out.flush()

    def finish(self) -> None:
        """Writes out a last line that has no newline."""
        if self._partial:
            self.write("\n")

    def isatty(self) -> bool:
        # A live bar per Job would overwrite the others' lines: line mode only.
        return False


class _LogFollower:
    """Streams new complete lines of every pod's log, prefixed ``[pod-name]`` like
    ``kubectl logs --prefix``."""

    def __init__(self, job: Job, out: TextIO) -> None:
        self._job = job
        self._out = out
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def poll(self, final: bool = False) -> list[str]:
        lines_out: list[str] = []
        # Every pod, even once a ttlSecondsAfterFinished of 0 has deleted the Job: its last
        # lines are still to be shown.
        for pod in all_pods(self._job):
            path = Path(pod.log_path)
            start, end = pod.log_range if pod.log_range is not None else (0, None)
            offset = self._offsets.get(pod.name, start)
            try:
                with path.open("rb") as f:
                    f.seek(offset)
                    data = f.read() if end is None else f.read(max(0, end - offset))
            except FileNotFoundError:
                continue
            self._offsets[pod.name] = offset + len(data)
            data = self._partial.pop(pod.name, b"") + data
            lines = data.split(b"\n")
            rest = lines.pop()
            if rest and final:
                lines.append(rest)
            elif rest:
                self._partial[pod.name] = rest
            lines_out.extend(f"[{pod.name}] {line.decode('utf-8', errors='replace')}" for line in lines)
        return lines_out


class _Reporter:
    """How ``run`` shows a Job going: a live bar on a terminal, else a line per change."""

    def __init__(self, job: Job, out: TextIO, live: bool) -> None:
        self._job = job
        self._out = out
        self._bar = TerminalBar(job.name, job_spec(job)["completions"], out) if live else None
        self.live = live
        self._last_line = ""
        self._seen_conditions: set[tuple[str, str]] = set()

    def say(self, line: str) -> None:
        if self._bar is not None:
            self._bar.clear()
        print(line, file=self._out, flush=True)

    def update(self, status: JobStatus, final: bool = False) -> None:
        name = self._job.name
        line = _export.status_counts(status, manifest_keys=True)
        if self._bar is None and line != self._last_line:
            self._last_line = line
            print(f"job.batch/{name}: {line}", file=self._out, flush=True)
        for c in status.conditions:
            if (c.type, c.status) not in self._seen_conditions:
                self._seen_conditions.add((c.type, c.status))
                self.say(f"job.batch/{name}: condition {c.type}={c.status} reason={c.reason}: {c.message}")
        if self._bar is not None:
            self._bar.update(status, job_status_word(self._job, status), force=final)
            if final:
                self._bar.close()


def _follow(job: Job, args: argparse.Namespace, out: TextIO, logs_out: TextIO) -> int:
    """Runs the started Job to its end, reporting as it goes; returns the exit status."""
    reporter = _Reporter(job, out, live=out.isatty())
    follower = _LogFollower(job, logs_out) if args.logs else None
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    watcher = Watcher(job)
    try:
        while True:
            watcher.poll()
            status = watcher.status
            if follower is not None:
                for line in follower.poll(final=watcher.done):
                    reporter.say(line)
            reporter.update(status, final=watcher.done)
            if watcher.done:
                return EXIT_COMPLETE if status.is_complete else EXIT_FAILED
            if deadline is not None and time.monotonic() >= deadline:
                reporter.update(status, final=True)
                print(
                    f"error: job.batch/{job.name} did not finish within {args.timeout:g} s", file=sys.stderr
                )
                return EXIT_FAILED
            # Changes wake us; besides, a live bar redraws its clock and logs are read on a timer.
            waits = []
            if reporter.live:
                waits.append(_CLOCK_SECONDS)
            if follower is not None:
                waits.append(LOG_POLL_SECONDS)
            if deadline is not None:
                waits.append(max(0.0, deadline - time.monotonic()))
            watcher.wait(min(waits) if waits else None)
    finally:
        watcher.close()


def _table_rows(job: Job, wide: bool) -> str:
    obj = job.to_manifest(include_status=True)
    status = job.status
    spec = job_spec(job)
    start, end = status.start_time, status.completion_time
    now = time.time()
    duration = ""
    if start is not None:
        duration = _export.human_duration((end.timestamp() if end else now) - start.timestamp())
    container = obj["spec"]["template"]["spec"]["containers"][0]
    row = {
        "NAME": job.name,
        "STATUS": job_status_word(job, status),
        "COMPLETIONS": _export.completions_column(status.succeeded, spec["completions"], spec["parallelism"]),
        "DURATION": duration,
        "AGE": _export.human_duration(now - created_at(job).timestamp()),
        "CONTAINERS": container.get("name", ""),
        "IMAGES": container.get("image") or "<none>",
        "SELECTOR": ",".join(f"{k}={v}" for k, v in obj["spec"]["selector"]["matchLabels"].items()),
    }
    columns = ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    if wide:
        columns += ["CONTAINERS", "IMAGES", "SELECTOR"]
    return _export.table([row], columns)


def _print_object(job: Job, output: str | None, out: TextIO) -> None:
    if output == "json":
        print(json.dumps(job.to_manifest(include_status=True), indent=4), file=out)
    elif output == "yaml":
        print(job.to_yaml(include_status=True), end="", file=out)
    elif output == "name":
        print(f"job.batch/{job.name}", file=out)
    elif output == "wide":
        print(_table_rows(job, wide=True), file=out)


def _run_job(job: Job, args: argparse.Namespace, streams: tuple[TextIO, TextIO] | None = None) -> int:
    """Runs one Job in the foreground and prints it as ``-o`` asks. ``streams`` (out, err)
    replace stdout and stderr when several Jobs run together (and then ``-o`` is printed by
    the caller, for all of them)."""
    machine_output = args.output in ("json", "yaml", "name")
    together = streams is not None
    stdout, stderr = streams if streams is not None else (sys.stdout, sys.stderr)
    # With -o json|yaml|name, stdout holds only that document: progress goes to stderr.
    out = stderr if machine_output else stdout
    try:
        try:
            if _has_store():
                # A re-run replaces the finished Job of that name (a running one is AlreadyExists).
                replace_finished(job)
            job.start()
        except (KjobError, ValueError, OSError, RuntimeError) as e:  # RuntimeError: a refused store
            raise InvalidInput(f"job.batch/{job.name}: {e}") from None
        print(f"job.batch/{job.name} created", file=out, flush=True)
        code = _follow(job, args, out, logs_out=out)
        if not together:
            _print_object(job, args.output, stdout)
        status = job.status
        if status.is_failed:
            _report_failure(job, status, args, stderr)
        return code
    except KeyboardInterrupt:
        print(f"\ninterrupted: deleting job.batch/{job.name}", file=sys.stderr, flush=True)
        job.delete()
        return EXIT_INTERRUPTED
    except Terminated as e:
        # Further SIGTERMs and SIGHUPs would only cut the clean-up short.
        for signum in _CLEAN_UP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        _say(f"\n{signal.Signals(e.signum).name}: deleting job.batch/{job.name}")
        job.delete()
        return 128 + e.signum
    finally:
        if not job.is_deleted and not together and not _kept(job):
            job.delete()


def _has_store() -> bool:
    """Whether Jobs are recorded in the store (``KJOB_STORE``, ``kjob.configure``)."""
    return _config.store_enabled()


def _kept(job: Job) -> bool:
    """A Job ``kjob run`` leaves in place when it ends: with the store, a finished Job stays
    (with its logs, which the store owns) until deleted or its TTL expires, as on a cluster,
    where a failed Job's logs are what one reads next. Interrupted or timed out, it is deleted."""
    return _has_store() and job.status.is_finished


def _run_jobs(jobs: list[Job], args: argparse.Namespace) -> int:
    """Runs several Jobs at once, as ``kubectl apply -f`` creates them all: each in a thread
    of its own, its lines prefixed ``[job/NAME] ``. The exit status is the highest of theirs
    (non-zero when any failed); Ctrl-C or a signal deletes them all."""
    lock = threading.Lock()
    codes: dict[str, int] = {}
    errors: list[InvalidInput] = []

    def run(job: Job) -> None:
        prefix = f"[job/{job.name}] "
        streams = (_Prefixed(sys.stdout, prefix, lock), _Prefixed(sys.stderr, prefix, lock))
        try:
            codes[job.name] = _run_job(job, args, streams)
        except InvalidInput as e:
            errors.append(e)
            codes[job.name] = EXIT_INVALID
        except BaseException:
            codes[job.name] = EXIT_FAILED
            raise
        finally:
            for stream in streams:
                stream.finish()

    threads = [
        threading.Thread(target=run, args=(job,), name=f"kjob-{job.name}", daemon=True) for job in jobs
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            # Joined in slices: the main thread stays free to take Ctrl-C and signals.
            while thread.is_alive():
                thread.join(0.1)
    except (KeyboardInterrupt, Terminated) as e:
        if isinstance(e, Terminated):
            for signum in _CLEAN_UP_SIGNALS:
                signal.signal(signum, signal.SIG_IGN)
        names = ", ".join(f"job.batch/{job.name}" for job in jobs)
        why = "interrupted" if isinstance(e, KeyboardInterrupt) else signal.Signals(e.signum).name
        _say(f"\n{why}: deleting {names}")
        for job in jobs:
            job.delete()
        return EXIT_INTERRUPTED if isinstance(e, KeyboardInterrupt) else 128 + e.signum
    finally:
        for job in jobs:
            if not job.is_deleted and not _kept(job):
                job.delete()
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    _print_objects(jobs, args.output, sys.stdout)
    return max(codes.values(), default=EXIT_COMPLETE)


def _print_objects(jobs: list[Job], output: str | None, out: TextIO) -> None:
    """``-o`` for several Jobs: a kubectl ``List`` (json, yaml), a line each (name), or one
    table (wide)."""
    if output in ("json", "yaml"):
        listed = {
            "apiVersion": "v1",
            "items": [job.to_manifest(include_status=True) for job in jobs],
            "kind": "List",
            "metadata": {"resourceVersion": ""},
        }
        if output == "json":
            print(json.dumps(listed, indent=4), file=out)
        else:
            # Through JSON: objects the items share would otherwise become YAML aliases.
            print(yaml.safe_dump(json.loads(json.dumps(listed)), sort_keys=False), end="", file=out)
    elif output == "wide":
        rows = [_table_rows(job, wide=True).splitlines() for job in jobs]
        print("\n".join([rows[0][0], *(r[1] for r in rows)]), file=out)
    else:
        for job in jobs:
            _print_object(job, output, out)


def _report_failure(job: Job, status: JobStatus, args: argparse.Namespace, err: TextIO) -> None:
    """Why the Job failed, its failed pods with the end of their logs (the text of
    ``JobFailedError``), and where the logs are: the folder is kept for a failed Job (with
    the store, the stored Job keeps them: ``kjob logs`` reads them)."""
    condition = status.condition("Failed")
    reason = f": {condition.reason}: {condition.message}" if condition is not None else ""
    print(f"error: job.batch/{job.name} failed{reason}", file=err)
    print(describe_failed_pods(failed_pods(all_pods(job))), file=err)
    if args.log_dir is None:
        # The store keeps the Job and its logs until it is deleted.
        where = "" if job.namespace == "default" else f" -n {job.namespace}"
        print(f"pod logs: kjob logs job/{job.name}{where}", file=err, flush=True)
        return
    args.keep_logs = True
    print(f"pod logs kept in {args.log_dir}", file=err, flush=True)


def _refuse_suspended(jobs: list[Job], args: argparse.Namespace) -> None:
    """A suspended Job's command would wait forever: nothing here can resume it."""
    suspended = [job for job in jobs if job.manifest.get("spec", {}).get("suspend") is True]
    if suspended:
        for job in jobs:
            job.delete()
        raise InvalidInput(
            f"{inputs(args)}: job.batch/{suspended[0].name} has spec.suspend: true, so no pod would run and "
            f"`kjob {args.command_name}` would wait forever; remove it (or set it false) to run the Job here"
        )


def _cmd_run(args: argparse.Namespace) -> int:
    jobs = [job for job, _ in _load_jobs(args)]
    _refuse_suspended(jobs, args)
    if getattr(args, "executor", None) is None:
        return _run_job(jobs[0], args) if len(jobs) == 1 else _run_jobs(jobs, args)
    # One executor serves every Job of the files.
    executor = _executor(args.executor, jobs)
    try:
        for job in jobs:
            job.executor = executor
        return _run_job(jobs[0], args) if len(jobs) == 1 else _run_jobs(jobs, args)
    finally:
        executor.close()


def _cmd_timeline(args: argparse.Namespace) -> int:
    """``kjob timeline -f FILE``: runs the Job as ``kjob run`` does (its progress on stderr),
    then writes its timeline: an SVG picture (``-o svg``) or a table (``-o table``)."""
    jobs = [job for job, _ in _load_jobs(args)]
    if len(jobs) != 1:
        for job in jobs:
            job.delete()
        raise InvalidInput(f"{inputs(args)}: kjob timeline draws one Job; the files hold {len(jobs)}")
    _refuse_suspended(jobs, args)
    job = jobs[0]
    output, args.output = args.output, None
    try:
        code = _run_job(job, args, streams=(sys.stderr, sys.stderr))
        timeline = job.timeline()
    finally:
        if not job.is_deleted:
            job.delete()
    text = timeline.svg() if output == "svg" else timeline.table()
    if args.output_file is None:
        print(text)
    else:
        Path(args.output_file).write_text(text + "\n", encoding="utf-8")
        print(f"timeline of job.batch/{job.name} written to {args.output_file}", file=sys.stderr)
    return code


def _executor(url: str, jobs: list[Job]) -> DaskExecutor:
    """The executor ``--executor URL`` names (``dask://HOST:PORT``)."""
    scheme, sep, address = url.partition("://")
    if scheme != "dask" or not sep or not address:
        for job in jobs:
            job.delete()
        raise InvalidInput(f"--executor {url}: unsupported; the form is dask://HOST:PORT")
    try:
        return DaskExecutor(f"tcp://{address}")
    except (KjobError, ImportError) as e:
        for job in jobs:
            job.delete()
        raise InvalidInput(f"--executor {url}: {e}") from None


def _cmd_validate(args: argparse.Namespace) -> int:
    jobs = _load_jobs(args)
    for job, where in jobs:
        print(f"job.batch/{job.name} valid ({where})")
        job.delete()
    return EXIT_COMPLETE


def _cmd_create_job(args: argparse.Namespace) -> int:
    command = list(args.command)
    if not command:
        raise InvalidInput(
            "a command is required after `--` (kjob runs it on this machine: there is no image "
            "entrypoint to fall back on), e.g. kjob create job hello --image=busybox -- echo hi"
        )
    try:
        manifest = manifest_from_kwargs(
            name=args.name,
            namespace="default",
            container_name=None,
            image=args.image,
            command=command,
            args=None,
            env=None,
            working_dir=None,
            completions=args.completions,
            parallelism=args.parallelism,
            completion_mode="Indexed" if args.indexed else "NonIndexed",
            backoff_limit=args.backoff_limit,
            restart_policy=args.restart,
            termination_grace_period_seconds=None,
            backoff_limit_per_index=None,
            max_failed_indexes=None,
            pod_failure_policy=None,
            success_policy=None,
            active_deadline_seconds=None,
            pod_active_deadline_seconds=None,
            ttl_seconds_after_finished=None,
            suspend=None,
            pod_replacement_policy=None,
            managed_by=None,
        )
        if not args.indexed:
            # As kubectl writes it: the default completion mode is left out.
            del manifest["spec"]["completionMode"]
        job = job_from_normalized(
            normalize_manifest(manifest), args.log_dir, args.backoff_initial_seconds, args.backoff_max_seconds
        )
    except (ValueError, TypeError) as e:
        named = {"metadata": {"name": args.name}}
        raise InvalidInput(invalid_message("kjob create job", named, e)) from None
    if args.dry_run == "none":
        return _run_job(job, args)
    try:
        if args.output == "json":
            print(json.dumps(job.to_manifest(), indent=4))
        elif args.output == "yaml":
            print(yaml.safe_dump(job.to_manifest(), sort_keys=False), end="")
        elif args.output == "name":
            print(f"job.batch/{job.name}")
        elif args.output == "wide":
            print(_table_rows(job, wide=True))
        else:
            print(f"job.batch/{job.name} created (dry run)")
    except ValueError:
        raise InvalidInput(
            "--image is required to print a manifest: a cluster needs a container image "
            "(kjob ignores it when running locally)"
        ) from None
    finally:
        job.delete()
    return EXIT_COMPLETE


def _cmd_create_from_files(args: argparse.Namespace) -> int:
    """``kjob create -f FILE``: as ``kjob run -f``, or with ``--dry-run`` the Jobs as
    ``kubectl create --dry-run=client -o yaml`` prints them (the document given, lossless)."""
    if args.dry_run == "none":
        return _cmd_run(args)
    jobs = [job for job, _ in _load_jobs(args)]
    try:
        documents = [job.to_manifest() for job in jobs]
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    finally:
        for job in jobs:
            job.delete()
    if args.output in ("json", "yaml"):
        # One Job prints as itself, several as kubectl's List.
        document: dict[str, Any] = (
            documents[0]
            if len(documents) == 1
            else {"apiVersion": "v1", "items": documents, "kind": "List", "metadata": {"resourceVersion": ""}}
        )
        if args.output == "json":
            print(json.dumps(document, indent=4))
        else:
            # Through JSON: objects shared inside the document would otherwise become aliases.
            print(yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=False), end="")
    else:
        for job in jobs:
            print(
                f"job.batch/{job.name}"
                if args.output == "name"
                else f"job.batch/{job.name} created (dry run)"
            )
    return EXIT_COMPLETE


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _add_run_options(p: argparse.ArgumentParser, outputs: list[str], output_help: str | None = None) -> None:
    p.add_argument(
        "--timeout",
        type=_non_negative_seconds,
        default=None,
        metavar="SECONDS",
        help="give up after this many seconds: delete the Job and exit 1",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=outputs,
        default=None,
        help=output_help
        or "when the Job ends, print it like `kubectl get job -o FORMAT` "
        "(json/yaml: the whole object with its status; wide: a table row)",
    )
    p.add_argument(
        "--logs",
        action="store_true",
        help="stream the pods' output, each line prefixed [pod-name] like `kubectl logs --prefix`",
    )
    p.add_argument(
        "--log-dir",
        default=None,
        metavar="DIR",
        help="keep the pods' log files in DIR (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--backoff-initial-seconds",
        type=_non_negative_seconds,
        default=None,
        metavar="SECONDS",
        help="delay before a failed pod is replaced the first time; it doubles each time "
        "(default: the manifest's kjob.io/backoff-initial-seconds annotation, else "
        f"{DEFAULT_BACKOFF_INITIAL_SECONDS:g})",
    )
    p.add_argument(
        "--backoff-max-seconds",
        type=_non_negative_seconds,
        default=None,
        metavar="SECONDS",
        help="cap of that doubling delay (default: kjob.io/backoff-max-seconds, else "
        f"{DEFAULT_BACKOFF_MAX_SECONDS:g})",
    )


EPILOG = """\
examples:
  kjob run -f examples/pi.yaml                 run a Job, printing its progress
  kjob run -f job.yaml --logs -o yaml          stream pod output, then print the finished Job
  kjob validate -f job.yaml                    check a manifest, as the API server would
  kjob create job hello -- echo hi             run a one-off command as a Job
  kjob create job hello --image=busybox --dry-run -o yaml -- echo hi > job.yaml
  kjob create -f job.yaml --dry-run -o yaml    print the Job as kubectl apply would take it

kubectl verbs, on the stored Jobs of any process:
  kjob apply -f job.yaml                       store the Job; a detached controller runs it
  kjob get jobs [-A] [-l team=data] [-o wide]  kubectl's table; get pods -l job-name=NAME
  kjob describe job NAME                       fields, Pods Statuses, pod template, events
  kjob logs job/NAME [-f] [--tail 20]          a pod's output (--prefix, -l SELECTOR)
  kjob wait --for=condition=complete job/NAME --timeout=5m
  kjob patch job NAME --type=merge -p '{"spec":{"suspend":false}}'
  kjob delete job NAME | --all | -l SELECTOR

exit status: 0 complete (or valid), 1 failed or timed out, 2 invalid input, 130 interrupted
(Ctrl-C deletes the Job first: nothing is left running). The kubectl verbs exit as kubectl:
0, or 1 for any error (NotFound, timeout, usage); apply exits 2 for an invalid manifest."""


def _cmd_pytest(args: argparse.Namespace) -> int:
    """``kjob pytest``: the suite as an Indexed Job (see ``_pytest_shards``)."""
    from . import _pytest_shards

    if args.shards < 1 or args.retries < 0:
        raise InvalidInput("--shards must be at least 1 and --retries at least 0")
    opts = _pytest_shards.Options(
        shards=args.shards,
        retries=args.retries,
        junitxml=args.junitxml,
        pytest_args=list(args.command),
        backoff_seconds=args.backoff_initial_seconds,
    )
    if args.dry_run == "none":
        return _pytest_shards.run(opts)
    if args.output not in ("yaml", "json") or not args.image:
        raise InvalidInput(
            "kjob pytest --dry-run prints the Job for a cluster: give -o yaml|json and --image"
        )
    try:
        manifest = _pytest_shards.dry_run(opts, args.image)
    except _pytest_shards.Failed as e:
        sys.stdout.write(e.output)
        return e.code
    if args.output == "json":
        print(json.dumps(manifest, indent=4))
    else:
        print(yaml.safe_dump(manifest, sort_keys=False), end="")
    return EXIT_COMPLETE


def _cmd_simulate(args: argparse.Namespace) -> int:
    """``kjob simulate``: the Job of ``-f`` on a virtual clock (``_simulate.py``)."""
    from ._simulate import load_outcomes, render, simulate

    jobs = _load_jobs(args)
    if len(jobs) != 1:
        for job, _ in jobs:
            job.delete()
        raise InvalidInput(f"{inputs(args)}: {len(jobs)} Jobs; kjob simulate takes one")
    job = jobs[0][0]
    try:
        outcomes = load_outcomes(args.outcomes) if args.outcomes else None
        sim = simulate(job, outcomes)
        text = render(sim, args.output)
    except FileNotFoundError as e:
        raise InvalidInput(f"{e.filename}: no such file") from None
    except (ValueError, TypeError, OSError) as e:
        raise InvalidInput(f"{args.outcomes or inputs(args)}: {e}") from None
    finally:
        job.delete()
    print(text, end="")
    return EXIT_COMPLETE


def _cmd_version(args: argparse.Namespace) -> int:
    from . import __version__

    print(f"kjob {__version__}")
    return EXIT_COMPLETE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kjob",
        description="Run Kubernetes batch/v1 Jobs on this machine: each pod is a local process, "
        "with the Job controller's rules (completions, parallelism, backoff, policies, "
        "deadlines). The YAML is the same file `kubectl apply -f` takes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Handled in main (not argparse's "version" action, which exits instead of returning).
    parser.add_argument("--version", action="store_true", help="print kjob's version and exit")
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND")

    version = sub.add_parser(
        "version", help="print kjob's version", description="Print kjob's version, as `kjob VERSION`."
    )
    version.set_defaults(handler=_cmd_version)

    run = sub.add_parser(
        "run",
        help="run the Job in a manifest, in the foreground",
        description="Run the Jobs in FILE until each is Complete or Failed. On a terminal a live bar "
        "shows succeeded/failed/active pods, elapsed time and an estimate of the time "
        "left; otherwise a line is printed per change. Several Jobs run at once, each line "
        "prefixed [job/NAME]. Exit status: 0 Complete, 1 Failed or timed out, 2 invalid input, "
        "130 interrupted (the Jobs are deleted); with several Jobs, the highest of theirs.",
    )
    add_filename(run)
    run.add_argument(
        "--strict",
        action="store_true",
        help="refuse fields kjob cannot honour locally (resources, volumes, ...) "
        "instead of ignoring them with a warning",
    )
    run.add_argument(
        "--executor",
        default=None,
        metavar="URL",
        help="where the pods run: dask://HOST:PORT runs them on the workers of that Dask "
        "scheduler (pip install 'kjob[dask]'); default: this machine",
    )
    _add_run_options(run, ["json", "yaml", "wide", "name"])
    run.set_defaults(handler=_cmd_run)

    timeline = sub.add_parser(
        "timeline",
        help="run the Job in a manifest and draw its pods over time",
        description="Run the Job in FILE as `kjob run` does (progress on stderr), then write its "
        "timeline: one row per index (per pod for NonIndexed), a bar per attempt coloured by how "
        "it ended, the waits between attempts and the Job's conditions. -o svg (the default) "
        "writes an SVG picture, -o table the rows as text. Exit status as `kjob run`.",
    )
    add_filename(timeline)
    timeline.add_argument("--strict", action="store_true", help="refuse fields kjob cannot honour locally")
    _add_run_options(timeline, ["svg", "table"], "svg: an SVG picture (default); table: the rows as text")
    timeline.add_argument(
        "--output-file", default=None, metavar="PATH", help="write the timeline to PATH instead of stdout"
    )
    timeline.set_defaults(handler=_cmd_timeline, output="svg")

    validate = sub.add_parser(
        "validate",
        help="check manifests without running them",
        description="Check every Job in FILE the way the API server would, printing its errors "
        "in Kubernetes' words (field path first). Exit status 0 if all are valid, 2 if not.",
    )
    add_filename(validate)
    validate.add_argument("--strict", action="store_true", help="also fail on fields kjob would ignore")
    validate.set_defaults(handler=_cmd_validate)

    simulate = sub.add_parser(
        "simulate",
        help="what would Kubernetes do? the Job on a virtual clock, nothing run",
        description="Run the Job controller on a virtual clock: each pod ends as the outcome table "
        "says (exit code, exception, DisruptionTarget, duration; by default success after 1 s) and "
        "the clock jumps from event to event, so backoff delays, deadlines and TTLs take their "
        "real values and no time. Prints one row per pod, the final status and the events. "
        "Exit status 0 whatever the simulated Job does, 2 for invalid input.",
        epilog="outcomes file example:\n"
        "  '*': {duration: 30}            # every pod: success after 30 s\n"
        "  3: {exit_code: 1}              # index 3, every attempt: exit 1 after 1 s\n"
        "  '3,2': {duration: 5}           # index 3, attempt 2: success after 5 s\n"
        "  '*,0': {condition: DisruptionTarget, duration: 10}   # first attempts evicted at 10 s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_filename(simulate)
    simulate.add_argument(
        "--outcomes",
        default=None,
        metavar="FILE",
        help="YAML table of how pods end, keyed INDEX, 'INDEX,ATTEMPT', '*' or '*,ATTEMPT'",
    )
    simulate.add_argument("--strict", action="store_true", help="refuse fields kjob cannot honour locally")
    simulate.add_argument(
        "-o",
        "--output",
        choices=["table", "yaml", "json", "svg"],
        default="table",
        help="output format (default table)",
    )
    simulate.set_defaults(handler=_cmd_simulate)

    create = sub.add_parser(
        "create",
        help="create a resource from the command line (kubectl create)",
        description="Create the Jobs of FILE (as `kjob run -f`, or with --dry-run print them as "
        "`kubectl create --dry-run=client -o yaml` does: the document given, every field kept), "
        "or a resource from the command line, as `kubectl create` does.",
        usage="kjob create -f FILE [--dry-run] [-o FORMAT] [options]\n"
        "       kjob create job NAME [options] -- CMD [ARGS...]",
    )
    add_filename(create, required=False)
    create.add_argument("--strict", action="store_true", help="refuse fields kjob cannot honour locally")
    _add_dry_run(create)
    _add_run_options(create, ["json", "yaml", "wide", "name"])
    create.set_defaults(handler=_cmd_create_from_files)
    create_sub = create.add_subparsers(dest="kind", metavar="KIND")
    job = create_sub.add_parser(
        "job",
        help="create and run a Job running CMD",
        usage="kjob create job NAME [options] -- CMD [ARGS...]",
        description="Create a Job named NAME that runs CMD ARGS... (after `--`) and run it in the "
        "foreground, or with --dry-run print the manifest `kubectl apply` would take.",
        epilog="example: kjob create job hello --completions=3 --parallelism=2 -- echo hi",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    job.add_argument("name", metavar="NAME", help="the Job's name (a DNS subdomain, e.g. my-job)")
    job.add_argument(
        "--image",
        default=None,
        help="container image for a cluster (ignored locally; needed for --dry-run -o yaml|json)",
    )
    job.add_argument("--completions", type=int, default=None, metavar="N", help="pods that must succeed")
    job.add_argument(
        "--parallelism", type=int, default=None, metavar="N", help="pods running at once at most"
    )
    job.add_argument(
        "--indexed",
        action="store_true",
        help="completionMode: Indexed (each pod gets JOB_COMPLETION_INDEX 0..completions-1)",
    )
    job.add_argument(
        "--backoff-limit",
        type=int,
        default=None,
        metavar="N",
        help="failed pods allowed before the Job fails (default 6)",
    )
    job.add_argument(
        "--restart",
        choices=["Never", "OnFailure"],
        default="Never",
        help="the pods' restartPolicy (default Never, as kubectl create job)",
    )
    _add_dry_run(job)
    _add_run_options(job, ["json", "yaml", "wide", "name"])
    # The command after `--` is split off before parsing (see main): argparse would otherwise
    # take the options of CMD for its own.
    job.set_defaults(handler=_cmd_create_job, strict=False)

    tests = sub.add_parser(
        "pytest",
        help="run a pytest suite as an Indexed Job, one pod per shard",
        usage="kjob pytest --shards N [--retries K] [--junitxml PATH] [-- PYTEST ARGS...]\n"
        "       kjob pytest --shards N --dry-run -o yaml --image IMAGE [-- PYTEST ARGS...]",
        description="Collect the tests once, split them into N shards (balanced by the last "
        "run's durations when known) and run them as an Indexed Job of N pods; a shard whose "
        "tests failed is retried alone, up to K times (backoffLimitPerIndex). Tests that failed "
        "and then passed are reported flaky. Exit status: pytest's.",
    )
    tests.add_argument("--shards", type=int, required=True, metavar="N", help="pods, one per shard")
    tests.add_argument(
        "--retries",
        type=int,
        default=0,
        metavar="K",
        help="retries of a failed shard (backoffLimitPerIndex; default 0: a failure is final)",
    )
    tests.add_argument("--junitxml", default=None, metavar="PATH", help="write the merged JUnit XML here")
    tests.add_argument(
        "--backoff-initial-seconds",
        type=float,
        default=None,
        metavar="S",
        help="delay before a failed shard's retry (doubling; default Kubernetes' 10)",
    )
    tests.add_argument("--image", default=None, help="container image for --dry-run")
    tests.add_argument("-o", "--output", choices=["yaml", "json"], default=None, help="with --dry-run")
    _add_dry_run(tests)
    tests.set_defaults(handler=_cmd_pytest)
    add_kubectl_verbs(sub)
    return parser


def _add_dry_run(p: argparse.ArgumentParser) -> None:
    # `--dry-run=client|server|none` is rewritten before parsing (see main), so that a bare
    # `--dry-run` never takes the next word as its value.
    p.add_argument(
        "--dry-run",
        action="store_const",
        const="client",
        default="none",
        help="only validate and print the Job (with -o yaml|json: its manifest); "
        "--dry-run=client and =server mean the same here, =none runs it",
    )


def _dry_run_flag(arg: str) -> str:
    """kubectl's ``--dry-run=client`` / ``=server`` as the bare flag; other values are kept
    for argparse to refuse."""
    return "--dry-run" if arg in ("--dry-run=client", "--dry-run=server") else arg


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if "--" in argv:
        split = argv.index("--")
        argv, command = argv[:split], argv[split + 1 :]
    args = parser.parse_args([_dry_run_flag(a) for a in argv if a != "--dry-run=none"])
    args.command = command
    if command and getattr(args, "handler", None) not in (_cmd_create_job, _cmd_pytest):
        parser.error("only `kjob create job` takes a command after --")
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is _cmd_create_from_files and not args.filename:
        parser.error("kjob create: give -f FILE, or a KIND (kjob create job NAME -- CMD)")
    if args.version:
        handler = _cmd_version
    if handler is None:
        parser.print_help()
        return EXIT_INVALID
    # Without the store, pod logs go to a folder this command owns and removes at its very
    # end, so that they can still be read after the Job is gone (a ttlSecondsAfterFinished of 0
    # deletes it at once); a failed Job's folder is kept (and its path printed) for the user to
    # read the logs. With the store, the logs are the stored Job's, kept and removed with it.
    runs_jobs = handler in (_cmd_run, _cmd_create_job, _cmd_create_from_files, _cmd_timeline)
    own_logs = runs_jobs and args.log_dir is None and not (_has_store() and handler is not _cmd_timeline)
    args.keep_logs = False
    previous = _catch_signals() if runs_jobs else {}
    try:
        if own_logs:
            args.log_dir = tempfile.mkdtemp(prefix="kjob-logs-")
        if runs_jobs and _has_store():
            with logs_held():
                return handler(args)
        return handler(args)
    except InvalidInput as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KubectlError as e:
        print(e, file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        # A kubectl verb stopped by Ctrl-C dies as kubectl does, without a traceback.
        if handler in KUBECTL_HANDLERS:
            return EXIT_INTERRUPTED
        raise
    except Terminated as e:
        return 128 + e.signum
    except BrokenPipeError:
        # The Job (if any) was deleted on the way out; nothing is printed about it.
        _quiet_closed_pipes()
        return EXIT_BROKEN_PIPE
    except (OSError, RuntimeError) as e:
        # The store cannot be read or written (a full disk, a database of a newer kjob):
        # its message names the path; a verb says it as kubectl says errors.
        if handler not in KUBECTL_HANDLERS:
            raise
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        # A signal now would cut the removal of the folder short.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)
        if own_logs and args.log_dir is not None and not args.keep_logs:
            shutil.rmtree(args.log_dir, ignore_errors=True)
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


# A terminal closing (SIGHUP) or a service manager stopping kjob (SIGTERM) must not leave its
# pods or log folder behind: they are handled as Ctrl-C is.
_CLEAN_UP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _catch_signals() -> dict[int, Any]:
    """Turns SIGTERM and SIGHUP into :class:`Terminated`; returns the handlers they had. A
    signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored. Signal handlers can
    only be set from the main thread: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous: dict[int, Any] = {}
    for signum in _CLEAN_UP_SIGNALS:
        before = signal.getsignal(signum)
        if before is not signal.SIG_IGN:
            previous[signum] = signal.signal(signum, _terminate)
    return previous


if __name__ == "__main__":
    sys.exit(main())
